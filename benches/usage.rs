//! Usage-ledger benchmark: prints batched insert throughput into a real Postgres, the hot-path
//! cost of metering (queueing one event), and what a 500-row batch costs Postgres with random
//! (UUIDv4) and time-ordered (UUIDv7, what the gateway writes) row ids once the ledger is big.
//! Not a test: figures, no thresholds.
//!
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench usage
//!
//! `USAGE_BENCH_PRELOAD` (default 1,000,000) sets the rows written before the key-order
//! comparison. It creates throwaway databases `imgw_bench_<pid>[_<keys>]` and drops them.

use std::time::{Duration, Instant};

use intercom_mcp_gateway::db;
use intercom_mcp_gateway::limits::Quotas;
use intercom_mcp_gateway::metering::{UsageEvent, insert_batch, spawn_writer};
use intercom_mcp_gateway::telemetry::Metrics;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;

#[derive(Clone, Copy)]
enum Keys {
    /// UUIDv4, what the ledger was written with before.
    Random,
    /// `UsageEvent::new_id` (UUIDv7).
    Ordered,
}

fn event(i: usize) -> UsageEvent {
    event_with(i, Keys::Ordered)
}

fn event_with(i: usize, keys: Keys) -> UsageEvent {
    UsageEvent {
        id: match keys {
            Keys::Random => uuid::Uuid::new_v4(),
            Keys::Ordered => UsageEvent::new_id(),
        },
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
    let pool = fresh_database(&mut conn, &admin, &name, 4).await?;

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
    drop_database(&mut conn, &name).await?;

    let preload: usize = std::env::var("USAGE_BENCH_PRELOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!();
    println!(
        "a 500-row batch once {preload} rows are in (after a checkpoint; CPU of the Postgres backend)"
    );
    println!(
        "{:<26} {:>14} {:>14} {:>16} {:>10}",
        "row ids", "ms per batch", "CPU ms", "WAL KiB / batch", "pkey MiB"
    );
    for (keys, label) in [
        (Keys::Random, "random (UUIDv4, before)"),
        (Keys::Ordered, "time-ordered (UUIDv7)"),
    ] {
        let dbname = format!("{name}_{}", label.split(' ').next().unwrap_or("x"));
        let dbname = dbname.replace('-', "_");
        let pool = fresh_database(&mut conn, &admin, &dbname, 1).await?;
        let c = key_order(&pool, keys, preload, 200).await?;
        println!(
            "{:<26} {:>14.2} {:>14} {:>16.1} {:>10.1}",
            label,
            c.ms,
            c.cpu_ms.map_or("-".into(), |v| format!("{v:.2}")),
            c.wal_kib,
            c.pk_mib
        );
        pool.close().await;
        drop_database(&mut conn, &dbname).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Creates database `name` and returns a migrated pool of `conns` connections to it.
async fn fresh_database(
    conn: &mut sqlx::PgConnection,
    admin: &PgConnectOptions,
    name: &str,
    conns: u32,
) -> anyhow::Result<sqlx::PgPool> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut *conn)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(conns)
        .connect_with(admin.clone().database(name))
        .await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

async fn drop_database(conn: &mut sqlx::PgConnection, name: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(conn)
        .await?;
    Ok(())
}

struct BatchCost {
    ms: f64,
    cpu_ms: Option<f64>,
    wal_kib: f64,
    pk_mib: f64,
}

/// Writes `preload` rows, checkpoints, then times `batches` batches of 500 on the pool's one
/// connection. A random key sends each row to a random page of `usage_events_pkey`; the first
/// change of a page after a checkpoint writes the whole page to the WAL.
async fn key_order(
    pool: &sqlx::PgPool,
    keys: Keys,
    preload: usize,
    batches: usize,
) -> anyhow::Result<BatchCost> {
    const BATCH: usize = 500;
    let mut n = 0;
    let mut next = || {
        let rows: Vec<UsageEvent> = (n..n + BATCH).map(|i| event_with(i, keys)).collect();
        n += BATCH;
        rows
    };
    for _ in 0..preload.div_ceil(BATCH) {
        insert_batch(pool, &next()).await?;
    }
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await?;
    let lsn = "SELECT pg_current_wal_lsn()::text";
    let wal0: String = sqlx::query_scalar(lsn).fetch_one(pool).await?;
    let cpu0 = process_cpu(backend);
    let mut spent = Duration::ZERO;
    for _ in 0..batches {
        let rows = next();
        let started = Instant::now();
        insert_batch(pool, &rows).await?;
        spent += started.elapsed();
    }
    let cpu = process_cpu(backend).zip(cpu0).map(|(b, a)| b - a);
    let wal1: String = sqlx::query_scalar(lsn).fetch_one(pool).await?;
    let (wal, pk): (f64, i64) = sqlx::query_as(
        "SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::float8, \
                pg_relation_size('usage_events_pkey')",
    )
    .bind(&wal0)
    .bind(&wal1)
    .fetch_one(pool)
    .await?;
    let per = batches.max(1) as f64;
    Ok(BatchCost {
        ms: spent.as_secs_f64() * 1000.0 / per,
        cpu_ms: cpu.map(|s| s * 1000.0 / per),
        wal_kib: wal / 1024.0 / per,
        pk_mib: pk as f64 / (1024.0 * 1024.0),
    })
}

/// User + system CPU seconds of process `pid` from Linux `/proc`, when Postgres runs here.
fn process_cpu(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}
