//! Admission before a call reaches the pool: GCRA rate limits per tenant and per caller within
//! a tenant, and the monthly quota.

mod quota;
mod rate;

pub use quota::Quotas;
pub use rate::{RateHeaders, RateLimits, Refused};
