//! Upstream sessions: shared initialize, reuse, no database on the hot path, upstream faults.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::{FakeOptions, Fault};
use reqwest::Method;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{admin, assert_problem, intercom_token, spawn_app, spawn_app_with};

#[sqlx::test(migrations = false)]
async fn concurrent_first_calls_share_one_initialize(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    // 16 = the calls one session carries before the pool opens another.
    let calls = (0..16).map(|_| app.get("/v1/tenants/acme/conversations?state=open", &token));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.status() == 200));
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 1, "{stats:?}");
    assert_eq!(stats.tool_calls, 16);
}

#[sqlx::test(migrations = false)]
async fn a_steady_stream_of_calls_reuses_the_session_and_never_touches_the_database(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/contacts?name=a", &token)
            .await
            .status(),
        200
    );
    let before = app.checkouts.get();
    let started = std::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(
            app.get("/v1/tenants/acme/contacts?name=a", &token)
                .await
                .status(),
            200
        );
    }
    // The only database work is the usage writer's batched insert, at most once a second.
    let flushes_allowed = started.elapsed().as_secs() + 2;
    let checkouts = app.checkouts.get() - before;
    assert!(
        checkouts <= flushes_allowed,
        "{checkouts} database checkouts during 200 calls (allowed: {flushes_allowed} batch flushes)"
    );
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 1);
    assert_eq!(stats.tool_calls, 201);
}

#[sqlx::test(migrations = false)]
async fn json_answers_work_as_well_as_sse(_: PgPoolOptions, db: PgConnectOptions) {
    let opts = FakeOptions {
        json_response: true,
        ..Default::default()
    };
    let app = spawn_app_with(db, opts, &[]).await;
    let token = app.add_tenant("acme").await;
    let res = app
        .get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["conversations"].is_array());
}

#[sqlx::test(migrations = false)]
async fn an_expired_upstream_session_is_renewed_without_failing_the_call(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    assert!(app.fake.expire_sessions().await >= 1);
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 2, "{stats:?}");
}

/// The hot path (issue 8): on a ready session a call is POSTed directly (string ids `gw-<n>`),
/// not through rmcp's worker (numeric ids). The call that meets an expired session goes
/// through rmcp, which renews the session and re-sends it; the next call is direct again, on
/// the renewed session.
#[sqlx::test(migrations = false)]
async fn calls_on_a_ready_session_skip_rmcp_and_an_expiry_falls_back_to_it(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let call = || app.get("/v1/tenants/acme/conversations?state=open", &token);
    assert_eq!(call().await.status(), 200);
    assert_eq!(call().await.status(), 200);
    assert!(app.fake.expire_sessions().await >= 1);
    assert_eq!(call().await.status(), 200);
    assert_eq!(call().await.status(), 200);
    let upstream = intercom_token("acme");
    let ids = app.fake.tool_call_ids(&upstream);
    // The fake records every POSTed id, also those its expired session answered 404.
    let direct = |id: &Value| id.as_str().is_some_and(|s| s.starts_with("gw-"));
    assert!(ids.len() >= 5, "{ids:?}");
    assert!(direct(&ids[1]) && direct(&ids[2]), "{ids:?}");
    assert!(
        ids[3..ids.len() - 1].iter().all(Value::is_number),
        "{ids:?}"
    );
    assert!(direct(&ids[ids.len() - 1]), "{ids:?}");
    let stats = app.fake.stats(&upstream);
    assert_eq!(stats.initializes, 2, "{stats:?}");
    assert_eq!(stats.tool_calls, ids.len() as u64, "{stats:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_upstream_session_events_total{event="expired"} 1"#)
            && metrics
                .contains(r#"gateway_upstream_session_events_total{event="reinitialized"} 1"#),
        "{metrics}"
    );
}

#[sqlx::test(migrations = false)]
async fn intercom_401_marks_the_credential_rejected_and_stops_upstream_traffic(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.revoke_token(&intercom_token("acme"));
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await,
        409,
        "intercom_reauth_required",
    )
    .await;
    let meta: Value = app
        .get("/v1/tenants/acme/intercom/credential", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["status"], "rejected");
    assert!(meta["rejected_at"].is_string());
    let before = app.fake.stats(&intercom_token("acme")).requests;
    for _ in 0..5 {
        assert_problem(
            app.get("/v1/tenants/acme/conversations?state=open", &token)
                .await,
            409,
            "intercom_reauth_required",
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = app.fake.stats(&intercom_token("acme")).requests;
    assert!(
        after - before <= 1,
        "no upstream traffic after the 401 (a final DELETE at most): {before} → {after}"
    );

    // A new token brings the tenant back.
    app.fake
        .add_workspace("itk_live_acme_fresh_0000000", "acme");
    let res = app
        .request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            Some(serde_json::json!({"access_token": "itk_live_acme_fresh_0000000"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
}

#[sqlx::test(migrations = false)]
async fn intercom_429_is_passed_on_with_its_retry_after(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(7),
        token: None,
    });
    let res = app
        .get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    assert_eq!(res.headers()["retry-after"], "7");
    assert_problem(res, 429, "upstream_rate_limited").await;
}

#[sqlx::test(migrations = false)]
async fn a_read_only_call_is_retried_once_after_a_5xx(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.inject_fault(Fault {
        status: 503,
        count: 1,
        retry_after_secs: None,
        token: None,
    });
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    app.fake.inject_fault(Fault {
        status: 500,
        count: 2,
        retry_after_secs: None,
        token: None,
    });
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await,
        502,
        "upstream_error",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_slow_upstream_is_a_504(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(db, Default::default(), &["--upstream-timeout", "300ms"]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_secs(2));
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await,
        504,
        "upstream_timeout",
    )
    .await;
    // The gateway told Intercom to stop working on it (MCP cancellation utility): one
    // `notifications/cancelled` naming exactly the request that timed out.
    let upstream = intercom_token("acme");
    let calls = app.fake.tool_call_ids(&upstream);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.fake.cancellations(&upstream).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.fake.cancellations(&upstream), calls);
}

#[sqlx::test(migrations = false)]
async fn shutdown_stops_accepting_finishes_calls_in_flight_and_deletes_every_session(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    // Two calls per session: acme's four concurrent calls need two sessions.
    let app = spawn_app_with(
        db,
        Default::default(),
        &["--pool-session-max-in-flight", "2"],
    )
    .await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;
    let fake = app.fake.clone();
    fake.set_latency(Duration::from_millis(1500));
    let (acme_path, globex_path) = (
        "/v1/tenants/acme/contacts?name=a",
        "/v1/tenants/globex/contacts?name=a",
    );
    let calls = futures::future::join_all(
        [
            (acme_path, &acme),
            (acme_path, &acme),
            (acme_path, &acme),
            (acme_path, &acme),
            (globex_path, &globex),
        ]
        .map(|(path, token)| app.get(path, token)),
    );
    let stop = async {
        // Every call has reached Intercom and is being worked on.
        let reached = |t: &str| fake.stats(&intercom_token(t)).tool_calls;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (reached("acme") < 4 || reached("globex") < 1) && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.shutdown.cancel();
        // New connections are refused while those calls are still running.
        let fresh = reqwest::Client::new();
        let url = format!("{}/healthz", app.base);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if fresh.get(&url).send().await.is_err() {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (results, refused) = tokio::join!(calls, stop);
    assert!(
        refused,
        "the gateway kept accepting connections after shutdown began"
    );
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200; 5], "calls in flight finish");
    tokio::time::timeout(Duration::from_secs(30), app.server)
        .await
        .expect("the gateway stops within its deadline")
        .unwrap()
        .unwrap();
    // Every upstream session, each exactly once.
    let deletes = fake.deletes_by_session();
    for (tenant, sessions) in [("acme", 2), ("globex", 1)] {
        let ids = fake.sessions_of(&intercom_token(tenant));
        assert_eq!(ids.len(), sessions, "{tenant}: {ids:?}");
        for id in ids {
            assert_eq!(
                deletes.get(&id),
                Some(&1),
                "{tenant} session {id}: {deletes:?}"
            );
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_tool_list_changed_notification_refreshes_the_tenant_catalog(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    // The notification comes on the session's standalone GET stream, held only when asked.
    let app = spawn_app_with(db, FakeOptions::default(), &["--upstream-listen", "true"]).await;
    let token = app.add_tenant("acme").await;
    let upstream = intercom_token("acme");
    let names = || async {
        let v: Value = app
            .get("/v1/tenants/acme/tools", &token)
            .await
            .json()
            .await
            .unwrap();
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect::<Vec<String>>()
    };
    let listed = names().await;
    assert!(!listed.contains(&"list_tags".to_owned()), "{listed:?}");

    // Changed without a notification: the cached catalog is served, Intercom is not asked.
    app.fake.add_tool(&upstream, "list_tags", false).await;
    let lists = app.fake.stats(&upstream).list_tools;
    let listed = names().await;
    assert!(!listed.contains(&"list_tags".to_owned()), "{listed:?}");
    assert_eq!(app.fake.stats(&upstream).list_tools, lists);

    // With `notifications/tools/list_changed` on the session's stream, the next read refetches.
    assert_eq!(app.fake.add_tool(&upstream, "list_macros", true).await, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = names().await;
        if listed.contains(&"list_macros".to_owned()) || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        listed.contains(&"list_tags".to_owned()) && listed.contains(&"list_macros".to_owned()),
        "{listed:?}"
    );
    assert!(app.fake.stats(&upstream).list_tools > lists);
    assert!(app.fake.stats(&upstream).listens >= 1);
}

#[sqlx::test(migrations = false)]
async fn sessions_hold_no_standalone_stream_unless_asked(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/tenants/acme/conversations?state=open", &token)
                .await
                .status(),
            200
        );
    }
    let stats = app.fake.stats(&intercom_token("acme"));
    assert!(stats.initializes >= 1);
    assert_eq!(
        stats.listens, 0,
        "no upstream connection held per idle session"
    );
}

#[sqlx::test(migrations = false)]
async fn shutdown_deletes_every_upstream_session(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;
    assert_eq!(app.get("/v1/tenants/acme/tools", &acme).await.status(), 200);
    assert_eq!(
        app.get("/v1/tenants/globex/tools", &globex).await.status(),
        200
    );
    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    assert_eq!(app.fake.stats(&intercom_token("acme")).deletes, 1);
    assert_eq!(app.fake.stats(&intercom_token("globex")).deletes, 1);
}

/// The acme tenant's open conversations (a call that also opens the tenant's session).
async fn open_conversations(app: &crate::helpers::TestApp, token: &str) -> Value {
    app.get("/v1/tenants/acme/conversations?state=open", token)
        .await
        .json()
        .await
        .unwrap()
}

/// Whether the tenant's only session is parked, per the sessions API.
async fn parked(app: &crate::helpers::TestApp, tenant: &str) -> bool {
    let res = app
        .get(&format!("/v1/tenants/{tenant}/sessions"), &admin())
        .await;
    let body: Value = res.json().await.unwrap();
    body["sessions"][0]["parked"] == true
}

async fn wait_parked(app: &crate::helpers::TestApp, tenant: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !parked(app, tenant).await {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Idle sessions are parked (issue 8: rmcp's worker is most of an idle session's memory): the
/// worker stops, the session stays open upstream, and calls and the closing `DELETE` reach it
/// directly. A parked session found expired is replaced, and the call, which provably did not
/// run, runs on the new one: a write too, exactly once.
#[sqlx::test(migrations = false)]
async fn an_idle_session_is_parked_and_keeps_serving_until_it_expires(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, Default::default(), &["--pool-park-after", "100ms"]).await;
    let token = app.add_tenant("acme").await;
    let upstream = intercom_token("acme");
    let convs = open_conversations(&app, &token).await;
    wait_parked(&app, "acme").await;
    // Parking sent no DELETE: the same session serves the next call.
    let res = app
        .get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    assert_eq!(res.status(), 200);
    let stats = app.fake.stats(&upstream);
    assert_eq!((stats.initializes, stats.deletes), (1, 0), "{stats:?}");
    assert_eq!(app.fake.sessions_of(&upstream).len(), 1);

    wait_parked(&app, "acme").await;
    assert!(app.fake.expire_sessions().await >= 1);
    let id = convs["conversations"][0]["id"].as_str().unwrap();
    let writer = crate::helpers::mint("writer", Some("acme"), "intercom:write");
    let res = app
        .post(
            "/v1/tenants/acme/tools/add_internal_note/calls",
            &writer,
            serde_json::json!({"arguments": {"conversation_id": id, "body": "after parking"}}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let stats = app.fake.stats(&upstream);
    assert_eq!(stats.initializes, 2, "{stats:?}");
    // Two POSTs (the fake counts the one its dropped session answered 404), one note.
    assert_eq!(stats.calls_by_tool.get("add_internal_note"), Some(&2));
    let conversation = app
        .get(&format!("/v1/tenants/acme/conversations/{id}"), &token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        conversation.matches("after parking").count(),
        1,
        "{conversation}"
    );
    let metrics = app.metrics().await;
    for event in ["expired", "reinitialized"] {
        let line = format!(r#"gateway_upstream_session_events_total{{event="{event}"}} 1"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    // The replacement parks too, and shutdown DELETEs it itself.
    wait_parked(&app, "acme").await;
    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    let stats = app.fake.stats(&upstream);
    assert_eq!(stats.deletes, 1, "{stats:?}");
}

/// A write whose session the server drops while it runs may have run: it is never sent again,
/// however the loss shows (its answer stream ends; resuming that stream meets a 404).
#[sqlx::test(migrations = false)]
async fn a_write_whose_session_ends_mid_call_is_not_sent_again(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let upstream = intercom_token("acme");
    let convs = open_conversations(&app, &token).await;
    let id = convs["conversations"][0]["id"].as_str().unwrap();
    app.fake.set_latency(Duration::from_millis(800));
    let writer = crate::helpers::mint("writer", Some("acme"), "intercom:write");
    let write = app.post(
        "/v1/tenants/acme/tools/add_internal_note/calls",
        &writer,
        serde_json::json!({"arguments": {"conversation_id": id, "body": "mid-call"}}),
    );
    let expire = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.fake.expire_sessions().await
    };
    let (res, expired) = tokio::join!(write, expire);
    assert!(expired >= 1);
    assert_ne!(
        res.status(),
        200,
        "the session ended before the note was written"
    );
    let stats = app.fake.stats(&upstream);
    assert_eq!(
        stats.calls_by_tool.get("add_internal_note"),
        Some(&1),
        "{stats:?}"
    );
}

/// What one tenant's first session learned about the upstream (session-based, 2025-11-25) holds
/// for every tenant on the same URL: the next tenant's session opens with `initialize` straight
/// away (no `server/discover` probe) and without an rmcp worker (issue 8: born parked). It
/// serves calls, is replaced when Intercom drops it (the write that met the 404 runs once), and
/// a revoked token is refused at its `initialize` as it would be through rmcp.
#[sqlx::test(migrations = false)]
async fn once_the_upstream_is_known_sessions_open_directly_for_every_tenant(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    sessions_open_directly(db, FakeOptions::default()).await;
}

/// The same with answers as JSON bodies instead of SSE streams (both are allowed; the handshake
/// reads either).
#[sqlx::test(migrations = false)]
async fn sessions_open_directly_when_the_upstream_answers_in_json(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let opts = FakeOptions {
        json_response: true,
        ..Default::default()
    };
    sessions_open_directly(db, opts).await;
}

async fn sessions_open_directly(db: PgConnectOptions, fake: FakeOptions) {
    let app = spawn_app_with(db, fake, &[]).await;
    let acme = app.add_tenant("acme").await;
    let beta = app.add_tenant("beta").await;
    let gamma = app.add_tenant("gamma").await;
    let list = async |tenant: &str, token: &str| {
        app.get(
            &format!("/v1/tenants/{tenant}/conversations?state=open"),
            token,
        )
        .await
    };
    assert_eq!(list("acme", &acme).await.status(), 200);
    let first = app.fake.stats(&intercom_token("acme"));
    assert_eq!((first.discovers, first.initializes), (1, 1), "{first:?}");
    assert!(!parked(&app, "acme").await, "rmcp opened the first session");

    let res = list("beta", &beta).await;
    assert_eq!(res.status(), 200);
    let convs: Value = res.json().await.unwrap();
    let stats = app.fake.stats(&intercom_token("beta"));
    assert_eq!(
        (
            stats.discovers,
            stats.initializes,
            stats.initialized_notifications
        ),
        (0, 1, 1),
        "{stats:?}"
    );
    assert!(parked(&app, "beta").await, "opened without an rmcp worker");
    let sessions: Value = app
        .get("/v1/tenants/beta/sessions", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["protocol"]["mode"], "session", "{sessions}");
    assert_eq!(sessions["sessions"][0]["protocol_version"], "2025-11-25");

    // Dropped upstream: the write meets the 404, the session is replaced, the write runs once.
    assert!(app.fake.expire_sessions().await >= 2);
    let id = convs["conversations"][0]["id"].as_str().unwrap();
    let writer = crate::helpers::mint("writer", Some("beta"), "intercom:write");
    let res = app
        .post(
            "/v1/tenants/beta/tools/add_internal_note/calls",
            &writer,
            serde_json::json!({"arguments": {"conversation_id": id, "body": "direct"}}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let stats = app.fake.stats(&intercom_token("beta"));
    assert_eq!((stats.initializes, stats.discovers), (2, 0), "{stats:?}");
    let conversation = app
        .get(&format!("/v1/tenants/beta/conversations/{id}"), &beta)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(conversation.matches("direct").count(), 1, "{conversation}");

    // A revoked token is refused at the direct `initialize`: re-auth, like rmcp's 401.
    app.fake.revoke_token(&intercom_token("gamma"));
    assert_problem(list("gamma", &gamma).await, 409, "intercom_reauth_required").await;
    assert_eq!(app.fake.stats(&intercom_token("gamma")).discovers, 0);

    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    let stats = app.fake.stats(&intercom_token("beta"));
    assert_eq!(
        stats.deletes, 1,
        "shutdown DELETEs the direct session: {stats:?}"
    );
}
