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

use super::FakeProtocol;
use super::http::{bearer, intercom_error, unauthorized};
use super::server::Tenant;
use super::state::{AppState, Fault, InFlight};
use super::{breaks, json_mode};

/// Matches rmcp's own request body limit.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";

/// What the JSON-RPC body of a POST asked for.
#[derive(Default)]
struct Envelope {
    method: Option<String>,
    tool: Option<String>,
    /// `params.protocolVersion` of an `initialize`.
    protocol_version: Option<String>,
    /// The JSON-RPC id (null when absent).
    id: Value,
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
    parts.extensions.insert(Tenant {
        workspace,
        token: Arc::from(token.as_str()),
    });
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
        Some("server/discover") => s.discovers += 1,
        Some("notifications/initialized") => s.initialized_notifications += 1,
        Some("tools/list") => s.list_tools += 1,
        Some("tools/call") => {
            s.tool_calls += 1;
            let tool = envelope.tool.clone().unwrap_or_default();
            *s.calls_by_tool.entry(tool).or_default() += 1;
        }
        _ if request.method() == Method::DELETE => s.deletes += 1,
        _ if request.method() == Method::GET
            && !request.headers().contains_key("last-event-id") =>
        {
            s.listens += 1
        }
        _ => {}
    });
    match (method, envelope.id.clone(), envelope.cancels.clone()) {
        (Some("tools/call"), id, _) if !id.is_null() => state.record_call_id(&token, id),
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

    let has_session = request.headers().contains_key(SESSION_HEADER);
    match (state.protocol, method) {
        // A session-based server knows no `server/discover`; without a session it refuses
        // any request but `initialize` with 400, before looking at the method (this is the
        // TypeScript SDK's answer). Dual-era clients read that as "fall back to initialize".
        (FakeProtocol::Session, Some("server/discover")) if !has_session => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32000,
                "Bad Request: No valid session ID provided",
                None,
            );
        }
        // A 2026-07-28-only server has no handshake. The transport spec answers a request
        // for a revision the server does not implement with 400 and an
        // UnsupportedProtocolVersionError naming what it supports (basic/versioning: such a
        // server SHOULD name its versions in any error it returns to `initialize`).
        (FakeProtocol::Stateless, Some("initialize")) => {
            let requested = envelope.protocol_version.clone().unwrap_or_default();
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                envelope.id.clone(),
                -32022,
                "Unsupported protocol version: this server speaks only 2026-07-28 (no initialize; use server/discover)",
                Some(serde_json::json!({"supported": ["2026-07-28"], "requested": requested})),
            );
        }
        _ => {}
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
    let response = if is_call && response.status().is_success() && state.take_stream_break(&token) {
        tracing::debug!("fake /mcp: breaking the answer off before its result");
        state.count(&token, |s| s.broken_streams += 1);
        breaks::cut(response).await
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
        protocol_version: value["params"]["protocolVersion"]
            .as_str()
            .map(str::to_owned),
        id: value.get("id").cloned().unwrap_or(Value::Null),
        cancels: value["params"].get("requestId").cloned(),
    }
}

/// A JSON-RPC error answered at the HTTP level, with the given status.
fn jsonrpc_error(
    status: StatusCode,
    id: Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = serde_json::json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error});
    (status, axum::Json(body)).into_response()
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
