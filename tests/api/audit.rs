//! The audit log: every admin action and credential event, with actor, request id, tenant and
//! time; admin only; cursor paging; never a token.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, assert_problem, intercom_token, mint, spawn_app};

async fn entries(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/v1/audit{query}"), &admin()).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Sends an admin request with a known request id.
async fn admin_call(
    app: &TestApp,
    method: Method,
    path: &str,
    rid: &str,
    body: Option<Value>,
) -> u16 {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(admin())
        .header("x-request-id", rid);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[sqlx::test(migrations = false)]
async fn every_admin_action_and_credential_event_is_recorded_without_the_token(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = intercom_token("acme");
    app.fake.add_workspace(&token, "acme");
    let put = json!({"access_token": token});
    assert_eq!(
        admin_call(
            &app,
            Method::POST,
            "/v1/tenants",
            "rid-create",
            Some(json!({"id": "acme", "name": "Acme"}))
        )
        .await,
        201
    );
    assert_eq!(
        admin_call(
            &app,
            Method::PATCH,
            "/v1/tenants/acme",
            "rid-patch",
            Some(json!({"name": "Acme 2", "monthly_quota": 10}))
        )
        .await,
        200
    );
    assert_eq!(
        admin_call(
            &app,
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            "rid-put1",
            Some(put.clone())
        )
        .await,
        200
    );
    assert_eq!(
        admin_call(
            &app,
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            "rid-put2",
            Some(put)
        )
        .await,
        200
    );

    // Intercom refuses the token: recorded once, by `intercom`, with the call's request id.
    app.fake.revoke_token(&token);
    let caller = mint("svc-acme", Some("acme"), "intercom:read");
    let res = app
        .http
        .get(format!("{}/v1/tenants/acme/tools", app.base))
        .bearer_auth(&caller)
        .header("x-request-id", "rid-call")
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "intercom_reauth_required").await;
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &caller).await.status(),
        409
    );

    assert_eq!(
        admin_call(
            &app,
            Method::DELETE,
            "/v1/tenants/acme/intercom/credential",
            "rid-delcred",
            None
        )
        .await,
        204
    );
    assert_eq!(
        admin_call(
            &app,
            Method::DELETE,
            "/v1/tenants/acme",
            "rid-deltenant",
            None
        )
        .await,
        204
    );

    let page = entries(&app, "?tenant_id=acme").await;
    let text = page.to_string();
    assert!(!text.contains(&token), "the token never appears");
    let got: Vec<(String, String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["tenant_id"], "acme");
            assert!(e["at"].as_str().is_some());
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["request_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("tenant.deleted", "admin-tool", "rid-deltenant"),
        ("credential.deleted", "admin-tool", "rid-delcred"),
        ("credential.rejected", "intercom", "rid-call"),
        ("credential.replaced", "admin-tool", "rid-put2"),
        ("credential.created", "admin-tool", "rid-put1"),
        ("tenant.updated", "admin-tool", "rid-patch"),
        ("tenant.created", "admin-tool", "rid-create"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(
        entries[5]["detail"]["fields"],
        json!(["name", "monthly_quota"])
    );
    assert_eq!(entries[3]["detail"]["generation"], 2);
    assert!(
        entries[3]["detail"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[sqlx::test(migrations = false)]
async fn the_audit_log_pages_filters_by_time_and_is_for_admins_only(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    for id in ["a1", "a2", "a3", "a4", "a5"] {
        let res = app
            .post("/v1/tenants", &admin(), json!({"id": id, "name": id}))
            .await;
        assert_eq!(res.status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = entries(&app, &format!("?limit=2&cursor={cursor}")).await;
        for e in page["entries"].as_array().unwrap() {
            seen.push(e["tenant_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a5", "a4", "a3", "a2", "a1"]);

    let future = "2999-01-01T00:00:00Z";
    assert_eq!(
        entries(&app, &format!("?from={future}")).await["entries"],
        json!([])
    );
    assert_eq!(
        entries(&app, &format!("?from=2000-01-01T00:00:00Z&to={future}")).await["entries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        entries(&app, "?to=2000-01-01T00:00:00Z").await["entries"],
        json!([])
    );

    assert_problem(
        app.get("/v1/audit?from=yesterday", &admin()).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?cursor=%%%", &admin()).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?limit=0", &admin()).await,
        400,
        "invalid_request",
    )
    .await;
    let tenant_caller = mint("svc", Some("a1"), "intercom:read intercom:write");
    assert_problem(
        app.get("/v1/audit?tenant_id=a1", &tenant_caller).await,
        403,
        "forbidden",
    )
    .await;
}
