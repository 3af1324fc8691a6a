//! The fake's MCP generations on the wire, with raw requests: what a stateless-only 2026-07-28
//! server, a session-only server and a dual-era server answer.

use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions, FakeProtocol};
use reqwest::RequestBuilder;
use serde_json::{Value, json};

const ACCEPT: &str = "application/json, text/event-stream";
const MODERN: &str = "2026-07-28";

async fn fake(protocol: FakeProtocol) -> FakeIntercom {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeIntercom::spawn(FakeOptions {
        protocol,
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts");
    fake.add_workspace("tok-acme", "acme");
    fake
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

fn post(http: &reqwest::Client, fake: &FakeIntercom, body: &Value) -> RequestBuilder {
    http.post(fake.mcp_url())
        .bearer_auth("tok-acme")
        .header("accept", ACCEPT)
        .json(body)
}

/// `server/discover` with its 2026-07-28 headers and `_meta`.
async fn discover(http: &reqwest::Client, fake: &FakeIntercom) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta()}});
    post(http, fake, &body)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "server/discover")
        .send()
        .await
        .unwrap()
}

/// A `tools/call` with every header 2026-07-28 asks for, minus `skip`.
fn modern_call(http: &reqwest::Client, fake: &FakeIntercom, skip: &str) -> RequestBuilder {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "list_companies", "arguments": {}, "_meta": meta()}});
    let mut req = post(http, fake, &body);
    for (name, value) in [
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "list_companies"),
    ] {
        if name != skip {
            req = req.header(name, value);
        }
    }
    req
}

/// The JSON-RPC message of a JSON or SSE answer that carries one.
async fn message(res: reqwest::Response) -> Value {
    let text = res.text().await.unwrap();
    if let Ok(v) = serde_json::from_str(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {text}"))
}

#[tokio::test]
async fn a_stateless_fake_speaks_only_2026_07_28() {
    let fake = fake(FakeProtocol::Stateless).await;
    let http = reqwest::Client::new();

    let res = discover(&http, &fake).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("mcp-session-id").is_none());
    let m = message(res).await;
    assert_eq!(m["result"]["supportedVersions"], json!([MODERN]), "{m}");
    assert!(m["result"]["capabilities"]["tools"].is_object(), "{m}");

    let res = modern_call(&http, &fake, "").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("mcp-session-id").is_none());
    let m = message(res).await;
    assert!(
        m["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("acme Retail"),
        "{m}"
    );

    // The routing headers are required and checked against the body (-32020 HeaderMismatch).
    for skip in ["mcp-method", "mcp-name", "mcp-protocol-version"] {
        let res = modern_call(&http, &fake, skip).send().await.unwrap();
        assert_eq!(res.status(), 400, "without {skip}");
        assert_eq!(
            message(res).await["error"]["code"],
            -32020,
            "without {skip}"
        );
    }
    let res = modern_call(&http, &fake, "mcp-name")
        .header("mcp-name", "get_company")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "Mcp-Name must match the body");

    // No handshake: initialize is refused naming the supported revision.
    let init = json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let res = post(&http, &fake, &init).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("mcp-session-id").is_none());
    let m = message(res).await;
    assert_eq!(m["id"], 3);
    assert_eq!(m["error"]["code"], -32022);
    assert_eq!(
        m["error"]["data"],
        json!({"supported": [MODERN], "requested": "2025-11-25"})
    );

    // No GET stream, no sessions to DELETE.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = http
            .request(method.clone(), fake.mcp_url())
            .bearer_auth("tok-acme")
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method}");
    }

    let stats = fake.stats("tok-acme");
    assert_eq!(
        (stats.discovers, stats.initializes, stats.deletes),
        (1, 1, 1)
    );
    assert_eq!(fake.sessions_with_multiple_tokens(), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_session_only_fake_refuses_discover_as_a_2025_server_would() {
    let fake = fake(FakeProtocol::Session).await;
    let http = reqwest::Client::new();
    let res = discover(&http, &fake).await;
    assert_eq!(res.status(), 400);
    let m = message(res).await;
    // Not a modern error code, so dual-era clients fall back to initialize.
    assert_eq!(m["error"]["code"], -32000, "{m}");
    assert_eq!(fake.stats("tok-acme").discovers, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_dual_era_fake_serves_discover_and_negotiates_initialize_down_to_2025_11_25() {
    let fake = fake(FakeProtocol::Both).await;
    let http = reqwest::Client::new();
    let res = discover(&http, &fake).await;
    assert_eq!(res.status(), 200);
    let versions = message(res).await["result"]["supportedVersions"].clone();
    assert!(
        versions.as_array().unwrap().contains(&json!(MODERN))
            && versions.as_array().unwrap().contains(&json!("2025-11-25")),
        "{versions}"
    );

    // A client offering 2026-07-28 in initialize gets the newest revision with a handshake.
    let init = json!({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": MODERN, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let res = post(&http, &fake, &init).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("mcp-session-id").is_some());
    assert_eq!(
        message(res).await["result"]["protocolVersion"],
        "2025-11-25"
    );

    // And a stateless call works without any session.
    let res = modern_call(&http, &fake, "").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("mcp-session-id").is_none());
    assert!(message(res).await["result"]["content"].is_array());
    fake.shutdown().await;
}
