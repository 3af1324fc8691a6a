//! What went wrong upstream, in the gateway's words: rmcp's error types stop here.

use std::error::Error as StdError;
use std::time::Duration;

use rmcp::ServiceError;
use rmcp::model::ErrorCode;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpError;

/// An upstream failure, split by whose fault it is and what the caller can do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Intercom answered 401: the tenant's token is revoked or invalid.
    #[error("Intercom rejected the access token")]
    Unauthorized,
    /// Intercom answered 429.
    #[error("Intercom answered 429")]
    RateLimited { retry_after: Option<Duration> },
    /// The upstream refused the arguments (JSON-RPC -32602): the caller's fault.
    #[error("{0}")]
    InvalidArguments(String),
    /// The upstream does not know the tool (JSON-RPC -32602 "Unknown tool").
    #[error("unknown tool")]
    UnknownTool,
    /// 5xx, a connection failure, a broken stream or a protocol violation. `retryable` says
    /// whether a read-only call may be run again: the request provably did not run
    /// (connection refused, 5xx before any answer, 404 for its session), or its session ended
    /// mid-call, which a read survives harmlessly. Writes are never retried.
    /// `outage` marks the failures that count towards the tenant's circuit breaker (5xx,
    /// connection failures, broken transports), as opposed to protocol errors.
    #[error("{detail}")]
    Failed {
        detail: String,
        retryable: bool,
        outage: bool,
    },
    /// The whole call exceeded `GATEWAY_UPSTREAM_TIMEOUT`.
    #[error("timed out")]
    Timeout,
    /// Refused locally: the tenant's circuit is open, or its pool is saturated and the call
    /// waited in the queue past `GATEWAY_POOL_QUEUE_TIMEOUT`.
    #[error("upstream unavailable")]
    Unavailable { retry_after: Duration },
}

impl UpstreamError {
    /// A short, bounded name for span attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unauthorized => "unauthorized",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::InvalidArguments(_) => "invalid_arguments",
            UpstreamError::UnknownTool => "unknown_tool",
            UpstreamError::Failed { .. } => "failed",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Unavailable { .. } => "unavailable",
        }
    }

    /// Failures that say the upstream is down for this tenant (circuit breaker input).
    pub(super) fn is_outage(&self) -> bool {
        matches!(
            self,
            UpstreamError::Timeout | UpstreamError::Failed { outage: true, .. }
        )
    }

    /// rmcp could not renew an expired session: the session is useless now.
    pub(super) fn is_unrenewable_session(&self) -> bool {
        matches!(self, UpstreamError::Failed { detail, .. } if detail == UNRENEWABLE)
    }

    fn failed(detail: impl Into<String>, retryable: bool, outage: bool) -> Self {
        UpstreamError::Failed {
            detail: detail.into(),
            retryable,
            outage,
        }
    }

    /// The server ended the session while the call ran (its response stream closed and the
    /// resume got 404). The call may have run: only reads are retried.
    pub(super) fn session_ended_mid_call() -> Self {
        UpstreamError::failed("upstream session ended during the call", true, false)
    }

    /// The session was found gone (404) before the request ran: safe to run again anywhere,
    /// writes included.
    pub(super) fn expired_before_run() -> Self {
        UpstreamError::failed(EXPIRED_BEFORE_RUN, true, false)
    }

    /// See [`UpstreamError::expired_before_run`].
    pub(super) fn did_not_run(&self) -> bool {
        matches!(self, UpstreamError::Failed { detail, .. } if detail == EXPIRED_BEFORE_RUN)
    }

    /// A failure caused by the session's lifecycle (expired, renewed, ended under the call)
    /// rather than by Intercom being down: retried for reads without counting as an outage.
    pub(super) fn is_session_lifecycle(&self) -> bool {
        matches!(
            self,
            UpstreamError::Failed {
                retryable: true,
                outage: false,
                ..
            }
        )
    }

    pub(super) fn from_service(e: ServiceError) -> Self {
        match e {
            ServiceError::McpError(data) => {
                if data.message.starts_with(RENEWED_MID_CALL) {
                    // rmcp renewed the session (another request got the 404) while this call
                    // was running on the old one: it may have run; reads may run again.
                    UpstreamError::failed(
                        "upstream session was renewed during the call",
                        true,
                        false,
                    )
                } else if is_session_gone(&data.message) {
                    UpstreamError::failed("upstream session no longer exists", true, false)
                } else if data.code == ErrorCode::INVALID_PARAMS {
                    if data.message.starts_with("Unknown tool") {
                        UpstreamError::UnknownTool
                    } else {
                        UpstreamError::InvalidArguments(data.message.into_owned())
                    }
                } else {
                    UpstreamError::failed(
                        format!("JSON-RPC error {}: {}", data.code.0, data.message),
                        false,
                        false,
                    )
                }
            }
            ServiceError::TransportSend(t) => classify_transport(t.error.as_ref()),
            ServiceError::TransportClosed => {
                UpstreamError::failed("upstream session closed", true, true)
            }
            ServiceError::Timeout { .. } => UpstreamError::Timeout,
            other => UpstreamError::failed(other.to_string(), false, false),
        }
    }

    pub(super) fn from_initialize(e: ClientInitializeError) -> Self {
        match e {
            ClientInitializeError::TransportError { error, .. } => {
                classify_transport(error.error.as_ref())
            }
            ClientInitializeError::JsonRpcError(data) => UpstreamError::failed(
                format!("initialize refused: {}", data.message),
                false,
                false,
            ),
            // The discover probe said "session-based server" and the `initialize` that
            // followed failed: that second failure is the one that matters (a 401 there is
            // a revoked token, a 429 a rate limit).
            ClientInitializeError::LegacyFallbackFailed { fallback, .. } => {
                UpstreamError::from_initialize(*fallback)
            }
            ClientInitializeError::NoCompatibleProtocolVersion {
                server_supported, ..
            } => UpstreamError::failed(
                format!(
                    "the upstream does not offer the stateless MCP revision 2026-07-28 (it offers {})",
                    server_supported
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                false,
                false,
            ),
            other => UpstreamError::failed(format!("initialize failed: {other}"), true, true),
        }
    }
}

const EXPIRED_BEFORE_RUN: &str = "upstream session expired before the request ran";

const UNRENEWABLE: &str = "upstream session expired and could not be renewed";

/// rmcp's error for calls in flight when it re-initializes an expired session.
const RENEWED_MID_CALL: &str = "streamable HTTP session was re-initialized";

/// The JSON-RPC forms of "your session is gone" seen in the wild besides HTTP 404: the
/// TypeScript SDK's `-32001 "Session not found"` and servers answering "Session terminated".
pub(super) fn is_session_gone(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("session not found") || m.contains("session terminated")
}

/// Finds rmcp's HTTP error in a transport error's cause chain and classifies it.
fn classify_transport(err: &(dyn StdError + Send + Sync + 'static)) -> UpstreamError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(http) = e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return classify_http(http);
        }
        cur = e.source();
    }
    // A transport failure without an HTTP status: the connection or stream broke.
    UpstreamError::failed(err.to_string(), false, true)
}

pub(super) fn classify_http(e: &StreamableHttpError<reqwest::Error>) -> UpstreamError {
    match e {
        StreamableHttpError::AuthRequired(_) => UpstreamError::Unauthorized,
        StreamableHttpError::HttpStatus(s) if s.status == 429 => UpstreamError::RateLimited {
            retry_after: s.retry_after.as_deref().and_then(parse_retry_after),
        },
        StreamableHttpError::HttpStatus(s) => UpstreamError::failed(
            format!("Intercom answered HTTP {}", s.status),
            s.status >= 500,
            s.status >= 500,
        ),
        // The resume (`GET` + `Last-Event-ID`) of a response stream got 404: the server ended
        // the session while the call ran. It may have run; re-running is harmless only for
        // read-only tools, which are the only ones the pool retries.
        StreamableHttpError::Client(re) if re.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
            UpstreamError::session_ended_mid_call()
        }
        StreamableHttpError::Client(re) => transport_failure(re.is_connect(), re.is_timeout()),
        StreamableHttpError::SessionExpired | StreamableHttpError::ReinitializationFailed(_) => {
            UpstreamError::failed(UNRENEWABLE, true, false)
        }
        other => UpstreamError::failed(other.to_string(), false, true),
    }
}

/// An HTTP exchange with the upstream that failed below HTTP: no connection, a timeout, or a
/// broken connection.
pub(super) fn transport_failure(connect: bool, timeout: bool) -> UpstreamError {
    UpstreamError::failed(
        if connect {
            "could not connect to Intercom"
        } else if timeout {
            "HTTP timeout talking to Intercom"
        } else {
            "HTTP error talking to Intercom"
        },
        // A refused connection provably sent nothing.
        connect,
        true,
    )
}

/// `Retry-After` is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(
        delta.whole_seconds().max(0).unsigned_abs(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_gone_messages_are_recognised() {
        assert!(is_session_gone("Session not found"));
        assert!(is_session_gone("Bad Request: Session terminated"));
        assert!(!is_session_gone("Unknown tool: x"));
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
