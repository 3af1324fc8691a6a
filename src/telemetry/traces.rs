//! The OpenTelemetry tracer behind `tracing`: spans always exist (so logs carry a trace id and
//! upstream requests a `traceparent`), and are exported over OTLP/HTTP only when a collector
//! is configured.
//!
//! Configuration is the standard `OTEL_*` environment (OpenTelemetry SDK environment variable
//! specification): `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `_HEADERS`, `_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*` and `OTEL_TRACES_EXPORTER=none`; the SDK and the
//! OTLP exporter read them themselves, we only decide whether to export at all.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub(super) const DEFAULT_SERVICE_NAME: &str = "intercom-mcp-gateway";

/// How long shutdown may wait for the last spans to reach the collector.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(3);

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Decided by the `OTEL_*` environment: exported when an OTLP endpoint is set.
    FromEnv,
    /// Exported to this full OTLP/HTTP traces URL (tests).
    To(String),
    Off,
}

impl Export {
    fn endpoint(&self) -> Option<Option<&str>> {
        match self {
            Export::Off => None,
            Export::To(url) => Some(Some(url)),
            Export::FromEnv => {
                let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
                let disabled = std::env::var("OTEL_TRACES_EXPORTER")
                    .is_ok_and(|s| s.trim().eq_ignore_ascii_case("none"));
                let configured =
                    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
                (configured && !disabled).then_some(None)
            }
        }
    }
}

pub(super) struct Tracing {
    pub(super) provider: SdkTracerProvider,
    pub(super) tracer: SdkTracer,
    /// What is wrong with the exporter configuration, reported once logging is up.
    pub(super) exporter_problem: Option<String>,
    pub(super) exporting: bool,
}

pub(super) fn build(export: &Export) -> Tracing {
    let mut builder = SdkTracerProvider::builder().with_resource(resource());
    let mut exporter_problem = None;
    let mut exporting = false;
    if let Some(endpoint) = export.endpoint() {
        exporter_problem = unsupported_protocol();
        let mut exporter = SpanExporter::builder().with_http();
        if let Some(url) = endpoint {
            exporter = exporter.with_endpoint(url);
        }
        // The batch processor exports from its own thread through a bounded queue: a slow or
        // absent collector drops spans, it never delays a request.
        match exporter.build() {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => exporter_problem = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(DEFAULT_SERVICE_NAME);
    Tracing {
        provider,
        tracer,
        exporter_problem,
        exporting,
    }
}

/// Only OTLP/HTTP with protobuf bodies is built in (no gRPC stack in the binary); the exporter
/// would silently fall back to it, so say so.
fn unsupported_protocol() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|var| {
        let v = std::env::var(var).ok()?;
        (!v.trim().is_empty() && v.trim() != "http/protobuf")
            .then(|| format!("{var}={v} is not supported; exporting OTLP over HTTP with protobuf"))
    })
}

/// `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them, with our own name
/// instead of the SDK's `unknown_service` when neither names the service.
fn resource() -> Resource {
    let named = |v: &str| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
    let attrs_name_it = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|s| {
        s.split(',')
            .any(|kv| kv.trim().starts_with("service.name="))
    });
    let mut builder = Resource::builder();
    if !named("OTEL_SERVICE_NAME") && !attrs_name_it {
        builder = builder.with_service_name(DEFAULT_SERVICE_NAME);
    }
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Flushes and stops the exporter, bounded: a collector that is down must not hold up exit.
pub(super) fn shutdown(provider: SdkTracerProvider) {
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("otel-shutdown".into())
        .spawn(move || {
            let _ = provider.shutdown_with_timeout(SHUTDOWN_BUDGET);
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(SHUTDOWN_BUDGET + Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    #[test]
    fn the_default_service_name_is_the_gateways() {
        let r = resource();
        let name = r.get(&opentelemetry::Key::new("service.name"));
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            assert_eq!(
                name.map(|v| v.to_string()).as_deref(),
                Some(DEFAULT_SERVICE_NAME)
            );
        }
    }

    #[test]
    fn a_collector_that_never_answers_does_not_slow_span_creation() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Accepts connections and never reads: the worst kind of collector outage.
        let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", blackhole.local_addr().unwrap());
        let t = build(&Export::To(url));
        assert!(t.exporting, "{:?}", t.exporter_problem);
        let started = Instant::now();
        for i in 0..20_000 {
            let mut span = t.tracer.start(format!("s{i}"));
            span.end();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ending spans took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        shutdown(t.provider);
        assert!(started.elapsed() < SHUTDOWN_BUDGET + Duration::from_secs(1));
    }
}
