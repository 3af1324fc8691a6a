//! `GET /v1/tenants/{tenant_id}/usage`: the usage ledger, aggregated (admins, and the tenant's
//! own callers).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Authenticated, Need, authorize, tenant_id};
use super::extract::{Json, Path, Query};
use crate::error::{ApiError, Problem};
use crate::metering::{UsageGroup, UsageRow, usage_report};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_usage))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start (inclusive): RFC 3339 timestamp or `YYYY-MM-DD` (UTC). Default: the start of the
    /// current month.
    from: Option<String>,
    /// End (exclusive): RFC 3339 timestamp or `YYYY-MM-DD` (UTC). Default: now.
    to: Option<String>,
    /// `tool` (default), `day`, `caller` or `outcome`.
    group_by: Option<UsageGroup>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    #[serde(with = "time::serde::rfc3339")]
    from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    to: OffsetDateTime,
    group_by: UsageGroup,
    rows: Vec<UsageRow>,
    total: UsageRow,
}

fn parse_instant(name: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, &date_format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            ApiError::InvalidRequest(format!(
                "`{name}` must be an RFC 3339 timestamp or YYYY-MM-DD"
            ))
        })
}

/// Calls, errors and latency percentiles per tool, day, caller or outcome.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/usage", tag = "usage",
    params(("tenant_id" = String, Path), UsageParams),
    responses(
        (status = 200, body = UsageReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
async fn get_usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let id = tenant_id(&raw)?;
    authorize(&caller, &id, Need::AdminOrOwn)?;
    let now = OffsetDateTime::now_utc();
    let from = match params.from.as_deref() {
        Some(f) => parse_instant("from", f)?,
        None => now
            .date()
            .replace_day(1)
            .unwrap_or(now.date())
            .midnight()
            .assume_utc(),
    };
    let to = match params.to.as_deref() {
        Some(t) => parse_instant("to", t)?,
        None => now,
    };
    if to <= from {
        return Err(ApiError::InvalidRequest("`to` must be after `from`".into()));
    }
    if to - from > time::Duration::days(400) {
        return Err(ApiError::InvalidRequest(
            "the range may span at most 400 days".into(),
        ));
    }
    if crate::tenants::repo::get_tenant(&state.db, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::TenantNotFound);
    }
    let group_by = params.group_by.unwrap_or(UsageGroup::Tool);
    let (rows, total) = usage_report(&state.db, id.as_str(), from, to, group_by).await?;
    Ok(Json(UsageReport {
        from,
        to,
        group_by,
        rows,
        total,
    }))
}
