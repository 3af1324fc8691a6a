//! Health, readiness, metrics, the OpenAPI document and the docs page.

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::spawn_app;

#[sqlx::test(migrations = false)]
async fn health_and_readiness_answer_when_the_database_is_migrated(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // Un-apply the migration record: not ready any more.
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&app.db)
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
}

#[sqlx::test(migrations = false)]
async fn metrics_use_route_templates_and_count_requests(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    app.get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    app.get("/v1/tenants/acme/conversations/12345", &token)
        .await;
    let text = app.metrics().await;
    assert!(text.contains(r#"gateway_http_requests_total{method="GET",route="/v1/tenants/{tenant_id}/conversations",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="/v1/tenants/{tenant_id}/conversations/{id}""#));
    assert!(!text.contains("12345"), "no concrete ids in labels");
    assert!(
        text.contains(
            r#"gateway_tool_calls_total{outcome="ok",tenant="acme",tool="search_conversations"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"gateway_upstream_session_events_total{event="initialized"} 1"#));
    assert!(text.contains("gateway_usage_events_dropped_total 0"));
    assert!(text.contains("gateway_build_info{version="));
    assert!(text.contains("process_resident_memory_bytes"));
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_and_offline_docs_are_served(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/tenants/{tenant_id}/tools/{tool_name}/calls"]["post"].is_object());
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let css = app
        .http
        .get(format!("{}/docs/swagger-ui.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200, "assets come from the binary, not a CDN");
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json exists");
    let generated = intercom_mcp_gateway::cli::openapi_json();
    assert!(
        committed.trim() == generated.trim(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

/// The API port speaks HTTP/1.1 and HTTP/2 with prior knowledge (the accept loop in
/// `src/http/serve.rs`), a POST with a body included, and a keep-alive connection serves
/// call after call.
#[sqlx::test(migrations = false)]
async fn the_api_speaks_http1_and_http2_on_one_port(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (client, version) in [
        (&h1, reqwest::Version::HTTP_11),
        (&h2, reqwest::Version::HTTP_2),
    ] {
        let health = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!((health.status().as_u16(), health.version()), (200, version));
        for _ in 0..3 {
            let res = client
                .post(format!(
                    "{}/v1/tenants/acme/tools/list_companies/calls",
                    app.base
                ))
                .bearer_auth(&acme)
                .json(&serde_json::json!({"arguments": {"per_page": 2}}))
                .send()
                .await
                .unwrap();
            assert_eq!((res.status().as_u16(), res.version()), (200, version));
            assert_eq!(res.headers()["content-type"], "application/json");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["tool"], "list_companies");
            assert!(body["data"].is_object(), "{body}");
        }
    }
}
