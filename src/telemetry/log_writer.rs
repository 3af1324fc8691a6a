//! Log lines leave for stdout in batches, from a thread of their own.
//!
//! A request appends its formatted line to a shared buffer under a mutex and goes on; it makes
//! no system call unless it is the first line of a batch (it wakes the writer thread). The
//! writer thread then gathers lines for up to [`Batching::gather`] (or until
//! [`Batching::batch_bytes`] are queued) and writes them with one `write`. Under load that is
//! one wake-up and one `write` per batch, not one per line: tracing-appender's writer, used
//! before, woke its thread for nearly every line (~1.7 context switches per call at 500 req/s,
//! issue 8 profile), the largest single cost left on the hot path.
//!
//! Nothing is dropped: past [`Batching::max_pending`] queued bytes (stdout blocked by a slow
//! reader), logging threads wait for room, as a non-lossy tracing-appender did. Lines keep
//! their order (one buffer, one writer). When the [`Guard`] is dropped the thread writes what
//! is queued and stops; lines logged after that are written by the logging thread itself.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How lines are gathered into batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// How long the writer waits for more lines after the first line of a batch.
    pub gather: Duration,
    /// A batch this large is written at once, without waiting out `gather`.
    pub batch_bytes: usize,
    /// Logging threads wait when this much is queued and not yet written.
    pub max_pending: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            gather: Duration::from_millis(20),
            batch_bytes: 64 * 1024,
            max_pending: 1024 * 1024,
        }
    }
}

type Sink = Box<dyn Write + Send>;

struct State {
    pending: Vec<u8>,
    /// The guard was dropped: the writer thread drains and stops.
    closed: bool,
    /// Handed back by the writer thread when it stops; lines after that are written inline.
    sink: Option<Sink>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer thread waits here for a first line, then for a full batch.
    lines: Condvar,
    /// Logging threads wait here while `max_pending` bytes are queued.
    room: Condvar,
    batching: Batching,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut state = self.lock();
        loop {
            if let Some(sink) = state.sink.as_mut() {
                // The writer thread has stopped: write in place, in order after its last batch.
                let _ = sink.write_all(line).and_then(|()| sink.flush());
                return;
            }
            // Once closed, the writer drains until the queue is empty, so it still goes out.
            if state.pending.len() < self.batching.max_pending || state.closed {
                break;
            }
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let before = state.pending.len();
        state.pending.extend_from_slice(line);
        let after = state.pending.len();
        drop(state);
        // Wake the writer for the first line of a batch (it sleeps until one comes) and when a
        // batch fills up (it is waiting out `gather`); every other line costs only the lock.
        let limit = self.batching.batch_bytes;
        if before == 0 || (before < limit && after >= limit) {
            self.lines.notify_one();
        }
    }

    fn run(&self, mut sink: Sink) {
        let mut batch = Vec::new();
        loop {
            let mut state = self.lock();
            while state.pending.is_empty() && !state.closed {
                state = self
                    .lines
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.closed && state.pending.is_empty() {
                // Everything queued is out: later lines are written in place, after it.
                state.sink = Some(sink);
                drop(state);
                self.room.notify_all();
                return;
            }
            // Gather more, unless closing: then every batch goes at once until none is left.
            let deadline = Instant::now() + self.batching.gather;
            while state.pending.len() < self.batching.batch_bytes && !state.closed {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                state = self
                    .lines
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut state.pending, &mut batch);
            drop(state);
            self.room.notify_all();
            // Never under the lock: a blocked stdout must not hold up logging threads below
            // `max_pending`, nor the guard's bounded wait.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
            // A burst (stdout blocked for a while) must not keep its megabyte for good.
            if batch.capacity() > 4 * self.batching.batch_bytes {
                batch.shrink_to(self.batching.batch_bytes);
            }
        }
    }
}

/// Hands the fmt layer one [`Line`] per event; clones share one buffer and writer thread.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// How long dropping the [`Guard`] waits for the last batch (stdout may be blocked for good).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Stops the writer thread when dropped, after it has written every queued line (or after
/// [`DRAIN_TIMEOUT`], if stdout does not take them).
pub struct Guard {
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.lines.notify_one();
        // The writer hands the sink back (and signals `room`) once its last batch is out.
        let _ = self
            .shared
            .room
            .wait_timeout_while(state, DRAIN_TIMEOUT, |s| s.sink.is_none());
    }
}

/// Starts the writer thread (named `log-writer`) over `sink`.
pub fn spawn(
    sink: impl Write + Send + 'static,
    batching: Batching,
) -> io::Result<(BatchWriter, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: Vec::new(),
            closed: false,
            sink: None,
        }),
        lines: Condvar::new(),
        room: Condvar::new(),
        batching,
    });
    let sink: Sink = Box::new(sink);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || shared.run(sink)
        })?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        Guard { shared },
    ))
}

/// One event's line: the fmt layer writes a whole formatted event with one `write_all`.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink the test can read, and optionally hold shut.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }

        fn wait_for(&self, lines: usize) -> String {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = self.text();
                if text.lines().count() >= lines || Instant::now() > deadline {
                    return text;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Lines wait for the guard's drain, not for the end of a gather.
    fn long_gather() -> Batching {
        Batching {
            gather: Duration::from_secs(60),
            ..Batching::default()
        }
    }

    fn log(writer: &BatchWriter, line: &str) {
        writer.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order_in_few_writes() {
        let sink = Captured::default();
        let (writer, guard) = spawn(sink.clone(), Batching::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = &writer;
                s.spawn(move || {
                    for i in 0..2_000 {
                        log(writer, &format!("{{\"thread\":{t},\"seq\":{i}}}\n"));
                    }
                });
            }
        });
        drop(guard);
        let text = sink.text();
        let mut next = [0; 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a whole line");
            let t = v["thread"].as_u64().unwrap() as usize;
            assert_eq!(
                v["seq"].as_u64().unwrap() as usize,
                next[t],
                "order within a thread"
            );
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4], "nothing lost");
        let writes = *sink.writes.lock().unwrap();
        assert!(
            writes < 8_000 / 10,
            "{writes} writes for 8,000 lines: not batched"
        );
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let sink = Captured::default();
        let (writer, _guard) = spawn(sink.clone(), Batching::default()).unwrap();
        log(&writer, "one\n");
        assert_eq!(sink.wait_for(1), "one\n");
        log(&writer, "two\n");
        assert_eq!(sink.wait_for(2), "one\ntwo\n");
    }

    #[test]
    fn a_blocked_sink_holds_logging_threads_back_and_loses_nothing() {
        let sink = Captured::default();
        let batching = Batching {
            gather: Duration::from_millis(1),
            batch_bytes: 64,
            max_pending: 256,
        };
        let (writer, guard) = spawn(sink.clone(), batching).unwrap();
        let shut = sink.gate.lock().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let logger = std::thread::spawn({
            let writer = writer.clone();
            move || {
                for i in 0..200 {
                    log(&writer, &format!("line {i:03}\n"));
                }
                done_tx.send(()).unwrap();
            }
        });
        // 200 lines of 9 bytes do not fit in 256 bytes plus one batch in the blocked write.
        assert!(
            done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the logging thread should wait for room while the sink is blocked"
        );
        drop(shut);
        done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        logger.join().unwrap();
        drop(guard);
        let expected: String = (0..200).map(|i| format!("line {i:03}\n")).collect();
        assert_eq!(sink.text(), expected);
    }

    #[test]
    fn lines_after_the_guard_is_dropped_are_written_in_place_after_the_queue() {
        let sink = Captured::default();
        let batching = long_gather();
        let (writer, guard) = spawn(sink.clone(), batching).unwrap();
        log(&writer, "queued\n");
        drop(guard);
        assert_eq!(sink.text(), "queued\n", "the guard drains the queue");
        log(&writer, "after\n");
        assert_eq!(sink.text(), "queued\nafter\n");
    }

    #[test]
    fn dropping_the_guard_does_not_hang_on_a_blocked_stdout() {
        let sink = Captured::default();
        // The line waits out a long gather, so the guard's drain is what writes it.
        let batching = long_gather();
        let (writer, guard) = spawn(sink.clone(), batching).unwrap();
        let shut = sink.gate.lock().unwrap();
        log(&writer, "stuck\n");
        let (dropped_tx, dropped_rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            dropped_tx.send(()).unwrap();
        });
        dropped_rx
            .recv_timeout(DRAIN_TIMEOUT + Duration::from_secs(10))
            .expect("the guard gives up after its drain timeout");
        drop(shut);
        assert_eq!(
            sink.wait_for(1),
            "stuck\n",
            "the line still goes out once stdout moves"
        );
    }
}
