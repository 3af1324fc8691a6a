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
    /// Made once per call, before any retry inside the gateway: the row's identity.
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
