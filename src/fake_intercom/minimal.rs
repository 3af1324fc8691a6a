//! `fake-intercom --minimal`: the fake's session protocol on bare hyper, for benchmarks.
//!
//! The full fake runs rmcp's Streamable HTTP server: every POST goes through its session
//! worker and an SSE stream (collapsed to JSON in `--json-response` mode), and the fake's gate
//! parses each body into a `Value` to count it. That is right for tests, and costs the fake
//! 105–130 µs of CPU per call on the bench machine: far more than a lean server, so the
//! benchmark's direct path measured rmcp more than an upstream. Issue 8's reference figures
//! come from a minimal fast MCP upstream (~10 µs of CPU per call); this is that upstream.
//!
//! What it keeps of the real server's behaviour: bearer tokens mapped to workspaces (unknown →
//! Intercom's 401), `initialize` with protocol negotiation and an `Mcp-Session-Id`, 400 for a
//! request without a session (so dual-era clients fall back from `server/discover`), 404 for an
//! unknown or expired session, 202 for notifications, `DELETE`, the whole `tools/list` catalog
//! in one page, and `get_company` answered from the token's own workspace data (the same
//! generated companies as the full fake, pre-rendered). Every other tool answers a tool error
//! (`isError`) saying so. It does not validate arguments against schemas, stream SSE, count
//! traffic, or inject faults beyond the latency knob.
//!
//! Knobs (unauthenticated, like the full fake's): `POST /_fake/workspaces {"token","workspace"}`,
//! `PUT /_fake/latency {"ms"}` (before each `tools/call`), `POST /_fake/expire-sessions`,
//! `GET /_fake/stats` (readiness: `{"minimal": true, "sessions": N}`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::data::WorkspaceData;
use super::http::{WWW_AUTHENTICATE, bearer};
use super::ids::{self, Kind};
use super::tools;

const SESSION_HEADER: &str = "mcp-session-id";
/// Newest first; an `initialize` asking for another version gets the newest.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const UNAUTHORIZED: &str =
    r#"{"type":"error.list","errors":[{"code":"unauthorized","message":"Access Token Invalid"}]}"#;

/// A running minimal upstream; stops on [`MinimalUpstream::shutdown`] or drop of the task.
pub struct MinimalUpstream {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl MinimalUpstream {
    /// Binds `listen` (`None` = a free port on 127.0.0.1) and serves in a background task.
    pub async fn spawn(listen: Option<SocketAddr>) -> anyhow::Result<MinimalUpstream> {
        let listen = listen.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the minimal upstream to {listen}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept(listener, state.clone(), shutdown.clone()));
        tracing::info!(%addr, "minimal MCP upstream listening");
        Ok(MinimalUpstream {
            state,
            addr,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/mcp` (loopback even when bound to `0.0.0.0`).
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", super::reachable(self.addr))
    }

    /// Maps `token` to the workspace `name` (its data is generated from the name).
    pub fn add_workspace(&self, token: &str, name: &str) {
        self.state.add_workspace(token, name);
    }

    /// Forgets every session: their next request gets 404, as after an expiry.
    pub fn expire_sessions(&self) -> usize {
        self.state.expire_sessions()
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A workspace's `get_company` answers, keyed by Intercom id and by the workspace's own id.
struct Workspace {
    companies: HashMap<String, Arc<str>>,
}

struct State {
    workspaces: RwLock<HashMap<Box<str>, Arc<Workspace>>>,
    sessions: RwLock<HashSet<Box<str>>>,
    latency_ms: AtomicU64,
    /// `{"tools":[...]}`, the whole catalog.
    tools_list: Box<str>,
}

impl State {
    fn new() -> State {
        State {
            workspaces: RwLock::default(),
            sessions: RwLock::default(),
            latency_ms: AtomicU64::new(0),
            tools_list: json!({"tools": tools::catalog()}).to_string().into(),
        }
    }

    fn add_workspace(&self, token: &str, name: &str) {
        let data = WorkspaceData::generate(name);
        let mut companies = HashMap::new();
        for company in &data.companies {
            let text = serde_json::to_string(company).expect("a Value serializes");
            let result: Arc<str> = tool_result(&text, false).into();
            for key in ["id", "company_id"] {
                if let Some(id) = company[key].as_str() {
                    companies.insert(id.to_owned(), result.clone());
                }
            }
        }
        self.workspaces
            .write()
            .expect("workspaces lock")
            .insert(token.into(), Arc::new(Workspace { companies }));
    }

    fn workspace(&self, token: &str) -> Option<Arc<Workspace>> {
        self.workspaces
            .read()
            .expect("workspaces lock")
            .get(token)
            .cloned()
    }

    fn expire_sessions(&self) -> usize {
        let mut sessions = self.sessions.write().expect("sessions lock");
        let expired = sessions.len();
        sessions.clear();
        expired
    }

    fn has_session(&self, id: &str) -> bool {
        self.sessions.read().expect("sessions lock").contains(id)
    }
}

/// A `tools/call` result with one text block.
fn tool_result(text: &str, is_error: bool) -> String {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error}).to_string()
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>, stop: CancellationToken) {
    // Dropping the set at shutdown aborts the connections.
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "minimal upstream: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| serve(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

async fn serve(state: Arc<State>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::POST, "/mcp") => post(&state, req).await,
        (&Method::DELETE, "/mcp") => delete(&state, &req),
        (_, "/mcp") => reply(StatusCode::METHOD_NOT_ALLOWED, "", None),
        _ => knob(&state, req).await,
    })
}

fn reply(status: StatusCode, body: impl Into<Bytes>, content_type: Option<&'static str>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    reply(status, body, Some("application/json"))
}

fn unauthorized() -> Answer {
    let mut response = json_reply(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(WWW_AUTHENTICATE),
    );
    response
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER)?.to_str().ok()
}

/// The parts of a JSON-RPC message this server reads; everything else is skipped.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Arguments<'a>>,
    #[serde(borrow, default, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Arguments<'a> {
    #[serde(borrow, default)]
    company_id: Option<Cow<'a, str>>,
}

async fn post(state: &State, req: Request<Incoming>) -> Answer {
    let Some(workspace) = bearer(req.headers()).and_then(|t| state.workspace(t)) else {
        return unauthorized();
    };
    let (parts, body) = req.into_parts();
    let session = session(&parts.headers);
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_reply(StatusCode::PAYLOAD_TOO_LARGE, ""),
    };
    let message: Message<'_> = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(_) => return rpc_error(StatusCode::BAD_REQUEST, None, -32700, "Parse error"),
    };
    let method = message.method.as_deref().unwrap_or_default();
    if method == "initialize" {
        return initialize(state, &message);
    }
    // A session-based server refuses anything but `initialize` without a session (400) and
    // anything on a session it does not know (404: the client must initialize again).
    match session {
        None => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                -32000,
                "Bad Request: No valid session ID provided",
            );
        }
        Some(id) if !state.has_session(id) => {
            return rpc_error(StatusCode::NOT_FOUND, None, -32001, "Session not found");
        }
        Some(_) => {}
    }
    let Some(id) = message.id else {
        // A notification (`notifications/initialized`, `notifications/cancelled`, ...).
        return reply(StatusCode::ACCEPTED, "", None);
    };
    match method {
        "tools/call" => {
            let latency = state.latency_ms.load(Ordering::Relaxed);
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            let params = message.params.as_ref();
            let tool = params.and_then(|p| p.name.as_deref()).unwrap_or_default();
            if tool != "get_company" {
                let text = format!("fake-intercom --minimal serves get_company only, not {tool:?}");
                return rpc_result(id, &tool_result(&text, true));
            }
            let raw = params
                .and_then(|p| p.arguments.as_ref())
                .and_then(|a| a.company_id.as_deref())
                .unwrap_or_default();
            let found = workspace.companies.get(raw).or_else(|| {
                ids::normalize_as(raw, Kind::Company).and_then(|id| workspace.companies.get(&id))
            });
            match found {
                Some(result) => rpc_result(id, result),
                None => rpc_result(id, &tool_result(&format!("Company not found: {raw}"), true)),
            }
        }
        "tools/list" => rpc_result(id, &state.tools_list),
        "ping" => rpc_result(id, "{}"),
        _ => rpc_error(StatusCode::OK, Some(id), -32601, "Method not found"),
    }
}

fn initialize(state: &State, message: &Message<'_>) -> Answer {
    let asked = message
        .params
        .as_ref()
        .and_then(|p| p.protocol_version.as_deref());
    let version = VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .unwrap_or(&VERSIONS[0]);
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": {"name": "fake-intercom-minimal", "version": env!("CARGO_PKG_VERSION")},
    })
    .to_string();
    let session = uuid::Uuid::new_v4().simple().to_string();
    let mut response = match message.id {
        Some(id) => rpc_result(id, &result),
        None => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                -32600,
                "initialize needs an id",
            );
        }
    };
    let header = HeaderValue::from_str(&session).expect("hex is a valid header value");
    state
        .sessions
        .write()
        .expect("sessions lock")
        .insert(session.into());
    response.headers_mut().insert(SESSION_HEADER, header);
    response
}

/// `{"jsonrpc":"2.0","id":ID,"result":RESULT}` from pre-rendered parts.
fn rpc_result(id: &RawValue, result: &str) -> Answer {
    const HEAD: &str = r#"{"jsonrpc":"2.0","id":"#;
    let mut body = String::with_capacity(HEAD.len() + id.get().len() + result.len() + 12);
    body.push_str(HEAD);
    body.push_str(id.get());
    body.push_str(r#","result":"#);
    body.push_str(result);
    body.push('}');
    json_reply(StatusCode::OK, body)
}

fn rpc_error(status: StatusCode, id: Option<&RawValue>, code: i64, message: &str) -> Answer {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message},
    });
    json_reply(status, body.to_string())
}

fn delete(state: &State, req: &Request<Incoming>) -> Answer {
    if bearer(req.headers())
        .and_then(|t| state.workspace(t))
        .is_none()
    {
        return unauthorized();
    }
    let removed = session(req.headers())
        .is_some_and(|id| state.sessions.write().expect("sessions lock").remove(id));
    let status = if removed {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    reply(status, "", None)
}

#[derive(Deserialize)]
struct AddWorkspace {
    token: String,
    workspace: String,
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn knob(state: &State, req: Request<Incoming>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_reply(StatusCode::PAYLOAD_TOO_LARGE, ""),
    };
    let bad = |e: serde_json::Error| {
        json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": e.to_string()}).to_string(),
        )
    };
    match (method, path.as_str()) {
        (Method::POST, "/_fake/workspaces") => {
            match serde_json::from_slice::<AddWorkspace>(&body) {
                Ok(w) => {
                    state.add_workspace(&w.token, &w.workspace);
                    reply(StatusCode::NO_CONTENT, "", None)
                }
                Err(e) => bad(e),
            }
        }
        (Method::PUT, "/_fake/latency") => match serde_json::from_slice::<Latency>(&body) {
            Ok(l) => {
                state.latency_ms.store(l.ms, Ordering::Relaxed);
                reply(StatusCode::NO_CONTENT, "", None)
            }
            Err(e) => bad(e),
        },
        (Method::POST, "/_fake/expire-sessions") => json_reply(
            StatusCode::OK,
            json!({"expired": state.expire_sessions()}).to_string(),
        ),
        (Method::GET, "/_fake/stats") => {
            let sessions = state.sessions.read().expect("sessions lock").len();
            json_reply(
                StatusCode::OK,
                json!({"minimal": true, "sessions": sessions}).to_string(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "", None),
    }
}
