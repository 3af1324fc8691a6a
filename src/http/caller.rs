//! Who is calling, and may they touch this tenant? (PRODUCT.md "Callers and auth".)

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::edge::CallSlot;
use crate::auth::{Caller, Scope, bearer_token};
use crate::error::ApiError;
use crate::tenants::TenantId;

/// A caller whose JWT verified.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        let token = bearer_token(header).map_err(|_| ApiError::NoCredentials)?;
        let verified = state.verifier.verify(token).await;
        let caller = verified.map_err(|e| {
            if e.is_unavailable() {
                tracing::error!(error = %e, "cannot verify caller tokens: JWKS unavailable");
                ApiError::AuthUnavailable
            } else {
                ApiError::Unauthenticated(e.to_string())
            }
        })?;
        if let Some(slot) = parts.extensions.get::<CallSlot>() {
            slot.set_caller(&caller.sub);
        }
        Ok(Authenticated(caller))
    }
}

/// What a route needs from the caller for the tenant in its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Administration: `gateway:admin`, any tenant.
    Admin,
    /// Tool calls: a token *of this tenant* with `intercom:read` or `intercom:write` (the exact
    /// scope is checked once the tool's read-only-ness is known). Admin scope does not help.
    Tools,
    /// Usage: admins, or the tenant's own callers.
    AdminOrOwn,
}

impl Caller {
    fn owns(&self, tenant: &TenantId) -> bool {
        self.tenant_id.as_deref() == Some(tenant.as_str())
    }
}

/// Checks the caller against the tenant in the path. Another tenant's path answers 404
/// `tenant_not_found`, exactly as a tenant that does not exist, so ids cannot be probed.
pub fn authorize(caller: &Caller, tenant: &TenantId, need: Need) -> Result<(), ApiError> {
    let admin = caller.has(Scope::GatewayAdmin);
    let own = caller.owns(tenant);
    match need {
        Need::Admin if admin => Ok(()),
        Need::Admin if own => Err(ApiError::Forbidden("this route needs the `gateway:admin` scope".into())),
        Need::AdminOrOwn if admin || own => Ok(()),
        Need::Tools if own => {
            if caller.has(Scope::IntercomRead) || caller.has(Scope::IntercomWrite) {
                Ok(())
            } else {
                Err(ApiError::Forbidden("tool calls need the `intercom:read` or `intercom:write` scope".into()))
            }
        }
        Need::Tools if admin => Err(ApiError::Forbidden(
            "`gateway:admin` does not grant tool calls; use a token of this tenant with `intercom:read`/`intercom:write`".into(),
        )),
        _ => Err(ApiError::TenantNotFound),
    }
}

/// Routes that are not about one tenant (`POST /v1/tenants`, `GET /v1/tenants`).
pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.has(Scope::GatewayAdmin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this route needs the `gateway:admin` scope".into(),
        ))
    }
}

/// The scope a tool needs: `intercom:read` for read-only tools, `intercom:write` otherwise.
pub fn require_tool_scope(caller: &Caller, read_only: bool) -> Result<(), ApiError> {
    let (scope, name) = if read_only {
        (Scope::IntercomRead, "intercom:read")
    } else {
        (Scope::IntercomWrite, "intercom:write")
    };
    if caller.scopes.contains(scope) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this tool needs the `{name}` scope"
        )))
    }
}

/// Parses the `{tenant_id}` path segment.
pub fn tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}
