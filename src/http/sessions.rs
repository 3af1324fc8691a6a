//! The tenant's live upstream pool: `GET /v1/tenants/{tenant_id}/sessions` (admin).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, Need, authorize, tenant_id};
use super::extract::{Json, Path};
use crate::error::{ApiError, Problem};
use crate::mcp::{ProtocolInfo, SessionInfo};
use crate::tenants::repo;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_sessions))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The tenant's open upstream MCP sessions, as they are now (empty when idle).
    pub sessions: Vec<SessionInfo>,
    /// What the tenant's upstream negotiated on this replica: the MCP generation and revision
    /// (learned per upstream URL, for every tenant on it); null until a session on that URL
    /// was opened here, or after a protocol failure made the gateway probe again.
    pub protocol: Option<ProtocolInfo>,
}

/// The tenant's upstream MCP sessions, live: never the session ids themselves, only a hash.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/sessions", tag = "tenants",
    params(("tenant_id" = String, Path)),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    if repo::get_tenant(&state.db, &id).await?.is_none() {
        return Err(ApiError::TenantNotFound);
    }
    Ok(Json(SessionList {
        sessions: state.upstream.sessions(&id).await,
        protocol: state.upstream.protocol(&id).await,
    }))
}
