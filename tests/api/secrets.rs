//! Intercom tokens never leave the gateway: not in the database, not in logs, not in answers.

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{admin, captured_logs, intercom_token, spawn_app};

#[sqlx::test(migrations = false)]
async fn the_intercom_token_is_nowhere_in_the_database_logs_or_responses(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let secret = intercom_token("acme");
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();

    let mut bodies = String::new();
    for path in [
        "/v1/tenants/acme/tools",
        "/v1/tenants/acme/conversations?state=open",
        "/v1/tenants/acme/conversations/0",
    ] {
        bodies.push_str(&app.get(path, &token).await.text().await.unwrap());
    }
    for path in [
        "/v1/tenants/acme",
        "/v1/tenants/acme/intercom/credential",
        "/v1/tenants",
    ] {
        bodies.push_str(&app.get(path, &admin()).await.text().await.unwrap());
    }
    // A token sent in the wrong field must not be echoed by the validation error.
    let res = app
        .request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            Some(json!({"access_token": 5, "token": secret})),
        )
        .await;
    bodies.push_str(&res.text().await.unwrap());
    let res = app
        .post(
            "/v1/tenants",
            &admin(),
            json!({"id": "x", "name": 1, "region": secret}),
        )
        .await;
    bodies.push_str(&res.text().await.unwrap());
    app.fake.revoke_token(&secret);
    bodies.push_str(
        &app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(!bodies.contains(&secret), "a response contains the token");
    let metrics = app.metrics().await;
    assert!(!metrics.contains(&secret));

    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(t)::text FROM tenants t UNION ALL SELECT row_to_json(c)::text FROM intercom_credentials c",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(
            !row.contains(&secret) && !row.contains(&hex),
            "database row holds the token: {row}"
        );
    }

    let logs = captured_logs();
    assert!(logs.contains("credential stored"), "logs were captured");
    assert!(!logs.contains(&secret), "a log line contains the token");
    assert!(!logs.contains(crate::helpers::JWT_SECRET));
    assert!(!logs.contains(&token), "a log line contains a caller JWT");
}
