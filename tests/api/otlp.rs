//! An OTLP/HTTP trace receiver for the test process: `POST /v1/traces` with protobuf bodies,
//! decoded and kept in memory. It runs on its own thread and runtime so it outlives each test's
//! runtime (the gateway's exporter is process-wide).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// A received span, flattened.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<String>,
    pub resource: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn spans_store() -> &'static Mutex<Vec<SpanRecord>> {
    static SPANS: OnceLock<Mutex<Vec<SpanRecord>>> = OnceLock::new();
    SPANS.get_or_init(Default::default)
}

/// The receiver's traces URL, starting it on first use.
pub fn endpoint() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind OTLP receiver");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().route("/v1/traces", post(receive));
                axum::serve(listener, app).await.unwrap();
            });
        });
        url
    })
    .clone()
}

async fn receive(body: Bytes) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    if let Ok(req) = ExportTraceServiceRequest::decode(body) {
        let mut out = spans_store().lock().unwrap();
        for rs in req.resource_spans {
            let resource = rs
                .resource
                .map(|r| flatten(&r.attributes))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(SpanRecord {
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attributes: flatten(&s.attributes),
                        events: s.events.into_iter().map(|e| e.name).collect(),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    ([("content-type", "application/x-protobuf")], Vec::new())
}

fn flatten(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace, waiting (flushing the exporter) until `ready` holds for them.
pub async fn spans_of(trace_id: &str, ready: impl Fn(&[SpanRecord]) -> bool) -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for _ in 0..50 {
        crate::helpers::flush_traces().await;
        spans = spans_store()
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        if ready(&spans) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    spans
}
