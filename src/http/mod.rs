//! The HTTP API: router assembly and shared state. Each resource module owns its routes.

mod audit;
pub mod caller;
mod credential;
pub mod edge;
mod extract;
mod oauth;
pub mod openapi;
mod ops;
mod request_id;
mod serve;
mod sessions;
mod tenants;
mod toolcall;
mod tools;
mod usage;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sqlx::PgPool;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::JwtVerifier;
use crate::error::ApiError;
use crate::limits::{Quotas, RateLimits};
use crate::mcp::Upstream;
use crate::metering::Meter;
use crate::oauth::OAuthConfig;
use crate::telemetry::Metrics;
use crate::tenants::TenantDirectory;

pub use serve::serve;

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub intercom_mcp_url: Arc<str>,
    pub intercom_mcp_url_eu: Arc<str>,
    pub upstream_timeout: Duration,
    pub max_body_bytes: usize,
}

pub struct Services {
    pub db: PgPool,
    pub limits: RateLimits,
    pub quotas: Quotas,
    pub meter: Meter,
    pub directory: TenantDirectory,
    pub upstream: Upstream,
    pub verifier: JwtVerifier,
    pub metrics: Metrics,
    pub settings: HttpSettings,
    pub oauth: OAuthConfig,
}

#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// All routes with their documentation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ops::router())
        .merge(tenants::router())
        .merge(credential::router())
        .merge(audit::router())
        .merge(oauth::router())
        .merge(sessions::router())
        .merge(tools::router())
        .merge(usage::router())
}

/// The OpenAPI document (`GET /openapi.json`, `openapi` subcommand, `openapi/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

pub fn router(state: AppState) -> Router {
    let (routes, doc) = api().split_for_parts();
    let x_request_id = edge::X_REQUEST_ID;
    let max_body = state.settings.max_body_bytes;
    // Outside-in: request id → propagate it to the response → edge (problem bodies, access
    // log, metrics) → panics become 500 problems → body limit (read by our Json extractor:
    // 413) → handler. One `ServiceBuilder` stack, not five `.layer` calls: `Router::layer`
    // boxes every route's service once per call, and each request clones the matched route's
    // nested boxes (issue 8: 24 allocations per call for five layers).
    let edge = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(
            x_request_id.clone(),
            MakeRequestUuid,
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::edge,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(anyhow::anyhow!(
                "handler panicked"
            )))
        }))
        .layer(DefaultBodyLimit::max(max_body));
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(edge)
        .with_state(state)
}
