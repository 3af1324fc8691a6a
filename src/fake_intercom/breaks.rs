//! Broken answers: a `tools/call` that ran upstream but whose answer never arrives whole.
//!
//! Under MCP 2026-07-28 streams are not resumable ("a broken response stream loses the
//! in-flight request; clients MUST re-issue it", changelog), so this is how a client's
//! re-issue logic gets tested: an SSE answer keeps the events before the result (progress)
//! and then the connection drops; a JSON answer drops halfway through its body.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

pub(crate) async fn cut(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let kept = if is_sse {
        events_before_result(body).await
    } else {
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        bytes.slice(..bytes.len() / 2)
    };
    // The length is no longer true, and the body ends in an error: hyper drops the connection
    // without finishing the response, as a failing network would.
    parts.headers.remove(header::CONTENT_LENGTH);
    let stream = futures::stream::iter([
        Ok(kept),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "fake-intercom: answer broken off before its result",
        )),
    ]);
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Reads the SSE body up to the JSON-RPC result and returns the complete events before it.
async fn events_before_result(body: Body) -> Bytes {
    let mut stream = body.into_data_stream();
    let mut buffer = String::new();
    let mut kept = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((event, rest)) = next_event(&buffer) {
            if is_result(&event) {
                return Bytes::from(kept);
            }
            kept.push_str(&event);
            kept.push_str("\n\n");
            buffer = rest;
        }
    }
    Bytes::from(kept)
}

/// Splits the first complete SSE event off `buffer`.
fn next_event(buffer: &str) -> Option<(String, String)> {
    let normalized = buffer.replace("\r\n", "\n");
    let end = normalized.find("\n\n")?;
    Some((
        normalized[..end].to_owned(),
        normalized[end + 2..].to_owned(),
    ))
}

fn is_result(event: &str) -> bool {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    serde_json::from_str::<Value>(&data.join("\n")).is_ok_and(|m| {
        m.get("id").is_some() && (m.get("result").is_some() || m.get("error").is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_events_are_kept_and_the_result_is_dropped() {
        let body = Body::from(
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
             data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n",
        );
        let kept = events_before_result(body).await;
        let kept = String::from_utf8(kept.to_vec()).unwrap();
        assert!(kept.contains("notifications/progress"));
        assert!(!kept.contains("\"result\""));
    }

    #[test]
    fn only_responses_count_as_results() {
        assert!(is_result(
            "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{}}"
        ));
        assert!(!is_result("id: 0\nretry: 3000\ndata:"));
        assert!(!is_result(
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}"
        ));
    }
}
