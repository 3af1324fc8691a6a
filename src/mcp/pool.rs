//! The sessions of one tenant (for one credential generation and one upstream URL).
//!
//! Calls go to the least-loaded live session that has a free slot (at most
//! `GATEWAY_POOL_SESSION_MAX_IN_FLIGHT` calls each). A new session is opened only when every
//! usable one is at its cap and the pool is below `GATEWAY_POOL_MAX_SESSIONS`; otherwise the
//! call waits in a bounded queue (`GATEWAY_POOL_QUEUE_LENGTH`) until a slot frees up or
//! `GATEWAY_POOL_QUEUE_TIMEOUT` passes (then 503 `upstream_unavailable`). Opening is serialised
//! by `connect`, so concurrent first calls share one `initialize` (no stampede), and a failed
//! initialize is reported to everyone who was waiting for it instead of being retried by each
//! of them in turn.
//!
//! Sessions older than `GATEWAY_POOL_MAX_SESSION_AGE` take no new calls ("draining"): a fresh
//! one replaces them, and [`TenantPool::maintain`] closes them once their calls are done, as it
//! closes sessions idle for `GATEWAY_POOL_IDLE_TIMEOUT`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify};
use tracing::Instrument;
use tracing::field::Empty;

use super::catalog::Catalog;
use super::circuit::{Admission, Change, Health, Ticket};
use super::error::UpstreamError;
use super::handler::CatalogStale;
use super::protocol::{Eras, Negotiation, ProtocolInfo};
use super::session::{InFlight, Session};
use super::wire::WireClient;
use super::{PoolKey, PoolSettings, SessionInfo, UpstreamContext};

/// How long a tenant is held back after an upstream 429 that named no `Retry-After`.
const DEFAULT_HOLD: Duration = Duration::from_secs(1);

/// What a caller refused by a saturated pool is told to wait before retrying: the queue
/// timeout, i.e. the longest a call already queued may still hold its place — by then the
/// queue has turned over at least once. Whole seconds, at least one (RFC 9110 §10.2.3).
fn saturated_retry_after(queue_timeout: Duration) -> Duration {
    Duration::from_secs(queue_timeout.as_secs_f64().ceil().max(1.0) as u64)
}

pub(super) struct TenantPool {
    pub(super) key: PoolKey,
    sessions: RwLock<Vec<Arc<Session>>>,
    /// Held while a session is being opened; remembers the last failure and when it happened.
    connect: Mutex<Option<(Instant, UpstreamError)>>,
    catalog: Mutex<Option<Arc<Catalog>>>,
    /// Set by a session when the upstream sends `notifications/tools/list_changed`.
    catalog_stale: CatalogStale,
    /// The session count this pool last added to `gateway_upstream_sessions{tenant}`; the gauge
    /// is the sum over all pools of the tenant (a draining old pool and its replacement).
    reported: AtomicUsize,
    /// Notified when a call ends or the set of sessions changes: queued callers look again.
    released: Arc<Notify>,
    queued: AtomicUsize,
    admission: Admission,
    /// Which MCP generation the upstream speaks, learned by the first session (`protocol.rs`).
    protocol: Negotiation,
    /// Set when the pool is drained (credential replaced or deleted, shutdown): it opens no
    /// more sessions, so a call still queued here cannot leave one behind with the old token.
    drained: AtomicBool,
    /// A parked session was found expired: the next session opened replaces it
    /// (`reinitialized`, as rmcp's own renewal counts).
    replacing_expired: AtomicBool,
}

enum Pick {
    Got(InFlight),
    /// Every usable session is at its cap and the pool may grow.
    Open,
    /// Every usable session is at its cap and the pool is at its maximum.
    Full,
}

/// A place in the wait queue, given back on drop.
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TenantPool {
    pub(super) fn new(key: PoolKey, settings: &PoolSettings, eras: &Arc<Eras>) -> Self {
        let protocol = Negotiation::new(settings.upstream_protocol, key.url.clone(), eras.clone());
        Self {
            key,
            sessions: RwLock::default(),
            connect: Mutex::new(None),
            catalog: Mutex::new(None),
            catalog_stale: CatalogStale::default(),
            reported: AtomicUsize::new(0),
            released: Arc::default(),
            queued: AtomicUsize::new(0),
            admission: Admission::new(settings.circuit_failures, settings.circuit_cooldown),
            protocol,
            drained: AtomicBool::new(false),
            replacing_expired: AtomicBool::new(false),
        }
    }

    /// A call that reached a drained pool: its credential generation is gone.
    fn drained_error() -> UpstreamError {
        UpstreamError::Unavailable {
            retry_after: Duration::from_secs(1),
        }
    }

    /// Lets one upstream request through the circuit breaker and the 429 hold-back.
    pub(super) fn admit(&self) -> Result<Ticket, UpstreamError> {
        self.admission.admit()
    }

    /// Feeds a finished request's outcome back to the breaker and the hold-back.
    pub(super) fn settle<T>(
        &self,
        ctx: &UpstreamContext,
        ticket: Ticket,
        result: &Result<T, UpstreamError>,
    ) {
        if let Err(UpstreamError::RateLimited { retry_after }) = result {
            self.admission.hold(retry_after.unwrap_or(DEFAULT_HOLD));
        }
        match self.admission.record(ticket, Health::of(result)) {
            Some(Change::Opened) => {
                tracing::warn!(tenant = %self.key.tenant, "upstream circuit opened after consecutive failures");
                ctx.metrics.set_circuit_open(&self.key.tenant, true);
            }
            Some(Change::Closed) => {
                tracing::info!(tenant = %self.key.tenant, "upstream circuit closed: probe succeeded");
                ctx.metrics.set_circuit_open(&self.key.tenant, false);
            }
            None => {}
        }
    }

    /// A session slot to run one call on: a free one on an open session at once (the
    /// steady-state path: no waiting, so no `pool.acquire` span, issue 8), else [`Self::wait_for_slot`].
    pub(super) async fn acquire(&self, ctx: &UpstreamContext) -> Result<InFlight, UpstreamError> {
        if !self.drained.load(Ordering::Acquire)
            && let Pick::Got(g) = self.pick(ctx)
        {
            return Ok(g);
        }
        self.wait_for_slot(ctx)
            .instrument(tracing::info_span!("pool.acquire", tenant = %self.key.tenant))
            .await
    }

    /// Opens a session if the pool may, or waits in the queue for a slot.
    async fn wait_for_slot(&self, ctx: &UpstreamContext) -> Result<InFlight, UpstreamError> {
        let deadline = tokio::time::Instant::now() + ctx.settings.queue_timeout;
        let mut slot: Option<QueueSlot<'_>> = None;
        loop {
            // Registered before looking, so a slot freed in between is not missed.
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.drained.load(Ordering::Acquire) {
                return Err(Self::drained_error());
            }
            match self.pick(ctx) {
                Pick::Got(g) => return Ok(g),
                // Boxed: opening a session is rare and its future large (see `Session::call_tool`).
                Pick::Open => match Box::pin(self.open(ctx)).await? {
                    Some(g) => return Ok(g),
                    None => continue,
                },
                Pick::Full => {}
            }
            if slot.is_none() {
                let ahead = self.queued.fetch_add(1, Ordering::AcqRel);
                let taken = QueueSlot(&self.queued);
                if ahead >= ctx.settings.queue_length {
                    tracing::warn!(tenant = %self.key.tenant, queued = ahead, "pool queue full; refusing the call");
                    return Err(UpstreamError::Unavailable {
                        retry_after: saturated_retry_after(ctx.settings.queue_timeout),
                    });
                }
                slot = Some(taken);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(tenant = %self.key.tenant, "no session slot freed within the queue timeout");
                return Err(UpstreamError::Unavailable {
                    retry_after: saturated_retry_after(ctx.settings.queue_timeout),
                });
            }
        }
    }

    /// Claims a slot on the least-loaded usable session, or says whether the pool may grow.
    fn pick(&self, ctx: &UpstreamContext) -> Pick {
        let sessions = self.read();
        let mut usable: Vec<&Arc<Session>> = sessions
            .iter()
            .filter(|s| s.is_alive() && s.age() < ctx.settings.max_session_age)
            .collect();
        usable.sort_by_key(|s| s.in_flight());
        for s in &usable {
            if let Some(g) = s.try_begin(ctx.settings.per_session_cap) {
                return Pick::Got(g);
            }
        }
        if usable.len() < ctx.settings.max_sessions {
            Pick::Open
        } else {
            Pick::Full
        }
    }

    /// Opens a session unless someone else did while we waited for the lock; `None` = the pool
    /// is full now, queue.
    async fn open(&self, ctx: &UpstreamContext) -> Result<Option<InFlight>, UpstreamError> {
        let waiting_since = Instant::now();
        let mut last_failure = self.connect.lock().await;
        match self.pick(ctx) {
            Pick::Got(g) => return Ok(Some(g)),
            Pick::Full => return Ok(None),
            Pick::Open => {}
        }
        if let Some((at, err)) = &*last_failure
            && *at >= waiting_since
        {
            return Err(err.clone());
        }
        let wire = WireClient::new(
            ctx.http.rest().clone(),
            ctx.metrics.clone(),
            ctx.settings.upstream_listen,
        );
        let cap = ctx.settings.per_session_cap;
        let span = tracing::info_span!(
            "mcp.initialize",
            otel.kind = "client",
            otel.status_code = Empty,
            tenant = %self.key.tenant,
            protocol_version = Empty,
            outcome = Empty,
        );
        let connected = Session::connect(
            &self.key,
            &ctx.http,
            wire,
            cap,
            self.released.clone(),
            &self.protocol,
            self.catalog_stale.clone(),
        )
        .instrument(span.clone())
        .await;
        // The session events below are logged inside the span: they become its span events.
        let _entered = span.enter();
        match connected {
            Ok(session) => {
                let session = Arc::new(session);
                span.record("protocol_version", session.protocol_version.as_str());
                span.record("outcome", "ok");
                tracing::info!(
                    tenant = %self.key.tenant,
                    protocol_version = %session.protocol_version,
                    mode = session.mode.as_str(),
                    event = "initialized",
                    "upstream session initialized"
                );
                *last_failure = None;
                if self.replacing_expired.swap(false, Ordering::AcqRel) {
                    ctx.metrics.session_event("reinitialized");
                }
                let claimed = session.try_begin(cap);
                let count = {
                    let mut sessions = self.write();
                    // Checked under the lock `drain` takes the sessions with, so a session
                    // cannot slip in after the drain and be left open with the old token.
                    if self.drained.load(Ordering::Acquire) {
                        None
                    } else {
                        sessions.push(session.clone());
                        Some(sessions.len())
                    }
                };
                let Some(count) = count else {
                    drop(claimed);
                    drop(_entered);
                    session.close().await;
                    ctx.metrics.session_event("closed");
                    return Err(Self::drained_error());
                };
                self.publish_count(ctx, count);
                self.released.notify_waiters();
                Ok(claimed)
            }
            Err(e) => {
                span.record("outcome", e.kind());
                span.record("otel.status_code", "ERROR");
                tracing::warn!(tenant = %self.key.tenant, event = "failed", error = %e, "upstream initialize failed");
                ctx.metrics.session_event("failed");
                *last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Drops sessions whose transport died, so the next call opens a fresh one.
    pub(super) fn prune(&self, ctx: &UpstreamContext) {
        self.close_where(ctx, |s| !s.is_alive());
    }

    /// After a failed request: prunes dead sessions, remembering an expired parked one.
    pub(super) fn after_failure(&self, ctx: &UpstreamContext, e: &UpstreamError) {
        if e.did_not_run() {
            self.replacing_expired.store(true, Ordering::Release);
        }
        self.prune(ctx);
    }

    /// Periodic upkeep: closes dead sessions, idle ones, and aged ones whose calls are done;
    /// parks sessions idle past `GATEWAY_POOL_PARK_AFTER`. Returns how many sessions went
    /// quiet in this sweep (parked now, or born parked and idle for `park_after` since the
    /// previous sweep, which runs every `period`): the memory their calls used is free.
    pub(super) fn maintain(&self, ctx: &UpstreamContext, period: Duration) -> usize {
        let s = &ctx.settings;
        self.close_where(ctx, |x| {
            !x.is_alive()
                || (x.in_flight() == 0
                    && (x.idle_for() >= s.idle_timeout || x.age() >= s.max_session_age))
        });
        let mut quiet = 0;
        for x in self.read().iter() {
            if x.in_flight() > 0 || x.idle_for() < s.park_after {
                continue;
            }
            if x.park() {
                tracing::debug!(tenant = %self.key.tenant, "parked an idle upstream session");
                ctx.metrics.session_event("parked");
                quiet += 1;
            } else if x.idle_for() < s.park_after + period {
                quiet += 1;
            }
        }
        quiet
    }

    fn close_where(&self, ctx: &UpstreamContext, doomed: impl Fn(&Session) -> bool) {
        let (dead, count) = {
            let mut sessions = self.write();
            let (dead, keep): (Vec<_>, Vec<_>) = sessions.drain(..).partition(|s| doomed(s));
            *sessions = keep;
            (dead, sessions.len())
        };
        if dead.is_empty() {
            return;
        }
        self.publish_count(ctx, count);
        self.released.notify_waiters();
        for s in dead {
            tracing::info!(tenant = %self.key.tenant, age_s = s.age().as_secs(), idle_s = s.idle_for().as_secs(), "closing upstream session");
            ctx.metrics.session_event("closed");
            tokio::spawn(async move { s.close().await });
        }
    }

    /// Moves the tenant's session gauge by this pool's change, so it stays the sum of all the
    /// tenant's pools.
    fn publish_count(&self, ctx: &UpstreamContext, count: usize) {
        let before = self.reported.swap(count, Ordering::AcqRel);
        ctx.metrics
            .add_sessions(&self.key.tenant, count as i64 - before as i64);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Session>>> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Session>>> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn protocol_info(&self) -> Option<ProtocolInfo> {
        self.protocol.info()
    }

    pub(super) fn infos(&self, ctx: &UpstreamContext) -> Vec<SessionInfo> {
        self.read()
            .iter()
            .map(|s| s.info(ctx.settings.max_session_age))
            .collect()
    }

    /// The tenant's tool list, fetched on first use and refreshed after `ttl`, or when
    /// `refresh_older_than` says the caller asked for a tool the cached list lacks.
    pub(super) async fn catalog(
        &self,
        ctx: &UpstreamContext,
        refresh_older_than: Option<Duration>,
    ) -> Result<Arc<Catalog>, UpstreamError> {
        let mut cached = self.catalog.lock().await;
        // Taken under the lock: a notification arriving during the fetch below marks the
        // fresh list stale again, so it is never lost.
        let changed = self.catalog_stale.take();
        if let Some(c) = &*cached {
            let age = c.fetched_at.elapsed();
            let stale = changed
                || age >= ctx.settings.catalog_ttl
                || refresh_older_than.is_some_and(|min| age >= min);
            if !stale {
                return Ok(c.clone());
            }
        }
        // Boxed: the fetch is rare and its future large (see `Session::call_tool`).
        Box::pin(self.fetch_catalog(ctx, &mut cached, changed)).await
    }

    /// Fetches the tool list into `cached` (the catalog lock is held throughout). `changed`: a
    /// list-changed notification made the cached list stale.
    async fn fetch_catalog(
        &self,
        ctx: &UpstreamContext,
        cached: &mut Option<Arc<Catalog>>,
        changed: bool,
    ) -> Result<Arc<Catalog>, UpstreamError> {
        let mut budget = super::RetryBudget::default();
        let tools = loop {
            let ticket = self.admit()?;
            let acquired = self.acquire(ctx).await;
            let tools = match acquired {
                Ok(session) => {
                    session
                        .list_tools()
                        .instrument(tracing::info_span!(
                            "mcp.tools_list",
                            otel.kind = "client",
                            tenant = %self.key.tenant
                        ))
                        .await
                }
                Err(e) => Err(e),
            };
            self.settle(ctx, ticket, &tools);
            match tools {
                Ok(t) => break t,
                // `tools/list` is a read: retried like a read-only tool call.
                Err(e) if budget.take(&e) => {
                    tracing::info!(tenant = %self.key.tenant, detail = %e, "retrying tools/list");
                    self.after_failure(ctx, &e);
                }
                Err(e) => {
                    self.after_failure(ctx, &e);
                    if changed {
                        self.catalog_stale.mark();
                    }
                    return Err(e);
                }
            }
        };
        let catalog = Arc::new(Catalog::from_tools(tools, &ctx.catalogs));
        *cached = Some(catalog.clone());
        Ok(catalog)
    }

    /// Waits (bounded) for in-flight calls to finish, then closes every session.
    pub(super) async fn drain(&self, ctx: &UpstreamContext, deadline: Duration) {
        // Taken out, so no call picks them; still counted in the gauge until each is closed.
        let sessions: Vec<Arc<Session>> = {
            let mut sessions = self.write();
            self.drained.store(true, Ordering::Release);
            std::mem::take(&mut *sessions)
        };
        // Queued callers look again and find the pool drained.
        self.released.notify_waiters();
        if self.admission.is_open() {
            ctx.metrics.set_circuit_open(&self.key.tenant, false);
        }
        let until = Instant::now() + deadline;
        // Sessions close side by side: each waits for its own calls, then rmcp DELETEs it.
        let closes = sessions.into_iter().map(|s| async move {
            while s.in_flight() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            s.close().await;
            ctx.metrics.session_event("closed");
            if self
                .reported
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                ctx.metrics.add_sessions(&self.key.tenant, -1);
            }
        });
        futures::future::join_all(closes).await;
    }
}
