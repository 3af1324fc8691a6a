//! Drives the fake Intercom over real HTTP, with rmcp's client and with raw requests.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions, Fault};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::{ServiceError, ServiceExt};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

const WWW_AUTHENTICATE: &str = r#"Bearer realm="OAuth", error="invalid_token", error_description="Missing or invalid access token""#;
const ACCEPT: &str = "application/json, text/event-stream";

async fn fake(json_response: bool) -> FakeIntercom {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeIntercom::spawn(FakeOptions {
        json_response,
        ..FakeOptions::default()
    })
    .await
    .expect("fake starts");
    fake.add_workspace("tok-acme", "acme");
    fake.add_workspace("tok-globex", "globex");
    fake
}

async fn connect(fake: &FakeIntercom, token: &str, reinit: bool) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(fake.mcp_url())
        .auth_header(token)
        .reinit_on_expired_session(reinit);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("client connects")
}

async fn call(
    client: &Client,
    tool: &'static str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let args: JsonObject = serde_json::from_value(args).expect("object");
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
}

/// The JSON a successful tool call put in `content[0].text`.
async fn ok_json(client: &Client, tool: &'static str, args: Value) -> Value {
    let result = call(client, tool, args).await.expect("call succeeds");
    assert_ne!(
        result.is_error,
        Some(true),
        "{tool} failed: {:?}",
        result.content
    );
    serde_json::from_str(&text(&result)).expect("JSON text")
}

fn text(result: &CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

async fn tool_error(client: &Client, tool: &'static str, args: Value) -> String {
    let result = call(client, tool, args).await.expect("call answered");
    assert_eq!(result.is_error, Some(true));
    text(&result)
}

fn invalid_params(error: ServiceError) -> String {
    match error {
        ServiceError::McpError(e) if e.code == ErrorCode::INVALID_PARAMS => e.message.to_string(),
        other => panic!("expected -32602, got {other:?}"),
    }
}

fn http_error(error: ServiceError) -> String {
    match error {
        ServiceError::TransportSend(e) => match e
            .error
            .downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            Some(StreamableHttpError::SessionExpired) => "expired".into(),
            Some(StreamableHttpError::HttpStatus(s)) => format!("{} {:?}", s.status, s.retry_after),
            other => panic!("unexpected transport error {other:?}"),
        },
        other => panic!("unexpected error {other:?}"),
    }
}

/// Calls every tool as `ws` and checks the data is that workspace's and never `other`'s.
async fn every_tool_shows_only_its_workspace(
    fake: &FakeIntercom,
    token: &str,
    ws: &str,
    other: &str,
) -> Vec<String> {
    let client = connect(fake, token, true).await;
    let mut seen = Vec::new();
    let mut check = |value: &Value| {
        let s = value.to_string();
        assert!(s.contains(ws) && !s.contains(other), "{s}");
        seen.push(s);
    };

    let open = ok_json(
        &client,
        "search_conversations",
        json!({"state": "open", "per_page": 2}),
    )
    .await;
    assert_eq!(open["total_in_page"], 2);
    assert!(open["pages"]["next"]["starting_after"].is_string() && open["_note"].is_string());
    let next = open["pages"]["next"]["starting_after"].clone();
    let page2 = ok_json(
        &client,
        "search_conversations",
        json!({"state": "open", "per_page": 2, "starting_after": next}),
    )
    .await;
    assert_eq!(page2["pages"]["page"], 2);
    let conv_id = open["conversations"][0]["id"].as_str().unwrap().to_owned();
    assert!(conv_id.chars().all(|c| c.is_ascii_digit()));
    check(&open);

    let url = format!("https://app.intercom.com/a/inbox/_/inbox/conversation/{conv_id}");
    let conversation = ok_json(&client, "get_conversation", json!({"conversation_id": url})).await;
    assert_eq!(conversation["id"], conv_id.as_str());
    assert!(
        conversation["conversation_parts"]["conversation_parts"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    check(&conversation);

    let contacts = call(
        &client,
        "search_contacts",
        json!({"email_domain": format!("{ws}.example")}),
    )
    .await
    .unwrap();
    let structured = contacts
        .structured_content
        .clone()
        .expect("search_contacts sets structuredContent");
    assert_eq!(structured["total_in_page"], 5);
    let contact_id = structured["data"][0]["id"].as_str().unwrap().to_owned();
    check(&structured);
    let contact = call(
        &client,
        "get_contact",
        json!({"contact_id": format!("contact_{contact_id}")}),
    )
    .await
    .unwrap();
    check(
        &contact
            .structured_content
            .expect("get_contact sets structuredContent"),
    );

    let companies = ok_json(&client, "list_companies", json!({})).await;
    assert_eq!(companies["total_count"], 3);
    let company_id = companies["data"][0]["id"].as_str().unwrap().to_owned();
    check(&ok_json(&client, "get_company", json!({"company_id": company_id})).await);

    let found = ok_json(
        &client,
        "search",
        json!({"query": "object_type:conversations source_body:contains:\"refund\" limit:1"}),
    )
    .await;
    assert_eq!(found["total_in_page"], 1);
    assert!(
        found["results"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("conversation_")
    );
    assert!(found["_note"].as_str().unwrap().contains("starting_after:"));
    check(&found);
    check(
        &ok_json(
            &client,
            "fetch",
            json!({"id": format!("contact_{contact_id}")}),
        )
        .await,
    );

    let note = ok_json(
        &client,
        "add_internal_note",
        json!({"conversation_id": format!("conversation_{conv_id}"), "body": "Call back tomorrow"}),
    )
    .await;
    assert!(note["part_type"].as_str().unwrap().starts_with("note"));
    let after = ok_json(
        &client,
        "get_conversation",
        json!({"conversation_id": conv_id}),
    )
    .await;
    assert!(after.to_string().contains("Call back tomorrow"));
    client.cancel().await.unwrap();
    vec![conv_id, contact_id]
}

#[tokio::test]
async fn every_tool_answers_per_workspace_over_sse_and_json() {
    for json_response in [false, true] {
        let fake = fake(json_response).await;
        let acme = every_tool_shows_only_its_workspace(&fake, "tok-acme", "acme", "globex").await;
        let globex =
            every_tool_shows_only_its_workspace(&fake, "tok-globex", "globex", "acme").await;
        assert_ne!(acme, globex, "ids differ between workspaces");
        assert_eq!(
            acme,
            every_tool_shows_only_its_workspace(&fake, "tok-acme", "acme", "globex").await,
            "ids are stable"
        );
        assert_eq!(fake.sessions_with_multiple_tokens(), 0);
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn tools_are_listed_in_pages_with_schemas_and_read_only_hints() {
    let fake = fake(false).await;
    let client = connect(&fake, "tok-acme", true).await;
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.protocol_version.as_str(), "2025-11-25");
    let first = client.list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), 4);
    assert!(first.next_cursor.is_some());
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "search",
            "fetch",
            "search_conversations",
            "get_conversation",
            "search_contacts",
            "get_contact",
            "list_companies",
            "get_company",
            "add_internal_note"
        ]
    );
    for tool in &tools {
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
        assert_eq!(
            read_only,
            Some(tool.name != "add_internal_note"),
            "{}",
            tool.name
        );
        assert_eq!(tool.input_schema["type"], "object");
    }
    assert_eq!(
        tools[3].input_schema["required"],
        json!(["conversation_id"])
    );
    assert!(fake.stats("tok-acme").list_tools >= 3);
    fake.shutdown().await;
}

#[tokio::test]
async fn bad_calls_get_intercoms_errors() {
    let fake = fake(false).await;
    let client = connect(&fake, "tok-acme", true).await;
    assert_eq!(
        tool_error(&client, "search_contacts", json!({"per_page": 5})).await,
        "At least one search parameter must be provided"
    );
    assert_eq!(
        tool_error(&client, "search_conversations", json!({})).await,
        "At least one search parameter must be provided"
    );
    assert_eq!(
        tool_error(&client, "search", json!({"query": "state:open"})).await,
        "Must specify object_type:conversations or object_type:contacts"
    );
    assert!(
        tool_error(
            &client,
            "search",
            json!({"query": "object_type:contacts shoe_size:42"})
        )
        .await
        .starts_with("Unknown field 'shoe_size'")
    );
    assert!(
        tool_error(
            &client,
            "search",
            json!({"query": "object_type:contacts name:like:Ada"})
        )
        .await
        .starts_with("Unknown operator 'like'")
    );
    assert_eq!(
        tool_error(
            &client,
            "get_conversation",
            json!({"conversation_id": "conversation_42"})
        )
        .await,
        "Conversation not found: 42"
    );
    let msg = invalid_params(
        call(
            &client,
            "search_contacts",
            json!({"name": "a", "per_page": "5"}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        msg.contains("'per_page'") && msg.contains("integer"),
        "{msg}"
    );
    let msg = invalid_params(
        call(&client, "get_contact", json!({"id": "x"}))
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("'id'"), "{msg}");
    let msg = invalid_params(call(&client, "get_contact", json!({})).await.unwrap_err());
    assert!(msg.contains("'contact_id'"), "{msg}");
    assert_eq!(
        invalid_params(
            call(&client, "delete_everything", json!({}))
                .await
                .unwrap_err()
        ),
        "Unknown tool: delete_everything"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn unknown_and_revoked_tokens_get_intercoms_401() {
    let fake = fake(false).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for token in [None, Some("nope")] {
        let mut request = http
            .post(fake.mcp_url())
            .header("accept", ACCEPT)
            .json(&init);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], WWW_AUTHENTICATE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"type": "error.list", "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]})
        );
    }
    let client = connect(&fake, "tok-acme", true).await;
    fake.revoke_token("tok-acme");
    match call(&client, "list_companies", json!({}))
        .await
        .unwrap_err()
    {
        ServiceError::TransportSend(e) => {
            let e = e
                .error
                .downcast_ref::<StreamableHttpError<reqwest::Error>>();
            assert!(
                matches!(e, Some(StreamableHttpError::AuthRequired(_))),
                "{e:?}"
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let me = http
        .get(format!("{}/me", fake.base_url()))
        .bearer_auth("tok-acme")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    fake.shutdown().await;
}

#[tokio::test]
async fn expired_sessions_answer_404_and_rmcp_can_reinitialize() {
    let fake = fake(false).await;
    let strict = connect(&fake, "tok-acme", false).await;
    ok_json(&strict, "list_companies", json!({})).await;
    assert_eq!(fake.expire_sessions().await, 1);
    assert_eq!(
        http_error(
            call(&strict, "list_companies", json!({}))
                .await
                .unwrap_err()
        ),
        "expired"
    );

    let lenient = connect(&fake, "tok-globex", true).await;
    fake.expire_sessions().await;
    ok_json(&lenient, "list_companies", json!({})).await;
    let stats = fake.stats("tok-globex");
    assert_eq!((stats.initializes, stats.tool_calls), (2, 2), "{stats:?}");
    fake.shutdown().await;
}

#[tokio::test]
async fn injected_faults_answer_tool_calls_of_the_matching_token() {
    let fake = fake(false).await;
    let client = connect(&fake, "tok-acme", true).await;
    fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(7),
        token: Some("tok-acme".into()),
    });
    fake.inject_fault(Fault {
        status: 503,
        count: 1,
        retry_after_secs: None,
        token: Some("tok-globex".into()),
    });
    assert_eq!(
        http_error(
            call(&client, "list_companies", json!({}))
                .await
                .unwrap_err()
        ),
        "429 Some(\"7\")"
    );
    ok_json(&client, "list_companies", json!({})).await;
    let other = connect(&fake, "tok-globex", true).await;
    assert_eq!(
        http_error(call(&other, "list_companies", json!({})).await.unwrap_err()),
        "503 None"
    );
    assert_eq!(fake.stats("tok-acme").tool_calls, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn stats_count_the_wire_per_token() {
    let fake = fake(false).await;
    fake.set_latency(Duration::from_millis(150));
    let client = connect(&fake, "tok-acme", true).await;
    let calls = (0..3).map(|_| call(&client, "list_companies", json!({})));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    ok_json(&client, "get_company", json!({"company_id": "acme-labs"})).await;
    client.cancel().await.unwrap();
    let stats = fake.stats("tok-acme");
    assert_eq!(
        (
            stats.initializes,
            stats.initialized_notifications,
            stats.tool_calls,
            stats.deletes
        ),
        (1, 1, 4, 1),
        "{stats:?}"
    );
    assert_eq!(stats.calls_by_tool["list_companies"], 3);
    assert_eq!(stats.max_in_flight_calls, 3);
    assert!(stats.requests >= 7);
    assert_eq!(fake.stats("tok-globex"), Default::default());
    fake.shutdown().await;
}

/// A raw session: returns the session id after initialize + initialized.
async fn raw_session(http: &reqwest::Client, fake: &FakeIntercom) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let response = http
        .post(fake.mcp_url())
        .bearer_auth("tok-acme")
        .header("accept", ACCEPT)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("\"protocolVersion\":\"2025-06-18\"")
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = http
        .post(fake.mcp_url())
        .bearer_auth("tok-acme")
        .header("accept", ACCEPT)
        .header("mcp-session-id", &session)
        .json(&initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    session
}

#[tokio::test]
async fn sse_answers_carry_progress_and_json_mode_answers_json() {
    for json_response in [false, true] {
        let fake = fake(json_response).await;
        let http = reqwest::Client::new();
        let session = raw_session(&http, &fake).await;
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_companies", "arguments": {}, "_meta": {"progressToken": "p1"}}});
        let response = http
            .post(fake.mcp_url())
            .bearer_auth("tok-acme")
            .header("accept", ACCEPT)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
            .await
            .unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        if json_response {
            assert_eq!(content_type, "application/json");
            let message: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(message["id"], 2);
            assert!(
                message["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("acme Retail")
            );
        } else {
            assert!(content_type.starts_with("text/event-stream"));
            assert_eq!(text.matches("notifications/progress").count(), 2, "{text}");
            assert!(text.find("notifications/progress") < text.find("\"result\""));
        }
        assert_eq!(fake.sessions_with_multiple_tokens(), 0);
        let borrowed = http
            .post(fake.mcp_url())
            .bearer_auth("tok-globex")
            .header("accept", ACCEPT)
            .header("mcp-session-id", &session)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(borrowed.status(), 200);
        assert_eq!(
            fake.sessions_with_multiple_tokens(),
            1,
            "one session, two tokens: detected"
        );
        let response = http
            .delete(fake.mcp_url())
            .bearer_auth("tok-acme")
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let response = http
            .post(fake.mcp_url())
            .bearer_auth("tok-acme")
            .header("accept", ACCEPT)
            .header("mcp-session-id", &session)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "a deleted session is gone");
        assert_eq!(fake.stats("tok-acme").deletes, 1);
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn oauth_discovery_code_exchange_me_and_uninstall() {
    let fake = fake(false).await;
    let http = reqwest::Client::new();
    let base = fake.base_url();
    let metadata: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], base.as_str());
    assert_eq!(metadata["token_endpoint"], format!("{base}/token"));
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        assert_eq!(
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }

    fake.add_workspace("tok-initech", "initech");
    fake.add_oauth_code("code-1", "tok-initech");
    let form = "code=code-1&client_id=app&client_secret=s3cret";
    let exchange = || {
        http.post(format!("{base}/auth/eagle/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let token: Value = exchange().await.unwrap().json().await.unwrap();
    assert_eq!(
        token,
        json!({"token": "tok-initech", "access_token": "tok-initech", "token_type": "Bearer"})
    );
    assert_eq!(
        exchange().await.unwrap().status(),
        400,
        "codes are single-use"
    );

    let me: Value = http
        .get(format!("{base}/me"))
        .bearer_auth("tok-initech")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["app"]["name"], "initech");
    let id_code = me["app"]["id_code"].as_str().unwrap();
    assert_eq!(id_code.len(), 8);
    let uninstall = http
        .post(format!("{base}/auth/uninstall"))
        .bearer_auth("tok-initech")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(uninstall.status(), 200);
    assert_eq!(
        http.get(format!("{base}/me"))
            .bearer_auth("tok-initech")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn knob_routes_drive_the_standalone_fake() {
    let fake = fake(false).await;
    let http = reqwest::Client::new();
    let base = fake.base_url();
    let added = http
        .post(format!("{base}/_fake/workspaces"))
        .json(&json!({"token": "tok-umbrella", "workspace": "umbrella"}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    http.put(format!("{base}/_fake/latency"))
        .json(&json!({"ms": 0}))
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/_fake/faults"))
        .json(&json!({"status": 500, "count": 1}))
        .send()
        .await
        .unwrap();
    let client = connect(&fake, "tok-umbrella", true).await;
    assert_eq!(
        http_error(
            call(&client, "list_companies", json!({}))
                .await
                .unwrap_err()
        ),
        "500 None"
    );
    let companies = ok_json(&client, "list_companies", json!({})).await;
    assert!(companies.to_string().contains("umbrella"));
    let expired: Value = http
        .post(format!("{base}/_fake/expire-sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired["expired"], 1);
    let stats: Value = http
        .get(format!("{base}/_fake/stats?token=tok-umbrella"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tool_calls"], 2);
    assert_eq!(stats["sessions_with_multiple_tokens"], 0);
    http.post(format!("{base}/_fake/revoke"))
        .json(&json!({"token": "tok-umbrella"}))
        .send()
        .await
        .unwrap();
    assert!(call(&client, "list_companies", json!({})).await.is_err());
    fake.shutdown().await;
}
