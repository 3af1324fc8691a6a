//! Health, readiness, the metrics page, and the answers for unknown routes.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::Json;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Postgres is reachable and every migration this build knows is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let latest = crate::db::latest_migration();
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.db)
            .await
            .map_err(|e| ApiError::NotReady(format!("database unreachable: {e}")))?;
    if applied < Some(latest) {
        return Err(ApiError::NotReady(format!(
            "migrations not applied (database at {applied:?}, this build needs {latest})"
        )));
    }
    Ok(Json(Health { status: "ok" }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /docs".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
