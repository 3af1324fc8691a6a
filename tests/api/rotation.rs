//! Key rotation: a new key put first seals new writes; old rows are re-sealed in the background,
//! by `rotate-keys`, or both, while calls keep succeeding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::FakeOptions;
use intercom_mcp_gateway::tenants::TenantId;
use intercom_mcp_gateway::tenants::crypto::{Keyring, SealedToken};
use intercom_mcp_gateway::tenants::rotation::reseal_pass;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, admin, intercom_token, spawn_app_with};

fn keyring(spec: &str) -> Keyring {
    Keyring::parse(&SecretString::from(spec.to_owned())).unwrap()
}

async fn keys_in_use(db: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT key_id, count(*) FROM intercom_credentials GROUP BY key_id ORDER BY key_id",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// Every stored credential opens with `ring` and holds the tenant's token.
async fn assert_every_row_opens(db: &PgPool, ring: &Keyring) {
    let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, key_id, nonce, ciphertext FROM intercom_credentials")
            .fetch_all(db)
            .await
            .unwrap();
    assert!(!rows.is_empty());
    for (tenant, key_id, nonce, ciphertext) in rows {
        let id = TenantId::parse(&tenant).unwrap();
        let token = ring
            .open(
                &id,
                &SealedToken {
                    key_id,
                    nonce,
                    ciphertext,
                },
            )
            .unwrap_or_else(|e| panic!("{tenant}: {e}"));
        assert_eq!(token.expose_secret(), intercom_token(&tenant));
    }
}

async fn populate(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let mut tenants = Vec::new();
    for i in 0..n {
        let id = format!("t{i:02}");
        let caller = app.add_tenant(&id).await;
        tenants.push((id, caller));
    }
    tenants
}

#[sqlx::test(migrations = false)]
async fn rotating_keys_under_live_traffic_fails_no_call_and_every_row_opens_with_the_new_key(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let k1 = Keyring::generate_entry("k1");
    let k2 = Keyring::generate_entry("k2");
    let old = spawn_app_with(
        db.clone(),
        FakeOptions::default(),
        &["--encryption-keys", &k1],
    )
    .await;
    let tenants = Arc::new(populate(&old, 12).await);
    assert_eq!(keys_in_use(&old.db).await, [("k1".to_owned(), 12)]);

    // The new configuration: k2 first, k1 still there to open old rows. Its own background job
    // is off so that the rotation below runs in small, slow batches during the traffic.
    let both = format!("{k2},{k1}");
    let new = Arc::new(
        spawn_app_with(
            db.clone(),
            FakeOptions::default(),
            &["--encryption-keys", &both, "--reseal-interval", "0"],
        )
        .await,
    );
    for (id, _) in tenants.iter() {
        new.fake.add_workspace(&intercom_token(id), id);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut traffic = Vec::new();
    for worker in 0..3 {
        let (new, tenants, stop, ok, failed) = (
            new.clone(),
            tenants.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        traffic.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let (id, caller) = &tenants[i % tenants.len()];
                let res = new
                    .post(
                        &format!("/v1/tenants/{id}/search"),
                        caller,
                        json!({"query": "object_type:conversations state:open"}),
                    )
                    .await;
                if res.status() == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "{id}: {} {}",
                        res.status(),
                        res.text().await.unwrap_or_default()
                    );
                }
                i += 1;
            }
        }));
    }
    // Renames make every replica drop its cached copy and read the row again mid-rotation.
    let renames = {
        let (old_base, tenants, stop) = (old.base.clone(), tenants.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (id, _) = &tenants[i % tenants.len()];
                let res = http
                    .patch(format!("{old_base}/v1/tenants/{id}"))
                    .bearer_auth(admin())
                    .json(&json!({"name": format!("renamed {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let ring = keyring(&both);
    let mut batches = 0;
    let report = reseal_pass(&new.db, &ring, 2, Duration::from_millis(60), |_| {
        batches += 1
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }
    renames.await.unwrap();

    assert_eq!(report.resealed, 12);
    assert_eq!(report.failed, 0);
    assert_eq!(batches, 6, "small batches");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no call failed");
    assert!(
        ok.load(Ordering::Relaxed) >= 12,
        "traffic ran: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(keys_in_use(&new.db).await, [("k2".to_owned(), 12)]);
    assert_every_row_opens(&new.db, &keyring(&k2)).await;
    let rotated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'credential.key_rotated' AND actor = 'system:key-rotation'",
    )
    .fetch_one(&new.db)
    .await
    .unwrap();
    assert_eq!(rotated, 12);

    // New writes use k2 at once, and a re-seal changed no generation.
    let cred: serde_json::Value = new
        .get("/v1/tenants/t00/intercom/credential", &admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (cred["key_id"].as_str(), cred["generation"].as_i64()),
        (Some("k2"), Some(1))
    );
}

#[sqlx::test(migrations = false)]
async fn the_background_job_reseals_old_rows_and_new_writes_use_the_first_key(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let k1 = Keyring::generate_entry("k1");
    let k2 = Keyring::generate_entry("k2");
    let old = spawn_app_with(
        db.clone(),
        FakeOptions::default(),
        &["--encryption-keys", &k1],
    )
    .await;
    populate(&old, 3).await;
    let both = format!("{k2},{k1}");
    let new = spawn_app_with(db, FakeOptions::default(), &["--encryption-keys", &both]).await;
    let started = std::time::Instant::now();
    while keys_in_use(&new.db).await != [("k2".to_owned(), 3)] {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            keys_in_use(&new.db).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_every_row_opens(&new.db, &keyring(&k2)).await;
    let res = new
        .request(
            Method::PUT,
            "/v1/tenants/t01/intercom/credential",
            Some(&admin()),
            Some(json!({"access_token": intercom_token("t01")})),
        )
        .await;
    let cred: serde_json::Value = res.json().await.unwrap();
    assert_eq!(cred["key_id"], "k2");
}

/// Runs the real binary's `rotate-keys` against the test database.
fn rotate_keys(db: &PgConnectOptions, keys: &str, extra: &[&str]) -> (bool, String) {
    let url = format!(
        "postgres://{}@{}:{}/{}",
        db.get_username(),
        db.get_host(),
        db.get_port(),
        db.get_database().unwrap()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_intercom-mcp-gateway"))
        .arg("rotate-keys")
        .args(extra)
        .env("DATABASE_URL", url)
        .env("GATEWAY_ENCRYPTION_KEYS", keys)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(keys.split(':').nth(1).unwrap()),
        "no key material printed"
    );
    (out.status.success(), text)
}

#[sqlx::test(migrations = false)]
async fn rotate_keys_counts_in_a_dry_run_reseals_and_says_which_keys_may_go(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let k1 = Keyring::generate_entry("k1");
    let k2 = Keyring::generate_entry("k2");
    let app = spawn_app_with(
        db.clone(),
        FakeOptions::default(),
        &["--encryption-keys", &k1],
    )
    .await;
    populate(&app, 3).await;
    let both = format!("{k2},{k1}");

    let (ok, out) = rotate_keys(&db, &both, &["--dry-run"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("key k1: 3 credentials (old key: still needed)"),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(keys_in_use(&app.db).await, [("k1".to_owned(), 3)]);

    // Without the old key the rows cannot be opened: the command says so and fails.
    let (ok, out) = rotate_keys(&db, &k2, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("NOT in GATEWAY_ENCRYPTION_KEYS"), "{out}");
    assert_eq!(keys_in_use(&app.db).await, [("k1".to_owned(), 3)]);

    let (ok, out) = rotate_keys(&db, &both, &["--batch-size", "2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("re-sealed 3 credentials with key `k2`"),
        "{out}"
    );
    assert!(
        out.contains("key k1: 0 credentials (no row uses it"),
        "{out}"
    );
    assert_eq!(keys_in_use(&app.db).await, [("k2".to_owned(), 3)]);
    assert_every_row_opens(&app.db, &keyring(&k2)).await;
    // The running replica (k1 only) was never asked to open a k2 row: its cache still serves.
}
