//! The usage ledger: exact rows, durable through a Postgres outage, flushed on shutdown, and
//! the usage API.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::FakeOptions;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TcpProxy, admin, assert_problem, mint, spawn_app, spawn_app_full};

async fn rows(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_events")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn wait_for_rows(db: &PgPool, n: i64, within: Duration) -> i64 {
    let until = tokio::time::Instant::now() + within;
    loop {
        let got = rows(db).await;
        if got >= n || tokio::time::Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn every_metered_call_is_one_row_with_its_outcome(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/v1/tenants/acme/conversations?state=open", &token)
                .await
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            app.get("/v1/tenants/acme/conversations/424242424242", &token)
                .await
                .status(),
            422
        );
    }
    assert_eq!(
        app.post(
            "/v1/tenants/acme/tools/no_such_tool/calls",
            &token,
            serde_json::json!({})
        )
        .await
        .status(),
        404
    );
    // Not metered: refused before tenant resolution, or validation before any call.
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", "bad")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get("/v1/tenants/acme/conversations", &token)
            .await
            .status(),
        400
    );

    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    let by_outcome: Vec<(String, String, i64, i16, bool)> = sqlx::query_as(
        "SELECT outcome, tool, count(*), min(http_status), bool_and(reached_upstream) FROM usage_events GROUP BY 1, 2 ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        by_outcome,
        vec![
            ("ok".into(), "search_conversations".into(), 5, 200, true),
            ("tool_error".into(), "get_conversation".into(), 2, 422, true),
            ("tool_not_found".into(), "unknown".into(), 1, 404, false),
        ]
    );
    let row: (String, String, i32, i32) =
        sqlx::query_as("SELECT caller, tenant_id, total_ms, bytes_out FROM usage_events WHERE outcome = 'ok' LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(row.0, "svc-acme");
    assert_eq!(row.1, "acme");
    assert!(row.3 > 100, "bytes_out recorded");
    let monthly: i64 = sqlx::query_scalar("SELECT calls FROM usage_monthly")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(monthly, 7);
}

#[sqlx::test(migrations = false)]
async fn a_postgres_outage_loses_no_usage_and_fails_no_call(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let target = (db.get_host().to_owned(), db.get_port());
    let proxy = TcpProxy::start(target).await;
    let via_proxy = db.clone().host("127.0.0.1").port(proxy.port);
    let app = spawn_app_full(via_proxy, db, FakeOptions::default(), &[]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    assert_eq!(wait_for_rows(&app.db, 1, Duration::from_secs(5)).await, 1);

    proxy.cut();
    for _ in 0..10 {
        assert_eq!(
            app.get("/v1/tenants/acme/conversations?state=open", &token)
                .await
                .status(),
            200
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rows(&app.db).await,
        1,
        "nothing can be written during the outage"
    );
    proxy.restore();
    assert_eq!(
        wait_for_rows(&app.db, 11, Duration::from_secs(15)).await,
        11
    );
    let text = app.metrics().await;
    assert!(
        text.contains("gateway_usage_events_written_total 11"),
        "{text}"
    );
    assert!(text.contains("gateway_usage_events_dropped_total 0"));
}

#[sqlx::test(migrations = false)]
async fn shutdown_flushes_queued_usage(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let calls = (0..20).map(|_| app.get("/v1/tenants/acme/contacts?name=a", &token));
    futures::future::join_all(calls).await;
    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    assert_eq!(rows(&app.db).await, 20);
}

#[sqlx::test(migrations = false)]
async fn the_usage_api_groups_calls_by_tool_day_caller_and_outcome(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    app.add_tenant("globex").await;
    let other = mint("svc-b", Some("acme"), "intercom:read");
    for _ in 0..3 {
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await;
    }
    app.get("/v1/tenants/acme/contacts?name=a", &other).await;
    app.get("/v1/tenants/acme/conversations/77777777777", &token)
        .await;
    wait_for_rows(&app.db, 5, Duration::from_secs(5)).await;

    let report: Value = app
        .get("/v1/tenants/acme/usage?group_by=tool", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["group_by"], "tool", "{report}");
    assert_eq!(report["total"]["calls"], 5);
    assert_eq!(report["total"]["errors"], 1);
    let rows = report["rows"].as_array().unwrap();
    let conv = rows
        .iter()
        .find(|r| r["key"] == "search_conversations")
        .unwrap();
    assert_eq!(conv["calls"], 3);
    assert!(conv["p50_ms"].as_f64().is_some() && conv["p95_ms"].as_f64().is_some());

    // The tenant's own callers may read it; other tenants may not.
    let by_caller: Value = app
        .get("/v1/tenants/acme/usage?group_by=caller", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_caller["rows"].as_array().unwrap().len(), 2);
    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).date();
    let by_day: Value = app
        .get(
            &format!("/v1/tenants/acme/usage?group_by=day&from={yesterday}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_day["rows"][0]["calls"], 5);
    let globex = mint("g", Some("globex"), "intercom:read");
    assert_problem(
        app.get("/v1/tenants/acme/usage", &globex).await,
        404,
        "tenant_not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/acme/usage?group_by=colour", &token)
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/acme/usage?from=yesterday", &token)
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get(
            "/v1/tenants/acme/usage?from=2026-02-01&to=2026-01-01",
            &token,
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/acme/usage?from=2020-01-01", &token)
            .await,
        400,
        "invalid_request",
    )
    .await;
}

/// The writer is not woken per event: fewer than a batch wait for the interval, a whole batch
/// is written at once, and shutdown writes the rest. (An hour-long interval here, so that only
/// the batch signal and shutdown can write.)
#[sqlx::test(migrations = false)]
async fn the_usage_writer_wakes_per_batch_not_per_event(_: PgPoolOptions, db: PgConnectOptions) {
    use intercom_mcp_gateway::limits::Quotas;
    use intercom_mcp_gateway::metering::{BATCH, UsageEvent, spawn_writer};
    use intercom_mcp_gateway::telemetry::Metrics;

    let app = spawn_app(db).await;
    let metrics = Metrics::new(false);
    let (meter, writer) = spawn_writer(
        app.db.clone(),
        Quotas::new(app.db.clone()),
        metrics.usage_writer(),
        10_000,
        Duration::from_secs(3600),
    );
    let event = |n: usize| UsageEvent {
        id: UsageEvent::new_id(),
        request_id: format!("req-{n}"),
        at: time::OffsetDateTime::now_utc(),
        tenant: "acme".into(),
        caller: "svc".into(),
        tool: "search".into(),
        outcome: "ok".into(),
        http_status: 200,
        upstream_ms: Some(1),
        total_ms: 2,
        bytes_in: 10,
        bytes_out: 20,
        reached_upstream: true,
    };
    let before = rows(&app.db).await;
    for n in 0..BATCH - 1 {
        meter.record(event(n));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rows(&app.db).await,
        before,
        "written before a batch was full"
    );
    meter.record(event(BATCH));
    let full = before + BATCH as i64;
    assert_eq!(
        wait_for_rows(&app.db, full, Duration::from_secs(10)).await,
        full
    );
    for n in 0..3 {
        meter.record(event(BATCH + 1 + n));
    }
    writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        rows(&app.db).await,
        full + 3,
        "shutdown writes what is queued"
    );
}
