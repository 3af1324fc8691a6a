//! Metering: one usage row per tool call, written to Postgres in batches off the hot path.

mod repo;
mod retention;
mod writer;

pub use repo::{UsageGroup, UsageRow, insert_batch, usage_report};
pub use retention::spawn_retention;
pub use writer::{BATCH, FLUSH_EVERY, Meter, WriterHandle, WriterMetrics, spawn_writer};

use time::OffsetDateTime;
use uuid::Uuid;

/// One metered call (PRODUCT.md "Limits and metering").
#[derive(Debug, Clone)]
pub struct UsageEvent {
    /// Made once per call, before any retry inside the gateway: the row's identity. A UUIDv7
    /// ([`UsageEvent::new_id`]): time-ordered, so the ledger's primary key grows at its right
    /// edge instead of touching a random index page per row.
    pub id: Uuid,
    pub request_id: String,
    pub at: OffsetDateTime,
    pub tenant: String,
    pub caller: String,
    pub tool: String,
    /// `ok` or the error code.
    pub outcome: String,
    pub http_status: i16,
    pub upstream_ms: Option<i32>,
    pub total_ms: i32,
    pub bytes_in: i32,
    pub bytes_out: i32,
    pub reached_upstream: bool,
}

impl UsageEvent {
    /// A new row identity: a UUIDv7 (milliseconds since the epoch, then random bits; ordered
    /// within this process). A random (v4) key sends each insert to a random page of
    /// `usage_events_pkey`: once the index outgrows memory, every row costs a page read, and
    /// after each checkpoint a full-page image in the WAL (`cargo bench --bench usage`, 1 M
    /// rows in: 345 KiB of WAL per 500-row batch with v4, 201 KiB with v7).
    pub fn new_id() -> Uuid {
        Uuid::now_v7()
    }
}

#[cfg(test)]
mod tests {
    use super::UsageEvent;

    #[test]
    fn row_ids_are_time_ordered() {
        let ids: Vec<_> = (0..1000).map(|_| UsageEvent::new_id()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        // Each id sorts after the one made before it, as the primary key index sees them.
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
