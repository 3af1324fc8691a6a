//! All SQL of the usage ledger.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::UsageEvent;

/// Inserts the rows and adds the upstream-reaching ones to `usage_monthly`, in one statement.
/// Rows already present (a replayed batch) are skipped and not counted again.
pub async fn insert_batch(db: &PgPool, events: &[UsageEvent]) -> Result<(), sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    let mut request_ids = Vec::with_capacity(events.len());
    let mut ats = Vec::with_capacity(events.len());
    let mut tenants = Vec::with_capacity(events.len());
    let mut callers = Vec::with_capacity(events.len());
    let mut tools = Vec::with_capacity(events.len());
    let mut outcomes = Vec::with_capacity(events.len());
    let mut statuses = Vec::with_capacity(events.len());
    let mut upstream = Vec::with_capacity(events.len());
    let mut totals = Vec::with_capacity(events.len());
    let mut bytes_in = Vec::with_capacity(events.len());
    let mut bytes_out = Vec::with_capacity(events.len());
    let mut reached = Vec::with_capacity(events.len());
    // The text columns borrow from the events: no copy per row (`as` stops the macro from
    // asking for `Vec<String>`; `$n::text[]` in the SQL fixes the type).
    for e in events {
        ids.push(e.id);
        request_ids.push(e.request_id.as_str());
        ats.push(e.at);
        tenants.push(e.tenant.as_str());
        callers.push(e.caller.as_str());
        tools.push(e.tool.as_str());
        outcomes.push(e.outcome.as_str());
        statuses.push(e.http_status);
        upstream.push(e.upstream_ms);
        totals.push(e.total_ms);
        bytes_in.push(e.bytes_in);
        bytes_out.push(e.bytes_out);
        reached.push(e.reached_upstream);
    }
    sqlx::query!(
        r#"WITH ins AS (
               INSERT INTO usage_events (id, request_id, at, tenant_id, caller, tool, outcome,
                   http_status, upstream_ms, total_ms, bytes_in, bytes_out, reached_upstream)
               SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[],
                   $5::text[], $6::text[], $7::text[], $8::int2[], $9::int4[], $10::int4[],
                   $11::int4[], $12::int4[], $13::bool[])
               ON CONFLICT (id) DO NOTHING
               RETURNING tenant_id, at, reached_upstream
           )
           INSERT INTO usage_monthly (tenant_id, month, calls)
           SELECT tenant_id, date_trunc('month', at AT TIME ZONE 'UTC')::date, count(*)
           FROM ins WHERE reached_upstream GROUP BY 1, 2
           ON CONFLICT (tenant_id, month) DO UPDATE SET calls = usage_monthly.calls + EXCLUDED.calls"#,
        &ids,
        &request_ids as &[&str],
        &ats,
        &tenants as &[&str],
        &callers as &[&str],
        &tools as &[&str],
        &outcomes as &[&str],
        &statuses,
        &upstream as &[Option<i32>],
        &totals,
        &bytes_in,
        &bytes_out,
        &reached,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What usage rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroup {
    Tool,
    Day,
    Caller,
    Outcome,
}

impl UsageGroup {
    fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Tool => "tool",
            UsageGroup::Day => "day",
            UsageGroup::Caller => "caller",
            UsageGroup::Outcome => "outcome",
        }
    }
}

/// One group of calls: count, errors (outcome other than `ok`) and latency percentiles.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageRow {
    /// The group's value (a tool name, `YYYY-MM-DD`, a caller, an outcome); `null` in `total`.
    pub key: Option<String>,
    pub calls: i64,
    pub errors: i64,
    /// Median total latency in milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile of total latency in milliseconds.
    pub p95_ms: Option<f64>,
}

/// Rows per group plus the total (served by `usage_events_tenant_at`).
pub async fn usage_report(
    db: &PgPool,
    tenant: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
    group: UsageGroup,
) -> Result<(Vec<UsageRow>, UsageRow), sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT key, GROUPING(key) = 1 AS "is_total!",
                  count(*) AS "calls!", count(*) FILTER (WHERE outcome <> 'ok') AS "errors!",
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms) AS p95
           FROM (
               SELECT CASE $4
                          WHEN 'tool' THEN tool
                          WHEN 'caller' THEN caller
                          WHEN 'outcome' THEN outcome
                          ELSE to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                      END AS key,
                      outcome, total_ms
               FROM usage_events
               WHERE tenant_id = $1 AND at >= $2 AND at < $3
           ) s
           GROUP BY GROUPING SETS ((key), ())
           ORDER BY GROUPING(key), key"#,
        tenant,
        from,
        to,
        group.as_str(),
    )
    .fetch_all(db)
    .await?;
    let mut groups = Vec::new();
    let mut total = UsageRow {
        key: None,
        calls: 0,
        errors: 0,
        p50_ms: None,
        p95_ms: None,
    };
    for r in rows {
        let row = UsageRow {
            key: r.key,
            calls: r.calls,
            errors: r.errors,
            p50_ms: r.p50,
            p95_ms: r.p95,
        };
        if r.is_total {
            total = row;
        } else {
            groups.push(row);
        }
    }
    Ok((groups, total))
}

/// Deletes at most `batch` rows older than `before`; returns how many.
pub(super) async fn delete_older_than(
    db: &PgPool,
    before: OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE at < $1 LIMIT $2)",
        before,
        batch
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
