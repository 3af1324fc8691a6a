//! `spawn_app`: the real gateway on port 0, its own fresh database (from `#[sqlx::test]`), and
//! its own fake Intercom.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::Parser;
use intercom_mcp_gateway::Application;
use intercom_mcp_gateway::auth::{MintRequest, mint_hs256};
use intercom_mcp_gateway::config::Cli;
use intercom_mcp_gateway::db::CheckoutCounter;
use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions};
use intercom_mcp_gateway::telemetry::{self, Export, Metrics, Telemetry, TelemetryOptions};
use intercom_mcp_gateway::tenants::crypto::Keyring;
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub const JWT_SECRET: &str = "integration-test-hs256-secret-of-enough-length";

/// Every log line the gateway writes during this test process.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(Default::default)
}

#[derive(Clone)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The gateway's own telemetry stack, logging into the capture buffer and exporting spans to
/// this process's OTLP receiver (see `otlp.rs`).
fn init() -> &'static Telemetry {
    static ONCE: OnceLock<Telemetry> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        telemetry::init_with(TelemetryOptions {
            format: "json".into(),
            filter: Some(
                "debug,rmcp=info,hyper=warn,h2=warn,reqwest=warn,sqlx=warn,tower=warn".into(),
            ),
            writer: Some(BoxMakeWriter::new(|| Capture)),
            export: Export::To(crate::otlp::endpoint()),
        })
    })
}

/// Exports every finished span to the test receiver now.
pub async fn flush_traces() {
    tokio::task::spawn_blocking(|| init().force_flush())
        .await
        .unwrap();
}

pub struct TestApp {
    pub base: String,
    pub metrics_url: String,
    pub http: reqwest::Client,
    pub fake: FakeIntercom,
    pub checkouts: CheckoutCounter,
    pub db: PgPool,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub metrics: Metrics,
    /// The `GATEWAY_ENCRYPTION_KEYS` entry the gateway was started with.
    pub encryption_key: String,
    db_options: PgConnectOptions,
}

/// A second gateway replica on the same database, fake upstream and encryption key.
pub struct Replica {
    pub base: String,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app(db: PgConnectOptions) -> TestApp {
    spawn_app_with(db, FakeOptions::default(), &[]).await
}

pub async fn spawn_app_with(db: PgConnectOptions, fake: FakeOptions, extra: &[&str]) -> TestApp {
    spawn_app_full(db.clone(), db, fake, extra).await
}

/// The gateway reaches Postgres through `app_db` (e.g. a cuttable proxy); the test's own pool
/// uses `direct_db`.
pub async fn spawn_app_full(
    app_db: PgConnectOptions,
    direct_db: PgConnectOptions,
    fake: FakeOptions,
    extra: &[&str],
) -> TestApp {
    let _ = init();
    let fake = FakeIntercom::spawn(fake)
        .await
        .expect("fake Intercom starts");
    let key = Keyring::generate_entry("k1");
    let (base, metrics_url, checkouts, metrics, shutdown, server) =
        start_gateway(app_db, &fake, &key, extra).await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(direct_db.clone())
        .await
        .unwrap();
    TestApp {
        base,
        metrics_url,
        http: reqwest::Client::new(),
        fake,
        checkouts,
        db: pool,
        shutdown,
        server,
        metrics,
        encryption_key: key,
        db_options: direct_db,
    }
}

type Started = (
    String,
    String,
    CheckoutCounter,
    Metrics,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

async fn start_gateway(
    db: PgConnectOptions,
    fake: &FakeIntercom,
    key: &str,
    extra: &[&str],
) -> Started {
    let mcp = fake.mcp_url();
    let mut args = vec![
        "intercom-mcp-gateway",
        "--database-url",
        "postgres://unused",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--jwt-hs256-secret",
        JWT_SECRET,
    ];
    // Another upstream (e.g. the minimal one) replaces the fake: pass `--intercom-mcp-url` and
    // `--intercom-mcp-url-eu` together.
    if !extra.contains(&"--intercom-mcp-url") {
        args.extend_from_slice(&["--intercom-mcp-url", &mcp, "--intercom-mcp-url-eu", &mcp]);
    }
    // Replicas of one test share a database, so they must share the keys.
    if !extra.contains(&"--encryption-keys") {
        args.extend_from_slice(&["--encryption-keys", key]);
    }
    if !extra.contains(&"--upstream-timeout") {
        args.extend_from_slice(&["--upstream-timeout", "5s"]);
    }
    // Generous default limits, so only the tests about limits meet them.
    if !extra.contains(&"--default-rate-per-minute") {
        args.extend_from_slice(&["--default-rate-per-minute", "1000000"]);
    }
    if !extra.contains(&"--default-burst") {
        args.extend_from_slice(&["--default-burst", "100000"]);
    }
    // `{fake}` in an extra argument stands for this app's fake Intercom base URL.
    let base_url = fake.base_url();
    let extra: Vec<String> = extra
        .iter()
        .map(|a| a.replace("{fake}", &base_url))
        .collect();
    args.extend(extra.iter().map(String::as_str));
    let cli = Cli::try_parse_from(args).expect("valid test arguments");
    let app = Application::build_with_db(cli.serve, db)
        .await
        .expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
    let checkouts = app.db_checkouts();
    let metrics = app.state().metrics.clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    (base, metrics_url, checkouts, metrics, shutdown, server)
}

pub fn mint(sub: &str, tenant: Option<&str>, scopes: &str) -> String {
    mint_with(sub, tenant, scopes, Duration::from_secs(600))
}

pub fn mint_with(sub: &str, tenant: Option<&str>, scopes: &str, ttl: Duration) -> String {
    mint_hs256(
        &SecretString::from(JWT_SECRET.to_owned()),
        &MintRequest {
            sub: sub.into(),
            tenant_id: tenant.map(Into::into),
            scopes: scopes.into(),
            ttl,
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".into(),
        },
    )
    .unwrap()
}

pub fn admin() -> String {
    mint("admin-tool", None, "gateway:admin")
}

/// The Intercom token the fake knows for a tenant's workspace.
pub fn intercom_token(tenant: &str) -> String {
    format!("itk_live_{tenant}_5b8c1f0e9a7d4c2b")
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request reaches the gateway")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// Creates a tenant with a credential for a fake workspace of the same name; returns a
    /// read+write token of that tenant.
    pub async fn add_tenant(&self, id: &str) -> String {
        let admin = admin();
        let res = self
            .post(
                "/v1/tenants",
                &admin,
                serde_json::json!({"id": id, "name": format!("{id} Inc."), "region": "us"}),
            )
            .await;
        assert_eq!(res.status(), 201, "create tenant {id}");
        self.fake.add_workspace(&intercom_token(id), id);
        let res = self
            .request(
                Method::PUT,
                &format!("/v1/tenants/{id}/intercom/credential"),
                Some(&admin),
                Some(serde_json::json!({"access_token": intercom_token(id)})),
            )
            .await;
        assert_eq!(res.status(), 200, "store credential of {id}");
        mint(
            &format!("svc-{id}"),
            Some(id),
            "intercom:read intercom:write",
        )
    }

    pub async fn replica(&self, extra: &[&str]) -> Replica {
        let (base, _, _, _, shutdown, server) = start_gateway(
            self.db_options.clone(),
            &self.fake,
            &self.encryption_key,
            extra,
        )
        .await;
        Replica {
            base,
            shutdown,
            server,
        }
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(&self.metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Asserts a problem+json answer with this status and code, and returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], rid.as_str());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// A TCP proxy in front of Postgres that a test can cut and restore.
pub struct TcpProxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl TcpProxy {
    pub async fn start(target: (String, u16)) -> TcpProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Checked and registered under the lock `cut` takes, so no connection accepted
                // around a cut survives it.
                let mut open = conns2.lock().unwrap();
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                open.push(tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect((target.0.as_str(), target.1)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        TcpProxy { port, up, conns }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        let mut open = self.conns.lock().unwrap();
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in open.drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
