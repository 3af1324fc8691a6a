//! A Postgres outage: tool calls of tenants this replica has seen keep working (from the cached
//! or last-read copy), everything that needs the database answers 503 `database_unavailable`.

use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::FakeOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TcpProxy, TestApp, admin, assert_problem, mint, spawn_app_full};

const CALL: &str = "/v1/tenants/acme/conversations?state=open";

async fn behind_a_proxy(db: PgConnectOptions, extra: &[&str]) -> (TestApp, TcpProxy) {
    let target = (db.get_host().to_owned(), db.get_port());
    let proxy = TcpProxy::start(target).await;
    let via_proxy = db.clone().host("127.0.0.1").port(proxy.port);
    let app = spawn_app_full(via_proxy, db, FakeOptions::default(), extra).await;
    (app, proxy)
}

#[sqlx::test(migrations = false)]
async fn a_change_announced_just_before_an_outage_is_read_at_once(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, proxy) = behind_a_proxy(db, &[]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);

    // Another replica (here: psql) changes the tenant; the notification reaches this replica,
    // which must read the tenant again right then, not on the next call.
    sqlx::query("UPDATE tenants SET name = 'Acme Renamed' WHERE id = 'acme'")
        .execute(&app.db)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    for _ in 0..5 {
        assert_eq!(app.get(CALL, &token).await.status(), 200);
    }
}

#[sqlx::test(migrations = false)]
async fn an_outage_longer_than_the_cache_ttl_serves_the_last_copy_and_503s_the_rest(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, proxy) = behind_a_proxy(db, &["--tenant-cache-ttl", "1s"]).await;
    let token = app.add_tenant("acme").await;
    assert_eq!(app.get(CALL, &token).await.status(), 200);

    proxy.cut();
    // Created while this replica cannot hear about it (another replica, here psql).
    sqlx::query("INSERT INTO tenants (id, name, region) VALUES ('globex', 'Globex', 'us')")
        .execute(&app.db)
        .await
        .unwrap();
    let unseen = mint("svc-globex", Some("globex"), "intercom:read");
    tokio::time::sleep(Duration::from_millis(1500)).await; // acme's cached copy expired
    for _ in 0..5 {
        assert_eq!(app.get(CALL, &token).await.status(), 200);
    }
    // Never read by this replica: nothing to fall back on.
    let res = app
        .get("/v1/tenants/globex/conversations?state=open", &unseen)
        .await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_problem(res, 503, "database_unavailable").await;
    // The admin API needs the database.
    let res = app.get("/v1/tenants/acme", &admin()).await;
    assert_problem(res, 503, "database_unavailable").await;

    proxy.restore();
    // Once Postgres answers, globex is read: it has no credential yet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = app
            .get("/v1/tenants/globex/conversations?state=open", &unseen)
            .await
            .status();
        if status == 409 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "globex still {status} after Postgres came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
