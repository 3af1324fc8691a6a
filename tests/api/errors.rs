//! Bad input gets a clear problem+json answer, never a 500.

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{admin, assert_problem, spawn_app, spawn_app_with};

#[sqlx::test(migrations = false)]
async fn malformed_bodies_get_problems_with_the_right_codes(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let url = format!("{}/v1/tenants/acme/search", app.base);

    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"query\":")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_request").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("object_type:contacts")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "unsupported_media_type").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"query": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_request").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"query": "object_type:contacts", "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_request").await;
    let res = app
        .post(
            "/v1/tenants/acme/tools/search/calls",
            &token,
            json!({"arguments": [1, 2]}),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
}

#[sqlx::test(migrations = false)]
async fn bodies_over_the_limit_are_413(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(db, Default::default(), &["--max-body-bytes", "1024"]).await;
    let big = "x".repeat(4096);
    let res = app
        .post("/v1/tenants", &admin(), json!({"id": "acme", "name": big}))
        .await;
    assert_problem(res, 413, "payload_too_large").await;
}

#[sqlx::test(migrations = false)]
async fn unknown_routes_methods_and_ids_are_4xx_problems(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let admin = admin();
    assert_problem(app.get("/v2/nothing", &admin).await, 404, "not_found").await;
    assert_problem(
        app.request(Method::PUT, "/v1/tenants", Some(&admin), None)
            .await,
        405,
        "method_not_allowed",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/bad%20id", &admin).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/tenants/{}", "a".repeat(65)), &admin)
            .await,
        400,
        "invalid_request",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn the_request_id_is_echoed_or_generated_and_matches_the_problem(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let res = app
        .http
        .get(format!("{}/v1/tenants", app.base))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-abc-123");
    let body = assert_problem(res, 401, "unauthenticated").await;
    assert_eq!(body["request_id"], "req-abc-123");
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
}
