//! The hot path: MCP requests POSTed straight on the upstream HTTP client (`transport.rs`).
//!
//! rmcp's client runs every request through its session worker task (channels, a request
//! table, its own response routing, a full `ServerJsonRpcMessage` decode through serde's
//! untagged-enum buffering): about a third of the gateway's CPU per call in the issue 8
//! profile, and most of an idle session's memory. A request on a session-based session needs
//! none of it: it is one HTTP POST carrying the session id, answered by one JSON body or one
//! SSE stream that ends with the answer. So this does `tools/call` on every ready session, and
//! on sessions without an rmcp worker everything else too: the handshake ([`Target::open`],
//! once the pool knows the upstream is session-based), `tools/list`, `ping`, cancellation and
//! `DELETE`. rmcp keeps the first session of an unknown upstream (the `server/discover` probe),
//! the stateless 2026-07-28 channels, sessions that listen on the standalone stream, and
//! renewal after a 404 on the sessions it runs (it re-sends the request, which provably did not
//! run); a session without a worker that meets a 404 is replaced by the pool instead.
//!
//! JSON-RPC ids here are strings (`gw-<n>`), rmcp's are numbers: the two never collide on one
//! session (servers route answers by id).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyDataStream, BodyExt, LengthLimitError, Limited};
use rmcp::model::{ClientConfig, ErrorData, ListToolsResult, ProtocolVersion};
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, StreamableHttpError,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sse_stream::{Sse, SseStream};

use super::content::Block;
use super::error::{UpstreamError, classify_http, transport_failure};
use super::handler::CatalogStale;
use super::transport::{Body, Endpoint, SendError, UpstreamHttp};
use super::wire::MAX_SSE_RETRY;
use super::{PoolKey, ToolResult};

/// The largest answer read, JSON body or SSE stream (rmcp's limits are the same).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// How long a `DELETE` or a cancellation may take (both are best effort).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest error body read for its JSON-RPC error.
const MAX_ERROR_BYTES: usize = 64 * 1024;

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const TRACEPARENT: HeaderName = HeaderName::from_static(crate::telemetry::propagation::TRACEPARENT);
const ACCEPT: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// What a session's direct requests share, settled once per session: the client, the upstream
/// URL (parsed, and whether a proxy applies) and the `Authorization` value.
#[derive(Clone)]
pub(super) struct Route {
    http: UpstreamHttp,
    endpoint: Endpoint,
    /// `Bearer <the tenant's token>`, marked sensitive (never printed by `Debug`, never indexed
    /// by HTTP/2's header compression).
    auth: HeaderValue,
}

impl Route {
    pub(super) fn new(http: &UpstreamHttp, key: &PoolKey) -> Result<Self, UpstreamError> {
        let bearer = format!("Bearer {}", key.token.expose_secret());
        let mut auth = HeaderValue::try_from(bearer).map_err(|_| UpstreamError::Failed {
            detail: "the tenant's Intercom token holds characters an HTTP header cannot carry"
                .into(),
            retryable: false,
            outage: false,
        })?;
        auth.set_sensitive(true);
        Ok(Self {
            http: http.clone(),
            endpoint: http.endpoint(&key.url)?,
            auth,
        })
    }

    /// A target on this route: `session_id` is `None` only for `initialize`.
    pub(super) fn target<'a>(
        &'a self,
        session_id: Option<&'a str>,
        protocol_version: Option<&'a str>,
        traceparent: Option<&'a str>,
    ) -> Target<'a> {
        Target {
            route: self,
            session_id,
            protocol_version,
            traceparent,
        }
    }
}

/// Where to send a request: a session whose `notifications/initialized` was accepted (or, for
/// [`Target::open`], the endpoint with no session id yet).
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    route: &'a Route,
    session_id: Option<&'a str>,
    protocol_version: Option<&'a str>,
    traceparent: Option<&'a str>,
}

/// How a direct request ended.
pub(super) enum Outcome<T> {
    /// The server answered: the request's result or a JSON-RPC error.
    Answer(Result<T, ErrorData>),
    /// HTTP 404 for the session id: the request did not run; the session is gone.
    SessionGone,
    /// The server refused or failed the POST before answering (401, 429, 5xx, connection).
    Refused(UpstreamError),
    /// The response stream ended (and its resume, if any, failed, a 404 included) before the
    /// answer: the request may have run. The caller tells a dropped session from a broken
    /// connection (a `ping`); never [`Outcome::SessionGone`], which means "did not run".
    StreamLost,
}

/// What a direct `initialize` settled.
pub(super) enum Opened {
    /// A session-based session, ready for requests.
    Session {
        id: Arc<str>,
        protocol_version: ProtocolVersion,
    },
    /// No session id, or a revision without the handshake: rmcp's client opens this one.
    NotSessionBased,
}

/// The part of the `InitializeResult` the gateway acts on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InitAnswer {
    protocol_version: ProtocolVersion,
}

impl Answer for InitAnswer {
    type Wire<'a> = InitAnswer;
    fn finish(a: InitAnswer) -> Self {
        a
    }
}

/// A handshake that did not end in a session, as rmcp's client reports it.
fn handshake_failure<T>(outcome: Outcome<T>) -> UpstreamError {
    match outcome {
        Outcome::Answer(Err(e)) => {
            UpstreamError::from_initialize(ClientInitializeError::JsonRpcError(e))
        }
        Outcome::Refused(e) => e,
        // The session id was already gone at `notifications/initialized`, or the answer
        // stream broke: the next attempt starts afresh.
        Outcome::SessionGone | Outcome::StreamLost | Outcome::Answer(Ok(_)) => {
            UpstreamError::from_initialize(ClientInitializeError::ConnectionClosed(
                "the initialize handshake ended before the session was ready".into(),
            ))
        }
    }
}

/// A request id, unique in the process (string ids never collide with rmcp's
/// numeric ones).
pub(super) fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("gw-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Serialize)]
struct Request<'a, P> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<P>,
}

#[derive(Serialize)]
struct ListParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<Meta<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelParams<'a> {
    request_id: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct CallParams<'a> {
    name: &'a str,
    arguments: &'a Map<String, Value>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<Meta<'a>>,
}

/// MCP SEP-414: the W3C trace context also travels in `params._meta`.
#[derive(Serialize)]
struct Meta<'a> {
    traceparent: &'a str,
}

/// One JSON-RPC message from the server, with the result read as `R` in the same pass.
#[derive(Deserialize)]
struct Message<'a, R> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
    result: Option<R>,
    #[serde(default)]
    error: Option<ErrorData>,
}

/// A request's result: how it is read off the wire (borrowing from the message where it can)
/// and what it becomes. The answer is parsed once: routing and result in one pass.
pub(super) trait Answer: Sized {
    type Wire<'a>: Deserialize<'a>;
    fn finish(wire: Self::Wire<'_>) -> Self;
}

impl Answer for ToolResult {
    type Wire<'a> = CallResult<'a>;
    fn finish(r: CallResult<'_>) -> Self {
        ToolResult::from_blocks(
            r.content.as_deref().unwrap_or_default(),
            r.structured_content,
            r.is_error.unwrap_or(false),
        )
    }
}

impl Answer for ListToolsResult {
    type Wire<'a> = ListToolsResult;
    fn finish(r: ListToolsResult) -> Self {
        r
    }
}

impl Answer for () {
    type Wire<'a> = serde::de::IgnoredAny;
    fn finish(_: serde::de::IgnoredAny) -> Self {}
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CallResult<'a> {
    /// Read block by block in the answer's one pass (`content.rs`).
    #[serde(borrow, default)]
    content: Option<Vec<Block<'a>>>,
    /// Present-but-null stays `Some(null)`, as rmcp keeps it.
    #[serde(borrow, default, deserialize_with = "present")]
    structured_content: Option<&'a RawValue>,
    #[serde(default)]
    is_error: Option<bool>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// What one server message means for the request with id `want`.
enum Routed<T> {
    Mine(Result<T, ErrorData>),
    ListChanged,
    Other,
}

const LIST_CHANGED: &str = "notifications/tools/list_changed";

fn route<T: Answer>(data: &str, want: &str) -> Routed<T> {
    let m = match serde_json::from_str::<Message<T::Wire<'_>>>(data) {
        Ok(m) => m,
        Err(e) => return route_unexpected(data, want, e),
    };
    let ours = m.id.is_some_and(|id| is_id(id, want));
    if ours && m.method.is_none() {
        if let Some(e) = m.error {
            return Routed::Mine(Err(e));
        }
        if let Some(r) = m.result {
            return Routed::Mine(Ok(T::finish(r)));
        }
    }
    if m.id.is_none() && m.method == Some(LIST_CHANGED) {
        return Routed::ListChanged;
    }
    Routed::Other
}

/// A message that did not read as expected: our answer with a result of the wrong shape is an
/// error for the caller; anything else (not JSON-RPC at all) is skipped.
fn route_unexpected<T>(data: &str, want: &str, e: serde_json::Error) -> Routed<T> {
    let Ok(m) = serde_json::from_str::<Message<&RawValue>>(data) else {
        return Routed::Other;
    };
    if m.id.is_some_and(|id| is_id(id, want)) && m.method.is_none() && m.result.is_some() {
        return Routed::Mine(Err(ErrorData::internal_error(
            format!("the upstream's result does not parse: {e}"),
            None,
        )));
    }
    if m.id.is_none() && m.method == Some(LIST_CHANGED) {
        return Routed::ListChanged;
    }
    Routed::Other
}

/// A JSON-RPC error answering the call: its id, or null (the server could not read the id).
fn error_answer(data: &str, want: &str) -> Option<ErrorData> {
    let m = serde_json::from_str::<Message<serde::de::IgnoredAny>>(data).ok()?;
    let for_us = match m.id {
        None => true,
        Some(id) => id.get() == "null" || is_id(id, want),
    };
    m.error.filter(|_| for_us && m.method.is_none())
}

fn is_id(id: &RawValue, want: &str) -> bool {
    id.get().strip_prefix('"').and_then(|s| s.strip_suffix('"')) == Some(want)
}

/// A value from the server (session id) or from us (version, trace context): visible ASCII, so
/// this never drops one in practice; a value that is not would be refused by the server.
fn put(headers: &mut HeaderMap, name: HeaderName, value: Option<&str>) {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(name, v);
    }
}

impl Target<'_> {
    /// The session's headers, and room for `more`.
    fn headers(&self, more: usize) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(5 + more);
        h.insert(header::AUTHORIZATION, self.route.auth.clone());
        put(&mut h, SESSION_ID, self.session_id);
        put(&mut h, PROTOCOL_VERSION, self.protocol_version);
        put(&mut h, TRACEPARENT, self.traceparent);
        h
    }

    async fn send(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, SendError> {
        let Route { http, endpoint, .. } = self.route;
        http.send(endpoint, method, headers, body).await
    }

    /// Sends `tools/call` and reads its answer. `stale` is marked when the answer stream
    /// carries `notifications/tools/list_changed`.
    pub(super) async fn call_tool(
        &self,
        id: &str,
        name: &str,
        arguments: &Map<String, Value>,
        stale: &CatalogStale,
    ) -> Outcome<ToolResult> {
        let params = CallParams {
            name,
            arguments,
            meta: self.traceparent.map(|traceparent| Meta { traceparent }),
        };
        self.request(id, "tools/call", params, stale).await
    }

    /// One page of `tools/list`.
    pub(super) async fn list_tools(
        &self,
        id: &str,
        cursor: Option<&str>,
        stale: &CatalogStale,
    ) -> Outcome<ListToolsResult> {
        let params = ListParams {
            cursor,
            meta: self.traceparent.map(|traceparent| Meta { traceparent }),
        };
        self.request(id, "tools/list", params, stale).await
    }

    /// `ping`: whether the session still exists (404) and the server answers.
    pub(super) async fn ping(&self, id: &str) -> Outcome<()> {
        self.request::<(), ()>(id, "ping", None, &CatalogStale::default())
            .await
    }

    /// `notifications/cancelled` for request `id` (MCP cancellation utility); the answer
    /// (202) carries nothing.
    pub(super) async fn cancel(&self, id: &str, reason: &str) {
        let params = CancelParams {
            request_id: id,
            reason,
        };
        let sent = self.post::<_, ()>(None, "notifications/cancelled", params);
        let _ = tokio::time::timeout(CONTROL_TIMEOUT, sent).await;
    }

    /// Opens a session the way rmcp's client does (MCP lifecycle): `initialize`, then
    /// `notifications/initialized` on the session id the server assigned. Sent on a target
    /// without a session id. A server that assigns no id, or answers with a revision that has
    /// no handshake, is not for the direct path: [`Opened::NotSessionBased`].
    pub(super) async fn open(&self, params: &ClientConfig) -> Result<Opened, UpstreamError> {
        let id = next_request_id();
        let response = self
            .post::<_, InitAnswer>(Some(&id), "initialize", params)
            .await
            .map_err(handshake_failure)?;
        let sid = response
            .headers()
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(Arc::<str>::from);
        let version = match self
            .answer::<InitAnswer>(response, &id, &CatalogStale::default())
            .await
        {
            Outcome::Answer(Ok(a)) => a.protocol_version,
            other => return Err(handshake_failure(other)),
        };
        let Some(sid) = sid.filter(|_| version.has_initialize()) else {
            return Ok(Opened::NotSessionBased);
        };
        let session = Target {
            session_id: Some(&sid),
            protocol_version: Some(version.as_str()),
            ..*self
        };
        session
            .post::<(), ()>(None, "notifications/initialized", None)
            .await
            .map_err(handshake_failure)?;
        Ok(Opened::Session {
            id: sid,
            protocol_version: version,
        })
    }

    /// Ends the session (`DELETE`, MCP transports §Session Management).
    pub(super) async fn delete(&self) {
        let sent = self.send(Method::DELETE, self.headers(0), Bytes::new());
        let _ = tokio::time::timeout(CONTROL_TIMEOUT, sent).await;
    }

    async fn request<P: Serialize, T: Answer>(
        &self,
        id: &str,
        method: &'static str,
        params: impl Into<Option<P>>,
        stale: &CatalogStale,
    ) -> Outcome<T> {
        match self.post(Some(id), method, params).await {
            Ok(response) => self.answer(response, id, stale).await,
            Err(outcome) => outcome,
        }
    }

    /// POSTs one request (`id`) or notification (no `id`); a 2xx answer is returned to be
    /// read, except a request's 202, which is no answer.
    async fn post<P: Serialize, T>(
        &self,
        id: Option<&str>,
        method: &'static str,
        params: impl Into<Option<P>>,
    ) -> Result<Response<Body>, Outcome<T>> {
        let body = Request {
            jsonrpc: "2.0",
            id,
            method,
            params: params.into(),
        };
        // A `tools/call` with its `_meta` is 200-300 bytes: one allocation instead of a growing one.
        let mut buf = Vec::with_capacity(512);
        let body = match serde_json::to_writer(&mut buf, &body) {
            Ok(()) => buf,
            Err(e) => {
                return Err(Outcome::Refused(UpstreamError::InvalidArguments(format!(
                    "the arguments do not encode as JSON: {e}"
                ))));
            }
        };
        let mut headers = self.headers(2);
        headers.insert(header::ACCEPT, ACCEPT);
        headers.insert(header::CONTENT_TYPE, JSON);
        let response = match self.send(Method::POST, headers, body.into()).await {
            Ok(r) => r,
            Err(e) => return Err(Outcome::Refused(e.classify())),
        };
        let status = response.status();
        if status == StatusCode::NOT_FOUND && self.session_id.is_some() {
            return Err(Outcome::SessionGone);
        }
        if !status.is_success() || (id.is_some() && status == StatusCode::ACCEPTED) {
            return Err(self.refused(response, id.unwrap_or_default()).await);
        }
        Ok(response)
    }

    /// Reads the answer to request `id`: one JSON body, or an SSE stream up to it.
    async fn answer<T: Answer>(
        &self,
        response: Response<Body>,
        id: &str,
        stale: &CatalogStale,
    ) -> Outcome<T> {
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let is = |mime: &HeaderValue| {
            content_type
                .as_ref()
                .is_some_and(|ct| ct.as_bytes().starts_with(mime.as_bytes()))
        };
        if is(&EVENT_STREAM) {
            self.read_stream(bytes_of(response), id, stale).await
        } else if is(&JSON) {
            match read_bounded(response, MAX_ANSWER_BYTES).await {
                Ok(body) => match std::str::from_utf8(&body).map(|s| route::<T>(s, id)) {
                    Ok(Routed::Mine(answer)) => Outcome::Answer(answer),
                    _ => Outcome::Refused(UpstreamError::Failed {
                        detail: "the upstream's JSON answer is not the request's JSON-RPC response"
                            .into(),
                        retryable: false,
                        outage: false,
                    }),
                },
                Err(e) => Outcome::Refused(e),
            }
        } else {
            Outcome::Refused(UpstreamError::Failed {
                detail: format!(
                    "unexpected content type from Intercom: {}",
                    content_type
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                ),
                retryable: false,
                outage: true,
            })
        }
    }

    /// A non-2xx (or 202) answer to the POST, classified as rmcp's transport classifies it;
    /// a JSON-RPC error in a JSON body is the server's answer.
    async fn refused<T>(&self, response: Response<Body>, id: &str) -> Outcome<T> {
        let status = response.status();
        let header = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if status == StatusCode::UNAUTHORIZED {
            let challenge = header(header::WWW_AUTHENTICATE).unwrap_or_default();
            return Outcome::Refused(classify_http(&StreamableHttpError::AuthRequired(
                AuthRequiredError::new(challenge),
            )));
        }
        let retry_after = header(header::RETRY_AFTER).filter(|v| v.len() <= 128);
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(JSON.as_bytes()));
        if status != StatusCode::TOO_MANY_REQUESTS
            && is_json
            && let Ok(body) = read_bounded(response, MAX_ERROR_BYTES).await
            && let Some(e) = std::str::from_utf8(&body)
                .ok()
                .and_then(|s| error_answer(s, id))
        {
            return Outcome::Answer(Err(e));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Outcome::Refused(classify_http(&StreamableHttpError::HttpStatus(
                HttpStatusError::new(status.as_u16(), retry_after),
            )));
        }
        Outcome::Refused(UpstreamError::Failed {
            detail: format!("Intercom answered HTTP {}", status.as_u16()),
            retryable: false,
            outage: false,
        })
    }

    /// Reads an SSE answer up to the call's response, resuming once (`GET` + `Last-Event-ID`)
    /// if the stream breaks after an event id, as rmcp's transport does.
    async fn read_stream<T: Answer>(
        &self,
        bytes: Bytestream,
        id: &str,
        stale: &CatalogStale,
    ) -> Outcome<T> {
        let mut last_event_id: Option<String> = None;
        let mut retry = MAX_SSE_RETRY;
        let mut events = sse_events(bytes);
        let mut resumed = false;
        loop {
            match events.next().await {
                Some(Ok(sse)) => {
                    if let Some(r) = sse.retry {
                        retry = Duration::from_millis(r).min(MAX_SSE_RETRY);
                    }
                    if let Some(eid) = sse.id {
                        last_event_id = Some(eid);
                    }
                    let Some(data) = sse.data.as_deref() else {
                        continue;
                    };
                    match route::<T>(data, id) {
                        Routed::Mine(answer) => return Outcome::Answer(answer),
                        Routed::ListChanged => {
                            tracing::info!("upstream tool list changed; catalog will be refetched");
                            stale.mark();
                        }
                        Routed::Other => {}
                    }
                }
                Some(Err(_)) | None => {
                    let Some(eid) = last_event_id.clone().filter(|_| !resumed) else {
                        return Outcome::StreamLost;
                    };
                    resumed = true;
                    tokio::time::sleep(retry).await;
                    match self.resume(&eid).await {
                        Ok(stream) => events = sse_events(stream),
                        Err(outcome) => return outcome,
                    }
                }
            }
        }
    }

    async fn resume<T>(&self, last_event_id: &str) -> Result<Bytestream, Outcome<T>> {
        let mut headers = self.headers(2);
        headers.insert(header::ACCEPT, EVENT_STREAM);
        put(&mut headers, LAST_EVENT_ID, Some(last_event_id));
        let response = self
            .send(Method::GET, headers, Bytes::new())
            .await
            .map_err(|_| Outcome::StreamLost)?;
        // A 404 here says the session is gone, but the request was running on it: it may
        // have run, so this is a lost stream, not a request that never ran.
        if response.status().is_success() {
            Ok(bytes_of(response))
        } else {
            Err(Outcome::StreamLost)
        }
    }
}

/// The whole body, at most `max` bytes (a body of one chunk is returned without a copy; a
/// `Content-Length` over `max` is refused before reading).
async fn read_bounded(response: Response<Body>, max: usize) -> Result<Bytes, UpstreamError> {
    match Limited::new(response.into_body(), max).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(BodyError::from(e).classify(max)),
    }
}

fn bytes_of(response: Response<Body>) -> Bytestream {
    BodyDataStream::new(response.into_body()).boxed()
}

fn too_large(max: usize) -> UpstreamError {
    UpstreamError::Failed {
        detail: format!("the upstream's answer exceeds {} KiB", max >> 10),
        retryable: false,
        outage: false,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Bytestream = BoxStream<'static, Result<Bytes, BoxError>>;

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the upstream's answer stream exceeds its size limit")]
    TooLarge,
    #[error("the upstream's answer broke off: {0}")]
    Http(BoxError),
}

impl From<BoxError> for BodyError {
    fn from(e: BoxError) -> Self {
        if e.is::<LengthLimitError>() {
            BodyError::TooLarge
        } else {
            BodyError::Http(e)
        }
    }
}

impl BodyError {
    fn classify(self, max: usize) -> UpstreamError {
        match self {
            BodyError::TooLarge => too_large(max),
            // The connection broke (or reqwest timed out) while the answer was read.
            BodyError::Http(e) => transport_failure(
                false,
                e.downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_timeout),
            ),
        }
    }
}

/// A byte stream that fails once more than `max` bytes went through it.
struct Bounded {
    inner: Bytestream,
    seen: usize,
    max: usize,
}

impl Bounded {
    fn new(inner: Bytestream, max: usize) -> Self {
        Self {
            inner,
            seen: 0,
            max,
        }
    }
}

impl Stream for Bounded {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.seen > self.max {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.seen += b.len();
                if self.seen > self.max {
                    return Poll::Ready(Some(Err(BodyError::TooLarge)));
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn sse_events(bytes: Bytestream) -> BoxStream<'static, Result<Sse, sse_stream::Error>> {
    SseStream::from_bytes_stream(Bounded::new(bytes, MAX_ANSWER_BYTES)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_calls_own_response_is_taken() {
        let ok = r#"{"jsonrpc":"2.0","id":"gw-7","result":{"content":[{"type":"text","text":"{\"a\":1}"}],"isError":false}}"#;
        let Routed::Mine(Ok(r)) = route::<ToolResult>(ok, "gw-7") else {
            panic!("not routed");
        };
        assert_eq!(r.first_text(), Some("{\"a\":1}"));
        assert!(!r.is_error);
        assert!(matches!(route::<ToolResult>(ok, "gw-8"), Routed::Other));
        // rmcp's numeric id 7 is not ours.
        let numeric = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        assert!(matches!(route::<ToolResult>(numeric, "7"), Routed::Other));
        let err =
            r#"{"jsonrpc":"2.0","id":"gw-7","error":{"code":-32602,"message":"Unknown tool: x"}}"#;
        assert!(
            matches!(route::<ToolResult>(err, "gw-7"), Routed::Mine(Err(e)) if e.message == "Unknown tool: x")
        );
        let changed = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        assert!(matches!(
            route::<ToolResult>(changed, "gw-7"),
            Routed::ListChanged
        ));
        // A server request with our id is not our answer.
        let ping = r#"{"jsonrpc":"2.0","id":"gw-7","method":"ping"}"#;
        assert!(matches!(route::<ToolResult>(ping, "gw-7"), Routed::Other));
        // Our answer with a result of the wrong shape is an error, not something to wait past.
        let odd = r#"{"jsonrpc":"2.0","id":"gw-7","result":5}"#;
        assert!(matches!(
            route::<ToolResult>(odd, "gw-7"),
            Routed::Mine(Err(_))
        ));
        assert!(matches!(route::<ToolResult>(odd, "gw-8"), Routed::Other));
        assert!(matches!(
            route::<ToolResult>("not json", "gw-7"),
            Routed::Other
        ));
    }

    #[test]
    fn structured_content_null_is_kept_apart_from_absent() {
        let null =
            r#"{"jsonrpc":"2.0","id":"gw-1","result":{"content":[],"structuredContent":null}}"#;
        let Routed::Mine(Ok(r)) = route::<ToolResult>(null, "gw-1") else {
            panic!("not routed");
        };
        assert_eq!(
            r.structured_content.map(|v| v.get().to_owned()).as_deref(),
            Some("null")
        );
        let absent = r#"{"jsonrpc":"2.0","id":"gw-1","result":{"content":[]}}"#;
        let Routed::Mine(Ok(r)) = route::<ToolResult>(absent, "gw-1") else {
            panic!("not routed");
        };
        assert!(r.structured_content.is_none());
        assert_eq!(r.content.get(), "[]");
    }

    #[test]
    fn the_request_carries_the_trace_context_in_meta() {
        let args = Map::from_iter([("id".to_owned(), Value::from("1"))]);
        let body = Request {
            jsonrpc: "2.0",
            id: Some("gw-1"),
            method: "tools/call",
            params: Some(CallParams {
                name: "get_contact",
                arguments: &args,
                meta: Some(Meta {
                    traceparent: "00-a-b-01",
                }),
            }),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"jsonrpc":"2.0","id":"gw-1","method":"tools/call",
                "params":{"name":"get_contact","arguments":{"id":"1"},"_meta":{"traceparent":"00-a-b-01"}}})
        );
    }
}
