//! `demo`: the whole gateway on this machine, with no Intercom account. Starts the bundled fake
//! Intercom, creates the database if needed, starts the gateway, creates two tenants through
//! the admin API, and prints `curl` commands that return real (fake) data.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::auth::{MintRequest, mint_hs256};
use crate::config::{Cli, DemoArgs};
use crate::fake_intercom::{FakeIntercom, FakeOptions};
use crate::{Application, telemetry};

/// Obviously-not-secret values: the demo runs on a laptop against a fake.
const DEMO_JWT_SECRET: &str = "demo-only-hs256-secret-do-not-use-in-production";
const DEMO_KEY: &str = "demo:ZGVtby1vbmx5LWVuY3J5cHRpb24ta2V5LTMyYnl0ZXM=";
const TENANTS: [(&str, &str, &str); 2] = [
    ("acme", "Acme Inc.", "demo-intercom-token-acme"),
    ("globex", "Globex Corp.", "demo-intercom-token-globex"),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _telemetry = telemetry::init("pretty");
    ensure_database(&args.database_url).await?;

    let fake = FakeIntercom::spawn(FakeOptions::default()).await?;
    for (id, _, token) in TENANTS {
        fake.add_workspace(token, id);
    }

    let listen = args.listen.to_string();
    let metrics_listen = args.metrics_listen.to_string();
    let mcp_url = fake.mcp_url();
    let fake_base = fake.base_url();
    let authorize_url = format!("{fake_base}/oauth");
    let token_url = format!("{fake_base}/auth/eagle/token");
    let public_url = format!("http://{listen}");
    let cli = Cli::try_parse_from([
        "intercom-mcp-gateway",
        "--database-url",
        args.database_url.expose_secret(),
        "--listen",
        &listen,
        "--metrics-listen",
        &metrics_listen,
        "--jwt-hs256-secret",
        DEMO_JWT_SECRET,
        "--encryption-keys",
        DEMO_KEY,
        "--intercom-mcp-url",
        &mcp_url,
        "--intercom-mcp-url-eu",
        &mcp_url,
        // The OAuth connect flow against the fake, whose consent page approves at once.
        "--intercom-oauth-client-id",
        "demo-client",
        "--intercom-oauth-client-secret",
        "demo-client-secret",
        "--intercom-oauth-authorize-url",
        &authorize_url,
        "--intercom-oauth-authorize-url-eu",
        &authorize_url,
        "--intercom-oauth-token-url",
        &token_url,
        "--intercom-api-url",
        &fake_base,
        "--public-url",
        &public_url,
        "--log-format",
        "pretty",
    ])?;
    let app = Application::build(cli.serve).await?;
    let base = format!("http://{}:{}", args.listen.ip(), app.port());
    let server = tokio::spawn(app.run_until_stopped());

    let secret = SecretString::from(DEMO_JWT_SECRET.to_owned());
    let mint = |sub: &str, tenant: Option<&str>, scope: &str| {
        mint_hs256(
            &secret,
            &MintRequest {
                sub: sub.into(),
                tenant_id: tenant.map(Into::into),
                scopes: scope.into(),
                ttl: Duration::from_secs(24 * 3600),
                issuer: None,
                audience: None,
                tenant_claim: "tenant_id".into(),
            },
        )
    };
    let admin = mint("demo-admin", None, "gateway:admin")?;
    let http = reqwest::Client::new();
    for (id, name, token) in TENANTS {
        let res = http
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"id": id, "name": name, "region": "us"}))
            .send()
            .await?;
        anyhow::ensure!(
            res.status().is_success() || res.status() == 409,
            "creating tenant {id}: {}",
            res.text().await.unwrap_or_default()
        );
        let res = http
            .put(format!("{base}/v1/tenants/{id}/intercom/credential"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"access_token": token}))
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "storing the credential of {id}");
    }
    let acme = mint("demo-service", Some("acme"), "intercom:read intercom:write")?;
    print_instructions(&base, args.metrics_listen.port(), &acme, &admin);

    let result = server.await.context("gateway task")?;
    fake.shutdown().await;
    result
}

fn print_instructions(base: &str, metrics_port: u16, token: &str, admin: &str) {
    println!(
        r#"
intercom-mcp-gateway demo is running (fake Intercom, local Postgres). Ctrl-C stops it.

  export GW={base}
  export TOKEN={token}
  export ADMIN={admin}

  # the tools tenant `acme` can use
  curl -s $GW/v1/tenants/acme/tools -H "Authorization: Bearer $TOKEN"
  # open conversations (search_conversations)
  curl -s "$GW/v1/tenants/acme/conversations?state=open&per_page=2" -H "Authorization: Bearer $TOKEN"
  # contacts by email domain (search_contacts)
  curl -s "$GW/v1/tenants/acme/contacts?email_domain=acme.example" -H "Authorization: Bearer $TOKEN"
  # the search DSL
  curl -s $GW/v1/tenants/acme/search -H "Authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"query": "object_type:conversations state:open"}}'
  # any tool by name
  curl -s $GW/v1/tenants/acme/tools/list_companies/calls -H "Authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"arguments": {{}}}}'
  # another tenant's data is invisible to this token (404)
  curl -s $GW/v1/tenants/globex/tools -H "Authorization: Bearer $TOKEN"
  # administration
  curl -s $GW/v1/tenants -H "Authorization: Bearer $ADMIN"
  curl -s $GW/v1/tenants/acme/intercom/credential -H "Authorization: Bearer $ADMIN"
  # connect a new tenant with Intercom OAuth: open `authorize_url` in a browser, or let curl
  # follow the fake consent page back to the gateway's callback
  curl -s $GW/v1/tenants -H "Authorization: Bearer $ADMIN" \
       -H 'content-type: application/json' -d '{{"id": "initech", "name": "Initech"}}'
  curl -sL "$(curl -s -X POST $GW/v1/tenants/initech/intercom/oauth/start \
       -H "Authorization: Bearer $ADMIN" | sed 's/.*"authorize_url":"\([^"]*\)".*/\1/')&workspace=initech"
  # who did what
  curl -s "$GW/v1/audit?tenant_id=initech" -H "Authorization: Bearer $ADMIN"

  API docs: {base}/docs      metrics: http://127.0.0.1:{metrics_port}/metrics
"#
    );
}

/// Creates the database named in the URL when it does not exist (connecting to `postgres`).
async fn ensure_database(url: &SecretString) -> anyhow::Result<()> {
    let options: PgConnectOptions = crate::db::connect_options(url)?;
    let name = options
        .get_database()
        .unwrap_or("intercom_mcp_gateway_demo")
        .to_owned();
    let mut conn = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to Postgres (is it running? set DATABASE_URL)")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        // The name is quoted as an identifier, so it cannot break out of the statement.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        println!("created database {name}");
    }
    conn.close().await?;
    Ok(())
}
