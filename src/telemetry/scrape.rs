//! Gauges sampled when Prometheus scrapes, rather than kept up to date on every change: the
//! database pool (sqlx exposes only its current size) and the tenants needing re-auth (a
//! state in Postgres that another replica may have changed).

use std::time::Duration;

use sqlx::PgPool;

use super::Metrics;
use crate::tenants::repo;

/// A scrape must answer even when Postgres does not; the gauge then keeps its last value.
const QUERY_BUDGET: Duration = Duration::from_secs(2);

pub async fn refresh_sampled_metrics(metrics: &Metrics, db: &PgPool) {
    metrics.set_db_pool(db.size(), db.num_idle(), db.options().get_max_connections());
    match tokio::time::timeout(QUERY_BUDGET, repo::rejected_credential_tenants(db)).await {
        Ok(Ok(tenants)) => metrics.set_credentials_rejected(&tenants),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot sample rejected credentials for /metrics")
        }
        Err(_) => tracing::warn!("sampling rejected credentials for /metrics timed out"),
    }
}
