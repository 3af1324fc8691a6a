use std::process::ExitCode;

use clap::Parser;
use intercom_mcp_gateway::cli;
use intercom_mcp_gateway::config::Cli;

fn main() -> ExitCode {
    // Must precede the first TLS client (reqwest, sqlx, the OTLP exporter): we build rustls
    // without a default provider so exactly one (ring) is compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
