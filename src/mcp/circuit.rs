//! A tenant's upstream admission: the circuit breaker and the 429 hold-back.
//!
//! Both exist so that a tenant whose Intercom side is failing or throttling stops sending
//! traffic there, and so that its callers learn quickly (with `Retry-After`) instead of each
//! waiting for its own timeout. Each tenant has its own `Admission`: one tenant's broken
//! upstream never refuses or slows another's calls.
//!
//! - Circuit: `threshold` consecutive outages (5xx, connection failures, timeouts) open it;
//!   while open every call is refused with 503 `upstream_unavailable`. After `cooldown` one
//!   call is let through as a probe (half-open): success closes the circuit, an outage opens it
//!   for another cool-down. Answers that show the upstream is up (a tool error, a 4xx) count
//!   as success.
//! - Hold-back: Intercom's 429 carries `Retry-After`; until then the tenant's calls are
//!   refused locally with 429 `upstream_rate_limited` and the remaining time, rather than
//!   hammering Intercom and extending the penalty.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::UpstreamError;

/// What a finished call says about the upstream's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// The upstream answered (success, tool error, 4xx, 429).
    Up,
    /// 5xx, connection failure or timeout.
    Down,
    /// Nothing was learnt (refused locally, e.g. the pool's queue timed out).
    Unknown,
}

impl Health {
    pub(super) fn of<T>(result: &Result<T, UpstreamError>) -> Self {
        match result {
            Err(e) if e.is_outage() => Health::Down,
            Err(UpstreamError::Unavailable { .. }) => Health::Unknown,
            _ => Health::Up,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    hold_until: Option<Instant>,
}

#[derive(Debug)]
pub(super) struct Admission {
    inner: Arc<Mutex<Inner>>,
    threshold: u32,
    cooldown: Duration,
}

/// Permission to send one call upstream. Report its outcome with [`Admission::record`];
/// a probe dropped without a report (the caller went away) frees the half-open slot.
pub(super) struct Ticket {
    probe: bool,
    inner: Arc<Mutex<Inner>>,
    reported: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut g = lock(&self.inner);
            if let State::HalfOpen { .. } = g.state {
                g.state = State::HalfOpen { probing: false };
            }
        }
    }
}

/// A state change the pool turns into the `gateway_circuit_open` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Opened,
    Closed,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `Retry-After` is whole seconds; never tell a caller to retry in 0.
fn at_least_a_second(d: Duration) -> Duration {
    d.max(Duration::from_secs(1))
}

impl Admission {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                hold_until: None,
            })),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Lets a call go upstream, or says why not and for how long.
    pub(super) fn admit(&self) -> Result<Ticket, UpstreamError> {
        let now = Instant::now();
        let mut g = lock(&self.inner);
        if let Some(until) = g.hold_until {
            if until > now {
                return Err(UpstreamError::RateLimited {
                    retry_after: Some(at_least_a_second(until - now)),
                });
            }
            g.hold_until = None;
        }
        let probe = match g.state {
            State::Closed { .. } => false,
            State::Open { until } if until > now => {
                return Err(UpstreamError::Unavailable {
                    retry_after: at_least_a_second(until - now),
                });
            }
            State::Open { .. } | State::HalfOpen { probing: false } => {
                g.state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => {
                return Err(UpstreamError::Unavailable {
                    retry_after: at_least_a_second(self.cooldown.min(Duration::from_secs(1))),
                });
            }
        };
        Ok(Ticket {
            probe,
            inner: self.inner.clone(),
            reported: false,
        })
    }

    /// Records a call's outcome; returns the circuit's change, if any.
    pub(super) fn record(&self, mut ticket: Ticket, health: Health) -> Option<Change> {
        if health == Health::Unknown {
            // Dropping the ticket frees a probe slot without changing the circuit.
            return None;
        }
        ticket.reported = true;
        let mut g = lock(&self.inner);
        let was_open = !matches!(g.state, State::Closed { .. });
        match (health, g.state) {
            (Health::Up, _) => {
                g.state = State::Closed { failures: 0 };
                was_open.then_some(Change::Closed)
            }
            (Health::Down, State::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    g.state = State::Open {
                        until: Instant::now() + self.cooldown,
                    };
                    Some(Change::Opened)
                } else {
                    g.state = State::Closed { failures };
                    None
                }
            }
            // A failed probe (or a call admitted before the circuit opened) re-opens it.
            (Health::Down, _) | (Health::Unknown, _) => {
                g.state = State::Open {
                    until: Instant::now() + self.cooldown,
                };
                None
            }
        }
    }

    /// Holds the tenant's calls back until the upstream's `Retry-After` has passed.
    pub(super) fn hold(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut g = lock(&self.inner);
        g.hold_until = Some(g.hold_until.map_or(until, |u| u.max(until)));
    }

    pub(super) fn is_open(&self) -> bool {
        !matches!(lock(&self.inner).state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(a: &Admission) -> Option<Change> {
        let t = a.admit().expect("admitted");
        a.record(t, Health::Down)
    }

    #[test]
    fn consecutive_outages_open_the_circuit_and_a_success_resets_the_count() {
        let a = Admission::new(3, Duration::from_secs(60));
        assert_eq!(down(&a), None);
        assert_eq!(down(&a), None);
        let t = a.admit().unwrap();
        assert_eq!(a.record(t, Health::Up), None);
        assert_eq!(down(&a), None);
        assert_eq!(down(&a), None);
        assert_eq!(down(&a), Some(Change::Opened));
        match a.admit() {
            Err(UpstreamError::Unavailable { retry_after }) => {
                assert!(retry_after > Duration::from_secs(50))
            }
            other => panic!("expected refusal, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_circuit() {
        let a = Admission::new(1, Duration::ZERO);
        assert_eq!(down(&a), Some(Change::Opened));
        let probe = a.admit().expect("probe admitted");
        assert!(a.admit().is_err(), "only one probe at a time");
        assert_eq!(a.record(probe, Health::Up), Some(Change::Closed));
        assert!(a.admit().is_ok());
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let a = Admission::new(1, Duration::ZERO);
        down(&a);
        drop(a.admit().unwrap());
        assert!(a.admit().is_ok());
    }

    #[test]
    fn a_429_holds_calls_back_until_its_retry_after() {
        let a = Admission::new(5, Duration::from_secs(1));
        a.hold(Duration::from_secs(30));
        match a.admit() {
            Err(UpstreamError::RateLimited {
                retry_after: Some(d),
            }) => assert!(d > Duration::from_secs(28)),
            other => panic!("expected hold-back, got {:?}", other.map(|_| ())),
        }
        a.hold(Duration::ZERO);
        assert!(
            a.admit().is_err(),
            "a shorter hold never shortens a longer one"
        );
    }
}
