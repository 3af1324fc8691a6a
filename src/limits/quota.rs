//! Monthly quotas: the calls that reached Intercom this calendar month (UTC), shared by every
//! replica through `usage_monthly`.
//!
//! The count a replica enforces is `C + (local_total - F)`: `C` is `usage_monthly.calls` read at
//! the last refresh, `F` how many of this replica's calls had been flushed to Postgres just
//! before that read, `local_total` this replica's calls this month. So this replica's own calls
//! count at once, flushed or not, and nothing is counted twice (a row flushed between the
//! snapshot and the read is counted twice, which errs on the safe side). Other replicas' calls
//! appear after their flush (≤ 1 s) plus our refresh (`REFRESH_EVERY`, one query for all
//! tenants): that is the bound on overshoot across replicas. Refreshes run in the background,
//! never on the call path, except for a tenant's first check.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use sqlx::PgPool;
use time::{Date, Month, OffsetDateTime};
use tokio_util::sync::CancellationToken;

use crate::tenants::TenantId;

const REFRESH_EVERY: Duration = Duration::from_secs(2);

struct Counter {
    month: Date,
    db_calls: AtomicI64,
    flushed_at_read: AtomicI64,
    local_total: AtomicI64,
    local_flushed: AtomicI64,
}

impl Counter {
    fn estimate(&self) -> i64 {
        self.db_calls.load(Ordering::Acquire) + self.local_total.load(Ordering::Acquire)
            - self.flushed_at_read.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
pub struct Quotas {
    db: PgPool,
    counters: Cache<TenantId, Arc<Counter>>,
}

/// The first day of the month `at` falls in.
fn month_of(at: OffsetDateTime) -> Date {
    at.date().replace_day(1).unwrap_or(at.date())
}

/// Time until the next month starts (UTC): when a refused tenant may call again.
pub fn until_next_month(now: OffsetDateTime) -> Duration {
    let d = now.date();
    let (y, m) = if d.month() == Month::December {
        (d.year() + 1, Month::January)
    } else {
        (d.year(), d.month().next())
    };
    let next = Date::from_calendar_date(y, m, 1)
        .unwrap_or(d)
        .midnight()
        .assume_utc();
    let secs = (next - now).whole_seconds().max(1);
    Duration::from_secs(secs.unsigned_abs())
}

impl Quotas {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            counters: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    async fn counter(&self, tenant: &TenantId) -> anyhow::Result<Arc<Counter>> {
        let month = month_of(OffsetDateTime::now_utc());
        if let Some(c) = self.counters.get(tenant)
            && c.month == month
        {
            return Ok(c);
        }
        let fresh = Arc::new(Counter {
            month,
            db_calls: AtomicI64::new(0),
            flushed_at_read: AtomicI64::new(0),
            local_total: AtomicI64::new(0),
            local_flushed: AtomicI64::new(0),
        });
        refresh_one(&self.db, tenant, &fresh).await?;
        self.counters.insert(tenant.clone(), fresh.clone());
        Ok(fresh)
    }

    /// Re-reads every tracked tenant's shared count every `REFRESH_EVERY`, in one query, off
    /// the call path.
    pub fn spawn_refresher(&self, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = this.refresh_all().await {
                    tracing::warn!(error = %e, "quota count refresh failed; using the last counts");
                }
            }
        });
    }

    async fn refresh_all(&self) -> anyhow::Result<()> {
        let month = month_of(OffsetDateTime::now_utc());
        let tracked: Vec<(TenantId, Arc<Counter>, i64)> = self
            .counters
            .iter()
            .filter(|(_, c)| c.month == month)
            .map(|(t, c)| {
                let flushed = c.local_flushed.load(Ordering::Acquire);
                ((*t).clone(), c, flushed)
            })
            .collect();
        if tracked.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = tracked.iter().map(|(t, _, _)| t.to_string()).collect();
        let rows = sqlx::query!(
            "SELECT tenant_id, calls FROM usage_monthly WHERE month = $1 AND tenant_id = ANY($2)",
            month,
            &ids
        )
        .fetch_all(&self.db)
        .await?;
        for (tenant, counter, flushed) in tracked {
            let calls = rows
                .iter()
                .find(|r| r.tenant_id == tenant.as_str())
                .map(|r| r.calls)
                .unwrap_or(0);
            counter.db_calls.store(calls, Ordering::Release);
            counter.flushed_at_read.store(flushed, Ordering::Release);
        }
        Ok(())
    }

    /// `Err(retry_after)` when the tenant's quota is used up.
    pub async fn check(
        &self,
        tenant: &TenantId,
        quota: Option<i64>,
    ) -> anyhow::Result<Result<(), Duration>> {
        let Some(quota) = quota else {
            return Ok(Ok(()));
        };
        let c = self.counter(tenant).await?;
        if c.estimate() >= quota {
            return Ok(Err(until_next_month(OffsetDateTime::now_utc())));
        }
        Ok(Ok(()))
    }

    /// Counts a call that reached Intercom.
    pub fn reached(&self, tenant: &TenantId) {
        if let Some(c) = self.counters.get(tenant) {
            c.local_total.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The usage writer flushed `n` upstream-reaching rows of this tenant.
    pub fn flushed(&self, tenant: &str, n: i64) {
        if let Ok(id) = TenantId::parse(tenant)
            && let Some(c) = self.counters.get(&id)
        {
            c.local_flushed.fetch_add(n, Ordering::AcqRel);
        }
    }
}

async fn refresh_one(db: &PgPool, tenant: &TenantId, c: &Counter) -> anyhow::Result<()> {
    let flushed = c.local_flushed.load(Ordering::Acquire);
    let calls: Option<i64> = sqlx::query_scalar!(
        "SELECT calls FROM usage_monthly WHERE tenant_id = $1 AND month = $2",
        tenant.as_str(),
        c.month
    )
    .fetch_optional(db)
    .await?;
    c.db_calls.store(calls.unwrap_or(0), Ordering::Release);
    c.flushed_at_read.store(flushed, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_resets_at_the_next_utc_month() {
        let dec = time::macros::datetime!(2026-12-31 23:59:00 UTC);
        assert_eq!(until_next_month(dec), Duration::from_secs(60));
        let nov = time::macros::datetime!(2026-11-22 00:00:00 UTC);
        assert_eq!(until_next_month(nov), Duration::from_secs(9 * 86400));
    }
}
