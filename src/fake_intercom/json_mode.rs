//! JSON response mode: answer POSTs with one `application/json` body instead of SSE.
//!
//! rmcp's `StreamableHttpServerConfig::json_response` only applies to stateless servers; with
//! sessions (which Intercom uses) rmcp always streams. The transport spec lets a server answer a
//! request either way and clients MUST accept both, so the fake offers both: in JSON mode this
//! reads the SSE stream up to the JSON-RPC response and re-emits that message alone, keeping
//! the status and headers (notably `Mcp-Session-Id`). Notifications sent before the response
//! (progress) are dropped, as a JSON answer has no room for them.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

pub(crate) async fn collapse(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffer = String::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(message) = take_response(&mut buffer) {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.remove(header::CACHE_CONTROL);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Response::from_parts(parts, Body::from(message));
        }
    }
    (
        StatusCode::BAD_GATEWAY,
        "fake-intercom: SSE stream ended without a JSON-RPC response",
    )
        .into_response()
}

/// Consumes complete SSE events from `buffer`; returns the first JSON-RPC response or error.
fn take_response(buffer: &mut String) -> Option<String> {
    loop {
        let normalized = buffer.replace("\r\n", "\n");
        let end = normalized.find("\n\n")?;
        let event = normalized[..end].to_owned();
        *buffer = normalized[end + 2..].to_owned();
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let data = data.join("\n");
        let Ok(message) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        let is_response = message.get("id").is_some()
            && (message.get("result").is_some() || message.get("error").is_some());
        if is_response {
            return Some(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take_response;

    #[test]
    fn priming_and_progress_events_are_skipped_up_to_the_response() {
        let mut buffer = String::from(
            "id: 0\nretry: 3000\ndata:\n\n\
             data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
             data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n",
        );
        assert_eq!(
            take_response(&mut buffer).as_deref(),
            Some("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}")
        );
    }

    #[test]
    fn an_incomplete_event_waits_for_more_bytes() {
        let mut buffer = String::from("data: {\"jsonrpc\":\"2.0\",\"id\":2,");
        assert_eq!(take_response(&mut buffer), None);
        buffer.push_str("\"result\":{}}\n\n");
        assert!(take_response(&mut buffer).is_some());
    }
}
