//! The audit log: who changed which tenant or credential, when, and in which request.
//!
//! Entries are written after the change they describe has been committed, best effort: a failed
//! audit write is logged at `error` (operators alert on it) but does not turn a change that
//! already happened into a 500. Details never hold a token: only fingerprints, generations, key
//! ids and workspace ids.

pub mod repo;

use serde_json::Value;
use sqlx::PgPool;

use crate::tenants::TenantId;

/// What happened. The names are part of the API (`GET /v1/audit` → `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    TenantCreated,
    TenantUpdated,
    TenantDeleted,
    CredentialCreated,
    CredentialReplaced,
    CredentialRejected,
    CredentialDeleted,
    CredentialKeyRotated,
    OAuthStarted,
    OAuthConnected,
    OAuthFailed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::TenantCreated => "tenant.created",
            Action::TenantUpdated => "tenant.updated",
            Action::TenantDeleted => "tenant.deleted",
            Action::CredentialCreated => "credential.created",
            Action::CredentialReplaced => "credential.replaced",
            Action::CredentialRejected => "credential.rejected",
            Action::CredentialDeleted => "credential.deleted",
            Action::CredentialKeyRotated => "credential.key_rotated",
            Action::OAuthStarted => "oauth.started",
            Action::OAuthConnected => "oauth.connected",
            Action::OAuthFailed => "oauth.failed",
        }
    }
}

/// Actor of events the gateway decides itself (Intercom answered 401).
pub const ACTOR_INTERCOM: &str = "intercom";
/// Actor of re-seals under a new key (background job and `rotate-keys`).
pub const ACTOR_KEY_ROTATION: &str = "system:key-rotation";

/// One entry to record.
pub struct Event<'a> {
    /// The caller's JWT `sub`, or one of the `ACTOR_*` constants.
    pub actor: &'a str,
    pub action: Action,
    pub tenant: Option<&'a TenantId>,
    /// The `x-request-id` of the request that caused it, when there was one.
    pub request_id: Option<&'a str>,
    pub detail: Value,
}

/// Records `event`; never fails the caller (see the module comment).
pub async fn record(db: &PgPool, event: Event<'_>) {
    if let Err(e) = repo::insert(db, &event).await {
        tracing::error!(
            action = event.action.as_str(),
            tenant = event.tenant.map(|t| t.as_str()),
            actor = event.actor,
            error = %e,
            "could not write the audit log"
        );
    }
}
