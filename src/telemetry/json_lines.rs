//! The JSON log line format: tracing-subscriber's `json().flatten_event(true)` line, byte for
//! byte (same timer, same field visitor, same serializer), written cheaper.
//!
//! The library's formatter serializes through an adaptor from `io::Write` to `fmt::Write` that
//! checks UTF-8 on every tiny write (each quote, key and colon): ~12k of the ~23k instructions
//! an access-log line cost (issue 8 callgrind). Here the line is serialized into a reused byte
//! buffer and handed to the writer once.

use std::cell::RefCell;
use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `{"timestamp":…,"level":…,<the event's fields>,"target":…}` and a newline.
pub struct JsonLines;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A line buffer that grew past this (a huge field) is not kept for the next line.
const KEEP_BYTES: usize = 16 * 1024;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        LINE.with(|line| {
            // tracing does not dispatch an event from inside another (a field's `Debug` that
            // logs), but a buffer in use must never panic: such a line gets its own.
            let mut own = Vec::new();
            let mut borrowed = line.try_borrow_mut().ok();
            let buf = borrowed.as_deref_mut().unwrap_or(&mut own);
            buf.clear();
            let written = serialize(buf, event, meta);
            let result = match written {
                Ok(()) => {
                    buf.push(b'\n');
                    // serde_json writes UTF-8 only.
                    std::str::from_utf8(buf)
                        .map_err(|_| fmt::Error)
                        .and_then(|s| writer.write_str(s))
                }
                Err(_) => Err(fmt::Error),
            };
            if buf.capacity() > KEEP_BYTES {
                *buf = Vec::new();
            }
            result
        })
    }
}

/// The library's timestamp, written straight into the line (no `String` per line).
struct Now;

impl fmt::Display for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SystemTime.format_time(&mut Writer::new(f))
    }
}

fn serialize(
    buf: &mut Vec<u8>,
    event: &Event<'_>,
    meta: &tracing::Metadata<'_>,
) -> Result<(), serde_json::Error> {
    let mut serializer = serde_json::Serializer::new(buf);
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("timestamp", &format_args!("{Now}"))?;
    map.serialize_entry("level", meta.level().as_str())?;
    let mut visitor = tracing_serde::SerdeMapVisitor::new(map);
    event.record(&mut visitor);
    let mut map = visitor.take_serializer()?;
    map.serialize_entry("target", meta.target())?;
    map.end()
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    struct Odd;

    impl fmt::Debug for Odd {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("odd \"quoted\" \u{2603}\n")
        }
    }

    fn text(l: &Lines) -> String {
        String::from_utf8(l.0.lock().unwrap().clone()).unwrap()
    }

    fn events() {
        let err = io::Error::other("disk \"full\"");
        tracing::info!(
            request_id = "r-1",
            status = 200u16,
            latency_ms = 1.669607,
            tiny = 1e-7,
            neg = -3i64,
            big = u64::MAX,
            ok = false,
            route = %"/v1/x?y=\"z\"",
            odd = ?Odd,
            "request"
        );
        tracing::warn!(error = &err as &dyn std::error::Error, "failed: {}", 42);
        tracing::error!(r#type = "raw ident", "\u{0}control\tchars");
        tracing::debug!("no fields");
    }

    /// Every line, timestamp aside, as tracing-subscriber's own JSON formatter writes it.
    #[test]
    fn lines_match_tracing_subscribers_json_format() {
        let ours = Lines::default();
        let theirs = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .with_writer(ours.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(theirs.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("outer", tenant = "acme").in_scope(events);
        });
        let (ours, theirs) = (text(&ours), text(&theirs));
        let without_time = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| {
                    let start = l.find(",\"level\"").expect("a timestamp first");
                    assert!(l.starts_with("{\"timestamp\":\""), "{l}");
                    l[start..].to_owned()
                })
                .collect()
        };
        assert!(ours.ends_with('\n'));
        assert_eq!(ours.lines().count(), 4, "{ours}");
        assert_eq!(without_time(&ours), without_time(&theirs));
        let time_widths =
            |s: &str| -> Vec<usize> { s.lines().map(|l| l.find(",\"level\"").unwrap()).collect() };
        assert_eq!(
            time_widths(&ours),
            time_widths(&theirs),
            "the same timestamp form"
        );
        for line in ours.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["timestamp"].as_str().unwrap();
            assert!(
                time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            );
        }
    }
}
