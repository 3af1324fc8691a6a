//! The tenant's Intercom credential: `/v1/tenants/{tenant_id}/intercom/credential` (admin).
//! The token goes in once and never comes out: reads return metadata only.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, Need, authorize, tenant_id};
use super::extract::{Json, Path, Query};
use super::request_id::RequestId;
use crate::audit::{self, Action};
use crate::error::{ApiError, Problem};
use crate::tenants::TenantId;
use crate::tenants::crypto::fingerprint;
use crate::tenants::model::{CredentialMeta, CredentialStatus};
use crate::tenants::repo::{self, WorkspaceRef};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_credential, get_credential, delete_credential))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredential {
    /// The Intercom access token (OAuth or Developer Hub). Stored encrypted; never returned.
    #[schema(value_type = String, format = Password)]
    pub access_token: SecretString,
}

/// What may be said about a stored credential: never the token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    /// `active`, or `rejected` once Intercom answered 401 for it.
    pub status: CredentialStatus,
    /// `sha256:` + 16 hex digits of the token's SHA-256: tells two tokens apart.
    pub fingerprint: String,
    /// Id of the encryption key that sealed it.
    pub key_id: String,
    /// Incremented on every replacement.
    pub generation: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub rejected_at: Option<OffsetDateTime>,
    /// Intercom's workspace id (`app.id_code`) the token belongs to; known for OAuth connects.
    pub workspace_id: Option<String>,
    /// Intercom's region of that workspace (`US`, `EU`, `AU`), when known.
    pub workspace_region: Option<String>,
}

impl From<CredentialMeta> for CredentialView {
    fn from(m: CredentialMeta) -> Self {
        Self {
            status: m.status,
            fingerprint: m.fingerprint,
            key_id: m.key_id,
            generation: m.generation,
            created_at: m.created_at,
            updated_at: m.updated_at,
            rejected_at: m.rejected_at,
            workspace_id: m.workspace_id,
            workspace_region: m.workspace_region,
        }
    }
}

/// Store or replace the tenant's Intercom token. Existing upstream sessions finish their calls
/// and are replaced.
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/intercom/credential", tag = "credentials",
    params(("tenant_id" = String, Path)), request_body = PutCredential,
    responses(
        (status = 200, body = CredentialView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn put_credential(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    rid: RequestId,
    Json(body): Json<PutCredential>,
) -> Result<Json<CredentialView>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    let token = body.access_token.expose_secret();
    // An HTTP header value: visible ASCII, no spaces (RFC 6750 b64token is narrower still).
    if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(
            "`access_token` must be 1-4096 visible ASCII characters".into(),
        ));
    }
    let meta = store_credential(&state, &id, &body.access_token, WorkspaceRef::default()).await?;
    tracing::info!(tenant = %id, actor = %caller.sub, generation = meta.generation, "credential stored");
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: if meta.generation == 1 {
                Action::CredentialCreated
            } else {
                Action::CredentialReplaced
            },
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({
                "fingerprint": meta.fingerprint,
                "generation": meta.generation,
                "key_id": meta.key_id,
                "source": "api",
            }),
        },
    )
    .await;
    Ok(Json(meta.into()))
}

/// Seals and stores the tenant's token (replacing any), then drops this replica's cached copy
/// and drains the tenant's sessions: the one way a credential is written, for the API and the
/// OAuth callback alike. Other replicas learn of it through the change notification.
pub(super) async fn store_credential(
    state: &AppState,
    id: &TenantId,
    token: &SecretString,
    workspace: WorkspaceRef<'_>,
) -> Result<CredentialMeta, ApiError> {
    let sealed = state.directory.keyring().seal(id, token);
    let meta = repo::put_credential(&state.db, id, &sealed, &fingerprint(token), workspace)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    state.directory.invalidate(id).await;
    state.upstream.close_tenant(id).await;
    Ok(meta)
}

/// Credential metadata (never the token).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/intercom/credential", tag = "credentials",
    params(("tenant_id" = String, Path)),
    responses(
        (status = 200, body = CredentialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_not_found`, or `not_found` when there is no credential", body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn get_credential(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Result<Json<CredentialView>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    if repo::get_tenant(&state.db, &id).await?.is_none() {
        return Err(ApiError::TenantNotFound);
    }
    let (meta, _) = repo::get_credential(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("this tenant has no Intercom credential".into()))?;
    Ok(Json(meta.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Also revoke the token at Intercom (`POST /auth/uninstall`, which uninstalls the app from
    /// the workspace). Default: `INTERCOM_REVOKE_ON_DISCONNECT`.
    pub revoke: Option<bool>,
}

/// Remove the credential; the tenant's upstream sessions are closed. With `revoke`, the token
/// is also revoked at Intercom; a failed revocation is logged and audited, and the credential is
/// deleted all the same.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/intercom/credential", tag = "credentials",
    params(("tenant_id" = String, Path), DeleteParams),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn delete_credential(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    Query(params): Query<DeleteParams>,
    rid: RequestId,
) -> Result<StatusCode, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    if repo::get_tenant(&state.db, &id).await?.is_none() {
        return Err(ApiError::TenantNotFound);
    }
    let revoke = params.revoke.unwrap_or(state.oauth.revoke_on_disconnect);
    // Read before deleting: revoking needs the token, the audit entry its fingerprint.
    let Some((meta, sealed)) = repo::get_credential(&state.db, &id).await? else {
        return Err(ApiError::NotFound(
            "this tenant has no Intercom credential".into(),
        ));
    };
    if !repo::delete_credential(&state.db, &id).await? {
        return Err(ApiError::NotFound(
            "this tenant has no Intercom credential".into(),
        ));
    }
    state.directory.invalidate(&id).await;
    state.upstream.close_tenant(&id).await;
    let revoked = if revoke {
        Some(revoke_at_intercom(&state, &id, &sealed).await)
    } else {
        None
    };
    tracing::info!(tenant = %id, actor = %caller.sub, revoked, "credential deleted");
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: Action::CredentialDeleted,
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({
                "fingerprint": meta.fingerprint,
                "generation": meta.generation,
                "revoked": revoked,
            }),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/uninstall` with the deleted token; `true` when Intercom confirmed.
async fn revoke_at_intercom(
    state: &AppState,
    id: &crate::tenants::TenantId,
    sealed: &crate::tenants::crypto::SealedToken,
) -> bool {
    let token = match state.directory.keyring().open(id, sealed) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(tenant = %id, error = %e, "cannot open the deleted credential to revoke it");
            return false;
        }
    };
    match state.oauth.rest.uninstall(&token).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(tenant = %id, error = format!("{e:#}"), "revoking the token at Intercom failed");
            false
        }
    }
}
