//! The audit log: `GET /v1/audit` (admin), newest first, with cursor paging.

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, require_admin, tenant_id};
use super::extract::{Json, Query};
use crate::audit::repo::{self, Entry, Filter};
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this tenant's entries.
    pub tenant_id: Option<String>,
    /// RFC 3339; entries at or after this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<OffsetDateTime>,
    /// RFC 3339; entries before this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<OffsetDateTime>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One recorded action. Never contains a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The caller's JWT `sub`; `intercom` when Intercom rejected a token;
    /// `system:key-rotation` for re-seals.
    pub actor: String,
    /// `tenant.created`, `tenant.updated`, `tenant.deleted`, `credential.created`,
    /// `credential.replaced`, `credential.rejected`, `credential.deleted`,
    /// `credential.key_rotated`, `oauth.started`, `oauth.connected`, `oauth.failed`.
    pub action: String,
    pub tenant_id: Option<String>,
    /// The `x-request-id` of the request that caused it.
    pub request_id: Option<String>,
    /// Action-specific facts (fingerprint, generation, key ids, changed fields, reason).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for older entries; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl From<Entry> for AuditEntry {
    fn from(e: Entry) -> Self {
        Self {
            at: e.at,
            actor: e.actor,
            action: e.action,
            tenant_id: e.tenant_id,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

/// The audit log of administrative actions and credential events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    require_admin(&caller)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidRequest("`limit` must be 1-500".into()));
    }
    let tenant = params.tenant_id.as_deref().map(tenant_id).transpose()?;
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::InvalidRequest("`cursor` is not a cursor this API returned".into())
        })?),
    };
    let mut rows = repo::list(
        &state.db,
        Filter {
            tenant: tenant.as_ref().map(|t| t.as_str()),
            from: params.from,
            to: params.to,
            before,
            limit: limit + 1,
        },
    )
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|e| URL_SAFE_NO_PAD.encode(e.id.to_string()))
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries: rows.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}

fn decode_cursor(c: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(c).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}
