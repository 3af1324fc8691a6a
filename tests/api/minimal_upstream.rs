//! `fake-intercom --minimal` (the benchmark's upstream): the MCP session protocol over real
//! HTTP with rmcp's client and raw requests, and the gateway in front of it.

use intercom_mcp_gateway::fake_intercom::minimal::MinimalUpstream;
use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{intercom_token, spawn_app_with};

const ACCEPT: &str = "application/json, text/event-stream";

type Client = RunningService<RoleClient, ()>;

async fn minimal() -> MinimalUpstream {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = MinimalUpstream::spawn(None).await.expect("starts");
    upstream.add_workspace("tok-acme", "acme");
    upstream.add_workspace("tok-globex", "globex");
    upstream
}

async fn connect(url: String, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("client connects")
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let args: JsonObject = serde_json::from_value(args).expect("object");
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .expect("call answered")
}

fn text(result: &CallToolResult) -> &str {
    &result.content[0].as_text().expect("text content").text
}

/// rmcp's client initializes, lists the whole catalog and calls `get_company`, which answers
/// the token's own workspace with the very bytes the full fake answers.
#[tokio::test]
async fn rmcp_sees_the_full_fakes_catalog_and_companies() {
    let upstream = minimal().await;
    let full = FakeIntercom::spawn(FakeOptions::default()).await.unwrap();
    full.add_workspace("tok-acme", "acme");

    let client = connect(upstream.mcp_url(), "tok-acme").await;
    let reference = connect(full.mcp_url(), "tok-acme").await;
    let tools = client.list_all_tools().await.unwrap();
    let expected = reference.list_all_tools().await.unwrap();
    assert_eq!(
        serde_json::to_value(&tools).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );

    for id in ["acme-retail", "acme-labs"] {
        let args = json!({"company_id": id});
        let got = call(&client, "get_company", args.clone()).await;
        let want = call(&reference, "get_company", args).await;
        assert_eq!(got.is_error, Some(false));
        assert_eq!(text(&got), text(&want), "{id}");
    }
    // By Intercom id too, and only within the token's workspace.
    let retail: Value = serde_json::from_str(text(
        &call(&client, "get_company", json!({"company_id": "acme-retail"})).await,
    ))
    .unwrap();
    let by_id = call(&client, "get_company", json!({"company_id": retail["id"]})).await;
    assert_eq!(by_id.is_error, Some(false));
    let globex = connect(upstream.mcp_url(), "tok-globex").await;
    let missing = call(&globex, "get_company", json!({"company_id": "acme-retail"})).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(text(&missing).contains("Company not found"), "{missing:?}");
    let other = call(&client, "list_companies", json!({})).await;
    assert_eq!(other.is_error, Some(true));
    assert!(text(&other).contains("get_company only"), "{other:?}");

    for c in [client, reference, globex] {
        c.cancel().await.unwrap();
    }
    full.shutdown().await;
    upstream.shutdown().await;
}

/// What a session-based server answers at the HTTP level: 401 with Intercom's challenge, 400
/// without a session, 202 for notifications, 404 once the session expired or was deleted.
#[tokio::test]
async fn sessions_tokens_and_notifications_are_answered_like_the_real_server() {
    let upstream = minimal().await;
    let http = reqwest::Client::new();
    let url = upstream.mcp_url();
    let post = |token: &str, session: Option<&str>, body: Value| {
        let mut req = http
            .post(&url)
            .bearer_auth(token)
            .header("accept", ACCEPT)
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});

    let res = post("tok-unknown", None, initialize.clone()).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let res = post(
        "tok-acme",
        None,
        json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);

    let res = post("tok-acme", None, initialize.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(
        body["result"]["protocolVersion"], "2025-06-18",
        "negotiated down"
    );
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = post("tok-acme", Some(&session), note).await.unwrap();
    assert_eq!(res.status(), 202);

    // The id comes back exactly as sent, whatever its JSON type.
    let ping = json!({"jsonrpc": "2.0", "id": "gw-7", "method": "ping"});
    let res = post("tok-acme", Some(&session), ping.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"jsonrpc": "2.0", "id": "gw-7", "result": {}})
    );
    let res = post(
        "tok-acme",
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "nope"}),
    )
    .await
    .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32601);
    let res = http
        .post(&url)
        .bearer_auth("tok-acme")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    assert_eq!(upstream.expire_sessions(), 1);
    let res = post("tok-acme", Some(&session), ping.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = http.get(&url).bearer_auth("tok-acme").send().await.unwrap();
    assert_eq!(res.status(), 405, "no standalone SSE stream");

    // A new session; the latency knob holds its tool calls; DELETE ends it.
    let res = post("tok-acme", None, initialize).await.unwrap();
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let knobs = url.trim_end_matches("/mcp");
    let latency = |ms: u64| {
        http.put(format!("{knobs}/_fake/latency"))
            .json(&json!({"ms": ms}))
            .send()
    };
    assert_eq!(latency(300).await.unwrap().status(), 204);
    let get_company = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "get_company", "arguments": {"company_id": "acme-labs"}}});
    let started = std::time::Instant::now();
    let res = post("tok-acme", Some(&session), get_company).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(latency(0).await.unwrap().status(), 204);
    let delete = || {
        http.delete(&url)
            .bearer_auth("tok-acme")
            .header("mcp-session-id", &session)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 200);
    assert_eq!(delete().await.unwrap().status(), 404);
    let stats: Value = http
        .get(format!("{knobs}/_fake/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({"minimal": true, "sessions": 0}));
    upstream.shutdown().await;
}

/// The gateway in front of the minimal upstream: a call answers the tenant's company, a
/// session that expired is renewed without failing the call.
#[sqlx::test(migrations = false)]
async fn the_gateway_serves_calls_from_the_minimal_upstream(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let upstream = minimal().await;
    let url = upstream.mcp_url();
    let app = spawn_app_with(
        db,
        FakeOptions::default(),
        &["--intercom-mcp-url", &url, "--intercom-mcp-url-eu", &url],
    )
    .await;
    let token = app.add_tenant("acme").await;
    upstream.add_workspace(&intercom_token("acme"), "acme");
    let call = || {
        app.post(
            "/v1/tenants/acme/tools/get_company/calls",
            &token,
            json!({"arguments": {"company_id": "acme-retail"}}),
        )
    };
    for _ in 0..2 {
        let res = call().await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert!(body.to_string().contains("acme-retail"), "{body}");
    }
    assert_eq!(
        app.fake.stats(&intercom_token("acme")).requests,
        0,
        "the full fake is unused"
    );
    assert!(upstream.expire_sessions() >= 1);
    assert_eq!(call().await.status(), 200);
}
