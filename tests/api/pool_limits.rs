//! The pool's limits and upstream-fault handling, each driven through the HTTP API with the
//! fake's knobs: the sessions view, the bounded queue, the circuit breaker, the 429 hold-back,
//! session age and idle close, credential replacement.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::Fault;
use reqwest::Method;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, assert_problem, intercom_token, spawn_app, spawn_app_with};

const CALL: &str = "/v1/tenants/acme/conversations?state=open";

async fn sessions(app: &TestApp, tenant: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/tenants/{tenant}/sessions"), &admin())
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

/// The value of one metric series, 0 when it is absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    app.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn statuses(app: &TestApp, token: &str, n: usize) -> Vec<u16> {
    let calls = (0..n).map(|_| app.get(CALL, token));
    futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_sessions_route_shows_the_live_pool_to_admins_only(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert!(sessions(&app, "acme").await.is_empty());
    for _ in 0..3 {
        assert_eq!(app.get(CALL, &token).await.status(), 200);
    }
    let list = sessions(&app, "acme").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["state"], "ready");
    assert_eq!(s["in_flight"], 0);
    // tools/list (the catalog) and three calls.
    assert_eq!(s["calls"], 4, "{s}");
    assert_eq!(s["id_hash"].as_str().unwrap().len(), 12);
    assert!(s["age_s"].is_u64() && s["idle_s"].is_u64());
    assert_eq!(s["protocol_version"], "2025-11-25");

    assert_problem(
        app.get("/v1/tenants/acme/sessions", &token).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/nobody/sessions", &admin()).await,
        404,
        "tenant_not_found",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_saturated_pool_queues_calls_then_refuses_them_with_503_and_retry_after(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let args = [
        "--pool-max-sessions",
        "1",
        "--pool-session-max-in-flight",
        "2",
        "--pool-queue-timeout",
        "300ms",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_millis(1500));
    let calls = (0..4).map(|_| app.get(CALL, &token));
    let results = futures::future::join_all(calls).await;
    let mut ok = 0;
    for res in results {
        if res.status() == 200 {
            ok += 1;
            continue;
        }
        assert_eq!(res.headers()["retry-after"], "1");
        assert_problem(res, 503, "upstream_unavailable").await;
    }
    assert_eq!(ok, 2, "two calls fit the one session's two slots");
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 1, "{stats:?}");
    assert_eq!(stats.max_in_flight_calls, 2, "{stats:?}");
    assert_eq!(stats.tool_calls, 2, "refused calls never went upstream");
}

#[sqlx::test(migrations = false)]
async fn queued_calls_run_as_soon_as_a_slot_frees_up(_: PgPoolOptions, db: PgConnectOptions) {
    let args = [
        "--pool-max-sessions",
        "1",
        "--pool-session-max-in-flight",
        "2",
        "--pool-queue-timeout",
        "4s",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_millis(150));
    assert!(statuses(&app, &token, 10).await.iter().all(|&s| s == 200));
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 1, "{stats:?}");
    assert_eq!(stats.max_in_flight_calls, 2, "{stats:?}");
}

#[sqlx::test(migrations = false)]
async fn the_pool_grows_only_when_every_session_is_at_its_cap_and_never_past_its_maximum(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let args = [
        "--pool-max-sessions",
        "3",
        "--pool-session-max-in-flight",
        "2",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let token = app.add_tenant("acme").await;
    app.fake.set_latency(Duration::from_millis(300));
    // 2 sequential calls: one session is enough.
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    assert_eq!(app.fake.stats(&intercom_token("acme")).initializes, 1);
    // 12 at once: 3 sessions × 2 slots, the rest queue.
    assert!(statuses(&app, &token, 12).await.iter().all(|&s| s == 200));
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 3, "{stats:?}");
    assert!(stats.max_in_flight_calls <= 6, "{stats:?}");
    assert_eq!(sessions(&app, "acme").await.len(), 3);
    assert_eq!(
        metric(&app, r#"gateway_upstream_sessions{tenant="acme"}"#).await,
        3.0
    );
}

#[sqlx::test(migrations = false)]
async fn consecutive_5xx_open_the_tenants_circuit_and_a_probe_after_the_cooldown_closes_it(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let args = [
        "--circuit-failure-threshold",
        "2",
        "--circuit-cooldown",
        "1s",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;
    assert_eq!(app.get("/v1/tenants/acme/tools", &acme).await.status(), 200);
    // Each read-only call is tried twice: 4 faults = 2 failed calls.
    app.fake.inject_fault(Fault {
        status: 502,
        count: 4,
        retry_after_secs: None,
        token: Some(intercom_token("acme")),
    });
    for _ in 0..2 {
        assert_problem(app.get(CALL, &acme).await, 502, "upstream_error").await;
    }
    let before = app.fake.stats(&intercom_token("acme")).tool_calls;
    let res = app.get(CALL, &acme).await;
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&after), "Retry-After {after}");
    assert_problem(res, 503, "upstream_unavailable").await;
    assert_eq!(app.fake.stats(&intercom_token("acme")).tool_calls, before);
    assert_eq!(
        metric(&app, r#"gateway_circuit_open{tenant="acme"}"#).await,
        1.0
    );
    // Another tenant is not affected.
    assert_eq!(
        app.get("/v1/tenants/globex/conversations?state=open", &globex)
            .await
            .status(),
        200
    );
    assert_eq!(
        metric(&app, r#"gateway_circuit_open{tenant="globex"}"#).await,
        0.0
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get(CALL, &acme).await.status(), 200, "the probe");
    assert_eq!(app.get(CALL, &acme).await.status(), 200);
    assert_eq!(
        metric(&app, r#"gateway_circuit_open{tenant="acme"}"#).await,
        0.0
    );
}

#[sqlx::test(migrations = false)]
async fn an_upstream_429_holds_the_tenants_calls_back_until_its_retry_after(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;
    assert_eq!(app.get("/v1/tenants/acme/tools", &acme).await.status(), 200);
    app.fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(2),
        token: Some(intercom_token("acme")),
    });
    let res = app.get(CALL, &acme).await;
    assert_eq!(res.headers()["retry-after"], "2");
    assert_problem(res, 429, "upstream_rate_limited").await;
    let before = app.fake.stats(&intercom_token("acme")).requests;
    for _ in 0..5 {
        let res = app.get(CALL, &acme).await;
        let after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&after), "Retry-After {after}");
        assert_problem(res, 429, "upstream_rate_limited").await;
    }
    assert_eq!(
        app.fake.stats(&intercom_token("acme")).requests,
        before,
        "held-back calls never reach Intercom"
    );
    assert_eq!(
        app.get("/v1/tenants/globex/conversations?state=open", &globex)
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.get(CALL, &acme).await.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn an_expired_session_is_counted_as_expired_and_reinitialized(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    let hash_before = sessions(&app, "acme").await[0]["id_hash"].clone();
    app.fake.expire_sessions().await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    let events = r#"gateway_upstream_session_events_total{event="#;
    assert_eq!(metric(&app, &format!(r#"{events}"expired"}}"#)).await, 1.0);
    assert_eq!(
        metric(&app, &format!(r#"{events}"reinitialized"}}"#)).await,
        1.0
    );
    assert_eq!(
        metric(&app, &format!(r#"{events}"initialized"}}"#)).await,
        2.0
    );
    let list = sessions(&app, "acme").await;
    assert_eq!(list.len(), 1, "renewed in place, not a second session");
    assert_ne!(list[0]["id_hash"], hash_before);
}

#[sqlx::test(migrations = false)]
async fn a_session_past_its_maximum_age_is_replaced_and_closed(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, Default::default(), &["--pool-max-session-age", "600ms"]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = app.fake.stats(&intercom_token("acme"));
    assert_eq!(stats.initializes, 2, "{stats:?}");
    assert!(
        stats.deletes >= 1,
        "the aged session was DELETEd: {stats:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn idle_sessions_are_closed_with_delete(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(db, Default::default(), &["--pool-idle-timeout", "400ms"]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    assert_eq!(sessions(&app, "acme").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(sessions(&app, "acme").await.is_empty());
    assert_eq!(app.fake.stats(&intercom_token("acme")).deletes, 1);
    assert_eq!(
        metric(&app, r#"gateway_upstream_sessions{tenant="acme"}"#).await,
        0.0
    );
    // The next call simply opens a new one.
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    assert_eq!(app.fake.stats(&intercom_token("acme")).initializes, 2);
}

#[sqlx::test(migrations = false)]
async fn replacing_the_credential_lets_in_flight_calls_finish_then_closes_the_old_sessions(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_millis(800));
    let slow = app.get(CALL, &token);
    let replace = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.fake
            .add_workspace("itk_live_acme_second_000000", "acme");
        app.request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            Some(serde_json::json!({"access_token": "itk_live_acme_second_000000"})),
        )
        .await
        .status()
    };
    let (slow, replaced) = tokio::join!(slow, replace);
    assert_eq!(replaced, 200);
    assert_eq!(slow.status(), 200, "the in-flight call finished");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.fake.stats(&intercom_token("acme")).deletes, 1);
    app.fake.set_latency(Duration::ZERO);
    assert_eq!(app.get(CALL, &token).await.status(), 200);
    let fresh = app.fake.stats("itk_live_acme_second_000000");
    assert_eq!(fresh.initializes, 1, "{fresh:?}");
    assert_eq!(app.fake.sessions_with_multiple_tokens(), 0);
}

#[sqlx::test(migrations = false)]
async fn the_session_gauge_counts_a_draining_old_pool_and_its_replacement(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let gauge = r#"gateway_upstream_sessions{tenant="acme"}"#;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    assert_eq!(metric(&app, gauge).await, 1.0);
    app.fake.set_latency(Duration::from_millis(1500));
    let slow = app.get(CALL, &token);
    let replace = async {
        let old = intercom_token("acme");
        while app.fake.stats(&old).tool_calls == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.fake
            .add_workspace("itk_live_acme_second_000000", "acme");
        let put = app
            .request(
                Method::PUT,
                "/v1/tenants/acme/intercom/credential",
                Some(&admin()),
                Some(serde_json::json!({"access_token": "itk_live_acme_second_000000"})),
            )
            .await;
        assert_eq!(put.status(), 200);
        // The new credential's pool opens its session while the old one is still busy.
        assert_eq!(
            app.get("/v1/tenants/acme/tools", &token).await.status(),
            200
        );
        metric(&app, gauge).await
    };
    let (slow, during) = tokio::join!(slow, replace);
    assert_eq!(slow.status(), 200);
    assert_eq!(
        during, 2.0,
        "the old pool's busy session and the new pool's"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&app, gauge).await != 1.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&app, gauge).await,
        1.0,
        "the old pool drained, the new one stays"
    );
}

#[sqlx::test(migrations = false)]
async fn a_full_queue_says_retry_after_the_queue_timeout(_: PgPoolOptions, db: PgConnectOptions) {
    let args = [
        "--pool-max-sessions",
        "1",
        "--pool-session-max-in-flight",
        "1",
        "--pool-queue-length",
        "0",
        "--pool-queue-timeout",
        "3s",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_millis(1000));
    let results = futures::future::join_all((0..2).map(|_| app.get(CALL, &token))).await;
    let refused: Vec<_> = results.into_iter().filter(|r| r.status() != 200).collect();
    assert_eq!(refused.len(), 1);
    for res in refused {
        assert_eq!(res.headers()["retry-after"], "3");
        assert_problem(res, 503, "upstream_unavailable").await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_call_queued_on_a_replaced_credentials_pool_opens_no_session_with_the_old_token(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let args = [
        "--pool-max-sessions",
        "1",
        "--pool-session-max-in-flight",
        "1",
        "--pool-queue-timeout",
        "10s",
    ];
    let app = spawn_app_with(db, Default::default(), &args).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
    app.fake.set_latency(Duration::from_millis(1500));
    let running = app.get(CALL, &token);
    let queued = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.get(CALL, &token).await
    };
    let replace = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        app.fake.add_workspace("itk_acme_second", "acme");
        let res = app
            .request(
                Method::PUT,
                "/v1/tenants/acme/intercom/credential",
                Some(&admin()),
                Some(serde_json::json!({"access_token": "itk_acme_second"})),
            )
            .await;
        assert_eq!(res.status(), 200);
    };
    let (running, queued, ()) = tokio::join!(running, queued, replace);
    assert_eq!(running.status(), 200, "the call in flight finishes");
    // Queued behind it on the old pool: refused (retry goes to the new credential), or, on a
    // slow machine that queued it after the change, served by the new pool.
    if queued.status() != 200 {
        assert_eq!(queued.headers()["retry-after"], "1");
        assert_problem(queued, 503, "upstream_unavailable").await;
    }
    // No session was opened with the old token after the change, and the one there was is
    // closed.
    let old = intercom_token("acme");
    assert_eq!(
        app.fake.stats(&old).initializes,
        1,
        "{:?}",
        app.fake.stats(&old)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let stats = app.fake.stats(&old);
        if stats.deletes == stats.initializes {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old-token sessions left open: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
