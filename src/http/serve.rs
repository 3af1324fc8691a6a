//! The accept loop: axum's `serve` with one difference, each connection's task absorbs the
//! wakes it gives itself while it runs ([`AbsorbSelfWake`]).
//!
//! Why (issue 8, bench/README part 10–11): hyper's body channel wakes the body's sender when
//! the receiver takes a chunk, even after the sender has gone (`body/chan.rs`,
//! `Receiver::poll_next`, hyper 1.12–1.13). On the server the sender is the connection task,
//! which also runs the handler that reads the request body, so every POST woke its own task.
//! tokio reschedules a task that woke itself as a yield: to the back of the run queue, and it
//! unparks the other worker to come and steal (a futex wake, two context switches, per
//! request). Polling the connection again at once, inside the same task poll, costs a few
//! hundred instructions instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use axum::Router;
use axum::serve::Listener;
use futures::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops accepting, tells
/// every connection to finish its in-flight requests and close (HTTP/1 keep-alive off, HTTP/2
/// GOAWAY), and returns when they all have. As `axum::serve(..).with_graceful_shutdown(..)`
/// does: HTTP/1.1 and HTTP/2 (prior knowledge) on one port; accept errors are handled by
/// axum's `Listener` (a short pause on resource exhaustion, never a failure).
pub async fn serve<L: Listener>(mut listener: L, router: Router, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    loop {
        let (io, _peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let builder = builder.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(io), service);
            if let Err(e) = AbsorbSelfWake::new(watcher.watch(conn)).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// How many times one poll of the task may poll the inner future: a wake during the first
/// poll is served by a second at once; one during the second goes through the runtime, so a
/// future that yields on purpose (hyper does after a run of pipelined requests, tokio's
/// cooperative budget does when spent) still lets other tasks run.
const POLLS_PER_WAKE: usize = 2;

/// Runs `F` with a waker of its own that notes a wake arriving while `F` is being polled,
/// instead of scheduling the task again, and then polls `F` once more. A wake at any other
/// time (from another task or thread, or after the poll) is passed to the task's waker.
pub(crate) struct AbsorbSelfWake<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

struct Signal {
    /// `IDLE`, `POLLING` or `WOKEN` (a wake arrived while `POLLING`).
    state: AtomicU8,
    /// The task's own waker, registered at each poll.
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            // The poll in progress will see it and poll again.
            Ok(_) | Err(WOKEN) => {}
            // Not being polled: a plain wake.
            Err(_) => self.task.wake(),
        }
    }
}

impl<F: Future> AbsorbSelfWake<F> {
    pub(crate) fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for AbsorbSelfWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Registered before polling: a wake from elsewhere after the poll below ends finds it.
        this.signal.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..POLLS_PER_WAKE {
            this.signal.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = this.inner.as_mut().poll(&mut inner_cx) {
                this.signal.state.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            if this
                .signal
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // Woken while polling: poll again now.
        }
        this.signal.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts the wakes that reach the task (the runtime) and the polls of the inner future.
    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task's waker that counts the wakes reaching it.
    fn task() -> (Arc<Counter>, Waker) {
        let task = Arc::new(Counter(AtomicUsize::new(0)));
        (task.clone(), Waker::from(task))
    }

    fn poll_once<F: Future>(f: &mut AbsorbSelfWake<F>, task: &Waker) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(task))
    }

    #[test]
    fn a_wake_during_the_poll_is_a_second_poll_not_a_reschedule() {
        let (task, waker) = task();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        // Wakes itself on its first poll, is ready on its second.
        let mut f = AbsorbSelfWake::new(std::future::poll_fn(move |cx| {
            if p.fetch_add(1, Ordering::SeqCst) == 0 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(7)
            }
        }));
        assert_eq!(poll_once(&mut f, &waker), Poll::Ready(7));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            0,
            "the runtime was not woken"
        );
    }

    #[test]
    fn a_future_that_keeps_yielding_still_goes_through_the_runtime() {
        let (task, waker) = task();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let mut f = AbsorbSelfWake::new(std::future::poll_fn(move |cx| {
            p.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        assert_eq!(poll_once(&mut f, &waker), Poll::Pending);
        assert_eq!(polls.load(Ordering::SeqCst), POLLS_PER_WAKE);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "one reschedule per task poll"
        );
        assert_eq!(poll_once(&mut f, &waker), Poll::Pending);
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let (task, waker) = task();
        let saved: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let s = saved.clone();
        let mut f = AbsorbSelfWake::new(std::future::poll_fn(move |cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        assert_eq!(poll_once(&mut f, &waker), Poll::Pending);
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        let inner = saved.lock().unwrap().take().unwrap();
        std::thread::spawn(move || inner.wake()).join().unwrap();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "woken from another thread"
        );
    }
}
