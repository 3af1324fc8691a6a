//! One upstream MCP session: an rmcp client running over our [`WireClient`], or, once the pool
//! knows the upstream is session-based, a session `direct.rs` opened and serves without one.
//!
//! With a session-based server (≤ 2025-11-25) that is one `Mcp-Session-Id`; with a stateless
//! 2026-07-28 server it is a channel without server-side state: rmcp's worker (our cap on
//! concurrent calls) over the shared reqwest client (HTTP connection reuse), opened by one
//! `server/discover`.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, Implementation,
    PaginatedRequestParams, ProtocolVersion, RequestMetaObject, Tool,
};
use rmcp::service::{ClientInitializeError, ClientServiceExt, Peer, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::direct;
use super::error::UpstreamError;
use super::handler::{CatalogStale, Handler};
use super::protocol::{Mode, Negotiation, Plan};
use super::transport::UpstreamHttp;
use super::wire::WireClient;
use super::{PoolKey, SessionInfo, ToolResult};
use crate::telemetry::propagation;

pub(super) struct Session {
    /// rmcp's handle on the session; dropped when the session parks (it keeps the worker's
    /// channel, and with it much of the memory parking frees).
    peer: Mutex<Option<Peer<RoleClient>>>,
    /// Taken on close, so that closing can wait for rmcp to DELETE the session.
    service: Mutex<Option<RunningService<RoleClient, Handler>>>,
    wire: WireClient,
    created: Instant,
    /// Milliseconds since `created` of the last call's end (or start).
    last_used_ms: AtomicU64,
    in_flight: AtomicUsize,
    calls: AtomicU64,
    /// The pool's wake-up for queued callers: notified whenever a call ends here.
    released: Arc<Notify>,
    pub(super) protocol_version: String,
    pub(super) mode: Mode,
    /// For the direct path (see `direct.rs`).
    route: direct::Route,
    stale: CatalogStale,
    /// rmcp's worker was stopped after the session went idle; the session lives on upstream and
    /// is used through `direct.rs` only (see [`Session::park`]).
    parked: AtomicBool,
    /// Never picked again (gone upstream, or its worker died).
    retired: AtomicBool,
}

/// A call's claim on a session: counted in flight for as long as it lives, even if the
/// caller's future is dropped; ending it wakes the pool's queued callers.
pub(super) struct InFlight(Arc<Session>);

impl Deref for InFlight {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
        self.0.released.notify_waiters();
    }
}

impl Session {
    /// Opens a session the way `negotiation` says: `initialize` + `notifications/initialized`,
    /// `server/discover`, or the discover probe that falls back to `initialize` (rmcp does
    /// each), and records what the server negotiated.
    pub(super) async fn connect(
        key: &PoolKey,
        http: &UpstreamHttp,
        wire: WireClient,
        max_in_flight: usize,
        released: Arc<Notify>,
        negotiation: &Negotiation,
        catalog_stale: CatalogStale,
    ) -> Result<Self, UpstreamError> {
        let route = direct::Route::new(http, key)?;
        let plan = negotiation.plan();
        if plan == Plan::Initialize && !wire.listens() {
            let traceparent = propagation::traceparent(&tracing::Span::current());
            let target = route.target(None, None, traceparent.as_deref());
            match target.open(&client_config()).await {
                Ok(direct::Opened::Session {
                    id,
                    protocol_version,
                }) => {
                    negotiation.learn(Mode::Session, protocol_version.as_str());
                    wire.opened_directly(id);
                    return Ok(Self::new(
                        None,
                        wire,
                        released,
                        protocol_version.to_string(),
                        Mode::Session,
                        route,
                        catalog_stale,
                    ));
                }
                // rmcp's client opens it below (another `initialize`).
                Ok(direct::Opened::NotSessionBased) => {
                    tracing::debug!("the upstream gave no session id: opening through rmcp");
                }
                Err(e) => {
                    if matches!(e, UpstreamError::Failed { outage: false, .. }) {
                        negotiation.forget();
                    }
                    return Err(e);
                }
            }
        }
        // rmcp sends the handshake from its own task, outside our span: hand the wire the
        // `traceparent` of the caller's `mcp.initialize` span for the duration of it.
        wire.set_handshake_traceparent(propagation::traceparent(&tracing::Span::current()));
        let mut started = start(key, &wire, max_in_flight, plan, &catalog_stale).await;
        if plan == Plan::Probe
            && let Err(ClientInitializeError::NoCompatibleProtocolVersion { .. }) = &started
        {
            // The server answered `server/discover` but lists no stateless revision (rmcp's
            // own session-based servers do that): it is session-based; initialize afresh.
            tracing::debug!("server/discover lists no stateless revision; initializing instead");
            started = start(key, &wire, max_in_flight, Plan::Initialize, &catalog_stale).await;
        }
        wire.set_handshake_traceparent(None);
        let service = started.map_err(|e| {
            let e = match e {
                ClientInitializeError::JsonRpcError(d) if plan == Plan::Discover => {
                    UpstreamError::Failed {
                        detail: format!(
                            "server/discover refused ({}): the upstream does not speak the stateless MCP revision 2026-07-28",
                            d.message
                        ),
                        retryable: false,
                        outage: false,
                    }
                }
                e => UpstreamError::from_initialize(e),
            };
            // A protocol-level refusal of the cached mode: probe again next time.
            if matches!(e, UpstreamError::Failed { outage: false, .. }) {
                negotiation.forget();
            }
            e
        })?;
        let version = service
            .peer_info()
            .map(|i| i.protocol_version.clone())
            .unwrap_or(ProtocolVersion::LATEST_WITH_INITIALIZE);
        let mode = Mode::of(&version);
        negotiation.learn(mode, version.as_str());
        if mode == Mode::Stateless {
            wire.event("discovered");
        }
        Ok(Self::new(
            Some(service),
            wire,
            released,
            version.to_string(),
            mode,
            route,
            catalog_stale,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        service: Option<RunningService<RoleClient, Handler>>,
        wire: WireClient,
        released: Arc<Notify>,
        protocol_version: String,
        mode: Mode,
        route: direct::Route,
        stale: CatalogStale,
    ) -> Self {
        let born_parked = service.is_none();
        Self {
            peer: Mutex::new(service.as_ref().map(|s| s.peer().clone())),
            service: Mutex::new(service),
            wire,
            created: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            released,
            protocol_version,
            mode,
            route,
            stale,
            // No rmcp service: born parked (opened by `direct.rs`).
            parked: AtomicBool::new(born_parked),
            retired: AtomicBool::new(false),
        }
    }

    pub(super) fn is_alive(&self) -> bool {
        if self.retired.load(Ordering::Acquire) {
            return false;
        }
        self.is_parked()
            || (!self.transport_closed()
                && self.service.lock().map(|s| s.is_some()).unwrap_or(false))
    }

    fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer.lock().ok().and_then(|g| g.clone())
    }

    fn transport_closed(&self) -> bool {
        self.peer().is_none_or(|p| p.is_transport_closed())
    }

    pub(super) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// rmcp's worker for this session died on its own (not parked, not retired by us).
    fn worker_died(&self) -> bool {
        !self.is_parked() && self.transport_closed()
    }

    /// Parks an idle session: stops rmcp's worker (its tasks, channels and buffers are most of
    /// an idle session's memory: issue 8 measured ~120 KiB per idle tenant) without ending
    /// the session upstream. Calls go on through `direct.rs` with the same session id; when
    /// the server has dropped it (404) the session is retired and the pool opens a fresh one,
    /// and the call, which provably did not run, runs there. Only session-based sessions with
    /// a settled id and no standalone `GET` stream park (that stream is rmcp's). Returns
    /// whether it parked.
    pub(super) fn park(&self) -> bool {
        if self.mode != Mode::Session
            || self.is_parked()
            || self.wire.listens()
            || self.in_flight() > 0
            || self.wire.ready_session().is_none()
        {
            return false;
        }
        self.wire.keep_session_on_close();
        self.parked.store(true, Ordering::Release);
        if let Ok(mut peer) = self.peer.lock() {
            *peer = None;
        }
        if let Some(service) = self.service.lock().ok().and_then(|mut g| g.take()) {
            tokio::spawn(async move {
                let _ = service.cancel().await;
            });
        }
        true
    }

    fn target<'a>(&'a self, sid: &'a str, traceparent: Option<&'a str>) -> direct::Target<'a> {
        self.route
            .target(Some(sid), Some(&self.protocol_version), traceparent)
    }

    /// A parked session met a 404 (or has no id left): it is gone upstream.
    fn parked_session_gone(&self, sid: Option<&Arc<str>>) -> UpstreamError {
        if let Some(sid) = sid {
            self.wire.note_expired(sid);
        }
        self.retire();
        UpstreamError::expired_before_run()
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(super) fn idle_for(&self) -> Duration {
        let now_ms = self.created.elapsed().as_millis() as u64;
        Duration::from_millis(now_ms.saturating_sub(self.last_used_ms.load(Ordering::Acquire)))
    }

    pub(super) fn age(&self) -> Duration {
        self.created.elapsed()
    }

    fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_used_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Claims one of the session's `cap` call slots, if one is free. The check and the claim
    /// are one atomic step, so concurrent callers never push a session over its cap.
    pub(super) fn try_begin(self: &Arc<Self>, cap: usize) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Some(InFlight(self.clone()))
    }

    /// Runs `tools/call`: directly on a ready session-based session (see `direct.rs`), through
    /// rmcp otherwise and whenever the direct POST meets an expired session.
    pub(super) async fn call_tool(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<ToolResult, UpstreamError> {
        let traceparent = propagation::traceparent(&tracing::Span::current());
        // What the session looked like when the call started: if it is found gone before the
        // call ends, the failure is the session's end, not an outage of Intercom.
        let expiries = self.wire.expiries();
        if self.mode == Mode::Session
            && let Some(sid) = self.wire.ready_session()
        {
            let target = self.target(&sid, traceparent.as_deref());
            let id = direct::next_request_id();
            let mut cancel = CancelOnDrop {
                session: self,
                sid: &sid,
                id: Some(&id),
            };
            let outcome = target.call_tool(&id, name, &arguments, &self.stale).await;
            cancel.id = None;
            if let Some(r) = self.settle_direct(outcome, &sid, expiries).await? {
                return Ok(r);
            }
        }
        // Boxed, like every path a steady-state call does not take: a future is as large as
        // its largest path, and the call's futures are moved (copied) as they nest (issue 8).
        Box::pin(self.call_tool_rmcp(name, arguments, traceparent)).await
    }

    /// `tools/call` through rmcp's client.
    async fn call_tool_rmcp(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        traceparent: Option<String>,
    ) -> Result<ToolResult, UpstreamError> {
        let mut params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        params.meta = traceparent.map(|t| {
            let mut meta = RequestMetaObject::default();
            meta.set_traceparent(t);
            meta
        });
        let expiries = self.wire.expiries();
        let Some(peer) = self.peer() else {
            return Err(self.parked_session_gone(None));
        };
        match peer.call_tool_once(params).await {
            Ok(CallToolResponse::Complete(r)) => {
                let raw = |e: serde_json::Error| UpstreamError::Failed {
                    detail: format!("the upstream's tools/call result does not encode: {e}"),
                    retryable: false,
                    outage: false,
                };
                Ok(ToolResult::new(
                    serde_json::value::to_raw_value(&r.content).map_err(raw)?,
                    r.structured_content
                        .map(|v| serde_json::value::to_raw_value(&v))
                        .transpose()
                        .map_err(raw)?,
                    r.is_error.unwrap_or(false),
                ))
            }
            Ok(_) => Err(UpstreamError::Failed {
                detail: "upstream asked for interactive input or a task, which the gateway does not support".into(),
                retryable: false,
                outage: false,
            }),
            Err(e) => Err(self.failure(e, expiries).await),
        }
    }

    /// What a direct request's outcome means. `Ok(None)`: the session expired before the
    /// request ran and rmcp's worker (the session is not parked) renews it; send the request
    /// down rmcp's path, which meets the same 404, renews once for everyone and re-sends.
    async fn settle_direct<T>(
        &self,
        outcome: direct::Outcome<T>,
        sid: &Arc<str>,
        expiries: u64,
    ) -> Result<Option<T>, UpstreamError> {
        match outcome {
            direct::Outcome::Answer(Ok(r)) => Ok(Some(r)),
            direct::Outcome::Answer(Err(e)) => {
                Err(Box::pin(self.failure(rmcp::ServiceError::McpError(e), expiries)).await)
            }
            direct::Outcome::Refused(e) => Err(e),
            direct::Outcome::StreamLost => {
                Err(Box::pin(self.failure(rmcp::ServiceError::TransportClosed, expiries)).await)
            }
            direct::Outcome::SessionGone if self.is_parked() => {
                Err(self.parked_session_gone(Some(sid)))
            }
            direct::Outcome::SessionGone => {
                self.wire.note_expired(sid);
                Ok(None)
            }
        }
    }

    /// Turns an rmcp error into ours, retiring the session when it is beyond renewal.
    /// `expiries` is [`WireClient::expiries`] from when the request started.
    async fn failure(&self, e: rmcp::ServiceError, expiries: u64) -> UpstreamError {
        let gone = match &e {
            // rmcp renews only on HTTP 404; this server said it in JSON-RPC.
            rmcp::ServiceError::McpError(d) => super::error::is_session_gone(&d.message),
            _ => false,
        };
        let stream_lost = matches!(e, rmcp::ServiceError::TransportClosed);
        let closed_by_expiry = stream_lost
            && self.mode == Mode::Session
            && !self.worker_died()
            && (self.wire.expiries() != expiries || self.session_was_gone(expiries).await);
        let e = if closed_by_expiry {
            // The request's response stream ended and its resume met a 404: the server dropped
            // the session while the request ran (it may have run). rmcp renews the session on
            // the next POST; reads are retried there. Not an outage: Intercom answered.
            UpstreamError::session_ended_mid_call()
        } else {
            match UpstreamError::from_service(e) {
                // 2026-07-28 streams are not resumable: "a broken response stream loses the
                // in-flight request; clients MUST re-issue it" (changelog). So every transport
                // failure of a stateless call may be re-issued; the pool does that once for
                // read-only tools, never for writes (they may have run).
                UpstreamError::Failed {
                    detail,
                    outage: true,
                    ..
                } if self.mode == Mode::Stateless => UpstreamError::Failed {
                    detail: if stream_lost {
                        "the upstream response stream ended before the result".into()
                    } else {
                        detail
                    },
                    retryable: true,
                    outage: true,
                },
                e => e,
            }
        };
        if gone || e.is_unrenewable_session() || self.worker_died() {
            // Retire it now, so the retry (and everyone else) gets a fresh session instead of
            // this one.
            tracing::info!(error = %e, "retiring the upstream session");
            self.retire();
        }
        e
    }

    /// The request's response stream ended without its answer while the session's worker is
    /// alive: either the server dropped the session (it ends a dropped session's streams, and
    /// a stream that ended before its first event id cannot even be resumed, so no 404 need
    /// have been seen yet), or the connection broke. A `ping` tells them apart: on a dropped
    /// session it meets the 404 (rmcp then renews the session, so the retry finds it ready);
    /// on a broken connection it fails or succeeds without one.
    /// A parked session has no worker to renew it: the `ping` goes directly, and a session
    /// found gone is retired (the pool opens a fresh one).
    async fn session_was_gone(&self, expiries: u64) -> bool {
        if let Some(peer) = self.peer() {
            let ping = rmcp::model::ClientRequest::PingRequest(Default::default());
            let _ = tokio::time::timeout(PROBE_TIMEOUT, peer.send_request(ping)).await;
        } else if let Some(sid) = self.wire.ready_session() {
            let (target, id) = (self.target(&sid, None), direct::next_request_id());
            let ping = target.ping(&id);
            if let Ok(direct::Outcome::SessionGone) =
                tokio::time::timeout(PROBE_TIMEOUT, ping).await
            {
                self.wire.note_expired(&sid);
                self.retire();
            }
        }
        self.wire.expiries() != expiries
    }

    /// Stops the session in the background; the pool prunes it as dead.
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        if let Some(service) = self.service.lock().ok().and_then(|mut g| g.take()) {
            tokio::spawn(async move {
                let _ = service.cancel().await;
            });
        }
    }

    /// Every page of `tools/list` (as rmcp's `list_all_tools`, with our trace context).
    pub(super) async fn list_tools(&self) -> Result<Vec<Tool>, UpstreamError> {
        if self.is_parked() {
            return self.list_tools_direct().await;
        }
        let mut tools = Vec::new();
        let mut cursor = None;
        loop {
            let mut params = PaginatedRequestParams::default().with_cursor(cursor);
            params.meta = trace_meta();
            let expiries = self.wire.expiries();
            let Some(peer) = self.peer() else {
                return self.list_tools_direct().await;
            };
            let page = match peer.list_tools(Some(params)).await {
                Ok(page) => page,
                Err(e) => return Err(self.failure(e, expiries).await),
            };
            tools.extend(page.tools);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(tools);
            }
        }
    }

    /// `tools/list` on a parked session, page by page.
    async fn list_tools_direct(&self) -> Result<Vec<Tool>, UpstreamError> {
        let traceparent = propagation::traceparent(&tracing::Span::current());
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let Some(sid) = self.wire.ready_session() else {
                return Err(self.parked_session_gone(None));
            };
            let target = self.target(&sid, traceparent.as_deref());
            let id = direct::next_request_id();
            let expiries = self.wire.expiries();
            let outcome = target.list_tools(&id, cursor.as_deref(), &self.stale).await;
            let Some(page) = self.settle_direct(outcome, &sid, expiries).await? else {
                // Only parked sessions list directly; a 404 there is settled above.
                return Err(self.parked_session_gone(Some(&sid)));
            };
            tools.extend(page.tools);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(tools);
            }
        }
    }

    /// Ends the session; rmcp sends the `DELETE` (bounded by its cleanup timeout). A stateless
    /// channel has no session id, so nothing is sent (2026-07-28 removed `DELETE`).
    pub(super) async fn close(&self) {
        let service = self.service.lock().ok().and_then(|mut g| g.take());
        if let Some(service) = service {
            let _ = service.cancel().await;
        }
        // A parked session's worker is gone: the `DELETE` is ours to send (unless the server
        // already said the session is gone).
        if self.parked.swap(false, Ordering::AcqRel)
            && let Some(sid) = self.wire.ready_session()
        {
            self.target(&sid, None).delete().await;
        }
        self.retired.store(true, Ordering::Release);
    }

    pub(super) fn info(&self, max_age: Duration) -> SessionInfo {
        SessionInfo {
            id_hash: self.wire.session_id().map(|s| short_hash(&s)),
            state: if !self.is_alive() {
                "closed"
            } else if self.age() >= max_age {
                "draining"
            } else {
                "ready"
            },
            age_s: self.created.elapsed().as_secs(),
            idle_s: self.idle_for().as_secs(),
            in_flight: self.in_flight() as u64,
            calls: self.calls.load(Ordering::Relaxed),
            protocol_version: self.protocol_version.clone(),
            mode: self.mode.as_str(),
            parked: self.is_parked(),
        }
    }
}

/// What the gateway says about itself in `initialize`: it offers the newest revision that still
/// has the handshake; servers answer with their own version when they do not support it (MCP
/// lifecycle, version negotiation). `server/discover` asks for 2026-07-28 only (`protocol.rs`).
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("intercom-mcp-gateway", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

type Started = Result<RunningService<RoleClient, Handler>, ClientInitializeError>;

/// Starts rmcp's client on a fresh transport with the given lifecycle.
async fn start(
    key: &PoolKey,
    wire: &WireClient,
    max_in_flight: usize,
    plan: Plan,
    catalog_stale: &CatalogStale,
) -> Started {
    let mut config = StreamableHttpClientTransportConfig::with_uri(key.url.as_ref())
        .auth_header(key.token.expose_secret().to_owned())
        // The pool enforces the per-session cap; rmcp's own limit must not be tighter.
        .max_concurrent_requests(max_in_flight.max(1))
        // On a 404 for our session id (MCP transports §Session Management) rmcp waits for
        // the session's other POSTs, replays `initialize` + `notifications/initialized`
        // once for all of them, and retries each POST that got the 404 (those provably did
        // not run). A POST that was already running is not retried; the pool retries it
        // only for read-only tools. Stateless channels have no session to expire.
        .reinit_on_expired_session(true);
    config.retry_config = Arc::new(ResumePolicy);
    let transport = StreamableHttpClientTransport::with_client(wire.clone(), config);
    let handler = Handler {
        info: client_config(),
        tenant: key.tenant.clone(),
        stale: catalog_stale.clone(),
    };
    // rmcp's worker keeps the span current at `serve` for the session's whole life, and a
    // span that never closes keeps its parents (the caller's request) from ever being
    // exported. So the session starts on a task of its own, outside any span.
    match tokio::spawn(handler.serve_with_lifecycle(transport, plan.lifecycle())).await {
        Ok(started) => started,
        Err(e) => Err(ClientInitializeError::ConnectionClosed(format!(
            "the initialize task failed: {e}"
        ))),
    }
}

/// The current span's W3C trace context as request `_meta` (MCP SEP-414 puts `traceparent` in
/// `params._meta`). rmcp sends requests from its own task, so [`WireClient`] lifts it from here
/// into the HTTP `traceparent` header; Intercom sees it in both places.
fn trace_meta() -> Option<RequestMetaObject> {
    let traceparent = propagation::traceparent(&tracing::Span::current())?;
    let mut meta = RequestMetaObject::default();
    meta.set_traceparent(traceparent);
    Some(meta)
}

/// A direct call abandoned before its answer (the caller's timeout dropped it) tells the server
/// to stop working on it (MCP cancellation utility), as rmcp does for its own requests.
struct CancelOnDrop<'a> {
    session: &'a Session,
    sid: &'a Arc<str>,
    id: Option<&'a str>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let s = self.session;
        let route = s.route.clone();
        let (sid, version, id) = (self.sid.clone(), s.protocol_version.clone(), id.to_owned());
        tokio::spawn(async move {
            let target = route.target(Some(&sid), Some(&version), None);
            target
                .cancel(&id, "the gateway's upstream timeout ran out")
                .await;
        });
    }
}

/// How long [`Session::session_was_gone`] waits for its `ping` (a renewal included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a broken SSE response stream is resumed (`GET` + `Last-Event-ID`, SEP-1699): once,
/// quickly. A caller waits on it; if the resume fails, the pool's own retry (read-only tools)
/// on a fresh stream beats a reconnect loop — and after a session was dropped every resume
/// only meets a 404. rmcp's default retries forever with exponential backoff.
#[derive(Debug)]
struct ResumePolicy;

impl SseRetryPolicy for ResumePolicy {
    fn retry(&self, attempt: usize) -> Option<Duration> {
        (attempt < 1).then_some(Duration::from_millis(20))
    }
}

/// Session ids are bearer-like (whoever has one can use the session with the token), so only a
/// short hash of one is ever shown.
fn short_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
}
