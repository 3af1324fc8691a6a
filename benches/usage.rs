//! Usage-ledger benchmark: prints batched insert throughput into a real Postgres and the
//! hot-path cost of metering (queueing one event). Not a test: figures, no thresholds.
//!
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench usage
//!
//! It creates a throwaway database `imgw_bench_<pid>` and drops it afterwards.

use std::time::{Duration, Instant};

use intercom_mcp_gateway::db;
use intercom_mcp_gateway::limits::Quotas;
use intercom_mcp_gateway::metering::{UsageEvent, insert_batch, spawn_writer};
use intercom_mcp_gateway::telemetry::Metrics;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;

fn event(i: usize) -> UsageEvent {
    UsageEvent {
        id: uuid::Uuid::new_v4(),
        request_id: format!("req-{i}"),
        at: OffsetDateTime::now_utc(),
        tenant: format!("tenant-{}", i % 50),
        caller: format!("svc-{}", i % 7),
        tool: ["search_conversations", "get_contact", "search"][i % 3].into(),
        outcome: if i.is_multiple_of(20) {
            "tool_error".into()
        } else {
            "ok".into()
        },
        http_status: if i.is_multiple_of(20) { 422 } else { 200 },
        upstream_ms: Some((i % 300) as i32),
        total_ms: (i % 300) as i32 + 1,
        bytes_in: 0,
        bytes_out: 1800,
        reached_upstream: true,
    }
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin: PgConnectOptions = url.parse()?;
    let name = format!("imgw_bench_{}", std::process::id());
    let mut conn = admin.clone().database("postgres").connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(admin.clone().database(&name))
        .await?;
    db::migrate(&pool).await?;

    println!(
        "usage ledger benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("{:<44} {:>14}", "measure", "result");

    for batch in [100usize, 500, 2000] {
        let total = 50_000;
        let events: Vec<UsageEvent> = (0..total).map(event).collect();
        let started = Instant::now();
        for chunk in events.chunks(batch) {
            insert_batch(&pool, chunk).await?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<44} {:>10.0} rows/s",
            format!("insert, batches of {batch} ({total} rows)"),
            total as f64 / secs
        );
    }

    // Hot path: what a request pays to meter itself — building the event and queueing it.
    let metrics = Metrics::new(true);
    let (meter, writer) = spawn_writer(
        pool.clone(),
        Quotas::new(pool.clone()),
        metrics.usage_writer(),
        1_000_000,
        intercom_mcp_gateway::metering::FLUSH_EVERY,
    );
    let n = 200_000;
    let started = Instant::now();
    for i in 0..n {
        meter.record(event(i));
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{:<44} {:>11.0} ns",
        "meter.record (build + queue one event)", per
    );
    let started = Instant::now();
    writer.shutdown(Duration::from_secs(120)).await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<44} {:>10.0} rows/s",
        format!("writer drain of {n} queued events"),
        n as f64 / secs
    );

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_events")
        .fetch_one(&pool)
        .await?;
    println!("{:<44} {:>14}", "rows in ledger", rows);
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}
