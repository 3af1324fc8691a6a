//! The tool endpoints, through the real HTTP API against the fake Intercom.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{assert_problem, intercom_token, mint, spawn_app};

fn mentions(v: &Value, workspace: &str) -> bool {
    v.to_string().contains(workspace)
}

#[sqlx::test(migrations = false)]
async fn every_typed_endpoint_returns_the_callers_own_workspace(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let globex = app.add_tenant("globex").await;

    for (tenant, token, other) in [("acme", &acme, "globex"), ("globex", &globex, "acme")] {
        let res = app
            .get(
                &format!("/v1/tenants/{tenant}/conversations?state=open&per_page=3"),
                token,
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        let convs: Value = res.json().await.unwrap();
        let list = convs["conversations"]
            .as_array()
            .expect("conversations array");
        assert!(!list.is_empty() && list.len() <= 3, "{convs}");
        assert!(list.iter().all(|c| c["state"] == "open"));
        assert!(mentions(&convs, tenant) && !mentions(&convs, other));

        let id = list[0]["id"].as_str().unwrap().to_owned();
        let conv: Value = app
            .get(&format!("/v1/tenants/{tenant}/conversations/{id}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(conv["id"], id.as_str());
        assert!(mentions(&conv, tenant) && !mentions(&conv, other));
        // The prefixed form and a percent-encoded Intercom URL reach the same conversation.
        let prefixed: Value = app
            .get(
                &format!("/v1/tenants/{tenant}/conversations/conversation_{id}"),
                token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(prefixed["id"], id.as_str());
        let url = format!("https://app.intercom.com/a/inbox/_/inbox/conversation/{id}")
            .replace('/', "%2F")
            .replace(':', "%3A");
        let res = app
            .get(&format!("/v1/tenants/{tenant}/conversations/{url}"), token)
            .await;
        assert_eq!(res.status(), 200);

        let res = app
            .get(
                &format!("/v1/tenants/{tenant}/contacts?email_domain={tenant}.example"),
                token,
            )
            .await;
        assert_eq!(res.status(), 200);
        let contacts: Value = res.json().await.unwrap();
        let data = contacts["data"].as_array().expect("contacts data");
        assert!(!data.is_empty());
        assert!(mentions(&contacts, tenant) && !mentions(&contacts, other));
        let cid = data[0]["id"].as_str().unwrap();
        let contact: Value = app
            .get(&format!("/v1/tenants/{tenant}/contacts/{cid}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(contact["id"], cid);

        let res = app
            .post(
                &format!("/v1/tenants/{tenant}/search"),
                token,
                json!({"query": "object_type:conversations state:open"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let found: Value = res.json().await.unwrap();
        let first = found["results"][0]["id"]
            .as_str()
            .expect("search results")
            .to_owned();
        assert!(first.starts_with("conversation_"));
        assert!(!mentions(&found, other));

        let fetched: Value = app
            .get(&format!("/v1/tenants/{tenant}/resources/{first}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            mentions(&fetched, tenant) && !mentions(&fetched, other),
            "{fetched}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn the_generic_call_runs_any_listed_tool_and_reports_content_and_data(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let res = app
        .post(
            "/v1/tenants/acme/tools/list_companies/calls",
            &acme,
            json!({"arguments": {"per_page": 2}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tool"], "list_companies");
    assert_eq!(body["content"][0]["type"], "text");
    assert!(body["data"].is_object(), "{body}");
    assert!(mentions(&body["data"], "acme"));
    assert!(body.get("structured_content").is_some());

    // get_contact answers structuredContent: `data` takes it.
    let contacts: Value = app
        .get("/v1/tenants/acme/contacts?name=a", &acme)
        .await
        .json()
        .await
        .unwrap();
    let cid = contacts["data"][0]["id"].as_str().unwrap();
    let body: Value = app
        .post(
            "/v1/tenants/acme/tools/get_contact/calls",
            &acme,
            json!({"arguments": {"contact_id": cid}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(body["structured_content"].is_object());
    assert_eq!(body["data"], body["structured_content"]);
}

#[sqlx::test(migrations = false)]
async fn the_tool_list_has_every_upstream_tool_across_pages(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let res = app.get("/v1/tenants/acme/tools", &acme).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let tools = body["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    // The fake pages tools/list four at a time; all nine must be there.
    for expected in [
        "search",
        "fetch",
        "search_conversations",
        "get_conversation",
        "search_contacts",
        "get_contact",
        "list_companies",
        "get_company",
        "add_internal_note",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let note = tools
        .iter()
        .find(|t| t["name"] == "add_internal_note")
        .unwrap();
    assert_eq!(note["read_only"], false);
    assert!(note["input_schema"]["properties"]["body"].is_object());
    let search = tools.iter().find(|t| t["name"] == "search").unwrap();
    assert_eq!(search["read_only"], true);
    // Listed once: the second call is served from the cache.
    app.get("/v1/tenants/acme/tools", &acme).await;
    assert_eq!(
        app.fake.stats(&intercom_token("acme")).list_tools,
        3,
        "three pages, once"
    );
}

#[sqlx::test(migrations = false)]
async fn a_search_without_filters_is_refused_before_reaching_intercom(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let body = assert_problem(
        app.get("/v1/tenants/acme/conversations", &acme).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("state"));
    assert_problem(
        app.get("/v1/tenants/acme/contacts?per_page=5", &acme).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/tenants/acme/search",
            &acme,
            json!({"query": "state:open"}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/acme/conversations?stat=open", &acme)
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(app.fake.stats(&intercom_token("acme")).tool_calls, 0);
    assert_eq!(app.fake.stats(&intercom_token("acme")).initializes, 0);
}

#[sqlx::test(migrations = false)]
async fn query_values_are_sent_with_the_types_the_schema_declares(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    // The fake rejects a string `per_page` with -32602: a 200 proves it arrived as a number.
    let res = app
        .get(
            "/v1/tenants/acme/conversations?source_type=email&per_page=1",
            &acme,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["conversations"].as_array().unwrap().len(), 1);
    let body = assert_problem(
        app.get(
            "/v1/tenants/acme/conversations?state=open&per_page=many",
            &acme,
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("per_page"));
}

#[sqlx::test(migrations = false)]
async fn unknown_tools_are_404_and_write_tools_need_the_write_scope(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    app.add_tenant("acme").await;
    let reader = mint("reader", Some("acme"), "intercom:read");
    assert_problem(
        app.post(
            "/v1/tenants/acme/tools/delete_everything/calls",
            &reader,
            json!({}),
        )
        .await,
        404,
        "tool_not_found",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/tenants/acme/tools/bad%20name/calls",
            &reader,
            json!({}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;

    let convs: Value = app
        .get("/v1/tenants/acme/conversations?state=open", &reader)
        .await
        .json()
        .await
        .unwrap();
    let id = convs["conversations"][0]["id"].as_str().unwrap().to_owned();
    let note = json!({"arguments": {"conversation_id": id, "body": "checked by the gateway"}});
    assert_problem(
        app.post(
            "/v1/tenants/acme/tools/add_internal_note/calls",
            &reader,
            note.clone(),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.fake
            .stats(&intercom_token("acme"))
            .calls_by_tool
            .get("add_internal_note"),
        None
    );

    let writer = mint("writer", Some("acme"), "intercom:write");
    let res = app
        .post(
            "/v1/tenants/acme/tools/add_internal_note/calls",
            &writer,
            note,
        )
        .await;
    assert_eq!(res.status(), 200);
    // A write-only token cannot read.
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &writer)
            .await,
        403,
        "forbidden",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_tool_error_is_a_422_with_the_tools_text(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    let body = assert_problem(
        app.get("/v1/tenants/acme/conversations/999999999999", &acme)
            .await,
        422,
        "tool_error",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("not found"),
        "{body}"
    );
    let body = assert_problem(
        app.post(
            "/v1/tenants/acme/search",
            &acme,
            json!({"query": "object_type:conversations colour:blue"}),
        )
        .await,
        422,
        "tool_error",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    // Arguments the upstream refuses as invalid are the caller's fault.
    let res = app
        .request(
            Method::POST,
            "/v1/tenants/acme/tools/search_conversations/calls",
            Some(&acme),
            Some(json!({"arguments": {"per_page": "five"}})),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
}
