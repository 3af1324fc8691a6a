//! `/_fake/*`: the test knobs of `FakeIntercom` over HTTP, for the standalone binary
//! (docker-compose, demos). Unauthenticated on purpose: the fake never holds real data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Json, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::state::{AppState, Fault};

#[derive(Deserialize)]
struct Workspace {
    token: String,
    workspace: String,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

#[derive(Deserialize)]
struct StreamBreaks {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    token: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct Code {
    code: String,
    token: String,
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_fake/workspaces", post(add_workspace))
        .route("/_fake/revoke", post(revoke))
        .route("/_fake/expire-sessions", post(expire_sessions))
        .route("/_fake/faults", post(inject_fault))
        .route("/_fake/stream-breaks", post(break_streams))
        .route("/_fake/latency", put(set_latency))
        .route("/_fake/stats", get(stats))
        .route("/_fake/oauth/codes", post(add_code))
}

async fn add_workspace(State(state): State<Arc<AppState>>, Json(w): Json<Workspace>) -> StatusCode {
    state.add_workspace(&w.token, &w.workspace);
    tracing::info!(workspace = %w.workspace, "fake: workspace added");
    StatusCode::NO_CONTENT
}

async fn revoke(State(state): State<Arc<AppState>>, Json(t): Json<Token>) -> StatusCode {
    state.revoke(&t.token);
    StatusCode::NO_CONTENT
}

async fn expire_sessions(State(state): State<Arc<AppState>>) -> Response {
    let expired = state.expire_sessions().await;
    tracing::info!(expired, "fake: sessions expired");
    Json(json!({"expired": expired})).into_response()
}

async fn inject_fault(State(state): State<Arc<AppState>>, Json(fault): Json<Fault>) -> StatusCode {
    state.inject_fault(fault);
    StatusCode::NO_CONTENT
}

async fn break_streams(
    State(state): State<Arc<AppState>>,
    Json(b): Json<StreamBreaks>,
) -> StatusCode {
    state.break_streams(b.count, b.token.as_deref());
    StatusCode::NO_CONTENT
}

async fn set_latency(State(state): State<Arc<AppState>>, Json(l): Json<Latency>) -> StatusCode {
    state.set_latency(Duration::from_millis(l.ms));
    StatusCode::NO_CONTENT
}

async fn stats(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = query.get("token") else {
        return (StatusCode::BAD_REQUEST, "token query parameter required").into_response();
    };
    let mut body = json!(state.stats(token));
    body["sessions_with_multiple_tokens"] = json!(state.sessions_with_multiple_tokens());
    Json(body).into_response()
}

async fn add_code(State(state): State<Arc<AppState>>, Json(c): Json<Code>) -> StatusCode {
    state.add_oauth_code(&c.code, &c.token);
    StatusCode::NO_CONTENT
}
