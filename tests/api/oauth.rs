//! Connecting Intercom with OAuth, end to end against the fake's consent page and token
//! endpoint, and every way the callback refuses.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{
    TestApp, admin, assert_problem, intercom_token, mint, spawn_app, spawn_app_with,
};
use intercom_mcp_gateway::fake_intercom::FakeOptions;

const CALLBACK: &str = "https://gw.example.test/v1/oauth/intercom/callback";

async fn spawn_oauth_app(db: PgConnectOptions, extra: &[&str]) -> TestApp {
    let mut args = vec![
        "--intercom-oauth-client-id",
        "gw-client",
        "--intercom-oauth-client-secret",
        "gw-client-secret-value",
        "--intercom-oauth-authorize-url",
        "{fake}/oauth",
        "--intercom-oauth-authorize-url-eu",
        "https://app.eu.example.test/oauth",
        "--intercom-api-url",
        "{fake}",
        "--public-url",
        "https://gw.example.test",
    ];
    if !extra.contains(&"--intercom-oauth-token-url") {
        args.extend_from_slice(&["--intercom-oauth-token-url", "{fake}/auth/eagle/token"]);
    }
    args.extend_from_slice(extra);
    spawn_app_with(db, FakeOptions::default(), &args).await
}

async fn create_tenant(app: &TestApp, id: &str, region: &str) {
    let res = app
        .post(
            "/v1/tenants",
            &admin(),
            json!({"id": id, "name": id, "region": region}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

async fn start(app: &TestApp, id: &str) -> Value {
    let res = app
        .request(
            Method::POST,
            &format!("/v1/tenants/{id}/intercom/oauth/start"),
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Follows the authorize URL to the fake's auto-approving consent page and returns the query
/// the browser would bring back to the callback.
async fn approve(app: &TestApp, authorize_url: &str, workspace: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{authorize_url}&workspace={workspace}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (target, query) = location.split_once('?').unwrap();
    assert_eq!(target, CALLBACK);
    let _ = app;
    query.to_owned()
}

async fn callback(app: &TestApp, query: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/v1/oauth/intercom/callback?{query}", app.base))
        .send()
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp, tenant: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/v1/audit?tenant_id={tenant}"), &admin())
        .await
        .json()
        .await
        .unwrap();
    page["entries"].as_array().unwrap().clone()
}

#[sqlx::test(migrations = false)]
async fn a_tenant_connects_intercom_through_the_oauth_flow_and_its_calls_work(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_oauth_app(db, &[]).await;
    create_tenant(&app, "acme", "us").await;

    let started = start(&app, "acme").await;
    let url = url::Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth?", app.fake.base_url()))
    );
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "gw-client");
    assert_eq!(q["redirect_uri"], CALLBACK);
    assert_eq!(q["state"], started["state"].as_str().unwrap());
    let expires = time::OffsetDateTime::parse(
        started["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = expires - time::OffsetDateTime::now_utc();
    assert!(ttl > time::Duration::minutes(9) && ttl <= time::Duration::minutes(10));
    // Only the state's hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM oauth_states")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oauth_states WHERE encode(state_hash, 'escape') LIKE '%' || $1 || '%'",
    )
    .bind(started["state"].as_str().unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(clear, 0);

    let query = approve(&app, url.as_str(), "acme").await;
    let res = callback(&app, &query).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Intercom connected") && page.contains("acme"),
        "{page}"
    );

    let cred: Value = app
        .get("/v1/tenants/acme/intercom/credential", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cred["status"], "active");
    assert_eq!(cred["generation"], 1);
    assert_eq!(cred["workspace_region"], "US");
    assert!(
        cred["workspace_id"].as_str().is_some_and(|w| !w.is_empty()),
        "{cred}"
    );

    let caller = mint("svc-acme", Some("acme"), "intercom:read");
    let res = app.get("/v1/tenants/acme/tools", &caller).await;
    assert_eq!(res.status(), 200);

    // The state works once.
    let replay = callback(&app, &query).await;
    let body = assert_problem(replay, 400, "oauth_state_invalid").await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    let entries = audit_actions(&app, "acme").await;
    let connected = entries
        .iter()
        .find(|e| e["action"] == "oauth.connected")
        .expect("oauth.connected recorded");
    assert_eq!(
        connected["actor"], "admin-tool",
        "the admin who started the flow"
    );
    assert!(
        connected["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(connected["detail"]["workspace_id"], cred["workspace_id"]);
    assert!(entries.iter().any(|e| e["action"] == "oauth.started"));
}

#[sqlx::test(migrations = false)]
async fn connecting_again_replaces_the_token_and_the_sessions(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_oauth_app(db, &[]).await;
    let caller = app.add_tenant("acme").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &caller).await.status(),
        200
    );

    let started = start(&app, "acme").await;
    app.fake.add_workspace("itk_oauth_acme_second", "acme");
    app.fake
        .add_oauth_code("code-second", "itk_oauth_acme_second");
    let state = started["state"].as_str().unwrap();
    let res = callback(&app, &format!("code=code-second&state={state}")).await;
    assert_eq!(res.status(), 200);

    let cred: Value = app
        .get("/v1/tenants/acme/intercom/credential", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cred["generation"], 2);
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &caller).await.status(),
        200
    );
    assert!(app.fake.stats("itk_oauth_acme_second").requests > 0);
    assert!(
        app.fake.stats(&intercom_token("acme")).deletes > 0,
        "old sessions closed"
    );
}

#[sqlx::test(migrations = false)]
async fn a_configured_success_redirect_receives_the_browser(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_oauth_app(
        db,
        &[
            "--oauth-success-redirect",
            "https://admin.example.test/connected",
        ],
    )
    .await;
    create_tenant(&app, "acme", "us").await;
    let started = start(&app, "acme").await;
    app.fake.add_workspace("itk_redirect", "acme");
    app.fake.add_oauth_code("code-r", "itk_redirect");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!(
            "{}/v1/oauth/intercom/callback?code=code-r&state={}",
            app.base,
            started["state"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "https://admin.example.test/connected?tenant_id=acme"
    );
}

#[sqlx::test(migrations = false)]
async fn eu_tenants_are_sent_to_the_eu_authorize_page(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_oauth_app(db, &[]).await;
    create_tenant(&app, "euro", "eu").await;
    let started = start(&app, "euro").await;
    assert!(
        started["authorize_url"]
            .as_str()
            .unwrap()
            .starts_with("https://app.eu.example.test/oauth?client_id=gw-client&state="),
        "{started}"
    );
}

async fn assert_not_connected(app: &TestApp, id: &str) {
    let res = app
        .get(&format!("/v1/tenants/{id}/intercom/credential"), &admin())
        .await;
    assert_problem(res, 404, "not_found").await;
}

#[sqlx::test(migrations = false)]
async fn bad_states_denials_and_failed_exchanges_store_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_oauth_app(db, &[]).await;
    create_tenant(&app, "acme", "us").await;

    // No state, an unknown state.
    assert_problem(callback(&app, "code=x").await, 400, "oauth_state_invalid").await;
    let body = assert_problem(
        callback(&app, "code=x&state=not-a-state-we-issued").await,
        400,
        "oauth_state_invalid",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("unknown"));

    // Expired.
    let started = start(&app, "acme").await;
    sqlx::query("UPDATE oauth_states SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    app.fake.add_workspace("itk_late", "acme");
    app.fake.add_oauth_code("code-late", "itk_late");
    let res = callback(
        &app,
        &format!(
            "code=code-late&state={}",
            started["state"].as_str().unwrap()
        ),
    )
    .await;
    let body = assert_problem(res, 400, "oauth_state_invalid").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // The admin declined at Intercom.
    let started = start(&app, "acme").await;
    let res = callback(
        &app,
        &format!(
            "error=access_denied&error_description=The+user+denied&state={}",
            started["state"].as_str().unwrap()
        ),
    )
    .await;
    let body = assert_problem(res, 400, "oauth_denied").await;
    assert!(body["detail"].as_str().unwrap().contains("access_denied"));

    // Intercom refuses the code.
    let started = start(&app, "acme").await;
    let res = callback(
        &app,
        &format!(
            "code=never-issued&state={}",
            started["state"].as_str().unwrap()
        ),
    )
    .await;
    let body = assert_problem(res, 502, "oauth_exchange_failed").await;
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .contains("gw-client-secret-value")
    );

    assert_not_connected(&app, "acme").await;
    let reasons: Vec<Value> = audit_actions(&app, "acme")
        .await
        .into_iter()
        .filter(|e| e["action"] == "oauth.failed")
        .map(|e| e["detail"]["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        vec![
            json!("code_refused"),
            json!("access_denied"),
            json!("state_expired")
        ]
    );
}

#[sqlx::test(migrations = false)]
async fn a_failing_token_endpoint_stores_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let app = spawn_oauth_app(
        db,
        &[
            "--intercom-oauth-token-url",
            "http://127.0.0.1:9/auth/eagle/token",
        ],
    )
    .await;
    create_tenant(&app, "acme", "us").await;
    let started = start(&app, "acme").await;
    let res = callback(
        &app,
        &format!("code=c&state={}", started["state"].as_str().unwrap()),
    )
    .await;
    assert_problem(res, 502, "oauth_exchange_failed").await;
    assert_not_connected(&app, "acme").await;
}

#[sqlx::test(migrations = false)]
async fn oauth_start_needs_an_admin_a_known_tenant_and_a_configured_app(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let unconfigured = spawn_app(db.clone()).await;
    create_tenant(&unconfigured, "acme", "us").await;
    let res = unconfigured
        .request(
            Method::POST,
            "/v1/tenants/acme/intercom/oauth/start",
            Some(&admin()),
            None,
        )
        .await;
    assert_problem(res, 503, "oauth_not_configured").await;

    let app = spawn_oauth_app(db, &[]).await;
    let res = app
        .request(
            Method::POST,
            "/v1/tenants/ghost/intercom/oauth/start",
            Some(&admin()),
            None,
        )
        .await;
    assert_problem(res, 404, "tenant_not_found").await;
    let own = mint("svc", Some("acme"), "intercom:read intercom:write");
    let res = app
        .request(
            Method::POST,
            "/v1/tenants/acme/intercom/oauth/start",
            Some(&own),
            None,
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .request(
            Method::POST,
            "/v1/tenants/acme/intercom/oauth/start",
            None,
            None,
        )
        .await;
    assert_problem(res, 401, "unauthenticated").await;
}

#[sqlx::test(migrations = false)]
async fn deleting_a_credential_can_revoke_it_at_intercom(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_oauth_app(db, &["--revoke-on-disconnect", "true"]).await;
    let me = |token: String| {
        let http = app.http.clone();
        let url = format!("{}/me", app.fake.base_url());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    // Configured on: the token dies at Intercom.
    app.add_tenant("acme").await;
    let res = app
        .request(
            Method::DELETE,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(me(intercom_token("acme")).await, 401);

    // `?revoke=false` overrides it: the token stays valid at Intercom.
    app.add_tenant("globex").await;
    let res = app
        .request(
            Method::DELETE,
            "/v1/tenants/globex/intercom/credential?revoke=false",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(me(intercom_token("globex")).await, 200);

    let deleted = |entries: Vec<Value>| {
        entries
            .into_iter()
            .find(|e| e["action"] == "credential.deleted")
            .unwrap()["detail"]["revoked"]
            .clone()
    };
    assert_eq!(deleted(audit_actions(&app, "acme").await), json!(true));
    assert_eq!(deleted(audit_actions(&app, "globex").await), Value::Null);
}
