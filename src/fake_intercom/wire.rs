//! The `/mcp` gate: everything the fake observes or fakes at the HTTP level.
//!
//! Counting happens here rather than in the MCP handler so the numbers are faithful to what
//! went over the wire: a `tools/call` answered by an injected 429, or with 404 because its
//! session expired, never reaches the handler but did reach Intercom.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::http::{bearer, intercom_error, unauthorized};
use super::json_mode;
use super::server::Tenant;
use super::state::{AppState, Fault, InFlight};

/// Matches rmcp's own request body limit.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";

/// What the JSON-RPC body of a POST asked for.
#[derive(Default)]
struct Envelope {
    method: Option<String>,
    tool: Option<String>,
    /// The JSON-RPC request id.
    id: Option<Value>,
    /// `params.requestId` of a `notifications/cancelled`.
    cancels: Option<Value>,
}

pub(crate) async fn gate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(request.headers()).map(str::to_owned) else {
        return unauthorized();
    };
    state.count(&token, |s| s.requests += 1);
    let Some(workspace) = state.workspace_for(&token) else {
        tracing::debug!("fake /mcp: unknown or revoked token");
        return unauthorized();
    };

    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(Tenant { workspace });
    let (envelope, body) = if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return intercom_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "parameter_invalid",
                "Request body too large",
            );
        };
        (read_envelope(&bytes), Body::from(bytes))
    } else {
        (Envelope::default(), body)
    };
    let request = Request::from_parts(parts, body);

    let method = envelope.method.as_deref();
    if let Some(tp) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        state.record_traceparent(method.unwrap_or(request.method().as_str()), tp);
    }
    state.count(&token, |s| match method {
        Some("initialize") => s.initializes += 1,
        Some("notifications/initialized") => s.initialized_notifications += 1,
        Some("tools/list") => s.list_tools += 1,
        Some("tools/call") => {
            s.tool_calls += 1;
            let tool = envelope.tool.clone().unwrap_or_default();
            *s.calls_by_tool.entry(tool).or_default() += 1;
        }
        _ if request.method() == Method::DELETE => s.deletes += 1,
        _ => {}
    });
    match (method, envelope.id.clone(), envelope.cancels.clone()) {
        (Some("tools/call"), Some(id), _) => state.record_call_id(&token, id),
        (Some("notifications/cancelled"), _, Some(id)) => state.record_cancellation(&token, id),
        _ => {}
    }
    if request.method() == Method::DELETE
        && let Some(session) = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        state.record_delete(session);
    }
    if let Some(session) = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        state.saw_session(session, &token);
    }

    let is_call = method == Some("tools/call");
    let in_flight = is_call.then(|| state.begin_call(&token));
    if is_call && let Some(fault) = state.take_fault(&token) {
        tracing::debug!(status = fault.status, "fake /mcp: injected fault");
        return fault_response(&fault);
    }

    let is_post = request.method() == Method::POST;
    let response = next.run(request).await;
    if method == Some("initialize")
        && let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        state.saw_session(session, &token);
    }
    let response = if state.json_response && is_post && is_event_stream(&response) {
        json_mode::collapse(response).await
    } else {
        response
    };
    match in_flight {
        Some(guard) if is_event_stream(&response) => hold_until_sent(response, guard),
        _ => response,
    }
}

fn read_envelope(bytes: &Bytes) -> Envelope {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Envelope::default();
    };
    Envelope {
        method: value["method"].as_str().map(str::to_owned),
        tool: value["params"]["name"].as_str().map(str::to_owned),
        id: value.get("id").cloned(),
        cancels: value["params"].get("requestId").cloned(),
    }
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// An SSE answer is still streaming when the handler returns: the call stays in flight until
/// hyper drops the body after sending its last byte.
fn hold_until_sent(response: Response, guard: InFlight) -> Response {
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _ = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// A 429 like Intercom's REST rate limiter, or a bare 5xx like a failing edge.
fn fault_response(fault: &Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if status == StatusCode::TOO_MANY_REQUESTS {
        intercom_error(
            status,
            "rate_limit_exceeded",
            "Exceeded rate limit of 167 in 10_seconds",
        )
    } else if status.is_server_error() {
        (status, format!("{} (injected by fake-intercom)", status)).into_response()
    } else {
        intercom_error(status, "fault_injected", "Injected by fake-intercom")
    };
    if let Some(secs) = fault.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}
