//! W3C Trace Context (https://www.w3.org/TR/trace-context/): continuing the caller's trace and
//! handing ours to Intercom.
//!
//! Only `traceparent` and `tracestate` are read and written; baggage is not propagated, since a
//! caller's baggage could carry anything to a third party.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the caller's span when the request carries a valid `traceparent`;
/// otherwise the span starts a new trace. Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The span's trace id (32 lowercase hex digits), when tracing is installed.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The `traceparent` naming `span` as the parent of a downstream request: version `00`, trace
/// id, span id, flags (W3C Trace Context §3.2), written directly rather than through the
/// propagator's map carrier, since it runs on every upstream call.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::traces::{Export, build};

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_callers_trace_is_continued_and_handed_on() {
        let t = build(&Export::Off);
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::otel_layer(t.tracer.clone(), t.exporting));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, CALLER.parse().unwrap());
            let span = tracing::info_span!("http.request");
            continue_trace(&span, &headers);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            let child = span.in_scope(|| tracing::info_span!("mcp.tools_call"));
            let tp = traceparent(&child).expect("a traceparent");
            assert!(
                tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{tp}"
            );
            assert!(
                !tp.contains("00f067aa0ba902b7"),
                "our own span id, not the caller's"
            );
        });
    }

    #[test]
    fn the_handed_on_traceparent_is_what_the_w3c_propagator_writes() {
        let t = build(&Export::Off);
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::otel_layer(t.tracer.clone(), t.exporting));
        tracing::subscriber::with_default(subscriber, || {
            for caller in [
                CALLER,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ] {
                let mut headers = HeaderMap::new();
                headers.insert(TRACEPARENT, caller.parse().unwrap());
                let span = tracing::info_span!("http.request");
                continue_trace(&span, &headers);
                let mut carrier = std::collections::HashMap::new();
                TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
                assert_eq!(traceparent(&span), carrier.remove(TRACEPARENT));
            }
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let t = build(&Export::Off);
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::otel_layer(t.tracer.clone(), t.exporting));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, "00-zz-yy-01".parse().unwrap());
            let span = tracing::info_span!("http.request");
            continue_trace(&span, &headers);
            let id = trace_id(&span).expect("a fresh trace");
            assert_eq!(id.len(), 32);
        });
    }
}
