//! Tenant administration: `/v1/tenants` (scope `gateway:admin`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, Need, authorize, require_admin, tenant_id};
use super::extract::{Json, Path, Query};
use super::request_id::RequestId;
use crate::audit::{self, Action};
use crate::error::{ApiError, Problem};
use crate::tenants::TenantId;
use crate::tenants::model::{MAX_RATE, RateLimit, Region, Tenant, TenantStatus};
use crate::tenants::repo::{self, NewTenant, RepoError, TenantPatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

/// A tenant as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub region: Region,
    pub status: TenantStatus,
    /// `null` = the gateway defaults apply.
    pub rate_limit: Option<RateLimit>,
    /// Calls per calendar month (UTC); `null` = unlimited.
    pub monthly_quota: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            region: t.region,
            status: t.status,
            rate_limit: t.rate_limit,
            monthly_quota: t.monthly_quota,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-64 characters of letters, digits, `.`, `_`, `-`; the `tenant_id` claim of its callers.
    #[schema(value_type = String, example = "acme")]
    pub id: TenantId,
    pub name: String,
    /// `us` or `eu` (Intercom has no MCP server for Australian workspaces).
    #[serde(default = "default_region")]
    pub region: Region,
    pub rate_limit: Option<RateLimit>,
    #[schema(minimum = 0)]
    pub monthly_quota: Option<i64>,
}

fn default_region() -> Region {
    Region::Us
}

/// Every field optional; `null` clears `rate_limit` and `monthly_quota`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    pub region: Option<Region>,
    pub status: Option<TenantStatus>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimit>)]
    pub rate_limit: Option<Option<RateLimit>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub monthly_quota: Option<Option<i64>>,
}

/// The names of the fields a PATCH sets (for the audit log: names, not values).
fn changed_fields(body: &UpdateTenant) -> Vec<&'static str> {
    [
        ("name", body.name.is_some()),
        ("region", body.region.is_some()),
        ("status", body.status.is_some()),
        ("rate_limit", body.rate_limit.is_some()),
        ("monthly_quota", body.monthly_quota.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect()
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-500 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::InvalidRequest(
            "`name` must be 1-200 characters".into(),
        ));
    }
    Ok(())
}

fn check_limits(rate: Option<RateLimit>, quota: Option<i64>) -> Result<(), ApiError> {
    if let Some(r) = rate
        && !((1..=MAX_RATE).contains(&r.per_minute) && (1..=MAX_RATE).contains(&r.burst))
    {
        return Err(ApiError::InvalidRequest(format!(
            "`rate_limit.per_minute` and `rate_limit.burst` must be 1-{MAX_RATE}"
        )));
    }
    if quota.is_some_and(|q| q < 0) {
        return Err(ApiError::InvalidRequest(
            "`monthly_quota` must be >= 0 or null".into(),
        ));
    }
    Ok(())
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses(
        (status = 201, body = TenantView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a tenant with this id exists (`conflict`)", body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn create_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    rid: RequestId,
    Json(body): Json<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&caller)?;
    check_name(&body.name)?;
    check_limits(body.rate_limit, body.monthly_quota)?;
    let tenant = repo::insert_tenant(
        &state.db,
        NewTenant {
            id: &body.id,
            name: body.name.trim(),
            region: body.region,
            rate_limit: body.rate_limit,
            monthly_quota: body.monthly_quota,
        },
    )
    .await
    .map_err(|e| match e {
        RepoError::Conflict => ApiError::Conflict(format!("tenant `{}` already exists", body.id)),
        RepoError::Db(e) => e.into(),
    })?;
    state.directory.invalidate(&tenant.id).await;
    tracing::info!(tenant = %tenant.id, actor = %caller.sub, "tenant created");
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: Action::TenantCreated,
            tenant: Some(&tenant.id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({"name": tenant.name, "region": tenant.region}),
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(TenantView::from(tenant))))
}

/// List tenants, ordered by id, with cursor paging.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses(
        (status = 200, body = TenantList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn list_tenants(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<TenantList>, ApiError> {
    require_admin(&caller)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidRequest("`limit` must be 1-500".into()));
    }
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::InvalidRequest("`cursor` is not a cursor this API returned".into())
                })?,
        ),
    };
    let mut rows = repo::list_tenants(&state.db, after.as_deref(), limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|t| URL_SAFE_NO_PAD.encode(t.id.as_str()))
    } else {
        None
    };
    Ok(Json(TenantList {
        tenants: rows.into_iter().map(TenantView::from).collect(),
        next_cursor,
    }))
}

/// Read a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path)),
    responses(
        (status = 200, body = TenantView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn get_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    let tenant = repo::get_tenant(&state.db, &id)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    Ok(Json(tenant.into()))
}

/// Update a tenant. Changing `region` or `status` takes effect on the next call.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path)), request_body = UpdateTenant,
    responses(
        (status = 200, body = TenantView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn update_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    rid: RequestId,
    Json(body): Json<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    check_limits(body.rate_limit.flatten(), body.monthly_quota.flatten())?;
    let region_changed = body.region.is_some();
    let changed = changed_fields(&body);
    let patch = TenantPatch {
        name: body.name.map(|n| n.trim().to_owned()),
        region: body.region,
        status: body.status,
        rate_limit: body.rate_limit,
        monthly_quota: body.monthly_quota,
    };
    let tenant = repo::update_tenant(&state.db, &id, patch)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    state.directory.invalidate(&id).await;
    if region_changed {
        state.upstream.close_tenant(&id).await;
    }
    tracing::info!(tenant = %id, actor = %caller.sub, "tenant updated");
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: Action::TenantUpdated,
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({"fields": changed}),
        },
    )
    .await;
    Ok(Json(tenant.into()))
}

/// Delete a tenant: closes its sessions and deletes its credential; usage rows are kept.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path)),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn delete_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    rid: RequestId,
) -> Result<StatusCode, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::Admin)?;
    if !repo::delete_tenant(&state.db, &id).await? {
        return Err(ApiError::TenantNotFound);
    }
    state.directory.invalidate(&id).await;
    state.upstream.close_tenant(&id).await;
    tracing::info!(tenant = %id, actor = %caller.sub, "tenant deleted");
    audit::record(
        &state.db,
        audit::Event {
            actor: &caller.sub,
            action: Action::TenantDeleted,
            tenant: Some(&id),
            request_id: rid.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
