//! A fake of Intercom's hosted MCP server (`https://mcp.intercom.com/mcp`) and of the few
//! Intercom REST endpoints the OAuth flow uses, for the gateway's tests, demo and compose file.
//!
//! It behaves like the real server as far as it is known (`shared/research/intercom-mcp.md`):
//! Streamable HTTP with sessions (rmcp's server) — or, with [`FakeProtocol`], the stateless
//! 2026-07-28 revision or both generations —, bearer-token auth with Intercom's exact 401,
//! per-workspace data, the `search` DSL, Intercom's result shapes and error texts. On top it
//! offers knobs (tenants, revocation, session expiry, faults, latency) and counts what went
//! over the wire per token, so tests can assert on the gateway's upstream behaviour.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions};
//! let fake = FakeIntercom::spawn(FakeOptions::default()).await?;
//! fake.add_workspace("token-acme", "acme");
//! // point the gateway at fake.mcp_url() ...
//! assert_eq!(fake.stats("token-acme").tool_calls, 0);
//! fake.shutdown().await;
//! # Ok(()) }
//! ```

mod breaks;
mod call;
mod companies;
mod contacts;
mod conversations;
mod data;
mod dsl;
mod http;
mod ids;
mod json_mode;
mod knobs;
pub mod minimal;
mod oauth;
mod paging;
mod search;
mod server;
mod state;
mod tools;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use state::{Fault, TokenStats};

use state::AppState;

/// Which MCP generation(s) the fake serves (MCP 2026-07-28, basic/versioning §Backward
/// Compatibility: legacy, modern and dual-era servers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FakeProtocol {
    /// Session-based only (up to 2025-11-25), as Intercom is known to be: `initialize`, then
    /// `Mcp-Session-Id` on every request. `server/discover` without a session is refused the
    /// way session-based servers refuse any non-initialize request without one (400), which
    /// dual-era clients read as "fall back to initialize".
    #[default]
    Session,
    /// Only the stateless 2026-07-28 revision: `server/discover`, per-request `_meta`,
    /// `Mcp-Method`/`Mcp-Name` headers required, never an `Mcp-Session-Id`, 405 on GET and
    /// DELETE; `initialize` gets 400 with an UnsupportedProtocolVersionError naming 2026-07-28.
    Stateless,
    /// Both: `initialize` opens a session (negotiated down to 2025-11-25 whatever the client
    /// offers); requests carrying 2026-07-28 `_meta` are served statelessly.
    Both,
}

/// How to run the fake.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Address to bind; `None` = `127.0.0.1:0` (a free port).
    pub listen: Option<SocketAddr>,
    /// Answer MCP POSTs with `application/json` instead of an SSE stream.
    pub json_response: bool,
    /// `tools/list` page size; small by default so clients must follow `nextCursor`.
    pub tools_page_size: usize,
    /// The MCP generation(s) served.
    pub protocol: FakeProtocol,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            listen: None,
            json_response: false,
            tools_page_size: 4,
            protocol: FakeProtocol::Session,
        }
    }
}

/// A running fake Intercom. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct FakeIntercom {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<AppState>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FakeIntercom {
    /// Binds the listener and serves in a background task until [`FakeIntercom::shutdown`].
    pub async fn spawn(opts: FakeOptions) -> anyhow::Result<FakeIntercom> {
        let listen = opts
            .listen
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding fake Intercom to {listen}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState::new(
            opts.json_response,
            opts.tools_page_size,
            opts.protocol,
        ));
        let shutdown = CancellationToken::new();
        let app = http::router(state.clone(), shutdown.child_token());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "fake Intercom server failed");
            }
        });
        tracing::info!(%addr, json_response = opts.json_response, protocol = ?opts.protocol, "fake Intercom listening");
        Ok(FakeIntercom {
            inner: Arc::new(Inner {
                state,
                addr,
                shutdown,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// `http://127.0.0.1:PORT` (loopback even when bound to `0.0.0.0`).
    pub fn base_url(&self) -> String {
        format!("http://{}", reachable(self.inner.addr))
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url())
    }

    /// Maps `token` to a workspace such as `"acme"`; its data is derived from the name.
    /// Re-adding a revoked token makes it valid again.
    pub fn add_workspace(&self, token: &str, workspace: &str) {
        self.inner.state.add_workspace(token, workspace);
    }

    /// From now on `token` gets HTTP 401 everywhere, as after an uninstall.
    pub fn revoke_token(&self, token: &str) {
        self.inner.state.revoke(token);
    }

    /// Drops every live MCP session; requests carrying an old session id then get 404.
    /// Returns how many sessions were dropped.
    pub async fn expire_sessions(&self) -> usize {
        self.inner.state.expire_sessions().await
    }

    /// Delay added before every `tools/call` answer (not before injected faults).
    pub fn set_latency(&self, d: Duration) {
        self.inner.state.set_latency(d);
    }

    /// Queues a fault for the next `fault.count` matching `tools/call` POSTs.
    pub fn inject_fault(&self, fault: Fault) {
        self.inner.state.inject_fault(fault);
    }

    /// The next `count` `tools/call` answers (of `token`, or any token) run the tool but break
    /// off before the JSON-RPC result: an SSE answer keeps its progress events and then the
    /// connection drops; a JSON answer drops halfway through its body. Under 2026-07-28 such
    /// a request is lost and must be re-issued (no `Last-Event-ID` resumption).
    pub fn break_streams(&self, count: u32, token: Option<&str>) {
        self.inner.state.break_streams(count, token);
    }

    pub fn stats(&self, token: &str) -> TokenStats {
        self.inner.state.stats(token)
    }

    /// (JSON-RPC method, `traceparent` header) of every `/mcp` request that carried one, in
    /// arrival order (W3C Trace Context propagation tests).
    pub fn traceparents(&self) -> Vec<(String, String)> {
        self.inner.state.traceparents()
    }

    /// Sessions that were ever used with two different bearer tokens (a tenant-isolation bug).
    pub fn sessions_with_multiple_tokens(&self) -> usize {
        self.inner.state.sessions_with_multiple_tokens()
    }

    /// `DELETE`s received per session id (sessions never deleted are absent).
    pub fn deletes_by_session(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.state.deletes_by_session()
    }

    /// Every session id ever used with `token` (assigned at its initialize or sent later).
    pub fn sessions_of(&self, token: &str) -> Vec<String> {
        self.inner.state.sessions_of(token)
    }

    /// JSON-RPC ids of the `tools/call` requests `token` sent, in arrival order.
    pub fn tool_call_ids(&self, token: &str) -> Vec<serde_json::Value> {
        self.inner.state.call_ids(token)
    }

    /// `params.requestId` of every `notifications/cancelled` `token` sent, in arrival order.
    pub fn cancellations(&self, token: &str) -> Vec<serde_json::Value> {
        self.inner.state.cancellations(token)
    }

    /// Adds a read-only tool named `name` to the `tools/list` of `token`'s workspace (calling
    /// it answers "Unknown tool"). With `notify`, every live session of that workspace gets
    /// `notifications/tools/list_changed`, on its standalone SSE stream; returns how many.
    pub async fn add_tool(&self, token: &str, name: &str, notify: bool) -> usize {
        self.inner
            .state
            .add_tool(token, tools::extra(name), notify)
            .await
    }

    /// The token endpoints exchange `code` for `token`, once.
    pub fn add_oauth_code(&self, code: &str, token: &str) {
        self.inner.state.add_oauth_code(code, token);
    }

    /// Stops accepting connections, ends open SSE streams and waits for the server task.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut task) = task {
            // Graceful first; a client holding a connection open must not hang a test.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// Where a client reaches a listener bound to `addr`: loopback when bound to `0.0.0.0`.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    addr
}
