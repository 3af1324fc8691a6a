//! Tenant and credential administration.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{admin, assert_problem, intercom_token, spawn_app};

#[sqlx::test(migrations = false)]
async fn tenants_can_be_created_read_updated_listed_and_deleted(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let admin = admin();
    let res = app
        .post("/v1/tenants", &admin, json!({"id": "acme", "name": "Acme", "region": "eu", "rate_limit": {"per_minute": 120, "burst": 10}, "monthly_quota": 5000}))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["region"], "eu");
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["rate_limit"],
        json!({"per_minute": 120, "burst": 10})
    );
    assert_eq!(created["monthly_quota"], 5000);

    let dup = app
        .post(
            "/v1/tenants",
            &admin,
            json!({"id": "acme", "name": "Again"}),
        )
        .await;
    assert_problem(dup, 409, "conflict").await;

    let au = app
        .post(
            "/v1/tenants",
            &admin,
            json!({"id": "kanga", "name": "Kanga", "region": "au"}),
        )
        .await;
    let body = assert_problem(au, 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("us"), "{body}");
    let bad_id = app
        .post("/v1/tenants", &admin, json!({"id": "../etc", "name": "x"}))
        .await;
    assert_problem(bad_id, 400, "invalid_request").await;
    // Up to 100 million a minute (beyond a replica's capacity), not one more.
    let most = json!({"per_minute": 100_000_000, "burst": 100_000_000});
    let res = app
        .post(
            "/v1/tenants",
            &admin,
            json!({"id": "roo", "name": "Roo", "rate_limit": most}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let too_many = app
        .post("/v1/tenants", &admin, json!({"id": "tigger", "name": "Tigger", "rate_limit": {"per_minute": 100_000_001, "burst": 1}}))
        .await;
    let body = assert_problem(too_many, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("1-100000000"),
        "{body}"
    );

    let patched: Value = app
        .request(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&admin),
            Some(json!({"name": "Acme Corp", "monthly_quota": null, "status": "suspended"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["name"], "Acme Corp");
    assert_eq!(patched["monthly_quota"], Value::Null);
    assert_eq!(
        patched["rate_limit"]["per_minute"], 120,
        "absent fields are kept"
    );
    assert_eq!(patched["status"], "suspended");
    let read: Value = app
        .get("/v1/tenants/acme", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, patched);

    let res = app
        .request(Method::DELETE, "/v1/tenants/acme", Some(&admin), None)
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get("/v1/tenants/acme", &admin).await,
        404,
        "tenant_not_found",
    )
    .await;
    assert_problem(
        app.request(Method::DELETE, "/v1/tenants/acme", Some(&admin), None)
            .await,
        404,
        "tenant_not_found",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn the_tenant_list_pages_with_a_cursor(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let admin = admin();
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        assert_eq!(
            app.post("/v1/tenants", &admin, json!({"id": id, "name": id}))
                .await
                .status(),
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?limit=2&cursor={c}"),
            None => "/v1/tenants?limit=2".into(),
        };
        let page: Value = app.get(&path, &admin).await.json().await.unwrap();
        let ids: Vec<String> = page["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["t1", "t2", "t3", "t4", "t5"]);
    assert_problem(
        app.get("/v1/tenants?limit=0", &admin).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants?cursor=%%%", &admin).await,
        400,
        "invalid_request",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_credential_is_stored_shown_as_metadata_only_and_removed(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let admin = admin();
    let token = app.add_tenant("acme").await;
    let meta: Value = app
        .get("/v1/tenants/acme/intercom/credential", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["generation"], 1);
    assert!(meta["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert!(!meta.to_string().contains(&intercom_token("acme")));

    // Replacing it bumps the generation and the next call opens a session with the new token.
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    app.fake
        .add_workspace("itk_live_acme_second_token_000", "acme");
    let res = app
        .request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin),
            Some(json!({"access_token": "itk_live_acme_second_token_000"})),
        )
        .await;
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(replaced["generation"], 2);
    assert_ne!(replaced["fingerprint"], meta["fingerprint"]);
    assert_eq!(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.fake.stats("itk_live_acme_second_token_000").tool_calls,
        1
    );
    assert_eq!(app.fake.sessions_with_multiple_tokens(), 0);

    let bad = app
        .request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin),
            Some(json!({"access_token": "has spaces in it"})),
        )
        .await;
    assert_problem(bad, 400, "invalid_request").await;

    assert_eq!(
        app.request(
            Method::DELETE,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin),
            None
        )
        .await
        .status(),
        204
    );
    assert_problem(
        app.get("/v1/tenants/acme/intercom/credential", &admin)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &token)
            .await,
        409,
        "intercom_not_connected",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_suspended_tenant_cannot_call_tools(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let res = app
        .request(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&admin()),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_problem(
        app.get("/v1/tenants/acme/tools", &token).await,
        403,
        "tenant_suspended",
    )
    .await;
    let res = app
        .request(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&admin()),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get("/v1/tenants/acme/tools", &token).await.status(),
        200
    );
}
