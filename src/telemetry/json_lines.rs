//! The JSON log line format: tracing-subscriber's `json().flatten_event(true)` line, byte for
//! byte (same timer, same field visitor, same serializer), written cheaper.
//!
//! The library's formatter serializes through an adaptor from `io::Write` to `fmt::Write` that
//! checks UTF-8 on every tiny write (each quote, key and colon): ~12k of the ~23k instructions
//! an access-log line cost (issue 8 callgrind). Here the line is written into a reused byte
//! buffer, member by member without serde's map serializer, and handed to the writer once.

use std::cell::RefCell;
use std::fmt;

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
            let result = serialize(buf, event, meta).and_then(|()| {
                buf.push(b'\n');
                // Whole `str`s and ASCII only go into the line.
                std::str::from_utf8(buf)
                    .map_err(|_| fmt::Error)
                    .and_then(|s| writer.write_str(s))
            });
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

/// `2026-12-03T20:15:47.123456Z`: the library's `SystemTime` form (UTC, microseconds).
type Stamp = [u8; 27];

/// The date and time of day of the last second stamped on this thread, with the `.` after it.
struct Second {
    unix: u64,
    text: [u8; 20],
}

thread_local! {
    static SECOND: std::cell::Cell<Option<Second>> = const { std::cell::Cell::new(None) };
}

/// `at` (since the Unix epoch) in the library's form, with the date and time of day formatted
/// once per second per thread: the library formats all seven fields with `{:02}`-style
/// padding on every line (~3k instructions per access-log line). `None` outside years
/// 1970–9999, which the library's own formatter then writes.
fn stamp(at: std::time::Duration) -> Option<Stamp> {
    let unix = at.as_secs();
    let text = match SECOND.take() {
        Some(s) if s.unix == unix => s.text,
        _ => {
            let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).ok()?).ok()?;
            if t.year() > 9999 {
                return None;
            }
            let mut text = [0u8; 20];
            let mut w = &mut text[..];
            std::io::Write::write_fmt(
                &mut w,
                format_args!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                ),
            )
            .ok()?;
            text
        }
    };
    SECOND.set(Some(Second { unix, text }));
    let mut out: Stamp = [0; 27];
    out[..20].copy_from_slice(&text);
    let mut micros = at.subsec_micros();
    for digit in out[20..26].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out[26] = b'Z';
    Some(out)
}

fn serialize(buf: &mut Vec<u8>, event: &Event<'_>, meta: &tracing::Metadata<'_>) -> fmt::Result {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    match now.ok().and_then(stamp) {
        // ASCII digits and punctuation only: nothing to escape.
        Some(ts) => buf.extend_from_slice(&ts),
        None => {
            use fmt::Write as _;
            write!(Escaped(buf), "{Now}")?;
        }
    }
    buf.extend_from_slice(b"\",\"level\":\"");
    buf.extend_from_slice(meta.level().as_str().as_bytes());
    buf.push(b'"');
    let mut fields = Fields { buf, failed: false };
    event.record(&mut fields);
    if fields.failed {
        return Err(fmt::Error);
    }
    buf.extend_from_slice(b",\"target\":\"");
    escape(buf, meta.target());
    buf.extend_from_slice(b"\"}");
    Ok(())
}

/// The event's fields as `,"name":value` members, each as tracing-serde's `SerdeMapVisitor`
/// gives them to serde_json: strings and `Debug`/`Display` values as escaped strings, numbers
/// and booleans as themselves (non-finite floats as `null`). Written directly: serde's map
/// serializer costs ~250 instructions per member in key and value adaptors (issue 8).
struct Fields<'a> {
    buf: &'a mut Vec<u8>,
    /// A value's `Debug` or a number's serialization failed: the line is not written.
    failed: bool,
}

impl Fields<'_> {
    fn key(&mut self, field: &tracing::field::Field) {
        self.buf.extend_from_slice(b",\"");
        escape(self.buf, field.name());
        self.buf.extend_from_slice(b"\":");
    }

    fn number(&mut self, field: &tracing::field::Field, value: impl serde::Serialize) {
        self.key(field);
        self.failed |= serde_json::to_writer(&mut *self.buf, &value).is_err();
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.number(field, value);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.key(field);
        self.buf.push(b'"');
        escape(self.buf, value);
        self.buf.push(b'"');
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        self.key(field);
        self.buf.push(b'"');
        self.failed |= write!(Escaped(self.buf), "{value:?}").is_err();
        self.buf.push(b'"');
    }
}

/// A `fmt::Write` that appends JSON-escaped text.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// Appends `s` as the inside of a JSON string, escaped exactly as serde_json escapes it:
/// `"` and `\` with a backslash, the control characters with their short forms (`\b \t \n
/// \f \r`) or `\u00xx` (lowercase hex); everything else, all of non-ASCII included, as is.
fn escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // One table load per byte; the `match` below runs for the few bytes that need it.
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                continue;
            }
        };
        out.extend_from_slice(short);
    }
    out.extend_from_slice(&bytes[run..]);
}

/// The bytes JSON strings escape: `"`, `\` and the control characters.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

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
        tracing::error!(
            r#type = "raw ident",
            esc = "\u{8}\u{c}\u{1f}\u{7f}\r\\ é",
            "\u{0}control\tchars"
        );
        tracing::debug!("no fields");
    }

    /// The cached-second stamp reads as the library's own formatter writes the same instant.
    #[test]
    fn stamps_match_the_librarys_timestamps() {
        let library = |at: std::time::Duration| {
            let mut s = String::new();
            let time = std::time::UNIX_EPOCH + at;
            // The library formats "now" only (its `DateTime` is private): its form, by hand;
            // the end of this test checks the form against the library itself.
            let t = time::OffsetDateTime::from(time);
            use std::fmt::Write as _;
            write!(
                s,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            )
            .unwrap();
            s
        };
        for (secs, nanos) in [
            (0, 0),
            (1_764_792_947, 123_456_789),
            (1_764_792_947, 999_999_999), // the same second again: the cached prefix
            (1_764_792_948, 1_000),       // the next second: a new prefix
            (951_782_400, 5_000),         // 2000-02-29
            (253_402_300_799, 999_999_000), // 9999-12-31T23:59:59
        ] {
            let at = std::time::Duration::new(secs, nanos);
            let ours = stamp(at).expect("in range");
            assert_eq!(
                std::str::from_utf8(&ours).unwrap(),
                library(at),
                "{secs}.{nanos}"
            );
        }
        assert!(
            stamp(std::time::Duration::from_secs(253_402_300_800)).is_none(),
            "year 10000"
        );
        // Against the library itself, which formats only "now": between two clock readings in
        // the same second, its stamp has our date and time of day, and the micros in between.
        let since = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
        };
        let (before, theirs, after) = loop {
            let (before, theirs, after) = (since(), format!("{Now}"), since());
            if before.as_secs() == after.as_secs() {
                break (before, theirs, after);
            }
        };
        let ours = stamp(before).unwrap();
        assert_eq!(&ours[..20], &theirs.as_bytes()[..20], "{theirs}");
        assert_eq!(theirs.len(), 27, "{theirs}");
        let micros: u32 = theirs[20..26].parse().unwrap();
        assert!((before.subsec_micros()..=after.subsec_micros()).contains(&micros));
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
