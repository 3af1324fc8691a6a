//! The upstream: Intercom's MCP server, reached over Streamable HTTP with rmcp.
//!
//! Only this module imports rmcp's client side. Handlers see [`Upstream`], [`PoolKey`],
//! [`ToolSpec`], [`ToolResult`] and [`UpstreamError`]. See `README.md` beside this file for the
//! protocol decisions.

mod catalog;
mod circuit;
mod content;
mod direct;
mod error;
mod handler;
mod pool;
mod protocol;
pub mod schema;
mod session;
mod transport;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::notification::RemovalCause;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tracing::field::Empty;
use utoipa::ToSchema;

pub use catalog::{Catalog, ToolSet, ToolSpec};
pub use error::UpstreamError;
pub use protocol::{ProtocolInfo, UpstreamProtocol};

use crate::telemetry::Metrics;
use crate::tenants::TenantId;
use catalog::Shelf;
use pool::TenantPool;
use protocol::Eras;

/// How often one call may be re-run (read-only tools only; writes never are).
///
/// - One retry after an upstream outage (5xx before any answer, refused connection).
/// - One retry per session-lifecycle failure (the session expired, was renewed by rmcp, or
///   ended while the call ran), up to [`RetryBudget::SESSION`]. Each of those needs a *new*
///   expiry to happen again and the retry runs on the renewed session, so under constant
///   forced expiry (issue 3: every session every 0.5 s) a call on a slow machine can meet
///   several in a row without anything being wrong with Intercom; the cap only stops a
///   server that drops every session at once. `GATEWAY_UPSTREAM_TIMEOUT` bounds the whole call.
#[derive(Debug, Default)]
pub(crate) struct RetryBudget {
    outage: u32,
    session: u32,
}

impl RetryBudget {
    const OUTAGE: u32 = 1;
    const SESSION: u32 = 8;

    /// Spends one retry for `e` if it is retryable and the budget for its kind is not used up.
    pub(crate) fn take(&mut self, e: &UpstreamError) -> bool {
        let (used, max) = if e.is_session_lifecycle() {
            (&mut self.session, Self::SESSION)
        } else if matches!(
            e,
            UpstreamError::Failed {
                retryable: true,
                ..
            }
        ) {
            (&mut self.outage, Self::OUTAGE)
        } else {
            return false;
        };
        if *used >= max {
            return false;
        }
        *used += 1;
        true
    }

    fn used(&self) -> bool {
        self.outage + self.session > 0
    }
}

/// What a set of sessions is bound to. A pool serves exactly one key: a session is never used
/// with another tenant's token, another credential generation, or another endpoint.
#[derive(Clone)]
pub struct PoolKey {
    pub tenant: TenantId,
    pub generation: i64,
    pub url: Arc<str>,
    pub token: SecretString,
}

impl PoolKey {
    fn same_binding(&self, other: &PoolKey) -> bool {
        self.tenant == other.tenant && self.generation == other.generation && self.url == other.url
    }
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_sessions: usize,
    /// Calls in flight on one session, at most; beyond, another session opens or calls queue.
    pub per_session_cap: usize,
    /// How long a call may wait for a free session slot when the pool is saturated.
    pub queue_timeout: Duration,
    /// Calls that may wait per tenant; beyond, calls are refused at once.
    pub queue_length: usize,
    /// Sessions older than this take no new calls and are closed once idle.
    pub max_session_age: Duration,
    /// Consecutive outages (5xx, connection failures, timeouts) that open a tenant's circuit.
    pub circuit_failures: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    pub circuit_cooldown: Duration,
    pub idle_timeout: Duration,
    pub catalog_ttl: Duration,
    /// How long a replaced or deleted credential's sessions may finish their calls.
    pub drain_timeout: Duration,
    /// `GATEWAY_UPSTREAM_PROTOCOL`: session-based MCP, stateless 2026-07-28, or probe.
    pub upstream_protocol: UpstreamProtocol,
    /// `GATEWAY_UPSTREAM_LISTEN`: hold each session's standalone `GET` stream.
    pub upstream_listen: bool,
    /// `GATEWAY_POOL_PARK_AFTER`: idle this long, a session's MCP client worker is stopped.
    pub park_after: Duration,
}

/// A live session as `GET .../sessions` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionInfo {
    /// A short SHA-256 prefix of the upstream `Mcp-Session-Id` (the id itself is never shown);
    /// null for a stateless 2026-07-28 channel, which has no session id.
    pub id_hash: Option<String>,
    /// `ready`, `draining` (past `GATEWAY_POOL_MAX_SESSION_AGE`: takes no new calls, closes
    /// when its calls are done) or `closed`.
    pub state: &'static str,
    pub age_s: u64,
    pub idle_s: u64,
    pub in_flight: u64,
    pub calls: u64,
    /// The MCP protocol revision the upstream negotiated.
    pub protocol_version: String,
    /// `session` (initialize + `Mcp-Session-Id`) or `stateless` (2026-07-28: a channel of
    /// pooled HTTP connections opened with `server/discover`, no server-side session).
    pub mode: &'static str,
    /// The session has no MCP client worker: every request reaches it as a plain POST. True
    /// for sessions the gateway opened with its own `initialize` (any session-based session
    /// once the upstream is known), and for sessions whose worker stopped after
    /// `GATEWAY_POOL_PARK_AFTER` idle (they stay open upstream).
    pub parked: bool,
}

/// A tool's answer, free of rmcp types. The content blocks and `structuredContent` are kept
/// as the upstream's JSON text, never parsed into a tree and re-encoded: a tool result is the
/// largest thing a call carries, and the gateway only passes it on.
#[derive(Debug, Clone)]
pub struct ToolResult {
    /// The content blocks (a JSON array), as the MCP schema serialises them.
    pub content: Box<RawValue>,
    /// `structuredContent`; an explicit `null` is `Some`.
    pub structured_content: Option<Box<RawValue>>,
    pub is_error: bool,
    /// The text of the first `text` content block, decoded once.
    text: Option<String>,
}

impl ToolResult {
    /// A result whose content blocks are JSON text already (rmcp's fallback path).
    pub(crate) fn new(
        content: Box<RawValue>,
        structured_content: Option<Box<RawValue>>,
        is_error: bool,
    ) -> Self {
        let text = serde_json::from_str::<Vec<content::Block>>(content.get())
            .ok()
            .and_then(|blocks| content::first_text(&blocks));
        Self {
            content,
            structured_content,
            is_error,
            text,
        }
    }

    /// A result read off the wire in the answer's one pass: the blocks go back out member by
    /// member, and the text comes from the block that was read, not from a second parse.
    fn from_blocks(
        blocks: &[content::Block<'_>],
        structured_content: Option<&RawValue>,
        is_error: bool,
    ) -> Self {
        // Cannot fail: string keys and JSON text serialize to JSON without error.
        let content = serde_json::value::to_raw_value(blocks)
            .unwrap_or_else(|_| RawValue::from_string("[]".into()).expect("[] is JSON"));
        Self {
            content,
            structured_content: structured_content.map(RawValue::to_owned),
            is_error,
            text: content::first_text(blocks),
        }
    }

    /// The text of the first `text` content block.
    pub fn first_text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The result as JSON: `structuredContent`, else the first text block when it is JSON.
    /// Either is validated and passed through as is.
    pub fn json(&self) -> Option<Box<RawValue>> {
        if let Some(s) = &self.structured_content {
            return Some(s.clone());
        }
        serde_json::from_str::<&RawValue>(self.first_text()?)
            .ok()
            .map(RawValue::to_owned)
    }
}

/// The least time between two [`release_freed_memory`] calls.
const MIN_TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Hands memory freed by sessions that went quiet back to the OS. glibc's malloc keeps freed
/// blocks in its per-thread arenas, so without this an idle gateway's RSS stays at its
/// high-water mark (issue 8: parking 300 sessions freed ~110 KiB each, RSS did not move until
/// trimmed). The gateway binary allocates with mimalloc, which purges freed pages by itself;
/// this still trims what C code and embedders using the system allocator hold. Runs on a
/// blocking thread after a sweep that found sessions going quiet, never on a call's path.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            released,
            "returned freed memory to the OS"
        );
    }
}

pub(crate) struct UpstreamContext {
    http: transport::UpstreamHttp,
    settings: PoolSettings,
    metrics: Metrics,
    /// What each upstream URL speaks, learned once for all tenants (`protocol.rs`).
    eras: Arc<Eras>,
    /// The tool lists in use, one copy per distinct list (`catalog.rs`).
    catalogs: Shelf,
}

#[derive(Clone)]
pub struct Upstream {
    ctx: Arc<UpstreamContext>,
    pools: Cache<TenantId, Arc<TenantPool>>,
    /// Drains of replaced or removed pools still running, so shutdown can wait for their
    /// `DELETE`s too.
    draining: TaskTracker,
}

impl Upstream {
    pub fn new(settings: PoolSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let http = transport::UpstreamHttp::new()?;
        let ctx = Arc::new(UpstreamContext {
            http,
            settings: settings.clone(),
            metrics,
            eras: Arc::default(),
            catalogs: Shelf::default(),
        });
        let listener_ctx = ctx.clone();
        let runtime = tokio::runtime::Handle::current();
        let draining = TaskTracker::new();
        let listener_draining = draining.clone();
        let pools = Cache::builder()
            .time_to_idle(settings.idle_timeout)
            .eviction_listener(move |_tenant, pool: Arc<TenantPool>, cause| {
                // Replaced or removed pools drain; expired ones are idle by definition.
                let ctx = listener_ctx.clone();
                let deadline = match cause {
                    RemovalCause::Expired => Duration::ZERO,
                    _ => ctx.settings.drain_timeout,
                };
                listener_draining
                    .spawn_on(async move { pool.drain(&ctx, deadline).await }, &runtime);
            })
            .build();
        let upstream = Self {
            ctx,
            pools,
            draining,
        };
        // moka evicts lazily; a periodic sweep makes idle pools close on time even when no
        // other tenant is active, and closes idle, aged and dead sessions of live pools.
        let sweeper = upstream.pools.clone();
        let sweep_ctx = upstream.ctx.clone();
        let period = (settings
            .idle_timeout
            .min(settings.max_session_age)
            .min(settings.park_after)
            / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Sessions went quiet in an earlier sweep: their memory is free now.
            let mut trim_pending = false;
            let mut last_trim: Option<Instant> = None;
            loop {
                tick.tick().await;
                sweeper.run_pending_tasks().await;
                let mut quiet = 0;
                for (_, pool) in sweeper.iter() {
                    quiet += pool.maintain(&sweep_ctx, period);
                }
                // Parked sessions' workers wind down on their own tasks: their memory is
                // free by the next sweep. A trim takes milliseconds on a large heap, so it runs
                // on a blocking thread, not a request worker, and at most every
                // `MIN_TRIM_INTERVAL` however often sessions go quiet.
                if trim_pending && last_trim.is_none_or(|t| t.elapsed() >= MIN_TRIM_INTERVAL) {
                    trim_pending = false;
                    last_trim = Some(Instant::now());
                    tokio::task::spawn_blocking(release_freed_memory);
                }
                trim_pending |= quiet > 0;
            }
        });
        Ok(upstream)
    }

    async fn pool(&self, key: &PoolKey) -> Arc<TenantPool> {
        let pool = self
            .pools
            .get_with(key.tenant.clone(), async {
                self.ctx.metrics.set_circuit_open(&key.tenant, false);
                Arc::new(TenantPool::new(
                    key.clone(),
                    &self.ctx.settings,
                    &self.ctx.eras,
                ))
            })
            .await;
        if pool.key.same_binding(key) {
            return pool;
        }
        // The credential or region changed: a fresh pool; the old one drains via the listener.
        let fresh = Arc::new(TenantPool::new(
            key.clone(),
            &self.ctx.settings,
            &self.ctx.eras,
        ));
        self.pools.insert(key.tenant.clone(), fresh.clone()).await;
        fresh
    }

    /// The tenant's tool list; `refresh_older_than` forces a refetch of a list at least that
    /// old (used when a caller names a tool the list lacks: Intercom adds tools).
    pub async fn catalog(
        &self,
        key: &PoolKey,
        refresh_older_than: Option<Duration>,
    ) -> Result<Arc<Catalog>, UpstreamError> {
        let pool = self.pool(key).await;
        pool.catalog(&self.ctx, refresh_older_than).await
    }

    /// Runs one tool call within `timeout`. Read-only tools are retried once when the first
    /// attempt provably did not run (or failed with a 5xx); writes never are. A tenant whose
    /// circuit is open, or who is held back after an upstream 429, is refused without any
    /// upstream traffic.
    pub async fn call(
        &self,
        key: &PoolKey,
        tool: &ToolSpec,
        arguments: Map<String, Value>,
        timeout: Duration,
    ) -> Result<ToolResult, UpstreamError> {
        let pool = self.pool(key).await;
        let ticket = pool.admit()?;
        let work = async {
            let mut budget = RetryBudget::default();
            loop {
                let span = tracing::info_span!(
                    "mcp.tools_call",
                    otel.kind = "client",
                    otel.status_code = Empty,
                    tenant = %key.tenant,
                    tool = %tool.name,
                    retry = budget.used(),
                    outcome = Empty,
                );
                let outcome = {
                    let session = pool.acquire(&self.ctx).await?;
                    session
                        .call_tool(&tool.name, arguments.clone())
                        .instrument(span.clone())
                        .await
                };
                match &outcome {
                    Ok(r) if r.is_error => span.record("outcome", "tool_error"),
                    Ok(_) => span.record("outcome", "ok"),
                    Err(e) => {
                        span.record("otel.status_code", "ERROR");
                        span.record("outcome", e.kind())
                    }
                };
                match outcome {
                    Ok(r) => return Ok(r),
                    // A call that provably did not run (its parked session was gone) runs
                    // again whatever it does.
                    Err(e) if (tool.read_only || e.did_not_run()) && budget.take(&e) => {
                        tracing::info!(tenant = %key.tenant, tool = %tool.name, detail = %e, "retrying the call");
                        pool.after_failure(&self.ctx, &e);
                    }
                    Err(e) => {
                        pool.after_failure(&self.ctx, &e);
                        return Err(e);
                    }
                }
            }
        };
        // Dropping `work` on timeout drops rmcp's request handle, which sends
        // `notifications/cancelled` upstream (MCP cancellation utility).
        let result = tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
        pool.settle(&self.ctx, ticket, &result);
        result
    }

    /// Closes the tenant's sessions after their in-flight calls (credential replaced or
    /// deleted, tenant deleted, Intercom rejected the token).
    pub async fn close_tenant(&self, tenant: &TenantId) {
        self.pools.invalidate(tenant).await;
        self.pools.run_pending_tasks().await;
    }

    /// Closes the tenant's sessions unless they are bound to exactly `current` (credential
    /// generation and upstream URL): a change notification for a tenant whose binding did not
    /// change (a rename, or this replica's own write already applied) leaves live sessions be.
    pub async fn close_tenant_unless_bound_to(
        &self,
        tenant: &TenantId,
        current: Option<(i64, &str)>,
    ) {
        if let (Some(pool), Some((generation, url))) = (self.pools.get(tenant).await, current)
            && pool.key.generation == generation
            && &*pool.key.url == url
        {
            return;
        }
        self.close_tenant(tenant).await;
    }

    pub async fn sessions(&self, tenant: &TenantId) -> Vec<SessionInfo> {
        match self.pools.get(tenant).await {
            Some(p) => p.infos(&self.ctx),
            None => Vec::new(),
        }
    }

    /// What the tenant's upstream negotiated (`None` until a session opened since the pool
    /// was created, or after the pool went idle).
    pub async fn protocol(&self, tenant: &TenantId) -> Option<ProtocolInfo> {
        self.pools.get(tenant).await?.protocol_info()
    }
    /// Closes every session (DELETE upstream), waiting at most `deadline` for calls in flight,
    /// including the sessions of pools already draining after a credential change.
    pub async fn shutdown(&self, deadline: Duration) {
        let pools: Vec<Arc<TenantPool>> = self.pools.iter().map(|(_, p)| p).collect();
        // Drain here and wait; only then drop the pools from the cache. (moka runs its
        // eviction listener lazily and on its own tasks: a drain started there could still be
        // sending its DELETEs when the process exits.)
        let drains = pools.iter().map(|p| p.drain(&self.ctx, deadline));
        futures::future::join_all(drains).await;
        self.pools.invalidate_all();
        self.pools.run_pending_tasks().await;
        self.draining.close();
        // A drain waits at most `drain_timeout` for calls, then rmcp bounds each DELETE.
        let bound = self.ctx.settings.drain_timeout.max(deadline) + Duration::from_secs(5);
        if tokio::time::timeout(bound, self.draining.wait())
            .await
            .is_err()
        {
            tracing::warn!("some upstream sessions were still closing at shutdown");
        }
    }
}
