//! W3C Trace Context (https://www.w3.org/TR/trace-context/): continuing the caller's trace and
//! handing ours to Intercom.
//!
//! Only `traceparent` and `tracestate` are read and written; baggage is not propagated, since a
//! caller's baggage could carry anything to a third party.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::span_ids::with_span_ids;

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
    let caller = cx.span().span_context().clone();
    if !caller.is_valid() {
        return;
    }
    let continued = with_span_ids(span, |ids| {
        ids.trace_id = caller.trace_id();
        ids.flags = caller.trace_flags();
    });
    if continued.is_none() {
        let _ = span.set_parent(cx);
    }
}

/// The span's trace id, span id and flags, from whichever span layer the subscriber has.
fn ids(span: &tracing::Span) -> Option<(TraceId, SpanId, TraceFlags)> {
    if let Some(ids) = with_span_ids(span, |ids| *ids) {
        return Some((ids.trace_id, ids.span_id, ids.flags));
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid()
        .then(|| (sc.trace_id(), sc.span_id(), sc.trace_flags()))
}

/// The span's trace id (32 lowercase hex digits), when tracing is installed.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    // Into a stack buffer: `TraceId`'s `Display` (`{:032x}` on a u128) and `hex::encode` (an
    // iterator of chars collected into a `String`) each cost ~1k instructions per call.
    let (trace_id, _, _) = ids(span)?;
    let mut hex = [0u8; 32];
    hex::encode_to_slice(trace_id.to_bytes(), &mut hex).ok()?;
    String::from_utf8(hex.to_vec()).ok()
}

/// The `traceparent` naming `span` as the parent of a downstream request: version `00`, trace
/// id, span id, flags (W3C Trace Context §3.2), written directly rather than through the
/// propagator's map carrier, since it runs on every upstream call.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let (trace_id, span_id, flags) = ids(span)?;
    let mut tp = *b"00-________________________________-________________-__";
    hex::encode_to_slice(trace_id.to_bytes(), &mut tp[3..35]).ok()?;
    hex::encode_to_slice(span_id.to_bytes(), &mut tp[36..52]).ok()?;
    hex::encode_to_slice(
        [flags.to_u8() & TraceFlags::SAMPLED.to_u8()],
        &mut tp[53..55],
    )
    .ok()?;
    String::from_utf8(tp.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::traces::{Export, build};

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Runs `f` under each of the gateway's span layers: span ids only (not exporting) and
    /// OpenTelemetry's (exporting; the collector does not matter here).
    fn under_each_span_layer(f: impl Fn()) {
        for exporting in [false, true] {
            let t = build(&Export::Off);
            let subscriber = tracing_subscriber::registry()
                .with(crate::telemetry::span_layer(t.tracer.clone(), exporting));
            tracing::subscriber::with_default(subscriber, &f);
        }
    }

    fn request_span(traceparent: Option<&str>) -> tracing::Span {
        let mut headers = HeaderMap::new();
        if let Some(tp) = traceparent {
            headers.insert(TRACEPARENT, tp.parse().unwrap());
        }
        let span = tracing::info_span!("http.request");
        continue_trace(&span, &headers);
        span
    }

    /// What a W3C propagator downstream reads from our `traceparent`.
    fn read_back(traceparent: &str) -> opentelemetry::trace::SpanContext {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, traceparent.parse().unwrap());
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        cx.span().span_context().clone()
    }

    #[test]
    fn the_callers_trace_is_continued_and_handed_on() {
        under_each_span_layer(|| {
            let span = request_span(Some(CALLER));
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
            assert!(tp.ends_with("-01"), "{tp}");
            assert!(
                !tp.contains("00f067aa0ba902b7"),
                "our own span id, not the caller's"
            );
            assert_ne!(traceparent(&span), Some(tp), "each span its own id");
        });
    }

    #[test]
    fn the_handed_on_traceparent_reads_back_as_the_spans_context() {
        under_each_span_layer(|| {
            for caller in [
                Some(CALLER),
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
                None,
            ] {
                let span = request_span(caller);
                let child = span.in_scope(|| tracing::info_span!("mcp.tools_call"));
                let tp = traceparent(&child).unwrap();
                let back = read_back(&tp);
                assert!(back.is_valid(), "{tp}");
                assert_eq!(Some(back.trace_id().to_string()), trace_id(&span));
                let sampled = caller.is_none_or(|c| c.ends_with("-01"));
                assert_eq!(back.is_sampled(), sampled, "{caller:?} → {tp}");
            }
        });
    }

    #[test]
    fn with_opentelemetrys_layer_the_traceparent_is_what_the_w3c_propagator_writes() {
        let t = build(&Export::Off);
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::span_layer(t.tracer.clone(), true));
        tracing::subscriber::with_default(subscriber, || {
            let span = request_span(Some(CALLER));
            let mut carrier = std::collections::HashMap::new();
            TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
            assert_eq!(traceparent(&span), carrier.remove(TRACEPARENT));
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        under_each_span_layer(|| {
            let span = request_span(Some("00-zz-yy-01"));
            let id = trace_id(&span).expect("a fresh trace");
            assert_eq!(id.len(), 32);
            assert_ne!(id, "0".repeat(32));
        });
    }
}
