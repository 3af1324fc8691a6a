//! Trace and span ids without an OpenTelemetry span behind them: the span layer used when
//! nothing exports.
//!
//! With no collector, a span only has to name its trace (the access log's `trace_id`) and
//! itself (the `traceparent` handed to Intercom). OpenTelemetry's layer would still build a
//! full span for every `tracing` span — every field turned into an attribute, the span built
//! and ended through the SDK — which was about a seventh of a tool call's instructions
//! (issue 8 profile). This layer keeps three ids per span and records nothing.
//!
//! The ids follow the SDK's defaults: random ids from the SDK's own generator, a child takes
//! its parent's trace id and flags, a new trace is sampled (`ParentBased(AlwaysOn)`), and a
//! caller's `traceparent` is continued (see [`super::propagation::continue_trace`]).

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::span::{Attributes, Id};
use tracing::{Span, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// One span's place in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: TraceFlags,
}

/// Gives every span [`SpanIds`], kept in its registry extensions.
pub(crate) struct SpanIdsLayer;

impl<S> Layer<S> for SpanIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ids = RandomIdGenerator::default();
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanIds>().copied());
        let own = match parent {
            Some(p) => SpanIds {
                span_id: ids.new_span_id(),
                ..p
            },
            None => SpanIds {
                trace_id: ids.new_trace_id(),
                span_id: ids.new_span_id(),
                flags: TraceFlags::SAMPLED,
            },
        };
        span.extensions_mut().insert(own);
    }
}

/// Runs `f` on `span`'s ids, when the gateway's subscriber gave it some (not exporting).
pub(crate) fn with_span_ids<R>(span: &Span, f: impl FnOnce(&mut SpanIds) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<SpanIds>().map(f)
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn ids(span: &Span) -> SpanIds {
        with_span_ids(span, |ids| *ids).expect("the span has ids")
    }

    #[test]
    fn children_share_the_trace_and_have_their_own_span_ids() {
        let subscriber = tracing_subscriber::registry().with(SpanIdsLayer);
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!("root");
            let other_root = tracing::info_span!("other");
            let child = root.in_scope(|| tracing::info_span!("child"));
            let grandchild = tracing::info_span!(parent: &child, "grandchild");
            let (r, c, g) = (ids(&root), ids(&child), ids(&grandchild));
            assert_ne!(r.trace_id, TraceId::INVALID);
            assert_eq!(r.flags, TraceFlags::SAMPLED);
            assert_eq!((c.trace_id, g.trace_id), (r.trace_id, r.trace_id));
            assert_ne!(c.span_id, r.span_id);
            assert_ne!(g.span_id, c.span_id);
            assert_ne!(
                ids(&other_root).trace_id,
                r.trace_id,
                "a new root, a new trace"
            );
        });
    }

    #[test]
    fn a_span_outside_the_gateways_subscriber_has_no_ids() {
        let span = tracing::info_span!("nobody listens");
        assert_eq!(with_span_ids(&span, |ids| *ids), None);
    }
}
