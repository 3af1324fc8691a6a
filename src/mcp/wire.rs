//! Our `StreamableHttpClient`: rmcp's reqwest client plus what the pool needs to see.
//!
//! rmcp keeps the `Mcp-Session-Id` inside its transport worker with no public getter; this
//! wrapper records it from the initialize response (MCP 2025-06-18 transports §Session
//! Management: the id arrives on the HTTP response carrying the InitializeResult), so the
//! sessions API can show a hash of it, and it counts the session lifecycle events that only
//! the transport sees: a 404 for our session id (`expired`) and every successful `initialize`
//! (`initialized`, plus `reinitialized` when it replaces an expired session — rmcp renews
//! sessions inside its worker, invisible to the pool). Every call is delegated unchanged. It also sets the W3C
//! `traceparent` header of each POST (see [`traceparent_of`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, ClientRequest, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

use crate::telemetry::Metrics;
use crate::telemetry::propagation;

#[derive(Clone)]
pub(super) struct WireClient {
    inner: reqwest::Client,
    metrics: Metrics,
    session_id: Arc<Mutex<Option<Arc<str>>>>,
    /// The trace context of the `initialize` handshake, whose messages carry none of their own.
    handshake_traceparent: Arc<Mutex<Option<HeaderValue>>>,
    /// The session id that last answered 404, so concurrent 404s count one expiry.
    expired: Arc<Mutex<Option<Arc<str>>>>,
    /// How many distinct session ids of this client were found gone (404 on a POST, or on the
    /// `GET` that resumes a response stream). A call that sees it move learns that its failure
    /// was the session ending under it, not an outage.
    expiries: Arc<AtomicU64>,
    /// The session id rmcp finished initializing (`notifications/initialized` accepted): the
    /// one the direct `tools/call` path may use. Cleared when that id answers 404.
    ready: Arc<Mutex<Option<Arc<str>>>>,
    /// Whether to open the standalone `GET` stream (see the `StreamableHttpClient` impl).
    listen: bool,
    /// Set when the session is parked: rmcp's worker stops without `DELETE`ing it.
    keep: Arc<AtomicBool>,
}

impl WireClient {
    pub(super) fn new(inner: reqwest::Client, metrics: Metrics, listen: bool) -> Self {
        Self {
            inner,
            metrics,
            listen,
            session_id: Arc::default(),
            ready: Arc::default(),
            keep: Arc::default(),
            handshake_traceparent: Arc::default(),
            expired: Arc::default(),
            expiries: Arc::default(),
        }
    }

    /// Distinct session ids found gone so far (see the field).
    pub(super) fn expiries(&self) -> u64 {
        self.expiries.load(Ordering::Acquire)
    }

    pub(super) fn listens(&self) -> bool {
        self.listen
    }

    /// rmcp's worker is about to be stopped while the session lives on (parking).
    pub(super) fn keep_session_on_close(&self) {
        self.keep.store(true, Ordering::Release);
    }

    /// The initialized session id, if rmcp has one ready (see the field).
    pub(super) fn ready_session(&self) -> Option<Arc<str>> {
        self.ready.lock().ok().and_then(|g| g.clone())
    }

    /// The session `sid` was opened by the gateway's own handshake (`direct.rs`), not rmcp's.
    pub(super) fn opened_directly(&self, sid: Arc<str>) {
        if let Ok(mut g) = self.session_id.lock() {
            *g = Some(sid.clone());
        }
        if let Ok(mut g) = self.ready.lock() {
            *g = Some(sid);
        }
        self.count_initialize_answer(true);
    }

    /// Notes a 404 for `sid`: counted once per session id however many requests meet it.
    pub(super) fn note_expired(&self, sid: &Arc<str>) {
        if let Ok(mut g) = self.ready.lock()
            && g.as_ref() == Some(sid)
        {
            *g = None;
        }
        if let Ok(mut g) = self.expired.lock()
            && g.as_ref() != Some(sid)
        {
            *g = Some(sid.clone());
            self.expiries.fetch_add(1, Ordering::AcqRel);
            tracing::info!("upstream session expired (HTTP 404); renewing it");
            self.metrics.session_event("expired");
        }
    }

    /// Counts the lifecycle events one POST reveals.
    fn observe(
        &self,
        message: Sent,
        sent_session: Option<&Arc<str>>,
        res: &WireResult<StreamableHttpPostResponse>,
    ) {
        if let (Sent::Initialized, Some(sid), Ok(_)) = (message, sent_session, res)
            && let Ok(mut g) = self.ready.lock()
        {
            *g = Some(sid.clone());
        }
        match res {
            Err(StreamableHttpError::SessionExpired) => {
                if let Some(sid) = sent_session {
                    self.note_expired(sid);
                }
            }
            Ok(res) => self.record(res),
            Err(_) => {}
        }
    }

    /// Counts a session lifecycle event the transport cannot see on its own (`discovered`: a
    /// stateless 2026-07-28 channel opened with `server/discover`).
    pub(super) fn event(&self, event: &str) {
        self.metrics.session_event(event);
    }

    pub(super) fn set_handshake_traceparent(&self, traceparent: Option<String>) {
        if let Ok(mut g) = self.handshake_traceparent.lock() {
            *g = traceparent.and_then(|t| HeaderValue::from_str(&t).ok());
        }
    }

    /// Adds the `traceparent` header: the message's own (`params._meta.traceparent`, set by
    /// the session from the calling span), else the handshake's.
    fn with_traceparent(
        &self,
        message: &ClientJsonRpcMessage,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        let value = traceparent_of(message)
            .and_then(|t| HeaderValue::from_str(t).ok())
            .or_else(|| {
                self.handshake_traceparent
                    .lock()
                    .ok()
                    .and_then(|g| g.clone())
            });
        if let Some(v) = value {
            headers.insert(HeaderName::from_static(propagation::TRACEPARENT), v);
        }
        headers
    }

    /// The session id already answered 404: a `GET` resuming one of its streams would only
    /// meet another, so it is answered here without a round trip.
    fn known_gone(&self, sid: Option<&Arc<str>>) -> bool {
        sid.is_some_and(|sid| {
            self.expired
                .lock()
                .map(|g| g.as_ref() == Some(sid))
                .unwrap_or(false)
        })
    }

    /// A 404 on the `GET` that resumes a response stream (or opens the standalone stream) is
    /// the same news as one on a POST: the session is gone.
    fn observe_get<T>(&self, sent_session: Option<&Arc<str>>, res: &WireResult<T>) {
        if let (Err(StreamableHttpError::SessionExpired), Some(sid)) = (res, sent_session) {
            self.note_expired(sid);
        }
    }

    /// Counts an `initialize` by its JSON-RPC answer, not its HTTP status: `initialized` (and
    /// `reinitialized` when it renews an expired session) for a result; an error answer is
    /// `failed` when rmcp was renewing (a first initialize's failure the pool counts itself).
    fn count_initialize(&self, res: StreamableHttpPostResponse) -> StreamableHttpPostResponse {
        let this = self.clone();
        match res {
            StreamableHttpPostResponse::Json(message, sid) => {
                this.count_initialize_answer(!matches!(message, JsonRpcMessage::Error(_)));
                StreamableHttpPostResponse::Json(message, sid)
            }
            StreamableHttpPostResponse::Sse(stream, sid) => {
                let counted = Arc::new(AtomicBool::new(false));
                let stream = stream
                    .inspect_ok(move |sse| {
                        let Some(ok) = sse.data.as_deref().and_then(answer_is_result) else {
                            return;
                        };
                        if !counted.swap(true, Ordering::AcqRel) {
                            this.count_initialize_answer(ok);
                        }
                    })
                    .boxed();
                StreamableHttpPostResponse::Sse(stream, sid)
            }
            other => other,
        }
    }

    fn count_initialize_answer(&self, ok: bool) {
        let renewing = self.expired.lock().map(|g| g.is_some()).unwrap_or(false);
        if ok {
            self.metrics.session_event("initialized");
            if renewing {
                self.metrics.session_event("reinitialized");
            }
        } else if renewing {
            tracing::warn!("upstream refused to renew the expired session");
            self.metrics.session_event("failed");
        }
    }

    /// The session id the server assigned at the latest initialize, if any.
    pub(super) fn session_id(&self) -> Option<Arc<str>> {
        self.session_id.lock().ok().and_then(|g| g.clone())
    }

    fn record(&self, res: &StreamableHttpPostResponse) {
        let sid = match res {
            StreamableHttpPostResponse::Json(_, Some(sid))
            | StreamableHttpPostResponse::Sse(_, Some(sid)) => sid,
            _ => return,
        };
        if let Ok(mut g) = self.session_id.lock()
            && g.as_deref() != Some(sid.as_str())
        {
            *g = Some(Arc::from(sid.as_str()));
        }
    }
}

/// The `traceparent` a request carries in `params._meta` (only the requests the session sends
/// with one: `tools/call` and `tools/list`).
fn traceparent_of(message: &ClientJsonRpcMessage) -> Option<&str> {
    let JsonRpcMessage::Request(r) = message else {
        return None;
    };
    let meta = match &r.request {
        ClientRequest::CallToolRequest(c) => c.params.meta.as_ref(),
        ClientRequest::ListToolsRequest(l) => l.params.as_ref().and_then(|p| p.meta.as_ref()),
        _ => None,
    }?;
    meta.get_traceparent()
}

type SseStream = BoxStream<'static, Result<Sse, SseError>>;

/// The longest SSE `retry` hint we wait for before resuming a broken response stream.
///
/// A server that drops a session while calls are in flight ends their SSE streams without
/// the response; the client then resumes with `GET` + `Last-Event-ID` after the server's
/// `retry` hint (SEP-1699) — rmcp's server says 3 s. A caller is waiting on every such stream,
/// and the resume of a dropped session only meets a 404, so the gateway caps the hint: the
/// call fails fast and the pool retries it (read-only tools) on the renewed session.
pub(super) const MAX_SSE_RETRY: Duration = Duration::from_millis(20);

fn cap_retry(stream: SseStream) -> SseStream {
    let cap = MAX_SSE_RETRY.as_millis() as u64;
    stream
        .map_ok(move |mut sse| {
            sse.retry = sse.retry.map(|r| r.min(cap));
            sse
        })
        .boxed()
}

fn cap_post_retry(res: StreamableHttpPostResponse) -> StreamableHttpPostResponse {
    match res {
        StreamableHttpPostResponse::Sse(stream, sid) => {
            StreamableHttpPostResponse::Sse(cap_retry(stream), sid)
        }
        other => other,
    }
}
type WireResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

/// The standalone `GET` stream (MCP transports §Listening for Messages from the Server) is
/// optional for clients. The gateway answers no server-initiated requests (sampling,
/// elicitation, roots); its only use is a pushed `notifications/tools/list_changed`, and held
/// open it costs one upstream connection per session, idle or not (issue 8: 309 → 18 upstream
/// connections for 300 idle tenants without it). So unless `GATEWAY_UPSTREAM_LISTEN` is on, a
/// `GET` without `Last-Event-ID` is answered here as a server without SSE would (405): rmcp then
/// skips the stream. Resuming a broken POST response stream (always with `Last-Event-ID`) still
/// goes upstream.
impl WireClient {
    /// Whether a `GET` goes upstream: the standalone stream only when listening, and nothing
    /// for a session already known gone.
    fn may_get(
        &self,
        session_id: Option<&Arc<str>>,
        last_event_id: Option<&str>,
    ) -> WireResult<()> {
        if last_event_id.is_none() && !self.listen {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if self.known_gone(session_id) {
            return Err(StreamableHttpError::SessionExpired);
        }
        Ok(())
    }
}

impl StreamableHttpClient for WireClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> WireResult<StreamableHttpPostResponse> {
        let custom_headers = self.with_traceparent(&message, custom_headers);
        let kind = Sent::of(&message);
        let init = kind == Sent::Initialize;
        let sent = session_id.clone();
        let res = self
            .inner
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
            .map(cap_post_retry);
        self.observe(kind, sent.as_ref(), &res);
        if init {
            res.map(|r| self.count_initialize(r))
        } else {
            res
        }
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> WireResult<StreamableHttpPostResponse> {
        let custom_headers = self.with_traceparent(&message, custom_headers);
        let kind = Sent::of(&message);
        let init = kind == Sent::Initialize;
        let sent = session_id.clone();
        let res = self
            .inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
            .map(cap_post_retry);
        self.observe(kind, sent.as_ref(), &res);
        if init {
            res.map(|r| self.count_initialize(r))
        } else {
            res
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> WireResult<()> {
        if self.keep.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> WireResult<SseStream> {
        self.may_get(session_id.as_ref(), last_event_id.as_deref())?;
        let sent = session_id.clone();
        let res = self
            .inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
            .map(cap_retry);
        self.observe_get(sent.as_ref(), &res);
        res
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> WireResult<SseStream> {
        self.may_get(session_id.as_ref(), last_event_id.as_deref())?;
        let sent = session_id.clone();
        let res = self
            .inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
            .map(cap_retry);
        self.observe_get(sent.as_ref(), &res);
        res
    }
}

/// `Some(true)` for an SSE event carrying a JSON-RPC result, `Some(false)` for an error,
/// `None` for anything else (progress, pings, keep-alives).
fn answer_is_result(data: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    v.get("id")?;
    if v.get("result").is_some() {
        Some(true)
    } else if v.get("error").is_some() {
        Some(false)
    } else {
        None
    }
}

/// The messages of the handshake the wire watches for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    Initialize,
    Initialized,
    Other,
}

impl Sent {
    fn of(message: &ClientJsonRpcMessage) -> Self {
        match message {
            JsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::InitializeRequest(_)) =>
            {
                Sent::Initialize
            }
            JsonRpcMessage::Notification(n)
                if matches!(
                    n.notification,
                    ClientNotification::InitializedNotification(_)
                ) =>
            {
                Sent::Initialized
            }
            _ => Sent::Other,
        }
    }
}
