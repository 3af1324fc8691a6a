//! The path every tool call takes once the request is valid:
//! tenant → credential → tool catalog → scope → upstream → metering.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::Instrument;

use super::AppState;
use super::caller::{Need, authorize, require_tool_scope, tenant_id};
use super::edge::CallSlot;
use crate::audit::{self, Action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::mcp::{PoolKey, ToolResult, ToolSpec, UpstreamError};
use crate::tenants::TenantId;
use crate::tenants::model::{CredentialStatus, RateLimit, Region, TenantStatus};
use crate::tenants::repo;

/// A tool the cached list lacks triggers a refetch of a list at least this old: Intercom adds
/// tools, but callers must not be able to make every request list tools upstream.
const UNKNOWN_TOOL_REFRESH_AFTER: Duration = Duration::from_secs(30);

/// Runs `tool` for the tenant in the path with arguments from `build_args`. Everything after
/// tenant resolution is metered, errors included.
pub(super) async fn run_tool(
    state: &AppState,
    caller: &Caller,
    slot: &CallSlot,
    raw_tenant: &str,
    tool: &str,
    build_args: impl FnOnce(&ToolSpec) -> Result<Map<String, Value>, ApiError>,
) -> Result<(ToolSpec, ToolResult), ApiError> {
    let Resolved { key, rate, quota } = resolve_tenant(state, caller, raw_tenant).await?;
    slot.set_tenant(key.tenant.as_str());
    slot.set_metered();
    let started = Instant::now();
    let mut known_tool: Option<String> = None;
    let outcome = async {
        admit(state, slot, &key.tenant, rate, &caller.sub)?;
        match state
            .quotas
            .check(&key.tenant, quota)
            .await
            .map_err(ApiError::infrastructure)?
        {
            Ok(()) => {}
            Err(retry_after) => {
                state.metrics.rate_limited(&key.tenant, "quota");
                return Err(ApiError::QuotaExceeded {
                    quota: quota.unwrap_or_default(),
                    retry_after,
                });
            }
        }
        let spec = resolve_tool(state, slot, &key, tool).await?;
        known_tool = Some(spec.name.clone());
        require_tool_scope(caller, spec.read_only)?;
        let args = build_args(&spec)?;
        let upstream_started = Instant::now();
        state.quotas.reached(&key.tenant);
        let result = state
            .upstream
            .call(&key, &spec, args, state.settings.upstream_timeout)
            .await;
        slot.set_upstream(
            i32::try_from(upstream_started.elapsed().as_millis()).unwrap_or(i32::MAX),
        );
        let result = match result {
            Ok(r) => r,
            Err(e) => return Err(upstream_failed(state, slot, &key, e).await),
        };
        if result.is_error {
            let text = result.first_text().unwrap_or("the tool reported an error");
            return Err(ApiError::ToolError(truncate(text, 2000)));
        }
        Ok((spec, result))
    }
    .await;
    // `tool` is a label only when the tenant's upstream lists it: callers cannot mint series.
    let label = known_tool.as_deref().unwrap_or("unknown");
    let code = match &outcome {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    slot.set_tool(label, code);
    state.metrics.tool_call(
        &key.tenant,
        label,
        code,
        Some(started.elapsed().as_secs_f64()),
    );
    outcome
}

/// Takes a token from the tenant's and the caller's bucket; the `RateLimit-*` headers go on
/// the response either way.
fn admit(
    state: &AppState,
    slot: &CallSlot,
    tenant: &TenantId,
    rate: Option<RateLimit>,
    caller: &str,
) -> Result<(), ApiError> {
    // No span of its own: a lock-free bucket check is cheaper than a span (issue 8 profile);
    // a refusal shows as the request span's outcome, the access log and
    // `gateway_rate_limited_total`.
    match state.limits.check(tenant, rate, caller) {
        Ok(headers) => {
            slot.set_rate(headers);
            Ok(())
        }
        Err(refused) => {
            slot.set_rate(refused.headers);
            state.metrics.rate_limited(tenant, refused.scope);
            Err(ApiError::RateLimited {
                scope: refused.scope,
                retry_after: refused.retry_after,
            })
        }
    }
}

struct Resolved {
    key: PoolKey,
    rate: Option<RateLimit>,
    quota: Option<i64>,
}

async fn resolve_tenant(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<Resolved, ApiError> {
    let id = tenant_id(raw)?;
    authorize(caller, &id, Need::Tools)?;
    let entry = state
        .directory
        .get(&id)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    if entry.tenant.status == TenantStatus::Suspended {
        return Err(ApiError::TenantSuspended);
    }
    let credential = entry
        .credential
        .as_ref()
        .ok_or(ApiError::IntercomNotConnected)?;
    if credential.status == CredentialStatus::Rejected {
        return Err(ApiError::IntercomReauthRequired);
    }
    let url = match entry.tenant.region {
        Region::Us => state.settings.intercom_mcp_url.clone(),
        Region::Eu => state.settings.intercom_mcp_url_eu.clone(),
    };
    Ok(Resolved {
        key: PoolKey {
            tenant: id,
            generation: credential.generation,
            url,
            token: credential.token.clone(),
        },
        rate: entry.tenant.rate_limit,
        quota: entry.tenant.monthly_quota,
    })
}

async fn resolve_tool(
    state: &AppState,
    slot: &CallSlot,
    key: &PoolKey,
    name: &str,
) -> Result<ToolSpec, ApiError> {
    let catalog = match state.upstream.catalog(key, None).await {
        Ok(c) => c,
        Err(e) => return Err(upstream_failed(state, slot, key, e).await),
    };
    if let Some(t) = catalog.get(name) {
        return Ok(t.clone());
    }
    let catalog = match state
        .upstream
        .catalog(key, Some(UNKNOWN_TOOL_REFRESH_AFTER))
        .await
    {
        Ok(c) => c,
        Err(e) => return Err(upstream_failed(state, slot, key, e).await),
    };
    catalog
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::ToolNotFound(name.to_owned()))
}

/// The tenant's tool list (for `GET .../tools`).
pub(super) async fn list_tools(
    state: &AppState,
    caller: &Caller,
    slot: &CallSlot,
    raw_tenant: &str,
) -> Result<Vec<ToolSpec>, ApiError> {
    let Resolved { key, rate, .. } = resolve_tenant(state, caller, raw_tenant).await?;
    slot.set_tenant(key.tenant.as_str());
    admit(state, slot, &key.tenant, rate, &caller.sub)?;
    match state.upstream.catalog(&key, None).await {
        Ok(c) => Ok(c.tools.clone()),
        Err(e) => Err(upstream_failed(state, slot, &key, e).await),
    }
}

/// Maps an upstream failure to the caller's error. A 401 from Intercom marks this credential
/// generation `rejected` and closes the tenant's sessions: no more upstream traffic until an
/// admin stores a new token.
async fn upstream_failed(
    state: &AppState,
    slot: &CallSlot,
    key: &PoolKey,
    e: UpstreamError,
) -> ApiError {
    match e {
        // Boxed: rare, and its database work makes a large future, which every call's future
        // would otherwise carry (issue 8).
        UpstreamError::Unauthorized => {
            Box::pin(credential_rejected(state, slot, key)).await;
            ApiError::IntercomReauthRequired
        }
        UpstreamError::RateLimited { retry_after } => {
            state.metrics.rate_limited(&key.tenant, "upstream");
            ApiError::UpstreamRateLimited {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            }
        }
        UpstreamError::InvalidArguments(m) => ApiError::InvalidRequest(format!(
            "Intercom refused the arguments: {}",
            truncate(&m, 500)
        )),
        UpstreamError::UnknownTool => ApiError::ToolNotFound("(refused by upstream)".into()),
        UpstreamError::Failed { detail, .. } => ApiError::Upstream(truncate(&detail, 500)),
        UpstreamError::Timeout => ApiError::UpstreamTimeout(state.settings.upstream_timeout),
        UpstreamError::Unavailable { retry_after } => ApiError::UpstreamUnavailable { retry_after },
    }
}

/// Intercom refused the tenant's token: marks this credential generation `rejected`, records
/// it in the audit log (once) and closes the tenant's sessions.
async fn credential_rejected(state: &AppState, slot: &CallSlot, key: &PoolKey) {
    tracing::warn!(tenant = %key.tenant, generation = key.generation, "Intercom rejected the tenant's token; marking it rejected");
    match repo::mark_credential_rejected(&state.db, &key.tenant, key.generation)
        .instrument(tracing::info_span!(
            "db.mark_credential_rejected",
            db.system.name = "postgresql"
        ))
        .await
    {
        // Only the call that flipped the status records it: one entry per rejection.
        Ok(true) => {
            audit::record(
                &state.db,
                audit::Event {
                    actor: audit::ACTOR_INTERCOM,
                    action: Action::CredentialRejected,
                    tenant: Some(&key.tenant),
                    request_id: slot.request_id().as_deref(),
                    detail: serde_json::json!({"generation": key.generation}),
                },
            )
            .await;
        }
        Ok(false) => {}
        Err(db) => {
            tracing::error!(tenant = %key.tenant, error = %db, "could not mark the credential rejected");
        }
    }
    state.directory.invalidate(&key.tenant).await;
    state.upstream.close_tenant(&key.tenant).await;
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
