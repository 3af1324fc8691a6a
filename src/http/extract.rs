//! Extractors whose rejections are our problem bodies, not axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// `axum::Json` with problem+json rejections: 400 for malformed or mistyped JSON, 415 for a
/// missing `application/json` content type, 413 over `GATEWAY_MAX_BODY_BYTES`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON document already serialized (a tool's result passed through): its text is the body
/// as is. `Json` would serialize it again into a small buffer grown by doubling.
pub struct RawJson(pub Box<RawValue>);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        let text: Box<str> = self.0.into();
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            String::from(text),
        )
            .into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::InvalidRequest(format!(
                "invalid JSON body: {}",
                redact(&other.body_text())
            )),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(format!("invalid path: {}", redact(&r.body_text())))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(format!("invalid query string: {}", redact(&r.body_text())))
    }
}

/// serde quotes offending values (`invalid type: string "…", expected u32`); a value may be a
/// secret (an access token sent in the wrong field), so quoted text is never echoed.
pub(crate) fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_are_not_echoed() {
        assert_eq!(
            super::redact(r#"invalid type: string "tok_secret", expected u32 at line 1"#),
            r#"invalid type: string "…", expected u32 at line 1"#
        );
    }
}
