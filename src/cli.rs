//! The subcommands: `serve` (default), `migrate`, `demo`, `mint-token`, `openapi`,
//! `rotate-keys`.

mod demo;
mod rotate_keys;

use secrecy::SecretString;

use crate::auth::{MintRequest, mint_hs256};
use crate::config::{Cli, Command, ConfigError, MintArgs};
use crate::{Application, db, http, telemetry};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            // Held until the end of `serve`: dropping it flushes the last spans.
            let _telemetry = telemetry::init(&cli.serve.log_format);
            let app = Application::build(cli.serve).await?;
            app.run_until_stopped().await
        }
        Command::Migrate(args) => {
            let _telemetry = telemetry::init("pretty");
            let url = args
                .database_url
                .ok_or_else(|| ConfigError::new("DATABASE_URL", "is required"))?;
            let pool = db::pool(db::connect_options(&url)?, db::CheckoutCounter::default());
            db::migrate(&pool).await?;
            println!(
                "migrations applied (latest version {})",
                db::latest_migration()
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::MintToken(args) => {
            println!("{}", mint(&args)?);
            Ok(())
        }
        Command::RotateKeys(args) => {
            let _telemetry = telemetry::init("pretty");
            rotate_keys::run(args).await
        }
        Command::Openapi => {
            println!("{}", openapi_json());
            Ok(())
        }
    }
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    http::openapi_document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn mint(args: &MintArgs) -> anyhow::Result<String> {
    let secret: &SecretString = args.jwt.jwt_hs256_secret.as_ref().ok_or_else(|| {
        ConfigError::new("GATEWAY_JWT_HS256_SECRET", "is required to mint a token")
    })?;
    Ok(mint_hs256(
        secret,
        &MintRequest {
            sub: args.sub.clone(),
            tenant_id: args.tenant.clone(),
            scopes: args.scope.clone(),
            ttl: args.ttl,
            issuer: args.jwt.jwt_issuer.clone(),
            audience: args.jwt.jwt_audience.clone(),
            tenant_claim: args.jwt.tenant_claim.clone(),
        },
    )?)
}
