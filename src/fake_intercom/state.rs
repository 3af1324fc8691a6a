//! Shared state of one fake: tenants, knobs, and the per-token wire counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::model::Tool;
use rmcp::service::{Peer, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FakeProtocol;
use super::data::WorkspaceData;

/// An HTTP fault answered instead of the next matching `tools/call` POST(s).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Fault {
    /// HTTP status to answer with (429, 500, 502, 503, ...).
    pub status: u16,
    /// How many `tools/call` POSTs get this fault.
    #[serde(default = "one")]
    pub count: u32,
    /// Sent as `Retry-After` (seconds) when set.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Only POSTs with this bearer token; `None` = any token.
    #[serde(default)]
    pub token: Option<String>,
}

fn one() -> u32 {
    1
}

/// What one bearer token did over the wire, counted at the HTTP level.
///
/// `requests` counts every HTTP request to `/mcp` that carried the token, even those answered
/// 401. The other counters count requests that passed authentication, whatever the MCP layer
/// then answered (a `tools/call` answered by an injected fault or with 404 for an expired
/// session still counts as a tool call: it went over the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenStats {
    pub initializes: u64,
    /// `server/discover` requests (the 2026-07-28 replacement of `initialize`), answered or
    /// refused.
    pub discovers: u64,
    pub initialized_notifications: u64,
    pub tool_calls: u64,
    pub list_tools: u64,
    pub deletes: u64,
    /// Standalone `GET` streams opened (a `GET` without `Last-Event-ID`, not a resume).
    pub listens: u64,
    pub requests: u64,
    pub max_in_flight_calls: u64,
    pub calls_by_tool: BTreeMap<String, u64>,
    /// `notifications/progress` sent before `tools/call` results (SSE answers only).
    pub progress_notifications: u64,
    /// `tools/call` answers broken off before their result (see `break_streams`).
    pub broken_streams: u64,
    /// `tools/call`s the client cancelled while the fake was still working on them
    /// (`notifications/cancelled`, or a closed 2026-07-28 response stream), seen during the
    /// `set_latency` delay.
    pub cancelled_calls: u64,
}

#[derive(Default)]
struct Counters {
    stats: TokenStats,
    in_flight: u64,
}

/// (workspace, conversation id) of notes added through `add_internal_note`.
type NoteKey = (Arc<str>, String);

struct TokenEntry {
    workspace: Arc<str>,
    revoked: bool,
}

/// `count` more `tools/call` answers (of `token`, or any) to break off before the result.
struct StreamBreak {
    count: u32,
    token: Option<String>,
}

pub(crate) struct AppState {
    pub json_response: bool,
    pub protocol: FakeProtocol,
    pub tools_page_size: usize,
    /// rmcp's in-memory sessions, shared with the `StreamableHttpService`.
    pub sessions: Arc<LocalSessionManager>,
    tokens: Mutex<HashMap<String, TokenEntry>>,
    workspaces: Mutex<HashMap<Arc<str>, Arc<WorkspaceData>>>,
    counters: Mutex<HashMap<String, Counters>>,
    faults: Mutex<Vec<Fault>>,
    stream_breaks: Mutex<Vec<StreamBreak>>,
    latency: Mutex<Duration>,
    session_tokens: Mutex<HashMap<String, BTreeSet<String>>>,
    oauth_codes: Mutex<HashMap<String, String>>,
    notes: Mutex<HashMap<NoteKey, Vec<Value>>>,
    /// (JSON-RPC method or HTTP method, `traceparent` header) of every `/mcp` request with one.
    traceparents: Mutex<Vec<(String, String)>>,
    /// `DELETE`s received per session id.
    deletes: Mutex<HashMap<String, u64>>,
    /// Per token: JSON-RPC ids of the `tools/call` requests, and the `requestId`s of the
    /// `notifications/cancelled` received, in arrival order.
    call_ids: Mutex<HashMap<String, Vec<Value>>>,
    cancellations: Mutex<HashMap<String, Vec<Value>>>,
    /// Tools added at run time per workspace, listed after the fixed catalog.
    extra_tools: Mutex<HashMap<Arc<str>, Vec<Tool>>>,
    /// The server side of every initialized session, by workspace, to send it notifications.
    peers: Mutex<Vec<(Arc<str>, Peer<RoleServer>)>>,
}

/// Locks ignoring poison: every critical section here leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    pub(crate) fn new(
        json_response: bool,
        tools_page_size: usize,
        protocol: FakeProtocol,
    ) -> AppState {
        AppState {
            json_response,
            protocol,
            tools_page_size: tools_page_size.max(1),
            sessions: Arc::default(),
            tokens: Mutex::default(),
            workspaces: Mutex::default(),
            counters: Mutex::default(),
            faults: Mutex::default(),
            stream_breaks: Mutex::default(),
            latency: Mutex::default(),
            session_tokens: Mutex::default(),
            oauth_codes: Mutex::default(),
            notes: Mutex::default(),
            traceparents: Mutex::default(),
            deletes: Mutex::default(),
            call_ids: Mutex::default(),
            cancellations: Mutex::default(),
            extra_tools: Mutex::default(),
            peers: Mutex::default(),
        }
    }

    pub(crate) fn record_delete(&self, session_id: &str) {
        *lock(&self.deletes)
            .entry(session_id.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn deletes_by_session(&self) -> BTreeMap<String, u64> {
        lock(&self.deletes)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The session ids ever used (or assigned) with `token`.
    pub(crate) fn sessions_of(&self, token: &str) -> Vec<String> {
        lock(&self.session_tokens)
            .iter()
            .filter(|(_, tokens)| tokens.contains(token))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(crate) fn record_call_id(&self, token: &str, id: Value) {
        lock(&self.call_ids)
            .entry(token.to_owned())
            .or_default()
            .push(id);
    }

    pub(crate) fn call_ids(&self, token: &str) -> Vec<Value> {
        lock(&self.call_ids).get(token).cloned().unwrap_or_default()
    }

    pub(crate) fn record_cancellation(&self, token: &str, request_id: Value) {
        lock(&self.cancellations)
            .entry(token.to_owned())
            .or_default()
            .push(request_id);
    }

    pub(crate) fn cancellations(&self, token: &str) -> Vec<Value> {
        lock(&self.cancellations)
            .get(token)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn extra_tools(&self, workspace: &Arc<str>) -> Vec<Tool> {
        lock(&self.extra_tools)
            .get(workspace)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn register_peer(&self, workspace: Arc<str>, peer: Peer<RoleServer>) {
        let mut peers = lock(&self.peers);
        peers.retain(|(_, p)| !p.is_transport_closed());
        peers.push((workspace, peer));
    }

    /// Adds a tool to the workspace of `token`; with `notify`, sends
    /// `notifications/tools/list_changed` to each of that workspace's live sessions.
    /// Returns how many sessions were notified.
    pub(crate) async fn add_tool(&self, token: &str, tool: Tool, notify: bool) -> usize {
        let Some(workspace) = self.workspace_for(token) else {
            return 0;
        };
        lock(&self.extra_tools)
            .entry(workspace.clone())
            .or_default()
            .push(tool);
        if !notify {
            return 0;
        }
        let peers: Vec<Peer<RoleServer>> = lock(&self.peers)
            .iter()
            .filter(|(w, p)| *w == workspace && !p.is_transport_closed())
            .map(|(_, p)| p.clone())
            .collect();
        let mut sent = 0;
        for peer in peers {
            if peer.notify_tool_list_changed().await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    pub(crate) fn add_workspace(&self, token: &str, workspace: &str) {
        let entry = TokenEntry {
            workspace: Arc::from(workspace),
            revoked: false,
        };
        lock(&self.tokens).insert(token.to_owned(), entry);
    }

    pub(crate) fn revoke(&self, token: &str) {
        if let Some(entry) = lock(&self.tokens).get_mut(token) {
            entry.revoked = true;
        }
    }

    /// The workspace of a known, non-revoked token.
    pub(crate) fn workspace_for(&self, token: &str) -> Option<Arc<str>> {
        lock(&self.tokens)
            .get(token)
            .filter(|e| !e.revoked)
            .map(|e| e.workspace.clone())
    }

    /// Ends every live MCP session; requests carrying their ids then get 404 from rmcp.
    /// Returns at once: the workers wind down in the background (rmcp's close waits for
    /// in-flight responses), as a real server's would.
    pub(crate) async fn expire_sessions(&self) -> usize {
        let handles: Vec<_> = self.sessions.sessions.write().await.drain().collect();
        let count = handles.len();
        for (_, handle) in handles {
            // The worker may already be gone (idle timeout); the session is dropped either way.
            tokio::spawn(async move {
                let _ = handle.close().await;
            });
        }
        count
    }

    pub(crate) fn data(&self, workspace: &Arc<str>) -> Arc<WorkspaceData> {
        lock(&self.workspaces)
            .entry(workspace.clone())
            .or_insert_with(|| Arc::new(WorkspaceData::generate(workspace)))
            .clone()
    }

    pub(crate) fn count(&self, token: &str, f: impl FnOnce(&mut TokenStats)) {
        f(&mut lock(&self.counters)
            .entry(token.to_owned())
            .or_default()
            .stats);
    }

    pub(crate) fn record_traceparent(&self, method: &str, traceparent: &str) {
        lock(&self.traceparents).push((method.to_owned(), traceparent.to_owned()));
    }

    pub(crate) fn traceparents(&self) -> Vec<(String, String)> {
        lock(&self.traceparents).clone()
    }

    pub(crate) fn stats(&self, token: &str) -> TokenStats {
        lock(&self.counters)
            .get(token)
            .map(|c| c.stats.clone())
            .unwrap_or_default()
    }

    /// Marks a `tools/call` as in flight until the returned guard drops.
    pub(crate) fn begin_call(self: &Arc<Self>, token: &str) -> InFlight {
        let mut counters = lock(&self.counters);
        let c = counters.entry(token.to_owned()).or_default();
        c.in_flight += 1;
        c.stats.max_in_flight_calls = c.stats.max_in_flight_calls.max(c.in_flight);
        InFlight {
            state: self.clone(),
            token: token.to_owned(),
        }
    }

    pub(crate) fn inject_fault(&self, fault: Fault) {
        if fault.count > 0 {
            lock(&self.faults).push(fault);
        }
    }

    /// Consumes one use of the oldest fault that applies to `token`.
    pub(crate) fn take_fault(&self, token: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.token.as_deref().is_none_or(|t| t == token))?;
        let fault = &mut faults[index];
        fault.count -= 1;
        let taken = fault.clone();
        if fault.count == 0 {
            faults.remove(index);
        }
        Some(taken)
    }

    pub(crate) fn break_streams(&self, count: u32, token: Option<&str>) {
        if count > 0 {
            lock(&self.stream_breaks).push(StreamBreak {
                count,
                token: token.map(str::to_owned),
            });
        }
    }

    /// Consumes one planned stream break that applies to `token`, if any.
    pub(crate) fn take_stream_break(&self, token: &str) -> bool {
        let mut breaks = lock(&self.stream_breaks);
        let Some(index) = breaks
            .iter()
            .position(|b| b.token.as_deref().is_none_or(|t| t == token))
        else {
            return false;
        };
        breaks[index].count -= 1;
        if breaks[index].count == 0 {
            breaks.remove(index);
        }
        true
    }

    pub(crate) fn set_latency(&self, d: Duration) {
        *lock(&self.latency) = d;
    }

    pub(crate) fn latency(&self) -> Duration {
        *lock(&self.latency)
    }

    pub(crate) fn saw_session(&self, session_id: &str, token: &str) {
        lock(&self.session_tokens)
            .entry(session_id.to_owned())
            .or_default()
            .insert(token.to_owned());
    }

    pub(crate) fn sessions_with_multiple_tokens(&self) -> usize {
        lock(&self.session_tokens)
            .values()
            .filter(|tokens| tokens.len() > 1)
            .count()
    }

    pub(crate) fn add_oauth_code(&self, code: &str, token: &str) {
        lock(&self.oauth_codes).insert(code.to_owned(), token.to_owned());
    }

    /// Codes are single-use, like Intercom's.
    pub(crate) fn redeem_oauth_code(&self, code: &str) -> Option<String> {
        lock(&self.oauth_codes).remove(code)
    }

    pub(crate) fn add_note(&self, workspace: &Arc<str>, conversation_id: &str, part: Value) {
        lock(&self.notes)
            .entry((workspace.clone(), conversation_id.to_owned()))
            .or_default()
            .push(part);
    }

    pub(crate) fn notes(&self, workspace: &Arc<str>, conversation_id: &str) -> Vec<Value> {
        lock(&self.notes)
            .get(&(workspace.clone(), conversation_id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Decrements the token's in-flight `tools/call` count when the answer has been sent.
pub(crate) struct InFlight {
    state: Arc<AppState>,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.state.counters).get_mut(&self.token) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}
