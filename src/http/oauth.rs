//! Connecting Intercom with OAuth: `POST /v1/tenants/{tenant_id}/intercom/oauth/start` (admin)
//! and `GET /v1/oauth/intercom/callback` (the browser; authenticated by `state` alone).

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, Need, authorize, tenant_id};
use super::credential::store_credential;
use super::extract::{Json, Path, Query};
use super::request_id::RequestId;
use crate::audit::{self, Action};
use crate::error::{ApiError, Problem};
use crate::oauth::{self, ExchangeError, OAuthApp, repo as states};
use crate::tenants::TenantId;
use crate::tenants::repo::{self, WorkspaceRef};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(callback))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthStart {
    /// Send the Intercom admin's browser here.
    pub authorize_url: String,
    /// The `state` in `authorize_url`: single use, valid until `expires_at`.
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Start connecting the tenant's Intercom workspace: returns Intercom's consent page URL (the EU
/// host for EU tenants) with `client_id`, a fresh `state` and `redirect_uri` =
/// `GATEWAY_PUBLIC_URL/v1/oauth/intercom/callback`.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/intercom/oauth/start", tag = "oauth",
    params(("tenant_id" = String, Path)),
    responses(
        (status = 200, body = OAuthStart),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`oauth_not_configured`", body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn start(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    rid: RequestId,
) -> Result<Json<OAuthStart>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    let app = configured(&state)?;
    let tenant = repo::get_tenant(&state.db, &id)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    let value = oauth::new_state();
    let expires_at = OffsetDateTime::now_utc() + oauth::STATE_TTL;
    if !states::insert_state(
        &state.db,
        &oauth::state_hash(&value),
        &id,
        &caller.sub,
        expires_at,
    )
    .await?
    {
        return Err(ApiError::TenantNotFound);
    }
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: Action::OAuthStarted,
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({"expires_at": expires_at.unix_timestamp()}),
        },
    )
    .await;
    Ok(Json(OAuthStart {
        authorize_url: app.authorize_url(tenant.region, &value).to_string(),
        state: value,
        expires_at,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code (absent when the admin declined).
    pub code: Option<String>,
    /// The `state` returned by `.../oauth/start`.
    pub state: Option<String>,
    /// Set by Intercom instead of `code`, e.g. `access_denied`.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Intercom sends the admin's browser here. Checks the `state` (single use, ten minutes),
/// exchanges the code at `INTERCOM_OAUTH_TOKEN_URL`, reads the workspace (`GET /me`), stores the
/// sealed token and replaces the tenant's sessions. Answers a small page, or redirects to
/// `GATEWAY_OAUTH_SUCCESS_REDIRECT`. Every failure stores nothing.
#[utoipa::path(get, path = "/v1/oauth/intercom/callback", tag = "oauth", params(CallbackParams),
    responses(
        (status = 200, description = "connected", content_type = "text/html", body = String),
        (status = 303, description = "connected; redirect to `GATEWAY_OAUTH_SUCCESS_REDIRECT?tenant_id=...`"),
        (status = 400, description = "`oauth_state_invalid` (missing, unknown, used or expired state), `oauth_denied`, `invalid_request` (no code)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_exchange_failed`: Intercom refused the code or its token endpoint failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`oauth_not_configured`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn callback(
    State(state): State<AppState>,
    rid: RequestId,
    Query(params): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    let app = configured(&state)?;
    let value = params.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::OAuthStateInvalid(
            "the `state` parameter is missing; start again with POST /v1/tenants/{tenant_id}/intercom/oauth/start".into(),
        )
    })?;
    let used = states::take_state(&state.db, &oauth::state_hash(value))
        .await?
        .ok_or_else(|| {
            ApiError::OAuthStateInvalid(
                "this `state` is unknown or was already used; start again with POST /v1/tenants/{tenant_id}/intercom/oauth/start".into(),
            )
        })?;
    let id = TenantId::parse(&used.tenant_id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored OAuth state: {e}")))?;
    let fail = |reason: &'static str, error: ApiError| {
        failed(&state, &used.actor, &id, rid.as_deref(), reason, error)
    };
    if used.expires_at <= OffsetDateTime::now_utc() {
        return Err(fail("state_expired", ApiError::OAuthStateInvalid(
            "this `state` expired (they last ten minutes); start again with POST /v1/tenants/{tenant_id}/intercom/oauth/start".into(),
        ))
        .await);
    }
    if let Some(error) = params.error.as_deref() {
        let reason = if error == "access_denied" {
            "access_denied"
        } else {
            "intercom_error"
        };
        let detail = format!(
            "Intercom did not authorize the app (`{}`{}); nothing was stored",
            printable(error, 64),
            params
                .error_description
                .as_deref()
                .map(|d| format!(": {}", printable(d, 200)))
                .unwrap_or_default()
        );
        return Err(fail(reason, ApiError::OAuthDenied(detail)).await);
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(fail(
            "missing_code",
            ApiError::InvalidRequest("the `code` parameter is missing".into()),
        )
        .await);
    };
    let token = match state.oauth.rest.exchange(app, code).await {
        Ok(t) => t,
        Err(e) => {
            let reason = match &e {
                ExchangeError::Refused(_) => "code_refused",
                ExchangeError::Failed(_) => "token_endpoint_failed",
            };
            return Err(fail(
                reason,
                ApiError::OAuthExchangeFailed(format!("{e}; nothing was stored, start again")),
            )
            .await);
        }
    };
    // The workspace identity is a nicety: a failing `/me` does not undo a good connect.
    let workspace = match state.oauth.rest.workspace(&token).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(tenant = %id, error = format!("{e:#}"), "could not read the workspace identity (GET /me)");
            None
        }
    };
    let workspace = WorkspaceRef {
        id: workspace.as_ref().map(|w| w.id.as_str()),
        region: workspace.as_ref().and_then(|w| w.region.as_deref()),
    };
    let meta = store_credential(&state, &id, &token, workspace).await?;
    tracing::info!(tenant = %id, actor = %used.actor, generation = meta.generation, "Intercom connected with OAuth");
    audit::record(
        &state.db,
        audit::Event {
            actor: &used.actor,
            action: Action::OAuthConnected,
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({
                "fingerprint": meta.fingerprint,
                "generation": meta.generation,
                "key_id": meta.key_id,
                "workspace_id": meta.workspace_id,
                "workspace_region": meta.workspace_region,
            }),
        },
    )
    .await;
    if let Some(target) = &state.oauth.success_redirect {
        let mut target = target.clone();
        target
            .query_pairs_mut()
            .append_pair("tenant_id", id.as_str());
        return Ok(Redirect::to(target.as_str()).into_response());
    }
    let workspace = meta
        .workspace_id
        .as_deref()
        .map(|w| format!(" (workspace <code>{}</code>)", escape(w)))
        .unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Intercom connected</title></head>\
         <body><h1>Intercom connected</h1><p>Tenant <code>{tenant}</code> is now connected to \
         Intercom{workspace}. You can close this window.</p></body></html>",
        tenant = escape(id.as_str()),
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response())
}

/// Records a failed connect whose state was valid, and passes the error on.
async fn failed(
    state: &AppState,
    actor: &str,
    id: &TenantId,
    request_id: Option<&str>,
    reason: &'static str,
    error: ApiError,
) -> ApiError {
    tracing::warn!(tenant = %id, reason, "OAuth connect failed");
    audit::record(
        &state.db,
        audit::Event {
            actor,
            action: Action::OAuthFailed,
            tenant: Some(id),
            request_id,
            detail: serde_json::json!({"reason": reason}),
        },
    )
    .await;
    error
}

fn configured(state: &AppState) -> Result<&OAuthApp, ApiError> {
    state.oauth.app.as_ref().ok_or(ApiError::OAuthNotConfigured)
}

/// Text from the query string, made safe to echo: printable ASCII, bounded.
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '`')
        .take(max)
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
