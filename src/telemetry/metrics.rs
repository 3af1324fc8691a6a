//! Prometheus metrics, with the names PRODUCT.md promises.
//!
//! Label values are bounded: `route` is the matched route template, `tool` is a tool the
//! tenant's upstream lists (or `unknown`), `tenant` can be dropped for very large fleets.

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::tenant_series::{TenantGauge, TenantSeries};
use crate::tenants::TenantId;

/// Buckets from 100 µs (gateway overhead: an auth failure, a cached answer) to 60 s (a slow
/// upstream call near the timeout), in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    /// Every family registered, including vectors without series yet (`/metrics` omits those).
    families: std::sync::Mutex<Vec<String>>,
    tenant_label: bool,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// `gateway_tool_calls_total`, `gateway_rate_limited_total`, `gateway_upstream_sessions`,
    /// `gateway_circuit_open`.
    tenants: Arc<TenantSeries>,
    tool_duration: HistogramVec,
    session_events: IntCounterVec,
    usage_written: IntCounter,
    usage_dropped: IntCounter,
    usage_queue_depth: IntGauge,
    credentials_rejected: IntGaugeVec,
    db_connections: IntGaugeVec,
    db_max_connections: IntGauge,
}

impl Metrics {
    pub fn new(tenant_label: bool) -> Self {
        let registry = Registry::new();
        let mut families = Vec::new();
        let tenant = |rest: &[&'static str]| -> Vec<&'static str> {
            let mut v = if tenant_label { vec!["tenant"] } else { vec![] };
            v.extend_from_slice(rest);
            v
        };
        let http_requests = IntCounterVec::new(
            Opts::new("gateway_http_requests_total", "HTTP requests answered."),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_http_request_duration_seconds",
                "Time to answer an HTTP request.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let tool_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_tool_call_duration_seconds",
                "Upstream tool call time.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["tool"],
        )
        .expect("valid metric");
        let session_events = IntCounterVec::new(
            Opts::new(
                "gateway_upstream_session_events_total",
                "Upstream session lifecycle events.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let tenants = Arc::new(TenantSeries::new(tenant_label).expect("valid metrics"));
        let credentials_rejected = IntGaugeVec::new(
            Opts::new(
                "gateway_credentials_rejected",
                "Tenants whose Intercom credential Intercom rejected (1 each; needs re-auth).",
            ),
            &tenant(&[]),
        )
        .expect("valid metric");
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "gateway_db_pool_connections",
                "Postgres pool connections by state (`idle`, `in_use`), sampled at scrape.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let db_max_connections = IntGauge::new(
            "gateway_db_pool_max_connections",
            "Postgres pool size limit.",
        )
        .expect("valid metric");
        let usage_written = IntCounter::new(
            "gateway_usage_events_written_total",
            "Usage rows written to Postgres.",
        )
        .expect("valid metric");
        let usage_dropped = IntCounter::new(
            "gateway_usage_events_dropped_total",
            "Usage rows dropped because the queue was full.",
        )
        .expect("valid metric");
        let usage_queue_depth = IntGauge::new(
            "gateway_usage_queue_depth",
            "Usage events waiting for the writer.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("gateway_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(Shared(tenants.clone())),
            Box::new(tool_duration.clone()),
            Box::new(session_events.clone()),
            Box::new(usage_written.clone()),
            Box::new(usage_dropped.clone()),
            Box::new(usage_queue_depth.clone()),
            Box::new(credentials_rejected.clone()),
            Box::new(db_connections.clone()),
            Box::new(db_max_connections.clone()),
            Box::new(build_info),
        ] {
            families.extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        // Event counters exist from start-up, so rate() works before the first event.
        for e in [
            "initialized",
            "expired",
            "reinitialized",
            "closed",
            "failed",
            "discovered",
            "parked",
        ] {
            session_events.with_label_values(&[e]);
        }

        Metrics(Arc::new(Inner {
            registry,
            families: std::sync::Mutex::new(families),
            tenant_label,
            http_requests,
            http_duration,
            tenants,
            tool_duration,
            session_events,
            usage_written,
            usage_dropped,
            usage_queue_depth,
            credentials_rejected,
            db_connections,
            db_max_connections,
        }))
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.0
            .http_requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.0
            .http_duration
            .with_label_values(&[route])
            .observe(seconds);
    }

    pub fn tool_call(&self, tenant: &TenantId, tool: &str, outcome: &str, seconds: Option<f64>) {
        self.0.tenants.tool_call(tenant, tool, outcome);
        if let Some(s) = seconds {
            self.0.tool_duration.with_label_values(&[tool]).observe(s);
        }
    }

    pub fn session_event(&self, event: &str) {
        self.0.session_events.with_label_values(&[event]).inc();
    }

    /// Moves `gateway_upstream_sessions{tenant}` by `delta`: each of a tenant's pools (a
    /// draining old one and its replacement) reports its own changes, so the gauge is their sum.
    pub fn add_sessions(&self, tenant: &TenantId, delta: i64) {
        if delta != 0 {
            self.0
                .tenants
                .update(tenant, TenantGauge::Sessions, |v| v + delta);
        }
    }

    pub fn rate_limited(&self, tenant: &TenantId, reason: &str) {
        self.0.tenants.rate_limited(tenant, reason);
    }

    pub fn set_circuit_open(&self, tenant: &TenantId, open: bool) {
        self.0
            .tenants
            .update(tenant, TenantGauge::CircuitOpen, |_| i64::from(open));
    }

    /// Handles for the usage writer.
    pub fn usage_writer(&self) -> crate::metering::WriterMetrics {
        crate::metering::WriterMetrics {
            written: self.0.usage_written.clone(),
            dropped: self.0.usage_dropped.clone(),
            depth: self.0.usage_queue_depth.clone(),
        }
    }

    /// Replaces the set of tenants whose credential is `rejected` (sampled at scrape). Without
    /// the tenant label, one series counts them.
    pub fn set_credentials_rejected(&self, tenants: &[TenantId]) {
        let g = &self.0.credentials_rejected;
        g.reset();
        if self.0.tenant_label {
            for t in tenants {
                g.with_label_values(&[t.as_str()]).set(1);
            }
        } else {
            g.with_label_values(&[] as &[&str])
                .set(tenants.len() as i64);
        }
    }

    pub fn set_db_pool(&self, size: u32, idle: usize, max: u32) {
        let idle = idle as i64;
        let c = &self.0.db_connections;
        c.with_label_values(&["idle"]).set(idle);
        c.with_label_values(&["in_use"])
            .set((i64::from(size) - idle).max(0));
        self.0.db_max_connections.set(i64::from(max));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The name of every metric family the gateway can export (dashboards and alerts may
    /// reference only these and the `process_*` metrics).
    pub fn family_names(&self) -> Vec<String> {
        self.0
            .families
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }
}

/// The registry owns a collector; the metrics handle keeps using the same series.
struct Shared(Arc<TenantSeries>);

impl prometheus::core::Collector for Shared {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}
