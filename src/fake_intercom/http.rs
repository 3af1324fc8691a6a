//! Router assembly and the HTTP-level pieces shared by the routes.
//!
//! Layout (outermost first on `/mcp`):
//!   `wire::gate` — count what went over the wire, authenticate the bearer token, inject
//!   faults, track in-flight calls and session/token pairs, collapse SSE into JSON in JSON mode,
//!   refuse the requests the chosen MCP generation does not know, break streams on request
//!   → rmcp `StreamableHttpService` (sessions, Streamable HTTP rules, 404 for unknown sessions;
//!   stateless 2026-07-28 requests and their header checks)
//!   → `server::FakeServer` (tools).
//! The OAuth/REST routes and the `/_fake` knobs sit beside `/mcp` with no gate.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::FakeProtocol;
use super::server::FakeServer;
use super::state::AppState;
use super::{knobs, oauth, wire};

/// Exactly what Intercom's MCP server sends on a missing or invalid token (research §1.2):
/// no `resource_metadata` parameter, since Intercom serves no RFC 9728 metadata.
pub(crate) const WWW_AUTHENTICATE: &str = r#"Bearer realm="OAuth", error="invalid_token", error_description="Missing or invalid access token""#;

pub(crate) fn router(state: Arc<AppState>, shutdown: CancellationToken) -> Router {
    let stateless_only = state.protocol == FakeProtocol::Stateless;
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        // Reachable as `fake-intercom:8090` in docker-compose, so no DNS-rebinding Host list;
        // the Origin allow-list is empty (unchecked) by default.
        .disable_allowed_hosts()
        // A 2026-07-28-only server has no sessions (GET and DELETE answer 405, no
        // `Mcp-Session-Id` is ever issued) and requires `MCP-Protocol-Version` and the
        // `_meta` protocol version on every request; rmcp then also checks the
        // `Mcp-Method`/`Mcp-Name` headers against the body (400, -32020 HeaderMismatch).
        // The session and dual-era modes keep rmcp's sessions for `initialize`d clients.
        .with_legacy_session_mode(!stateless_only)
        .with_stateless_protocol_metadata_required(stateless_only)
        .with_cancellation_token(shutdown);
    let handler_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(FakeServer::new(handler_state.clone())),
        state.sessions.clone(),
        config,
    );
    let mcp = Router::new()
        .route_service("/mcp", mcp)
        .layer(from_fn_with_state(state.clone(), wire::gate));
    Router::new()
        .merge(mcp)
        .merge(oauth::router())
        .merge(knobs::router())
        .with_state(state)
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// 401 as Intercom answers it, on `/mcp` and on the REST routes.
pub(crate) fn unauthorized() -> Response {
    let body = json!({
        "type": "error.list",
        "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}],
    });
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(WWW_AUTHENTICATE),
        )],
        axum::Json(body),
    )
        .into_response()
}

/// Intercom's REST error body for other statuses.
pub(crate) fn intercom_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "type": "error.list",
        "request_id": uuid::Uuid::new_v4().to_string(),
        "errors": [{"code": code, "message": message}],
    });
    (status, axum::Json(body)).into_response()
}
