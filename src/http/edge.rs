//! The edge of every request: the request id, the request's span (continuing the caller's W3C
//! trace), problem bodies, one access-log line, and the HTTP metrics. Errors are logged here
//! exactly once, inside the request's context.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use super::AppState;
use crate::error::{LoggedError, Problem};
use crate::limits::RateHeaders;
use crate::metering::UsageEvent;
use crate::telemetry::propagation;

// Constants, so the names are checked at compile time: a `&str` name is parsed on every insert.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

pub const REQUEST_ID: &str = "x-request-id";
/// Looked up by name, not by `&str`: a string is parsed into a header name at every lookup.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID);

/// What the handlers learn about a call, for the access log. Inserted by [`edge`] into the
/// request extensions; filled by the auth extractor and the tool handlers.
#[derive(Clone, Default)]
pub struct CallSlot(Arc<Mutex<CallInfo>>);

#[derive(Default, Clone)]
pub struct CallInfo {
    pub tenant: Option<String>,
    pub caller: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<&'static str>,
    /// `RateLimit-*` headers for the response of a rate-limited route.
    pub rate: Option<RateHeaders>,
    /// Set once the call passed authentication and tenant resolution: it gets a usage row.
    pub metered: bool,
    pub upstream_ms: Option<i32>,
    pub reached_upstream: bool,
    pub request_id: Option<String>,
}

impl CallSlot {
    fn with(&self, f: impl FnOnce(&mut CallInfo)) {
        if let Ok(mut g) = self.0.lock() {
            f(&mut g);
        }
    }
    pub fn set_caller(&self, sub: &str) {
        self.with(|i| i.caller = Some(sub.to_owned()));
    }
    pub fn set_tenant(&self, tenant: &str) {
        self.with(|i| i.tenant = Some(tenant.to_owned()));
    }
    pub fn set_tool(&self, tool: &str, outcome: &'static str) {
        self.with(|i| {
            i.tool = Some(tool.to_owned());
            i.outcome = Some(outcome);
        });
    }
    pub fn set_rate(&self, rate: RateHeaders) {
        self.with(|i| i.rate = Some(rate));
    }
    pub fn set_metered(&self) {
        self.with(|i| i.metered = true);
    }
    pub fn set_upstream(&self, ms: i32) {
        self.with(|i| {
            i.upstream_ms = Some(ms);
            i.reached_upstream = true;
        });
    }
    /// The request's `x-request-id` (for the audit log).
    pub fn request_id(&self) -> Option<String> {
        self.0.lock().ok().and_then(|g| g.request_id.clone())
    }
    fn take(&self) -> CallInfo {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

pub async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
        .unwrap_or(0);
    let slot = CallSlot::default();
    slot.with(|i| i.request_id = Some(request_id.clone()));
    req.extensions_mut().insert(slot.clone());
    // OpenTelemetry HTTP server semantic conventions: the span is named by the route template.
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        request_id = %request_id,
        tenant = Empty,
        caller = Empty,
        tool = Empty,
        outcome = Empty,
    );
    propagation::continue_trace(&span, req.headers());
    let trace_id = propagation::trace_id(&span);

    let mut res = next.run(req).instrument(span.clone()).await;
    let info = slot.take();
    if let Some(rate) = info.rate {
        let h = res.headers_mut();
        h.insert(RATELIMIT_LIMIT, HeaderValue::from(rate.limit));
        h.insert(RATELIMIT_REMAINING, HeaderValue::from(rate.remaining));
        h.insert(RATELIMIT_RESET, HeaderValue::from(rate.reset_secs));
    }

    let status = res.status();
    if let Some(mut problem) = res.extensions_mut().remove::<Problem>() {
        problem.request_id = request_id.clone();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = Body::from(body);
    }
    let elapsed = started.elapsed();
    state.metrics.http_request(
        &route,
        method.as_str(),
        status.as_u16(),
        elapsed.as_secs_f64(),
    );

    if info.metered {
        let bytes_out = axum::body::HttpBody::size_hint(res.body())
            .exact()
            .unwrap_or(0);
        state.meter.record(UsageEvent {
            id: UsageEvent::new_id(),
            request_id: request_id.clone(),
            at: time::OffsetDateTime::now_utc(),
            tenant: info.tenant.clone().unwrap_or_default(),
            caller: info.caller.clone().unwrap_or_default(),
            tool: info.tool.clone().unwrap_or_else(|| "unknown".into()),
            outcome: info.outcome.unwrap_or("ok").to_owned(),
            http_status: status.as_u16() as i16,
            upstream_ms: info.upstream_ms,
            total_ms: i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX),
            bytes_in,
            bytes_out: i32::try_from(bytes_out).unwrap_or(i32::MAX),
            reached_upstream: info.reached_upstream,
        });
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let error = res.extensions().get::<LoggedError>();
    let code = error.map(|e| e.code);
    let cause = error.map(|e| e.chain.as_str());
    span.record("http.response.status_code", status.as_u16());
    for (field, value) in [
        ("tenant", &info.tenant),
        ("caller", &info.caller),
        ("tool", &info.tool),
    ] {
        if let Some(v) = value {
            span.record(field, v.as_str());
        }
    }
    if let Some(outcome) = info.outcome.or(code) {
        span.record("outcome", outcome);
    }
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let _entered = span.enter();
    macro_rules! access {
        ($level:ident) => {
            tracing::$level!(
                // As `&str`, not `%` (Display): the same JSON string without a trip through
                // `fmt` per field.
                request_id = request_id.as_str(),
                trace_id = trace_id.as_deref(),
                method = method.as_str(),
                route = route.as_str(),
                status = status.as_u16(),
                latency_ms,
                tenant = info.tenant.as_deref(),
                caller = info.caller.as_deref(),
                tool = info.tool.as_deref(),
                outcome = info.outcome,
                code,
                cause,
                "request"
            )
        };
    }
    if status.is_server_error() {
        access!(error);
    } else if status.is_client_error() {
        access!(warn);
    } else {
        access!(info);
    }
    res
}
