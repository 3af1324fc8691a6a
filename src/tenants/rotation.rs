//! Key rotation: re-sealing credentials with the first key of `GATEWAY_ENCRYPTION_KEYS`.
//!
//! Putting a new key first makes every new write use it at once; this moves the old rows over,
//! in small transactions (`FOR UPDATE SKIP LOCKED`), so traffic continues and several replicas
//! (and the `rotate-keys` command) can run it together without waiting on each other. Only the
//! sealing changes: the token, its generation and its status stay, so no cache entry or
//! upstream session is disturbed. A key may leave the list once [`repo::count_by_key`] shows no
//! row using it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::crypto::{Keyring, SealedToken};
use super::{TenantId, repo};
use crate::audit::{self, Action};

/// Totals of one pass over the table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub resealed: u64,
    /// Rows that could not be opened: their key is missing from the list, or they are damaged.
    /// They are left as they are and named in the log.
    pub failed: u64,
}

/// One pass: every row sealed with another key, in batches of `batch_size`, pausing `pause`
/// between batches. `progress` sees the running totals after each batch.
pub async fn reseal_pass(
    db: &PgPool,
    keyring: &Keyring,
    batch_size: i64,
    pause: Duration,
    mut progress: impl FnMut(&PassReport),
) -> anyhow::Result<PassReport> {
    let primary = keyring.primary_kid().to_owned();
    let mut report = PassReport::default();
    let mut after = String::new();
    loop {
        let mut tx = db.begin().await?;
        let rows = repo::lock_stale_batch(&mut tx, &primary, &after, batch_size).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.tenant_id.clone();
        let mut moved = Vec::with_capacity(rows.len());
        for row in rows {
            match reseal_one(keyring, &row) {
                Ok((tenant, sealed)) => {
                    repo::reseal(&mut tx, &row.tenant_id, &sealed).await?;
                    moved.push((tenant, row.key_id));
                }
                Err(e) => {
                    tracing::error!(tenant = %row.tenant_id, key_id = %row.key_id, error = %e, "cannot re-seal credential");
                    report.failed += 1;
                }
            }
        }
        tx.commit().await?;
        for (tenant, from) in &moved {
            audit::record(
                db,
                audit::Event {
                    actor: audit::ACTOR_KEY_ROTATION,
                    action: Action::CredentialKeyRotated,
                    tenant: Some(tenant),
                    request_id: None,
                    detail: serde_json::json!({"from_key_id": from, "to_key_id": primary}),
                },
            )
            .await;
        }
        report.resealed += moved.len() as u64;
        progress(&report);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(report)
}

fn reseal_one(keyring: &Keyring, row: &repo::SealedRow) -> anyhow::Result<(TenantId, SealedToken)> {
    let tenant = TenantId::parse(&row.tenant_id)?;
    let token = keyring.open(
        &tenant,
        &SealedToken {
            key_id: row.key_id.clone(),
            nonce: row.nonce.clone(),
            ciphertext: row.ciphertext.clone(),
        },
    )?;
    let sealed = keyring.seal(&tenant, &token);
    Ok((tenant, sealed))
}

/// The background re-seal of `serve`: right away when a row needs it, then every `interval`.
/// Batches of 100 with a short pause keep it gentle next to live traffic.
pub async fn spawn_background(
    db: PgPool,
    keyring: Arc<Keyring>,
    interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if interval.is_zero() {
        return Ok(());
    }
    let now = repo::any_sealed_with_other_key(&db, keyring.primary_kid()).await?;
    tokio::spawn(async move {
        let mut due = now;
        loop {
            if due {
                let run = reseal_pass(&db, &keyring, 100, Duration::from_millis(20), |_| {});
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = run => match r {
                        Ok(r) if r.resealed > 0 || r.failed > 0 => tracing::info!(
                            resealed = r.resealed, failed = r.failed, key_id = keyring.primary_kid(),
                            "re-sealed credentials with the primary key"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = format!("{e:#}"), "background re-seal failed; retrying later"),
                    },
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            due = true;
        }
    });
    Ok(())
}
