//! Rate limits and monthly quotas, through the real API.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, assert_problem, mint, spawn_app, spawn_app_with};

async fn set_limits(app: &TestApp, tenant: &str, body: serde_json::Value) {
    let res = app
        .request(
            Method::PATCH,
            &format!("/v1/tenants/{tenant}"),
            Some(&admin()),
            Some(body),
        )
        .await;
    assert_eq!(res.status(), 200);
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[sqlx::test(migrations = false)]
async fn a_burst_is_admitted_with_exact_headers_then_refused_with_retry_after(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with(db, Default::default(), &["--caller-rate-share", "1"]).await;
    let token = app.add_tenant("acme").await;
    set_limits(
        &app,
        "acme",
        json!({"rate_limit": {"per_minute": 60, "burst": 3}}),
    )
    .await;
    let path = "/v1/tenants/acme/conversations?state=open";
    for remaining in ["2", "1", "0"] {
        let res = app.get(path, &token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "ratelimit-limit"), "3");
        assert_eq!(header(&res, "ratelimit-remaining"), remaining);
        assert!(header(&res, "ratelimit-reset").parse::<u64>().unwrap() <= 3);
    }
    let res = app.get(path, &token).await;
    assert_eq!(header(&res, "retry-after"), "1");
    assert_eq!(header(&res, "ratelimit-remaining"), "0");
    assert_problem(res, 429, "rate_limited").await;
    assert!(
        app.metrics()
            .await
            .contains(r#"gateway_rate_limited_total{reason="tenant",tenant="acme"} 1"#)
    );
    // One token comes back after 60 s / 60 = 1 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get(path, &token).await.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn one_noisy_caller_cannot_starve_its_neighbours(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.add_tenant("acme").await;
    set_limits(
        &app,
        "acme",
        json!({"rate_limit": {"per_minute": 6, "burst": 4}}),
    )
    .await;
    let noisy = mint("noisy", Some("acme"), "intercom:read");
    let quiet = mint("quiet", Some("acme"), "intercom:read");
    let path = "/v1/tenants/acme/conversations?state=open";
    // The default caller share is half the tenant's burst.
    assert_eq!(app.get(path, &noisy).await.status(), 200);
    assert_eq!(app.get(path, &noisy).await.status(), 200);
    assert_problem(app.get(path, &noisy).await, 429, "rate_limited").await;
    assert_eq!(app.get(path, &quiet).await.status(), 200);
    assert!(
        app.metrics()
            .await
            .contains(r#"gateway_rate_limited_total{reason="caller",tenant="acme"} 1"#)
    );
}

#[sqlx::test(migrations = false)]
async fn changed_limits_apply_without_a_restart(_: PgPoolOptions, db: PgConnectOptions) {
    let limits = [
        "--caller-rate-share",
        "1",
        "--default-rate-per-minute",
        "600",
        "--default-burst",
        "60",
    ];
    let app = spawn_app_with(db, Default::default(), &limits).await;
    let token = app.add_tenant("acme").await;
    set_limits(
        &app,
        "acme",
        json!({"rate_limit": {"per_minute": 1, "burst": 1}}),
    )
    .await;
    let path = "/v1/tenants/acme/conversations?state=open";
    assert_eq!(app.get(path, &token).await.status(), 200);
    assert_problem(app.get(path, &token).await, 429, "rate_limited").await;
    set_limits(
        &app,
        "acme",
        json!({"rate_limit": {"per_minute": 600, "burst": 50}}),
    )
    .await;
    let res = app.get(path, &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "ratelimit-limit"), "50");
    // Back to the gateway defaults (600/min, burst 60).
    set_limits(&app, "acme", json!({"rate_limit": null})).await;
    assert_eq!(
        header(&app.get(path, &token).await, "ratelimit-limit"),
        "60"
    );
}

#[sqlx::test(migrations = false)]
async fn the_monthly_quota_is_shared_by_two_replicas(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    set_limits(&app, "acme", json!({"monthly_quota": 5})).await;
    let second = app.replica(&[]).await;
    let path = "/v1/tenants/acme/conversations?state=open";
    let via = |base: &str| {
        app.http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };

    for _ in 0..3 {
        assert_eq!(via(&app.base).await.unwrap().status(), 200);
    }
    // The bound on cross-replica lag: flush (1 s) + count refresh (2 s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..2 {
        assert_eq!(via(&second.base).await.unwrap().status(), 200);
    }
    assert_problem(via(&second.base).await.unwrap(), 429, "quota_exceeded").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let res = via(&app.base).await.unwrap();
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() > 0);
    assert_problem(res, 429, "quota_exceeded").await;

    let counted: i64 =
        sqlx::query_scalar("SELECT calls FROM usage_monthly WHERE tenant_id = 'acme'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(counted, 5, "only calls that reached Intercom count");
    second.shutdown.cancel();
    second.server.await.unwrap().unwrap();
}
