//! Cross-replica invalidation: Postgres `LISTEN gateway_tenant_changed`.
//!
//! Triggers (migration 0003) notify `<tenant id> <drain|reload>` on every committed change to a
//! tenant or a credential, whichever replica (or `psql`) made it; Postgres delivers it to every
//! listening session within milliseconds of the commit. Each replica then reads the tenant again
//! (while Postgres is known to answer, so a later outage finds it cached) and, for `drain`,
//! closes the tenant's upstream sessions after their in-flight calls.
//!
//! Notifications are not durable: while the listening connection is down they are lost. So once
//! Postgres answers again the whole cache is dropped (not before: during an outage the cached
//! copies keep tool calls working), and the directory's time-to-live re-reads every tenant
//! periodically as a safety net.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{TenantDirectory, TenantId};

pub const CHANNEL: &str = "gateway_tenant_changed";

/// What a notification asks of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub tenant: TenantId,
    /// Close the tenant's upstream sessions too (token, status or region changed, or deleted).
    pub drain: bool,
}

impl Change {
    pub fn parse(payload: &str) -> Option<Change> {
        let (id, what) = payload.split_once(' ').unwrap_or((payload, "drain"));
        Some(Change {
            tenant: TenantId::parse(id).ok()?,
            drain: what != "reload",
        })
    }
}

/// Closes a tenant's upstream sessions (the session pool's `close_tenant`).
pub type Drain = Box<dyn Fn(TenantId) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Connects the listener (so start-up fails loudly when it cannot), then serves notifications
/// in the background until `shutdown`.
pub async fn spawn_listener(
    db: &PgPool,
    directory: TenantDirectory,
    drain: Drain,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    let probe = db.clone();
    tokio::spawn(async move {
        // Set when the listening connection dropped: changes may have gone unannounced.
        let mut missed = false;
        loop {
            if missed {
                // Keep serving the cached copies while Postgres is away (a tool call needs no
                // database); drop them once it is back, before listening again.
                if sqlx::query("SELECT 1").execute(&probe).await.is_ok() {
                    tracing::info!("change notifications resume; dropping the tenant cache");
                    directory.invalidate_all();
                    missed = false;
                } else {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) => match Change::parse(n.payload()) {
                    Some(change) => {
                        tracing::debug!(tenant = %change.tenant, drain = change.drain, "tenant changed");
                        directory.reload(&change.tenant).await;
                        if change.drain {
                            drain(change.tenant).await;
                        }
                    }
                    None => tracing::warn!(
                        payload = n.payload(),
                        "ignoring a malformed change notification"
                    ),
                },
                // The connection dropped; the next `try_recv` reconnects. Whatever changed
                // meanwhile went unannounced, so nothing cached can be trusted.
                Ok(None) => {
                    tracing::warn!("change notifications interrupted");
                    missed = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications unavailable; retrying");
                    missed = true;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_tenant_and_whether_to_drain() {
        let c = Change::parse("acme drain").unwrap();
        assert_eq!((c.tenant.as_str(), c.drain), ("acme", true));
        assert!(!Change::parse("acme reload").unwrap().drain);
        assert!(Change::parse("acme").unwrap().drain);
        assert!(Change::parse("../x drain").is_none());
    }
}
