//! The API error type and its RFC 9457 `application/problem+json` form.
//!
//! Handlers return `Result<_, ApiError>`. `IntoResponse` does not write the body: it stores the
//! [`Problem`] in the response extensions, and the edge middleware (`http::edge`) — which knows
//! the request id — writes the body, logs the error once inside the request span, and counts it.
//! That keeps `request_id` in every problem body equal to the `x-request-id` header, and keeps
//! logging in one place (axum `examples/error-handling`).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything that can go wrong in a request, with the status and `code` PRODUCT.md assigns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: bad parameters or body, missing filter or object_type.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `unauthenticated`: missing, invalid or expired JWT.
    #[error("{0}")]
    Unauthenticated(String),
    /// 401 `unauthenticated`: no bearer token at all (the challenge then carries no error code).
    #[error("this endpoint needs `Authorization: Bearer <JWT>`")]
    NoCredentials,
    /// 403 `forbidden`: the token lacks a scope for this route.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `tenant_suspended`.
    #[error("tenant is suspended")]
    TenantSuspended,
    /// 404 `tenant_not_found`: also answered for other tenants' paths, so as not to reveal them.
    #[error("tenant not found")]
    TenantNotFound,
    /// 404 `tool_not_found`: the tenant's upstream does not list this tool.
    #[error("tool `{0}` is not offered by this tenant's Intercom workspace")]
    ToolNotFound(String),
    /// 404 `not_found`: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409 `conflict`: the resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// 409 `intercom_not_connected`: the tenant has no credential.
    #[error("tenant has no Intercom credential; PUT one to .../intercom/credential")]
    IntercomNotConnected,
    /// 409 `intercom_reauth_required`: Intercom refused the tenant's token.
    #[error(
        "Intercom rejected this tenant's access token; store a new one (PUT .../intercom/credential or the OAuth flow)"
    )]
    IntercomReauthRequired,
    /// 413 `payload_too_large`.
    #[error("request body is larger than the limit (GATEWAY_MAX_BODY_BYTES)")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`.
    #[error("request body must be `application/json`")]
    UnsupportedMediaType,
    /// 422 `tool_error`: the upstream tool answered `isError: true`; `detail` carries its text.
    #[error("{0}")]
    ToolError(String),
    /// 429 `rate_limited`.
    #[error("rate limit exceeded ({scope})")]
    RateLimited {
        scope: &'static str,
        retry_after: Duration,
    },
    /// 429 `quota_exceeded`.
    #[error("monthly quota of {quota} calls exhausted")]
    QuotaExceeded { quota: i64, retry_after: Duration },
    /// 429 `upstream_rate_limited`: Intercom answered 429.
    #[error("Intercom is rate limiting this tenant")]
    UpstreamRateLimited { retry_after: Duration },
    /// 502 `upstream_error`: Intercom broke the protocol or answered 5xx. Details are logged.
    #[error("Intercom's MCP server failed: {0}")]
    Upstream(String),
    /// 503 `upstream_unavailable`.
    #[error("Intercom's MCP server is unavailable for this tenant")]
    UpstreamUnavailable { retry_after: Duration },
    /// 504 `upstream_timeout`.
    #[error("Intercom did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    /// 503 `auth_unavailable`: the JWKS could not be fetched, so no RS256/ES256 token can be
    /// checked. Our fault, not the caller's; retry later.
    #[error("the token issuer's key set is unavailable; retry shortly")]
    AuthUnavailable,
    /// 400 `oauth_state_invalid`: the OAuth callback's `state` is unknown, used or expired.
    #[error("{0}")]
    OAuthStateInvalid(String),
    /// 400 `oauth_denied`: the Intercom admin did not authorize the app (`error=access_denied`).
    #[error("{0}")]
    OAuthDenied(String),
    /// 502 `oauth_exchange_failed`: Intercom's token endpoint refused the code or failed.
    #[error("{0}")]
    OAuthExchangeFailed(String),
    /// 503 `oauth_not_configured`: INTERCOM_OAUTH_CLIENT_ID/SECRET or GATEWAY_PUBLIC_URL unset.
    #[error(
        "Intercom OAuth is not configured on this gateway (INTERCOM_OAUTH_CLIENT_ID, INTERCOM_OAUTH_CLIENT_SECRET, GATEWAY_PUBLIC_URL); PUT a token to .../intercom/credential instead"
    )]
    OAuthNotConfigured,
    /// 503 `not_ready`: `/readyz` only; Postgres unreachable or migrations missing.
    #[error("{0}")]
    NotReady(String),
    /// 503 `database_unavailable`: Postgres cannot be reached and the request needs it (tool
    /// calls of tenants this replica has seen keep working without it). The cause is logged.
    #[error("the gateway's database is unreachable; retry shortly")]
    DatabaseUnavailable(#[source] anyhow::Error),
    /// 500 `internal`: a bug or an infrastructure failure. Never echoed; logged at the edge.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unreachable(&e) {
            ApiError::DatabaseUnavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl ApiError {
    /// An infrastructure failure: 503 `database_unavailable` when Postgres could not be
    /// reached, else 500 `internal`.
    pub fn infrastructure(e: anyhow::Error) -> Self {
        if crate::db::is_unreachable_chain(&e) {
            ApiError::DatabaseUnavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<crate::tenants::LoadError> for ApiError {
    fn from(e: crate::tenants::LoadError) -> Self {
        if e.database_unreachable {
            ApiError::DatabaseUnavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest(_) | OAuthStateInvalid(_) | OAuthDenied(_) => StatusCode::BAD_REQUEST,
            Unauthenticated(_) | NoCredentials => StatusCode::UNAUTHORIZED,
            Forbidden(_) | TenantSuspended => StatusCode::FORBIDDEN,
            TenantNotFound | ToolNotFound(_) | NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict(_) | IntercomNotConnected | IntercomReauthRequired => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ToolError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited { .. } | QuotaExceeded { .. } | UpstreamRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Upstream(_) | OAuthExchangeFailed(_) => StatusCode::BAD_GATEWAY,
            UpstreamUnavailable { .. }
            | NotReady(_)
            | AuthUnavailable
            | OAuthNotConfigured
            | DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable `code` (PRODUCT.md "Error codes").
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "invalid_request",
            Unauthenticated(_) | NoCredentials => "unauthenticated",
            Forbidden(_) => "forbidden",
            TenantSuspended => "tenant_suspended",
            TenantNotFound => "tenant_not_found",
            ToolNotFound(_) => "tool_not_found",
            NotFound(_) => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict(_) => "conflict",
            IntercomNotConnected => "intercom_not_connected",
            IntercomReauthRequired => "intercom_reauth_required",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            ToolError(_) => "tool_error",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded { .. } => "quota_exceeded",
            UpstreamRateLimited { .. } => "upstream_rate_limited",
            Upstream(_) => "upstream_error",
            UpstreamUnavailable { .. } => "upstream_unavailable",
            UpstreamTimeout(_) => "upstream_timeout",
            NotReady(_) => "not_ready",
            OAuthStateInvalid(_) => "oauth_state_invalid",
            OAuthDenied(_) => "oauth_denied",
            OAuthExchangeFailed(_) => "oauth_exchange_failed",
            OAuthNotConfigured => "oauth_not_configured",
            AuthUnavailable => "auth_unavailable",
            DatabaseUnavailable(_) => "database_unavailable",
            Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::QuotaExceeded { retry_after, .. }
            | ApiError::UpstreamRateLimited { retry_after }
            | ApiError::UpstreamUnavailable { retry_after } => Some(*retry_after),
            ApiError::AuthUnavailable | ApiError::DatabaseUnavailable(_) => {
                Some(Duration::from_secs(5))
            }
            _ => None,
        }
    }
}

/// An RFC 9457 problem body. `request_id` is filled in by the edge middleware.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type, `urn:intercom-mcp-gateway:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type (the HTTP reason phrase).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong and what to do next.
    pub detail: String,
    /// Stable machine-readable error code (see the API overview).
    pub code: String,
    /// Equals the response's `x-request-id` header.
    pub request_id: String,
}

/// The error that produced a problem response, kept for the edge middleware to log once.
#[derive(Clone)]
pub struct LoggedError {
    pub status: StatusCode,
    pub code: &'static str,
    /// The full cause chain, for operators. Never contains a secret: nothing that carries one
    /// is ever put in an error.
    pub chain: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // Infrastructure details are for the log only.
            ApiError::Internal(_) => {
                "internal error; the request id identifies it in the logs".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            type_uri: format!("urn:intercom-mcp-gateway:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: self.code().to_owned(),
            request_id: String::new(),
        };
        let logged = LoggedError {
            status,
            code: self.code(),
            chain: match &self {
                ApiError::Internal(e) => format!("{e:#}"),
                ApiError::DatabaseUnavailable(e) => format!("database unreachable: {e:#}"),
                other => other.to_string(),
            },
        };
        let mut res = status.into_response();
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let ApiError::Unauthenticated(why) = &self {
            // RFC 6750 §3: the scheme, the error code and a description without quotes.
            let description: String = why
                .chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .collect();
            let challenge = format!(
                r#"Bearer realm="intercom-mcp-gateway", error="invalid_token", error_description="{description}""#
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let ApiError::NoCredentials = &self {
            // RFC 6750 §3.1: a request without credentials gets no error code.
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="intercom-mcp-gateway""#),
            );
        }
        res.extensions_mut().insert(problem);
        res.extensions_mut().insert(logged);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_reach_the_body() {
        let res = ApiError::Internal(anyhow::anyhow!("password=hunter2")).into_response();
        let p = res.extensions().get::<Problem>().unwrap();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("hunter2"));
    }

    #[test]
    fn rate_limits_carry_retry_after_rounded_up() {
        let res = ApiError::RateLimited {
            scope: "tenant",
            retry_after: Duration::from_millis(1200),
        }
        .into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn unauthenticated_carries_www_authenticate() {
        let res = ApiError::Unauthenticated("x".into()).into_response();
        assert!(
            res.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}
