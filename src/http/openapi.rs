//! The OpenAPI document: paths come from the route modules (`utoipa_axum::routes!`), the rest
//! is declared here. `openapi/openapi.json` is this document, checked by a test.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "intercom-mcp-gateway",
        description = "Multi-tenant REST gateway in front of Intercom's remote MCP server. \
Every `/v1` route takes `Authorization: Bearer <JWT>`, except the OAuth callback, which a \
browser reaches and its single-use `state` authenticates. Errors are RFC 9457 \
`application/problem+json` bodies with a stable `code` and the `request_id` of the \
`x-request-id` response header.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "intercom", description = "Tool calls on the caller's tenant (scopes `intercom:read` / `intercom:write`)"),
        (name = "tenants", description = "Tenant administration (scope `gateway:admin`)"),
        (name = "credentials", description = "The tenant's Intercom credential (scope `gateway:admin`)"),
        (name = "usage", description = "The usage ledger (admins and the tenant's own callers)"),
        (name = "oauth", description = "Connecting a tenant's Intercom workspace with Intercom OAuth"),
        (name = "audit", description = "Who changed which tenant or credential, and when (scope `gateway:admin`)"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 (shared secret) or RS256/ES256 (JWKS) JWT with `sub`, `exp`, the tenant claim and `scope`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error answers every tool endpoint can give.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum ToolErrors {
    /// `invalid_request`: bad parameters or body, missing filter or object_type, arguments refused upstream.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// `unauthenticated`: missing, invalid or expired JWT (with `WWW-Authenticate`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// `forbidden` (missing scope, admin-only token) or `tenant_suspended`.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// `tenant_not_found` (also for other tenants' paths) or `tool_not_found`.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// `intercom_not_connected` or `intercom_reauth_required`.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `payload_too_large`.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// `unsupported_media_type`.
    #[response(status = 415, content_type = "application/problem+json")]
    Unsupported(Problem),
    /// `tool_error`: the tool answered `isError: true`; its text is in `detail`.
    #[response(status = 422, content_type = "application/problem+json")]
    ToolError(Problem),
    /// `rate_limited`, `quota_exceeded` or `upstream_rate_limited`, with `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Problem),
    /// `upstream_error`: Intercom broke the protocol or answered 5xx.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(Problem),
    /// `upstream_unavailable` (circuit open, pool saturated) or `database_unavailable` (Postgres
    /// unreachable and this replica has not read the tenant yet), with `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
    /// `upstream_timeout`.
    #[response(status = 504, content_type = "application/problem+json")]
    Timeout(Problem),
}
