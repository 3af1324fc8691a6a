//! Two gateway replicas on one database: a change made through either is seen by the other
//! within a second (Postgres LISTEN/NOTIFY), old sessions included.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, intercom_token, spawn_app_with};
use intercom_mcp_gateway::fake_intercom::FakeOptions;
use intercom_mcp_gateway::tenants::crypto::Keyring;

async fn replicas(db: PgConnectOptions) -> (TestApp, TestApp) {
    let keys = Keyring::generate_entry("k1");
    let args = ["--encryption-keys", keys.as_str()];
    let a = spawn_app_with(db.clone(), FakeOptions::default(), &args).await;
    let b = spawn_app_with(db, FakeOptions::default(), &args).await;
    (a, b)
}

/// Polls `check` until it holds; returns how long that took, or panics after two seconds.
async fn within<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not seen within 2s");
}

#[sqlx::test(migrations = false)]
async fn a_credential_change_on_one_replica_reaches_the_other_within_a_second(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (a, b) = replicas(db).await;
    let caller = a.add_tenant("acme").await;
    // Each replica talks to its own fake Intercom; both know the workspace's token.
    b.fake.add_workspace(&intercom_token("acme"), "acme");
    assert_eq!(b.get("/v1/tenants/acme/tools", &caller).await.status(), 200);
    assert!(
        b.fake.stats(&intercom_token("acme")).initializes > 0,
        "b holds a session"
    );

    // Deleted on A: B stops using it and closes its sessions.
    let res = a
        .request(
            Method::DELETE,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let took = within("B answers intercom_not_connected", || async {
        b.get("/v1/tenants/acme/tools", &caller).await.status() == 409
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    within("B closed its old session", || async {
        b.fake.stats(&intercom_token("acme")).deletes > 0
    })
    .await;

    // Replaced on A with a token of another workspace: B's next calls use it.
    b.fake.add_workspace("itk_second_token", "acme-two");
    let res = a
        .request(
            Method::PUT,
            "/v1/tenants/acme/intercom/credential",
            Some(&admin()),
            Some(json!({"access_token": "itk_second_token"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let took = within("B uses the new token", || async {
        b.get("/v1/tenants/acme/tools", &caller).await.status() == 200
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(b.fake.stats("itk_second_token").requests > 0);
}

#[sqlx::test(migrations = false)]
async fn suspending_a_tenant_on_one_replica_stops_calls_on_the_other(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (a, b) = replicas(db).await;
    let caller = a.add_tenant("acme").await;
    b.fake.add_workspace(&intercom_token("acme"), "acme");
    assert_eq!(b.get("/v1/tenants/acme/tools", &caller).await.status(), 200);

    let res = b
        .request(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&admin()),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let took = within("A answers tenant_suspended", || async {
        a.get("/v1/tenants/acme/tools", &caller).await.status() == 403
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
