//! The Postgres pool and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Counts connection checkouts: every query the gateway runs takes one, so tests and the
/// benchmark can prove the hot path makes none.
#[derive(Clone, Default)]
pub struct CheckoutCounter(Arc<AtomicU64>);

impl CheckoutCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    url.expose_secret()
        .parse::<PgConnectOptions>()
        .map_err(|_| anyhow::anyhow!("DATABASE_URL: not a valid postgres:// URL"))
}

/// A lazily connecting pool, so the process starts (and `/healthz` answers) while Postgres is
/// still coming up; `/readyz` tells when it is usable.
pub fn pool(options: PgConnectOptions, counter: CheckoutCounter) -> PgPool {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .before_acquire(move |_, _| {
            let counter = counter.clone();
            Box::pin(async move {
                counter.0.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

/// Applies pending migrations. sqlx takes a Postgres advisory lock for the duration, so
/// replicas starting at once apply them one at a time.
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(db)
        .await
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))
}

pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Whether `e` means Postgres could not be reached (as opposed to a query it refused).
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}

/// Whether any cause in `e`'s chain is [`is_unreachable`].
pub fn is_unreachable_chain(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<sqlx::Error>().is_some_and(is_unreachable))
}
