//! Deletes usage rows older than `GATEWAY_USAGE_RETENTION`, in small batches so the table is
//! never locked for long. Safe on every replica at once (plain deletes by id).

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::repo::delete_older_than;

const BATCH: i64 = 5_000;

pub fn spawn_retention(db: PgPool, keep: Duration, every: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let before = OffsetDateTime::now_utc() - keep;
            loop {
                match delete_older_than(&db, before, BATCH).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(rows = n, "usage retention deleted old rows");
                        if stop.is_cancelled() {
                            return;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "usage retention failed; retrying next round");
                        break;
                    }
                }
            }
        }
    });
}
