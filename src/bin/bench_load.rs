//! `bench_load`: the load driver of `bench/run` (issue 8).
//!
//! A load tool cannot speak MCP sessions, so this drives both paths itself over plain HTTP/1.1
//! with the same client, to keep the comparison fair:
//! - **direct**: JSON-RPC `tools/call` POSTs to the upstream MCP server (the fake in JSON
//!   response mode), on one pre-initialized session per tenant;
//! - **gateway**: `POST /v1/tenants/{t}/tools/get_company/calls` with a tenant JWT.
//!
//! Closed loop (`--rate 0`): `--conns` workers each send back to back; reports max req/s.
//! Fixed rate (`--rate R`): request `i` is due at `t0 + i/R`; a request that starts late
//! because every worker was busy is timed from its due time (no coordinated omission), while
//! tokio's 1 ms timer slack on an idle worker is not charged to the server.
//!
//! `run` prints shell assignments (`R_rps=... R_p50_ms=...`) for `bench/run` to `eval`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use intercom_mcp_gateway::auth::{MintRequest, mint_hs256};
use secrecy::SecretString;
use serde_json::json;

const PROTOCOL_VERSION: &str = "2025-11-25";

#[derive(Parser)]
#[command(name = "bench_load", about = "Load driver for bench/run")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates tenants `w{start}..w{start+count}` (high rate limit, credential `tok-w{i}`) in
    /// the gateway and registers their workspaces in the fake.
    Setup {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        fake: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long)]
        count: usize,
    },
    /// One call per tenant through the gateway (opens one upstream session each).
    Warm {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long)]
        count: usize,
    },
    /// Prints shell assignments for an external load tool (wrk): `S_SESSION` (a fresh,
    /// initialized upstream MCP session of tenant `w{tenant}`) and `S_JWT` (its caller JWT).
    Session {
        #[arg(long)]
        url: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 0)]
        tenant: usize,
    },
    /// Drives load and prints `R_*` shell assignments.
    Run {
        #[arg(long, value_enum)]
        target: Target,
        /// Gateway base URL, or the upstream MCP URL for `direct`.
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "")]
        secret: String,
        /// Spread the connections over tenants `w0..w{tenants}`.
        #[arg(long, default_value_t = 1)]
        tenants: usize,
        #[arg(long, default_value_t = 16)]
        conns: usize,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured seconds before (its calls still count in `R_calls_total`).
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Requests per second; 0 = as fast as possible.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Direct,
    Gateway,
}

fn tenant(i: usize) -> String {
    format!("w{i}")
}

fn upstream_token(i: usize) -> String {
    format!("tok-w{i}")
}

/// The fake derives `company_id` `<workspace slug>-retail` from the workspace name.
fn company_id(i: usize) -> String {
    format!("w{i}-retail")
}

fn client(conns: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(conns.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn jwt(secret: &str, tenant: Option<String>, scopes: &str) -> anyhow::Result<String> {
    Ok(mint_hs256(
        &SecretString::from(secret.to_owned()),
        &MintRequest {
            sub: "bench".into(),
            tenant_id: tenant,
            scopes: scopes.into(),
            ttl: Duration::from_secs(6 * 3600),
            ..MintRequest::default()
        },
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    match Args::parse().command {
        Command::Setup {
            gateway,
            fake,
            secret,
            start,
            count,
        } => setup(&gateway, &fake, &secret, start, count).await,
        Command::Warm {
            gateway,
            secret,
            start,
            count,
        } => warm(&gateway, &secret, start, count).await,
        Command::Session {
            url,
            secret,
            tenant: i,
        } => {
            let calls = direct_requests(&url, i + 1).await?;
            let Some(Call::Direct { session, .. }) = calls.get(i) else {
                bail!("no session");
            };
            let jwt = jwt(&secret, Some(tenant(i)), "intercom:read")?;
            println!("S_SESSION={session} S_JWT={jwt}");
            Ok(())
        }
        Command::Run {
            target,
            url,
            secret,
            tenants,
            conns,
            duration,
            warmup,
            rate,
        } => {
            let spec = RunSpec {
                conns: conns.max(1),
                duration: Duration::from_secs_f64(duration),
                warmup: Duration::from_secs_f64(warmup),
                rate,
            };
            let requests = match target {
                Target::Direct => direct_requests(&url, tenants).await?,
                Target::Gateway => gateway_requests(&url, &secret, tenants)?,
            };
            let report = run(spec, requests).await?;
            report.print();
            // Abandoned calls must not hold the process until their timeout.
            std::process::exit(0)
        }
    }
}

async fn setup(
    gw: &str,
    fake: &str,
    secret: &str,
    start: usize,
    count: usize,
) -> anyhow::Result<()> {
    let http = client(16)?;
    let admin = jwt(secret, None, "gateway:admin")?;
    let results = futures::stream::iter(start..start + count)
        .map(|i| {
            let (http, admin) = (http.clone(), admin.clone());
            async move {
                let res = http
                    .post(format!("{fake}/_fake/workspaces"))
                    .json(&json!({"token": upstream_token(i), "workspace": tenant(i)}))
                    .send()
                    .await?;
                ensure!(
                    res.status().is_success(),
                    "fake workspace w{i}: {}",
                    res.status()
                );
                let res = http
                    .post(format!("{gw}/v1/tenants"))
                    .bearer_auth(&admin)
                    .json(&json!({
                        "id": tenant(i), "name": format!("Bench {i}"), "region": "us",
                        "rate_limit": {"per_minute": 100_000_000, "burst": 100_000_000},
                    }))
                    .send()
                    .await?;
                ensure!(
                    res.status().is_success() || res.status() == 409,
                    "creating tenant w{i}: {}",
                    res.text().await.unwrap_or_default()
                );
                let res = http
                    .put(format!("{gw}/v1/tenants/{}/intercom/credential", tenant(i)))
                    .bearer_auth(&admin)
                    .json(&json!({"access_token": upstream_token(i)}))
                    .send()
                    .await?;
                ensure!(
                    res.status().is_success(),
                    "credential of w{i}: {}",
                    res.status()
                );
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<anyhow::Result<()>>>()
        .await;
    results.into_iter().collect()
}

async fn warm(gw: &str, secret: &str, start: usize, count: usize) -> anyhow::Result<()> {
    let http = client(16)?;
    let requests = gateway_requests(gw, secret, start + count)?;
    let results = futures::stream::iter(start..start + count)
        .map(|i| {
            let (http, request) = (http.clone(), requests[i].clone());
            async move {
                let ok = request.send(&http, 0).await?;
                ensure!(ok, "warm-up call of w{i} failed");
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<anyhow::Result<()>>>()
        .await;
    results.into_iter().collect()
}

/// One prepared call: everything but the JSON-RPC id is fixed up front.
#[derive(Clone)]
enum Call {
    Direct {
        url: Arc<str>,
        token: Arc<str>,
        session: Arc<str>,
        company_id: Arc<str>,
    },
    Gateway {
        url: Arc<str>,
        jwt: Arc<str>,
        body: Arc<str>,
    },
}

impl Call {
    /// `Ok(true)` on a successful tool result.
    async fn send(&self, http: &reqwest::Client, id: u64) -> anyhow::Result<bool> {
        match self {
            Call::Direct {
                url,
                token,
                session,
                company_id,
            } => {
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"get_company","arguments":{{"company_id":"{company_id}"}}}}}}"#
                );
                let res = http
                    .post(&**url)
                    .bearer_auth(&**token)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &**session)
                    .header("mcp-protocol-version", PROTOCOL_VERSION)
                    .body(body)
                    .send()
                    .await?;
                let ok = res.status().is_success();
                let bytes = res.bytes().await?;
                Ok(ok && contains(&bytes, b"\"result\"") && !contains(&bytes, b"\"isError\":true"))
            }
            Call::Gateway { url, jwt, body } => {
                let res = http
                    .post(&**url)
                    .bearer_auth(&**jwt)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let ok = res.status().is_success();
                res.bytes().await?;
                Ok(ok)
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn gateway_requests(base: &str, secret: &str, tenants: usize) -> anyhow::Result<Vec<Call>> {
    (0..tenants.max(1))
        .map(|i| -> anyhow::Result<Call> {
            Ok(Call::Gateway {
                url: format!("{base}/v1/tenants/{}/tools/get_company/calls", tenant(i)).into(),
                jwt: jwt(secret, Some(tenant(i)), "intercom:read")?.into(),
                body: json!({"arguments": {"company_id": company_id(i)}})
                    .to_string()
                    .into(),
            })
        })
        .collect()
}

/// Initializes one MCP session per tenant, as an MCP client would.
async fn direct_requests(url: &str, tenants: usize) -> anyhow::Result<Vec<Call>> {
    let http = client(4)?;
    let mut calls = Vec::new();
    for i in 0..tenants.max(1) {
        let token = upstream_token(i);
        let res = http
            .post(url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "bench_load", "version": "0"},
                },
            }))
            .send()
            .await
            .context("initialize")?;
        if !res.status().is_success() {
            bail!("initialize of w{i}: {}", res.status());
        }
        let session = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("initialize answered without Mcp-Session-Id")?
            .to_owned();
        res.bytes().await?;
        let res = http
            .post(url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await?;
        ensure!(
            res.status().is_success(),
            "notifications/initialized: {}",
            res.status()
        );
        calls.push(Call::Direct {
            url: url.into(),
            token: token.into(),
            session: session.into(),
            company_id: company_id(i).into(),
        });
    }
    Ok(calls)
}

struct RunSpec {
    conns: usize,
    duration: Duration,
    warmup: Duration,
    rate: f64,
}

#[derive(Default)]
struct WorkerResult {
    /// Measured-window latencies, microseconds.
    latencies: Vec<u64>,
    errors: u64,
    /// Every call sent, warm-up included (for per-call CPU and query counts).
    total: u64,
}

struct Report {
    conns: usize,
    rate: f64,
    secs: f64,
    ok: usize,
    errors: u64,
    total: u64,
    stuck: u64,
    latencies: Vec<u64>,
}

async fn run(spec: RunSpec, calls: Vec<Call>) -> anyhow::Result<Report> {
    let http = client(spec.conns)?;
    let calls = Arc::new(calls);
    let next_ticket = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let period = (spec.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / spec.rate));
    let workers: Vec<_> = (0..spec.conns)
        .map(|w| {
            let (http, calls, next_ticket) = (http.clone(), calls.clone(), next_ticket.clone());
            tokio::spawn(async move {
                let call = &calls[w % calls.len()];
                let mut result = WorkerResult::default();
                let mut id = 0u64;
                loop {
                    let began = match period {
                        None => Instant::now(),
                        Some(period) => {
                            let ticket = next_ticket.fetch_add(1, Ordering::Relaxed);
                            let due = start + period.mul_f64(ticket as f64);
                            if due >= end {
                                break;
                            }
                            if Instant::now() >= due {
                                // Every worker was busy: the wait is the server's doing.
                                due
                            } else {
                                tokio::time::sleep_until(due.into()).await;
                                Instant::now()
                            }
                        }
                    };
                    if began >= end {
                        break;
                    }
                    // JSON-RPC ids must be unique within the MCP session all workers share.
                    id += 1;
                    let id = ((w as u64) << 40) | id;
                    let ok = matches!(call.send(&http, id).await, Ok(true));
                    let done = Instant::now();
                    result.total += 1;
                    if began >= measure_from && done <= end {
                        if ok {
                            result
                                .latencies
                                .push(done.duration_since(began).as_micros() as u64);
                        } else {
                            result.errors += 1;
                        }
                    }
                }
                result
            })
        })
        .collect();
    let mut report = Report {
        conns: spec.conns,
        rate: spec.rate,
        secs: spec.duration.as_secs_f64(),
        ok: 0,
        errors: 0,
        total: 0,
        stuck: 0,
        latencies: Vec::new(),
    };
    // A call still unanswered 5 s after the end is abandoned and counted as an error, so one
    // hung connection cannot stretch a row to the client timeout.
    let grace = tokio::time::Instant::from(end + Duration::from_secs(5));
    for worker in workers {
        let Ok(r) = tokio::time::timeout_at(grace, worker).await else {
            report.errors += 1;
            report.stuck += 1;
            continue;
        };
        let r = r?;
        report.errors += r.errors;
        report.total += r.total;
        report.latencies.extend(r.latencies);
    }
    report.ok = report.latencies.len();
    report.latencies.sort_unstable();
    Ok(report)
}

impl Report {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1000.0
    }

    fn print(&self) {
        println!(
            "R_conns={} R_rate={} R_ok={} R_errors={} R_calls_total={} R_rps={:.0} \
             R_p50_ms={:.3} R_p90_ms={:.3} R_p99_ms={:.3} R_max_ms={:.3} R_stuck={}",
            self.conns,
            self.rate,
            self.ok,
            self.errors,
            self.total,
            self.ok as f64 / self.secs,
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0),
            self.stuck,
        );
    }
}
