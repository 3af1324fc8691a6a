//! OAuth discovery of the MCP server and the Intercom REST endpoints of the public-app flow.
//!
//! - `/.well-known/oauth-authorization-server`: RFC 8414 metadata like mcp.intercom.com's;
//!   the RFC 9728 protected-resource documents are 404, as Intercom serves none.
//! - `GET /oauth` (and `/authorize`): an auto-approving consent page, for demos.
//! - `POST /auth/eagle/token`: code exchange answering `{token, access_token, token_type}`.
//! - `GET /me`, `POST /auth/uninstall`: identity and revocation by bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::data::{app_id_code, slug};
use super::http::{bearer, intercom_error, unauthorized};
use super::state::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/oauth-protected-resource", get(not_found))
        .route("/.well-known/oauth-protected-resource/mcp", get(not_found))
        .route("/oauth", get(authorize))
        .route("/authorize", get(authorize))
        .route("/register", post(register))
        .route("/auth/eagle/token", post(exchange))
        .route("/token", post(mcp_token))
        .route("/me", get(me))
        .route("/auth/uninstall", post(uninstall))
}

/// The issuer is the origin the caller used, so the document stays right behind compose host
/// names; for a direct caller it equals `FakeIntercom::base_url()`.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn metadata(headers: HeaderMap) -> Response {
    let issuer = origin(&headers);
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
    .into_response()
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Approves at once for `?workspace=` (default `demo`): mints a token and a one-time code.
async fn authorize(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(redirect_uri) = query.get("redirect_uri").filter(|u| !u.is_empty()) else {
        return intercom_error(
            StatusCode::BAD_REQUEST,
            "parameter_not_found",
            "redirect_uri is required",
        );
    };
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return intercom_error(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "redirect_uri is not a URL",
        );
    };
    let workspace = query.get("workspace").map_or("demo", String::as_str);
    let token = format!("fake-{}", uuid::Uuid::new_v4().simple());
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    state.add_workspace(&token, workspace);
    state.add_oauth_code(&code, &token);
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = query.get("state") {
            pairs.append_pair("state", s);
        }
    }
    Redirect::to(target.as_str()).into_response()
}

async fn register(body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let client = json!({
        "client_id": format!("client-{}", uuid::Uuid::new_v4().simple()),
        "client_id_issued_at": time::OffsetDateTime::now_utc().unix_timestamp(),
        "redirect_uris": request["redirect_uris"],
        "client_name": request["client_name"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    (StatusCode::CREATED, axum::Json(client)).into_response()
}

/// Intercom documents a form body; JSON is accepted too so any client works.
fn fields(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let object = value.as_object().cloned().unwrap_or_default();
        object
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

async fn exchange(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = fields(&headers, &body);
    let present = |k: &str| fields.get(k).is_some_and(|v| !v.is_empty());
    if !present("code") || !present("client_id") || !present("client_secret") {
        return intercom_error(
            StatusCode::BAD_REQUEST,
            "parameter_not_found",
            "code, client_id and client_secret are required",
        );
    }
    let code = fields.get("code").map_or("", String::as_str);
    match state.redeem_oauth_code(code) {
        Some(token) => {
            axum::Json(json!({"token": token, "access_token": token, "token_type": "Bearer"}))
                .into_response()
        }
        None => intercom_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The authorization code is invalid, expired or already used",
        ),
    }
}

/// The MCP authorization server's RFC 6749 token endpoint (public clients: no secret).
async fn mcp_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = fields(&headers, &body);
    let token = fields.get("code").and_then(|c| state.redeem_oauth_code(c));
    match token {
        Some(token) => {
            axum::Json(json!({"access_token": token, "token_type": "bearer"})).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "unknown or used code"}),
            ),
        )
            .into_response(),
    }
}

async fn me(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(workspace) = bearer(&headers).and_then(|t| state.workspace_for(t)) else {
        return unauthorized();
    };
    let data = state.data(&workspace);
    let admin = &data.admin;
    axum::Json(json!({
        "type": "admin",
        "id": admin["id"],
        "email": admin["email"],
        "name": admin["name"],
        "email_verified": true,
        "app": {
            "type": "app",
            "id_code": app_id_code(&workspace),
            "name": &*workspace,
            "region": "US",
            "timezone": "Etc/UTC",
            "created_at": 1_700_000_000,
            "identity_verification": false,
        },
        "avatar": {"type": "avatar", "image_url": format!("https://static.{}.example/avatar.png", slug(&workspace))},
        "has_inbox_seat": true,
    }))
    .into_response()
}

async fn uninstall(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers).filter(|t| state.workspace_for(t).is_some()) else {
        return unauthorized();
    };
    state.revoke(token);
    axum::Json(json!({})).into_response()
}
