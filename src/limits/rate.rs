//! GCRA token buckets (governor): one per tenant (`rate_limit {per_minute, burst}`, or the
//! gateway defaults) and one per caller (`sub`) within the tenant, so one noisy service cannot
//! starve its neighbours. A caller's bucket is `GATEWAY_CALLER_RATE_SHARE` of the tenant's.
//!
//! A tenant's limits are read from its cached record on every call; when they change (PATCH),
//! its buckets are rebuilt, so the change applies without a restart.
//!
//! A tenant's caller buckets live in one small locked map keyed by a hash of `sub` (issue 8):
//! governor's default keyed store is a `DashMap`, whose shards (4 per core, 128 bytes each)
//! cost 1 KiB per tenant on 2 cores and 8 KiB on 16, before its first caller.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use moka::sync::Cache;

use crate::tenants::TenantId;
use crate::tenants::model::RateLimit;

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type Keyed = RateLimiter<
    CallerKey,
    HashMapStateStore<CallerKey, BuildHasherDefault<Prehashed>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A caller's bucket: its `sub` hashed with this process's random SipHash key. Two callers of a
/// tenant share a bucket only on a 64-bit collision, which no caller can aim for without the key.
type CallerKey = u64;

/// The map's hasher: caller keys are uniform hashes already, so they are used as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached (a `u64` key hashes through `write_u64`); folds the bytes in if it is.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The `RateLimit-*` header values (draft-ietf-httpapi-ratelimit-headers) of the bucket that
/// binds: the one with the least capacity left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A refused call: which bucket, when to retry, and the headers to send.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// `tenant` or `caller` (the `reason` label of `gateway_rate_limited_total`).
    pub scope: &'static str,
    pub retry_after: Duration,
    pub headers: RateHeaders,
}

struct Buckets {
    rate: RateLimit,
    tenant: Direct,
    tenant_quota: Quota,
    callers: Keyed,
    caller_quota: Quota,
}

#[derive(Clone)]
pub struct RateLimits {
    defaults: RateLimit,
    caller_share: f64,
    caller_keys: RandomState,
    tenants: Cache<TenantId, Arc<Buckets>>,
}

fn quota(rate: RateLimit) -> Quota {
    let per_minute = rate.per_minute.max(1);
    let period =
        Duration::from_nanos(60_000_000_000 / u64::from(per_minute)).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn headers(q: Quota, remaining: u32) -> RateHeaders {
    let burst = q.burst_size().get();
    let missing = u64::from(burst.saturating_sub(remaining));
    let reset = q.replenish_interval().as_secs_f64() * missing as f64;
    RateHeaders {
        limit: burst,
        remaining,
        reset_secs: reset.ceil() as u64,
    }
}

impl RateLimits {
    pub fn new(defaults: RateLimit, caller_share: f64) -> Self {
        Self {
            defaults,
            caller_share: caller_share.clamp(0.01, 1.0),
            caller_keys: RandomState::new(),
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    fn buckets(&self, tenant: &TenantId, configured: Option<RateLimit>) -> Arc<Buckets> {
        let rate = configured.unwrap_or(self.defaults);
        let build = || {
            let share = |v: u32| ((f64::from(v) * self.caller_share).ceil() as u32).max(1);
            let caller_rate = RateLimit {
                per_minute: share(rate.per_minute),
                burst: share(rate.burst),
            };
            let tenant_quota = quota(rate);
            let caller_quota = quota(caller_rate);
            let tenant = RateLimiter::direct(tenant_quota).with_middleware();
            let callers = Keyed::new(caller_quota, Default::default(), tenant.clock().clone());
            Arc::new(Buckets {
                rate,
                tenant,
                tenant_quota,
                callers,
                caller_quota,
            })
        };
        let current = self.tenants.get_with(tenant.clone(), build);
        if current.rate == rate {
            return current;
        }
        let fresh = build();
        self.tenants.insert(tenant.clone(), fresh.clone());
        fresh
    }

    /// Takes one token from the tenant's and the caller's bucket.
    pub fn check(
        &self,
        tenant: &TenantId,
        configured: Option<RateLimit>,
        caller: &str,
    ) -> Result<RateHeaders, Refused> {
        let b = self.buckets(tenant, configured);
        // The limiter's own clock: building a `quanta` clock runs CPUID, which traps to the
        // hypervisor on a VM (4% of a call's CPU in the issue 8 profile).
        let clock = b.tenant.clock();
        let refuse = |scope, q: Quota, not_until: governor::NotUntil<_>| {
            let retry_after = not_until.wait_time_from(clock.now());
            Refused {
                scope,
                retry_after,
                headers: RateHeaders {
                    limit: q.burst_size().get(),
                    remaining: 0,
                    reset_secs: retry_after.as_secs_f64().ceil() as u64,
                },
            }
        };
        let t = b
            .tenant
            .check()
            .map_err(|n| refuse("tenant", b.tenant_quota, n))?;
        let c = b
            .callers
            .check_key(&self.caller_keys.hash_one(caller))
            .map_err(|n| refuse("caller", b.caller_quota, n))?;
        let tenant_h = headers(b.tenant_quota, t.remaining_burst_capacity());
        let caller_h = headers(b.caller_quota, c.remaining_burst_capacity());
        Ok(if caller_h.remaining < tenant_h.remaining {
            caller_h
        } else {
            tenant_h
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn a_burst_is_admitted_then_refused_with_a_retry_after() {
        let limits = RateLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 3,
            },
            1.0,
        );
        let rate = Some(RateLimit {
            per_minute: 60,
            burst: 3,
        });
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check(&t("a"), rate, "svc").unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(&t("a"), rate, "svc").unwrap_err();
        assert!(
            refused.retry_after <= Duration::from_secs(1) && refused.retry_after > Duration::ZERO
        );
        assert_eq!(refused.headers.remaining, 0);
    }

    #[test]
    fn one_caller_cannot_take_the_whole_tenant_budget() {
        let limits = RateLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 4,
            },
            0.5,
        );
        let rate = None;
        assert!(limits.check(&t("a"), rate, "noisy").is_ok());
        assert!(limits.check(&t("a"), rate, "noisy").is_ok());
        assert_eq!(
            limits.check(&t("a"), rate, "noisy").unwrap_err().scope,
            "caller"
        );
        assert!(limits.check(&t("a"), rate, "quiet").is_ok());
    }

    #[test]
    fn every_caller_has_a_bucket_of_its_own() {
        // Caller burst: 1% of 5,000 = 50; 60 callers take 3,060 of the tenant's 5,000.
        let limits = RateLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 5_000,
            },
            0.01,
        );
        for i in 0..60 {
            let c = format!("svc-{i}");
            for n in 0..50 {
                assert!(limits.check(&t("a"), None, &c).is_ok(), "{c}'s call {n}");
            }
            assert_eq!(limits.check(&t("a"), None, &c).unwrap_err().scope, "caller");
        }
        // Another tenant's callers of the same names start full.
        assert!(limits.check(&t("b"), None, "svc-0").is_ok());
    }

    #[test]
    fn changed_limits_take_effect_at_once() {
        let limits = RateLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 1,
            },
            1.0,
        );
        assert!(limits.check(&t("a"), None, "s").is_ok());
        assert!(limits.check(&t("a"), None, "s").is_err());
        let raised = Some(RateLimit {
            per_minute: 600,
            burst: 10,
        });
        assert_eq!(limits.check(&t("a"), raised, "s").unwrap().remaining, 9);
    }
}
