//! `fake-intercom`: the fake Intercom MCP server as a standalone process (compose, demos).
//!
//! ```text
//! fake-intercom --listen 0.0.0.0:8090 --workspace tok-acme=acme --workspace tok-globex=globex
//! FAKE_INTERCOM_WORKSPACES=tok-acme=acme,tok-globex=globex fake-intercom
//! fake-intercom --protocol stateless     # the stateless MCP 2026-07-28 revision only
//! fake-intercom --minimal                # bare-hyper upstream for benchmarks (get_company only)
//! ```
//! Knobs are HTTP routes under `/_fake/` (see `fake_intercom::knobs`).

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use intercom_mcp_gateway::fake_intercom::minimal::MinimalUpstream;
use intercom_mcp_gateway::fake_intercom::{FakeIntercom, FakeOptions, FakeProtocol};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "fake-intercom",
    version,
    about = "Fake Intercom MCP server for tests and demos"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FAKE_INTERCOM_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,

    /// Answer MCP POSTs with application/json instead of SSE streams.
    #[arg(long, env = "FAKE_INTERCOM_JSON_RESPONSE")]
    json_response: bool,

    /// tools/list page size.
    #[arg(long, env = "FAKE_INTERCOM_TOOLS_PAGE_SIZE", default_value_t = 4)]
    tools_page_size: usize,

    /// MCP generation(s) served: `session` (initialize + Mcp-Session-Id, like Intercom today),
    /// `stateless` (2026-07-28 only) or `both`.
    #[arg(long, env = "FAKE_INTERCOM_PROTOCOL", value_enum, default_value_t = FakeProtocol::Session)]
    protocol: FakeProtocol,

    /// Serve the minimal upstream instead (`fake_intercom::minimal`): the session protocol on
    /// bare hyper, `get_company` only, no validation or fault knobs but latency. For benchmarks.
    #[arg(long, env = "FAKE_INTERCOM_MINIMAL", conflicts_with_all = ["json_response", "protocol"])]
    minimal: bool,

    /// A tenant as TOKEN=WORKSPACE; repeatable (env: comma-separated).
    #[arg(
        long = "workspace",
        env = "FAKE_INTERCOM_WORKSPACES",
        value_name = "TOKEN=NAME",
        value_delimiter = ',',
        value_parser = parse_workspace
    )]
    workspaces: Vec<(String, String)>,
}

fn parse_workspace(s: &str) -> Result<(String, String), String> {
    match s.trim().split_once('=') {
        Some((token, name)) if !token.is_empty() && !name.is_empty() => {
            Ok((token.to_owned(), name.to_owned()))
        }
        _ => Err("expected TOKEN=WORKSPACE".to_owned()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();

    if args.minimal {
        let upstream = MinimalUpstream::spawn(Some(args.listen)).await?;
        for (token, workspace) in &args.workspaces {
            upstream.add_workspace(token, workspace);
            tracing::info!(%workspace, "workspace registered");
        }
        tracing::info!(mcp_url = %upstream.mcp_url(), "fake-intercom --minimal ready");
        shutdown_signal()
            .await
            .context("waiting for a shutdown signal")?;
        upstream.shutdown().await;
        return Ok(());
    }
    let fake = FakeIntercom::spawn(FakeOptions {
        listen: Some(args.listen),
        json_response: args.json_response,
        tools_page_size: args.tools_page_size,
        protocol: args.protocol,
    })
    .await?;
    for (token, workspace) in &args.workspaces {
        fake.add_workspace(token, workspace);
        // Never the token: it is a credential, even a fake one.
        tracing::info!(%workspace, "workspace registered");
    }
    tracing::info!(mcp_url = %fake.mcp_url(), "fake-intercom ready");

    shutdown_signal()
        .await
        .context("waiting for a shutdown signal")?;
    tracing::info!("shutting down");
    fake.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from docker/kubernetes.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
