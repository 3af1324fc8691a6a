//! Both MCP generations through the gateway: session-based (≤ 2025-11-25) and stateless
//! (2026-07-28), `GATEWAY_UPSTREAM_PROTOCOL` = auto/session/stateless, what each tenant
//! recorded, and the faults that must map the same way in stateless mode.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::{FakeOptions, FakeProtocol, Fault, TokenStats};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, assert_problem, intercom_token, spawn_app_with};

const CONVERSATIONS: &str = "/v1/tenants/acme/conversations?state=open";

fn fake(protocol: FakeProtocol, json_response: bool) -> FakeOptions {
    FakeOptions {
        protocol,
        json_response,
        ..FakeOptions::default()
    }
}

/// `GET /v1/tenants/{tenant}/sessions` as the admin sees it.
async fn sessions(app: &TestApp, tenant: &str) -> Value {
    let res = app
        .get(&format!("/v1/tenants/{tenant}/sessions"), &admin())
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Asserts the tenant's recorded negotiation (`protocol`) and that every listed session is in
/// that mode, with an id hash exactly when it has a session id; returns how many are listed.
fn assert_negotiated(body: &Value, setting: &str, mode: &str, version: &str) -> usize {
    assert_eq!(
        body["protocol"],
        json!({"setting": setting, "mode": mode, "version": version}),
        "{body}"
    );
    let listed = body["sessions"].as_array().unwrap();
    for x in listed {
        assert_eq!(x["mode"], mode, "{body}");
        assert_eq!(x["protocol_version"], version, "{body}");
        assert_eq!(x["id_hash"].is_string(), mode == "session", "{body}");
    }
    listed.len()
}

fn stats(app: &TestApp, tenant: &str) -> TokenStats {
    app.fake.stats(&intercom_token(tenant))
}

/// A typed call, the tool list and a generic write against a stateless upstream.
async fn stateless_calls_work(app: &TestApp, json_response: bool) {
    let acme = app.add_tenant("acme").await;
    let res = app.get(CONVERSATIONS, &acme).await;
    assert_eq!(res.status(), 200);
    let convs: Value = res.json().await.unwrap();
    let id = convs["conversations"][0]["id"]
        .as_str()
        .expect("a conversation id")
        .to_owned();

    let tools: Value = app
        .get("/v1/tenants/acme/tools", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        tools["tools"].as_array().unwrap().len() >= 6,
        "every page of tools/list: {tools}"
    );

    // A contact search answers with structuredContent, the others with text: both paths.
    let res = app.get("/v1/tenants/acme/contacts?name=a", &acme).await;
    assert_eq!(res.status(), 200);

    let note = json!({"arguments": {"conversation_id": id, "body": "stateless note"}});
    let res = app
        .post(
            "/v1/tenants/acme/tools/add_internal_note/calls",
            &acme,
            note,
        )
        .await;
    assert_eq!(res.status(), 200);

    let s = stats(app, "acme");
    assert_eq!(
        s.initializes, 0,
        "no initialize to a stateless upstream: {s:?}"
    );
    assert_eq!(
        s.discovers, 1,
        "one server/discover opened the channel: {s:?}"
    );
    assert_eq!(s.tool_calls, 3);
    assert_eq!(
        s.list_tools, 3,
        "9 tools in pages of 4, fetched once: {s:?}"
    );
    // SSE answers carried two progress notifications before each result, which the gateway
    // skipped; JSON answers have no room for them.
    let progress = if json_response { 0 } else { 6 };
    assert_eq!(s.progress_notifications, progress, "{s:?}");

    let body = sessions(app, "acme").await;
    assert_eq!(
        assert_negotiated(&body, "stateless", "stateless", "2026-07-28"),
        1
    );
    assert_eq!(
        body["sessions"][0]["calls"], 4,
        "tools/list + 3 calls on one channel"
    );

    // Shutting down closes the channel without any DELETE: there is no session to end.
    app.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while !app.server.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(stats(app, "acme").deletes, 0);
}

#[sqlx::test(migrations = false)]
async fn a_stateless_upstream_serves_calls_and_tool_lists_over_sse(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Stateless, false);
    let app = spawn_app_with(db, opts, &["--upstream-protocol", "stateless"]).await;
    stateless_calls_work(&app, false).await;
}

#[sqlx::test(migrations = false)]
async fn a_stateless_upstream_serves_calls_and_tool_lists_over_json(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Stateless, true);
    let app = spawn_app_with(db, opts, &["--upstream-protocol", "stateless"]).await;
    stateless_calls_work(&app, true).await;
}

/// Three calls at once with one call per session: the pool opens three sessions, and the
/// `sessions` route shows what the tenant negotiated.
async fn negotiate_three_sessions(app: &TestApp) -> Value {
    let acme = app.add_tenant("acme").await;
    // Warm the catalog first, so the three calls below are the only ones competing.
    assert_eq!(app.get("/v1/tenants/acme/tools", &acme).await.status(), 200);
    app.fake.set_latency(Duration::from_millis(300));
    let calls = (0..3).map(|_| app.get(CONVERSATIONS, &acme));
    for res in futures::future::join_all(calls).await {
        assert_eq!(res.status(), 200);
    }
    sessions(app, "acme").await
}

const ONE_CALL_PER_SESSION: &[&str] = &["--pool-session-max-in-flight", "1"];

#[sqlx::test(migrations = false)]
async fn auto_negotiation_finds_a_stateless_only_upstream_without_any_initialize(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Stateless, false);
    let app = spawn_app_with(db, opts, ONE_CALL_PER_SESSION).await;
    let body = negotiate_three_sessions(&app).await;
    assert_eq!(
        assert_negotiated(&body, "auto", "stateless", "2026-07-28"),
        3
    );
    let s = stats(&app, "acme");
    assert_eq!(s.initializes, 0, "{s:?}");
    // The probe opened the first channel; the other two went straight to discover.
    assert_eq!(s.discovers, 3, "{s:?}");
}

#[sqlx::test(migrations = false)]
async fn auto_negotiation_falls_back_to_sessions_and_probes_a_session_only_upstream_once(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Session, false);
    let app = spawn_app_with(db, opts, ONE_CALL_PER_SESSION).await;
    let body = negotiate_three_sessions(&app).await;
    assert_eq!(assert_negotiated(&body, "auto", "session", "2025-11-25"), 3);
    let s = stats(&app, "acme");
    // One refused probe; the era is remembered, so later sessions initialize directly.
    assert_eq!(s.discovers, 1, "{s:?}");
    assert_eq!(s.initializes, 3, "{s:?}");
}

#[sqlx::test(migrations = false)]
async fn auto_negotiation_prefers_the_stateless_revision_of_a_dual_era_upstream(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Both, false);
    let app = spawn_app_with(db, opts, &[]).await;
    let acme = app.add_tenant("acme").await;
    assert_eq!(app.get(CONVERSATIONS, &acme).await.status(), 200);
    let body = sessions(&app, "acme").await;
    assert_eq!(
        assert_negotiated(&body, "auto", "stateless", "2026-07-28"),
        1
    );
    let s = stats(&app, "acme");
    assert_eq!((s.discovers, s.initializes), (1, 0), "{s:?}");
}

#[sqlx::test(migrations = false)]
async fn session_mode_initializes_a_dual_era_upstream_at_2025_11_25(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Both, false);
    let app = spawn_app_with(db, opts, &["--upstream-protocol", "session"]).await;
    let acme = app.add_tenant("acme").await;
    assert_eq!(app.get(CONVERSATIONS, &acme).await.status(), 200);
    let body = sessions(&app, "acme").await;
    assert_eq!(
        assert_negotiated(&body, "session", "session", "2025-11-25"),
        1
    );
    let s = stats(&app, "acme");
    assert_eq!((s.discovers, s.initializes), (0, 1), "{s:?}");
}

#[sqlx::test(migrations = false)]
async fn stateless_mode_against_a_session_only_upstream_fails_with_a_clear_502(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Session, false);
    let app = spawn_app_with(db, opts, &["--upstream-protocol", "stateless"]).await;
    let acme = app.add_tenant("acme").await;
    let body = assert_problem(app.get(CONVERSATIONS, &acme).await, 502, "upstream_error").await;
    assert!(
        body["detail"].as_str().unwrap().contains("2026-07-28"),
        "{body}"
    );
    let s = stats(&app, "acme");
    assert_eq!((s.discovers, s.initializes), (1, 0), "{s:?}");
    assert!(sessions(&app, "acme").await["protocol"].is_null());
}

/// A read whose answer breaks off is re-issued once; a write is not (it may have run).
async fn broken_streams_are_reissued_for_reads_only(app: &TestApp) {
    let acme = app.add_tenant("acme").await;
    let convs: Value = app.get(CONVERSATIONS, &acme).await.json().await.unwrap();
    let id = convs["conversations"][0]["id"].as_str().unwrap().to_owned();
    let before = stats(app, "acme").tool_calls;

    app.fake.break_streams(1, None);
    let res = app.get(CONVERSATIONS, &acme).await;
    assert_eq!(res.status(), 200, "the read was re-issued");
    let s = stats(app, "acme");
    assert_eq!(s.broken_streams, 1);
    assert_eq!(s.tool_calls - before, 2, "{s:?}");

    // Re-issued once only.
    app.fake.break_streams(2, None);
    assert_problem(app.get(CONVERSATIONS, &acme).await, 502, "upstream_error").await;
    assert_eq!(stats(app, "acme").tool_calls - before, 4);

    app.fake.break_streams(1, None);
    let note = json!({"arguments": {"conversation_id": id, "body": "exactly once"}});
    let body = assert_problem(
        app.post(
            "/v1/tenants/acme/tools/add_internal_note/calls",
            &acme,
            note,
        )
        .await,
        502,
        "upstream_error",
    )
    .await;
    assert!(body["detail"].is_string(), "{body}");
    let s = stats(app, "acme");
    assert_eq!(s.calls_by_tool.get("add_internal_note"), Some(&1), "{s:?}");
    assert_eq!(s.tool_calls - before, 5);
    assert_eq!(s.broken_streams, 4);
}

#[sqlx::test(migrations = false)]
async fn a_broken_sse_stream_is_reissued_once_for_reads_and_never_for_writes(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, fake(FakeProtocol::Stateless, false), &[]).await;
    broken_streams_are_reissued_for_reads_only(&app).await;
}

#[sqlx::test(migrations = false)]
async fn a_broken_json_answer_is_reissued_once_for_reads_and_never_for_writes(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, fake(FakeProtocol::Stateless, true), &[]).await;
    broken_streams_are_reissued_for_reads_only(&app).await;
}

#[sqlx::test(migrations = false)]
async fn a_slow_stateless_call_is_a_504_and_closing_its_stream_cancels_it_upstream(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = fake(FakeProtocol::Stateless, false);
    let app = spawn_app_with(db, opts, &["--upstream-timeout", "500ms"]).await;
    let acme = app.add_tenant("acme").await;
    assert_eq!(app.get("/v1/tenants/acme/tools", &acme).await.status(), 200);
    app.fake.set_latency(Duration::from_secs(5));
    assert_problem(app.get(CONVERSATIONS, &acme).await, 504, "upstream_timeout").await;
    // No `notifications/cancelled` in 2026-07-28: the closed response stream is the signal.
    let cancelled = async {
        while stats(&app, "acme").cancelled_calls == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(4), cancelled)
        .await
        .expect("the fake saw the call cancelled before its latency ran out");
}

#[sqlx::test(migrations = false)]
async fn upstream_401_and_429_map_the_same_in_stateless_mode(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, fake(FakeProtocol::Stateless, false), &[]).await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;
    assert_eq!(app.get(CONVERSATIONS, &acme).await.status(), 200);

    app.fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(1),
        token: Some(intercom_token("acme")),
    });
    let res = app.get(CONVERSATIONS, &acme).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 429, "upstream_rate_limited").await;
    // Held back locally until the Retry-After has passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get(CONVERSATIONS, &acme).await.status(), 200);

    // Intercom revokes both tokens: acme's 401 arrives on its open stateless channel,
    // globex's on the `server/discover` of its very first call.
    app.fake.revoke_token(&intercom_token("acme"));
    app.fake.revoke_token(&intercom_token("globex"));
    for (tenant, token) in [("acme", &acme), ("globex", &globex)] {
        let path = format!("/v1/tenants/{tenant}/conversations?state=open");
        assert_problem(app.get(&path, token).await, 409, "intercom_reauth_required").await;
        let meta: Value = app
            .get(
                &format!("/v1/tenants/{tenant}/intercom/credential"),
                &admin(),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(meta["status"], "rejected", "{tenant}: {meta}");
    }
    // One request (the discover, answered 401 before the fake counts methods); no initialize.
    let s = stats(&app, "globex");
    assert_eq!(
        (s.requests, s.initializes, s.tool_calls),
        (1, 0, 0),
        "{s:?}"
    );
    // No more upstream traffic for a rejected credential.
    let before = stats(&app, "globex").requests;
    assert_problem(
        app.get("/v1/tenants/globex/conversations?state=open", &globex)
            .await,
        409,
        "intercom_reauth_required",
    )
    .await;
    assert_eq!(stats(&app, "globex").requests, before);
}
