//! Logs, metrics and traces.
//!
//! One global `tracing` subscriber carries both: a log layer (JSON lines by default, `pretty`
//! for humans) and an OpenTelemetry layer (see [`traces`]) that turns spans into OTLP spans.

mod json_lines;
mod log_writer;
mod metrics;
pub mod propagation;
mod scrape;
mod span_ids;
mod tenant_series;
mod traces;

pub use metrics::Metrics;
pub use scrape::refresh_sampled_metrics;
pub use traces::Export;

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Dependencies (rmcp, sqlx, hyper) stay at `warn` unless `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "info,rmcp=warn,sqlx=warn,hyper=warn,h2=warn,reqwest=warn";

pub struct TelemetryOptions {
    /// `json` or `pretty`.
    pub format: String,
    /// A filter directive; `None`: `RUST_LOG`, else the default.
    pub filter: Option<String>,
    /// Where log lines go; `None`: stdout.
    pub writer: Option<BoxMakeWriter>,
    pub export: Export,
}

/// Keeps the trace exporter alive; dropping it flushes the last spans (bounded).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
    /// Writes the stdout log writer's last batch when dropped.
    _log_writer: Option<log_writer::Guard>,
}

impl Telemetry {
    /// Whether spans are being exported to a collector.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports every finished span now (tests; blocks the calling thread).
    pub fn force_flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && self.exporting
        {
            traces::shutdown(p);
        }
    }
}

/// The gateway's subscriber, configured from the environment (`OTEL_*`, `RUST_LOG`).
pub fn init(format: &str) -> Telemetry {
    init_with(TelemetryOptions {
        format: format.to_owned(),
        filter: None,
        writer: None,
        export: Export::FromEnv,
    })
}

pub fn init_with(options: TelemetryOptions) -> Telemetry {
    let filter = match &options.filter {
        Some(f) => EnvFilter::new(f),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        }
    };
    let tracing = traces::build(&options.export);
    let spans = span_layer(tracing.tracer.clone(), tracing.exporting);
    // Log lines go to stdout from a writer thread of their own, in batches (see `log_writer`):
    // a request appends its line to a buffer and makes no system call, and the thread wakes
    // once per batch of up to 20 ms, not once per line. Not lossy: past 1 MiB queued,
    // logging waits for stdout.
    let (writer, log_writer) = match options.writer {
        Some(w) => (w, None),
        None => match log_writer::spawn(std::io::stdout(), log_writer::Batching::default()) {
            Ok((w, guard)) => (BoxMakeWriter::new(w), Some(guard)),
            Err(e) => {
                eprintln!("cannot start the log writer thread ({e}); logging to stdout in place");
                (BoxMakeWriter::new(std::io::stdout), None)
            }
        },
    };
    let registry = tracing_subscriber::registry().with(filter).with(spans);
    let result = if options.format == "pretty" {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init()
    } else {
        // JSON lines carry no span context, so the log layer sees events only: otherwise it
        // renders every span's fields to JSON on creation and re-parses and re-renders them on
        // every `Span::record` (the access-log span records five) — a fifth of a tool call's
        // instructions (issue 8 profile).
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(json_lines::JsonLines)
                    .with_writer(writer)
                    .with_filter(filter_fn(|meta| meta.is_event())),
            )
            .try_init()
    };
    // A second init (tests, demo) keeps the first subscriber and its exporter.
    if result.is_err() {
        return Telemetry {
            provider: None,
            exporting: false,
            _log_writer: None,
        };
    }
    match (&tracing.exporter_problem, tracing.exporting) {
        (Some(e), true) => tracing::warn!(warning = %e, "exporting traces over OTLP/HTTP"),
        (Some(e), false) => tracing::error!(error = %e, "cannot export traces"),
        (None, true) => tracing::info!("exporting traces over OTLP/HTTP"),
        (None, false) => {}
    }
    Telemetry {
        provider: Some(tracing.provider),
        exporting: tracing.exporting,
        _log_writer: log_writer,
    }
}

/// The span layer of the gateway's subscriber. Exporting: OpenTelemetry's, which turns spans
/// (and log events inside them, as span events) into OTLP spans. Otherwise [`span_ids`]'s,
/// which only gives spans the ids the access log and the `traceparent` need.
pub(crate) fn span_layer<S>(tracer: SdkTracer, exporting: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !exporting {
        return Box::new(span_ids::SpanIdsLayer);
    }
    // Every request runs five spans through this layer, and futures enter and exit them on
    // every poll: per-span extras are off. Thread ids and busy/idle timings cost a clock read
    // per enter/exit and say little about async work; nothing reads OpenTelemetry's
    // thread-local current context (we hand spans on with `OpenTelemetrySpanExt::context`),
    // so entering a span need not activate it.
    Box::new(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Log events inside a span become span events; their level is already in the log.
            .with_level(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false),
    )
}
