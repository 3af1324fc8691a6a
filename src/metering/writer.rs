//! The usage writer: a bounded queue drained by one task that inserts batches (UNNEST) on size
//! or interval, retries with backoff while Postgres is unavailable, and flushes on shutdown.
//! A full queue drops the event and counts it; the caller is never blocked or failed.
//!
//! The task is not woken per event: it drains the queue every `flush_every` ([`FLUSH_EVERY`]),
//! or as soon as a whole batch is queued (the recording call signals it). Waking it per event
//! cost each tool call a task wake-up, often a second worker thread's too (issue 8).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use prometheus::{IntCounter, IntGauge};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::UsageEvent;
use super::repo::insert_batch;
use crate::limits::Quotas;

/// Rows per insert; a queue this long wakes the writer before its interval.
pub const BATCH: usize = 500;
/// How often the writer drains the queue when fewer than [`BATCH`] events wait.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Meter {
    tx: mpsc::Sender<UsageEvent>,
    /// Wakes the writer early when a whole batch is queued.
    batch_ready: Arc<Notify>,
    depth: IntGauge,
    dropped: IntCounter,
    warned: Arc<AtomicBool>,
}

impl Meter {
    /// Queues the event; never waits. A full queue drops it (and says so once per episode).
    pub fn record(&self, event: UsageEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.depth.inc();
                self.warned.store(false, Ordering::Relaxed);
                let queued = self.tx.max_capacity() - self.tx.capacity();
                if queued >= BATCH.min(self.tx.max_capacity()) {
                    self.batch_ready.notify_one();
                }
            }
            Err(_) => {
                self.dropped.inc();
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "usage queue full: dropping usage events (gateway_usage_events_dropped_total)"
                    );
                }
            }
        }
    }
}

pub struct WriterHandle {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl WriterHandle {
    /// Flushes what is queued (bounded by `deadline`) and stops.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            tracing::warn!("usage writer did not flush within the shutdown deadline");
        }
    }
}

pub struct WriterMetrics {
    pub written: IntCounter,
    pub dropped: IntCounter,
    pub depth: IntGauge,
}

pub fn spawn_writer(
    db: PgPool,
    quotas: Quotas,
    metrics: WriterMetrics,
    capacity: usize,
    flush_every: Duration,
) -> (Meter, WriterHandle) {
    let (tx, rx) = mpsc::channel(capacity);
    let stop = CancellationToken::new();
    let batch_ready = Arc::new(Notify::new());
    let meter = Meter {
        tx,
        batch_ready: batch_ready.clone(),
        depth: metrics.depth.clone(),
        dropped: metrics.dropped.clone(),
        warned: Arc::default(),
    };
    let task = tokio::spawn(run(
        db,
        quotas,
        metrics,
        rx,
        batch_ready,
        flush_every,
        stop.clone(),
    ));
    (meter, WriterHandle { task, stop })
}

async fn run(
    db: PgPool,
    quotas: Quotas,
    metrics: WriterMetrics,
    mut rx: mpsc::Receiver<UsageEvent>,
    batch_ready: Arc<Notify>,
    flush_every: Duration,
    stop: CancellationToken,
) {
    let mut batch: Vec<UsageEvent> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + flush_every, flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            biased;
            _ = stop.cancelled() => true,
            _ = batch_ready.notified() => false,
            _ = tick.tick() => false,
        };
        // Shutdown too takes what is queued and writes it (a few attempts, bounded by the
        // caller).
        let closed = drain(&db, &quotas, &metrics, &mut rx, &mut batch, &stop).await;
        if stopping || closed {
            break;
        }
    }
}

/// Writes every queued event, in batches of at most [`BATCH`]; true once all senders are gone.
async fn drain(
    db: &PgPool,
    quotas: &Quotas,
    metrics: &WriterMetrics,
    rx: &mut mpsc::Receiver<UsageEvent>,
    batch: &mut Vec<UsageEvent>,
    stop: &CancellationToken,
) -> bool {
    let closed = loop {
        match rx.try_recv() {
            Ok(ev) => {
                batch.push(ev);
                if batch.len() >= BATCH {
                    flush(db, quotas, metrics, batch, stop).await;
                }
            }
            Err(mpsc::error::TryRecvError::Empty) => break false,
            Err(mpsc::error::TryRecvError::Disconnected) => break true,
        }
    };
    if !batch.is_empty() {
        flush(db, quotas, metrics, batch, stop).await;
    }
    closed
}

/// Writes the batch, retrying with exponential backoff (100 ms → 5 s) until it lands — or, once
/// shutdown began, for a few attempts. Rows keep their ids, so a retry after an ambiguous
/// failure inserts nothing twice.
async fn flush(
    db: &PgPool,
    quotas: &Quotas,
    metrics: &WriterMetrics,
    batch: &mut Vec<UsageEvent>,
    stop: &CancellationToken,
) {
    let events = std::mem::take(batch);
    let n = events.len() as i64;
    let stopping = stop.is_cancelled();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter();
    let backoff = if stopping {
        backoff.with_max_times(3)
    } else {
        backoff.without_max_times()
    };
    let result = (|| insert_batch(db, &events))
        .retry(backoff)
        .notify(|e, wait| tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, rows = n, "usage write failed; retrying"))
        .when(|_| !stop.is_cancelled() || stopping)
        .await;
    metrics.depth.sub(n);
    match result {
        Ok(()) => {
            metrics.written.inc_by(n as u64);
            let mut reached: HashMap<&str, i64> = HashMap::new();
            for e in events.iter().filter(|e| e.reached_upstream) {
                *reached.entry(e.tenant.as_str()).or_default() += 1;
            }
            for (tenant, count) in reached {
                quotas.flushed(tenant, count);
            }
        }
        Err(e) => {
            metrics.dropped.inc_by(n as u64);
            tracing::error!(error = %e, rows = n, "usage rows lost: Postgres unavailable at shutdown");
        }
    }
}
