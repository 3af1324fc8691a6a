//! Command line and environment.
//!
//! Every setting is a flag and an environment variable with the name PRODUCT.md gives it. clap
//! reports a missing or unparsable value naming the variable, and exits non-zero. Secrets are
//! `SecretString`s with `hide_env_values`, so neither `--help` nor an error message prints them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use url::Url;

use crate::mcp::UpstreamProtocol;
use crate::tenants::crypto::Keyring;

#[derive(Debug, Parser)]
#[command(name = "intercom-mcp-gateway", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Async worker threads. Default: one per CPU this process may use (the cgroup CPU quota
    /// counts). The async runtime's own variable, validated here so a bad value is a clear error.
    #[arg(long, env = "TOKIO_WORKER_THREADS", value_name = "TOKIO_WORKER_THREADS", global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Run the gateway end-to-end on this machine against a bundled fake Intercom.
    Demo(DemoArgs),
    /// Print a signed HS256 JWT for local testing.
    MintToken(MintArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Re-seal every credential with the first key of GATEWAY_ENCRYPTION_KEYS.
    RotateKeys(RotateKeysArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RotateKeysArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Token sealing keys, `kid:base64-32-bytes,...`; rows are re-sealed with the first.
    #[arg(
        long,
        env = "GATEWAY_ENCRYPTION_KEYS",
        value_name = "GATEWAY_ENCRYPTION_KEYS",
        hide_env_values = true
    )]
    pub encryption_keys: Option<SecretString>,

    /// Only count the credentials per key id; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Rows per transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
}

/// Everything `serve` needs. Optional here so that subcommands that do not serve (`openapi`,
/// `mint-token`) start without it; [`ServeArgs::database_url`] and friends are checked in
/// [`ServeArgs::validate`] with messages naming the variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address of the API listener.
    #[arg(
        long,
        env = "GATEWAY_LISTEN",
        value_name = "GATEWAY_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// Address of the Prometheus `/metrics` listener.
    #[arg(
        long,
        env = "GATEWAY_METRICS_LISTEN",
        value_name = "GATEWAY_METRICS_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_listen: SocketAddr,

    #[command(flatten)]
    pub jwt: JwtArgs,

    /// Token sealing keys, `kid:base64-32-bytes,...`; the first encrypts, all decrypt.
    #[arg(
        long,
        env = "GATEWAY_ENCRYPTION_KEYS",
        value_name = "GATEWAY_ENCRYPTION_KEYS",
        hide_env_values = true
    )]
    pub encryption_keys: Option<SecretString>,

    #[command(flatten)]
    pub intercom: IntercomArgs,

    #[command(flatten)]
    pub pool: PoolArgs,

    /// Sustained calls per minute for tenants without their own rate limit.
    #[arg(long, env = "GATEWAY_DEFAULT_RATE_PER_MINUTE", value_name = "GATEWAY_DEFAULT_RATE_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_rate_per_minute: u32,

    /// Burst capacity for tenants without their own rate limit.
    #[arg(long, env = "GATEWAY_DEFAULT_BURST", value_name = "GATEWAY_DEFAULT_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_burst: u32,

    /// Share of a tenant's rate limit one caller (`sub`) may use, 0.01-1.
    #[arg(long, env = "GATEWAY_CALLER_RATE_SHARE", value_name = "GATEWAY_CALLER_RATE_SHARE", default_value_t = 0.5, value_parser = parse_share)]
    pub caller_rate_share: f64,

    /// How long usage rows are kept before the background retention deletes them.
    #[arg(long, env = "GATEWAY_USAGE_RETENTION", value_name = "GATEWAY_USAGE_RETENTION", default_value = "400d", value_parser = parse_duration)]
    pub usage_retention: Duration,

    /// Usage events queued for the writer before new ones are dropped (and counted).
    #[arg(long, env = "GATEWAY_USAGE_QUEUE_CAPACITY", value_name = "GATEWAY_USAGE_QUEUE_CAPACITY", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub usage_queue_capacity: u32,

    /// Largest accepted request body, in bytes.
    #[arg(
        long,
        env = "GATEWAY_MAX_BODY_BYTES",
        value_name = "GATEWAY_MAX_BODY_BYTES",
        default_value_t = 1_048_576
    )]
    pub max_body_bytes: usize,

    /// Log format: `json` or `pretty`.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_name = "GATEWAY_LOG_FORMAT", default_value = "json", value_parser = ["json", "pretty"])]
    pub log_format: String,

    /// Drop the `tenant` label from metrics (very large fleets).
    #[arg(long, env = "GATEWAY_METRICS_TENANT_LABEL", value_name = "GATEWAY_METRICS_TENANT_LABEL", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_tenant_label: bool,

    /// How often the background job looks for credentials sealed with an older key and re-seals
    /// them with the first key of GATEWAY_ENCRYPTION_KEYS; `0` disables it.
    #[arg(long, env = "GATEWAY_RESEAL_INTERVAL", value_name = "GATEWAY_RESEAL_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub reseal_interval: Duration,

    /// How long a replica trusts its cached copy of a tenant and its opened credential before
    /// reading Postgres again. Changes reach every replica at once through notifications; this
    /// only bounds how long a missed notification can go unseen.
    #[arg(long, env = "GATEWAY_TENANT_CACHE_TTL", value_name = "GATEWAY_TENANT_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub tenant_cache_ttl: Duration,

    /// How long SIGTERM waits for in-flight requests before closing upstream sessions.
    #[arg(long, env = "GATEWAY_SHUTDOWN_TIMEOUT", value_name = "GATEWAY_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// Shared secret for HS256 caller tokens (at least 32 bytes).
    #[arg(long, env = "GATEWAY_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<SecretString>,

    /// JWKS URL for RS256/ES256 caller tokens.
    #[arg(
        long,
        env = "GATEWAY_JWT_JWKS_URL",
        value_name = "GATEWAY_JWT_JWKS_URL"
    )]
    pub jwt_jwks_url: Option<Url>,

    /// Required `iss` claim, when set.
    #[arg(long, env = "GATEWAY_JWT_ISSUER", value_name = "GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim, when set.
    #[arg(
        long,
        env = "GATEWAY_JWT_AUDIENCE",
        value_name = "GATEWAY_JWT_AUDIENCE"
    )]
    pub jwt_audience: Option<String>,

    /// Name of the claim holding the caller's tenant id.
    #[arg(
        long,
        env = "GATEWAY_TENANT_CLAIM",
        value_name = "GATEWAY_TENANT_CLAIM",
        default_value = "tenant_id"
    )]
    pub tenant_claim: String,
}

#[derive(Debug, Clone, Args)]
pub struct IntercomArgs {
    /// Intercom MCP endpoint for US-hosted workspaces.
    #[arg(
        long,
        env = "INTERCOM_MCP_URL",
        value_name = "INTERCOM_MCP_URL",
        default_value = "https://mcp.intercom.com/mcp"
    )]
    pub intercom_mcp_url: Url,

    /// Intercom MCP endpoint for EU-hosted workspaces.
    #[arg(
        long,
        env = "INTERCOM_MCP_URL_EU",
        value_name = "INTERCOM_MCP_URL_EU",
        default_value = "https://mcp.eu.intercom.com/mcp"
    )]
    pub intercom_mcp_url_eu: Url,

    /// OAuth client id of the gateway's Intercom app.
    #[arg(
        long,
        env = "INTERCOM_OAUTH_CLIENT_ID",
        value_name = "INTERCOM_OAUTH_CLIENT_ID"
    )]
    pub intercom_oauth_client_id: Option<String>,

    /// OAuth client secret of the gateway's Intercom app.
    #[arg(
        long,
        env = "INTERCOM_OAUTH_CLIENT_SECRET",
        value_name = "INTERCOM_OAUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub intercom_oauth_client_secret: Option<SecretString>,

    /// Intercom's OAuth authorize page.
    #[arg(
        long,
        env = "INTERCOM_OAUTH_AUTHORIZE_URL",
        value_name = "INTERCOM_OAUTH_AUTHORIZE_URL",
        default_value = "https://app.intercom.com/oauth"
    )]
    pub intercom_oauth_authorize_url: Url,

    /// Intercom's OAuth authorize page for EU-hosted workspaces.
    #[arg(
        long,
        env = "INTERCOM_OAUTH_AUTHORIZE_URL_EU",
        value_name = "INTERCOM_OAUTH_AUTHORIZE_URL_EU",
        default_value = "https://app.eu.intercom.com/oauth"
    )]
    pub intercom_oauth_authorize_url_eu: Url,

    /// Intercom's OAuth token endpoint.
    #[arg(
        long,
        env = "INTERCOM_OAUTH_TOKEN_URL",
        value_name = "INTERCOM_OAUTH_TOKEN_URL",
        default_value = "https://api.intercom.io/auth/eagle/token"
    )]
    pub intercom_oauth_token_url: Url,

    /// Intercom REST base URL (for `/me` and `/auth/uninstall`).
    #[arg(
        long,
        env = "INTERCOM_API_URL",
        value_name = "INTERCOM_API_URL",
        default_value = "https://api.intercom.io"
    )]
    pub intercom_api_url: Url,

    /// Public base URL of this gateway (OAuth redirect target).
    #[arg(long, env = "GATEWAY_PUBLIC_URL", value_name = "GATEWAY_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Where the OAuth callback sends the browser after a successful connect (with
    /// `?tenant_id=`); unset = a small page saying it worked.
    #[arg(
        long,
        env = "GATEWAY_OAUTH_SUCCESS_REDIRECT",
        value_name = "GATEWAY_OAUTH_SUCCESS_REDIRECT"
    )]
    pub oauth_success_redirect: Option<Url>,

    /// Also revoke the token at Intercom (`POST /auth/uninstall`) when a credential is deleted;
    /// `?revoke=true|false` on the DELETE overrides it.
    #[arg(long, env = "INTERCOM_REVOKE_ON_DISCONNECT", value_name = "INTERCOM_REVOKE_ON_DISCONNECT", default_value_t = false, action = clap::ArgAction::Set)]
    pub revoke_on_disconnect: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PoolArgs {
    /// Upstream MCP sessions per tenant, at most.
    #[arg(long, env = "GATEWAY_POOL_MAX_SESSIONS", value_name = "GATEWAY_POOL_MAX_SESSIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pool_max_sessions: u32,

    /// Idle time after which an upstream session is closed.
    #[arg(long, env = "GATEWAY_POOL_IDLE_TIMEOUT", value_name = "GATEWAY_POOL_IDLE_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub pool_idle_timeout: Duration,

    /// Bound on one tool call, retry included.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT", value_name = "GATEWAY_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Calls in flight on one upstream session, at most.
    #[arg(long, env = "GATEWAY_POOL_SESSION_MAX_IN_FLIGHT", value_name = "GATEWAY_POOL_SESSION_MAX_IN_FLIGHT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_session_max_in_flight: u32,

    /// How long a call waits for a session slot when the tenant's pool is saturated (then 503).
    #[arg(long, env = "GATEWAY_POOL_QUEUE_TIMEOUT", value_name = "GATEWAY_POOL_QUEUE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub pool_queue_timeout: Duration,

    /// Calls that may wait per tenant when its pool is saturated; beyond, 503 at once.
    #[arg(long, env = "GATEWAY_POOL_QUEUE_LENGTH", value_name = "GATEWAY_POOL_QUEUE_LENGTH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub pool_queue_length: u32,

    /// Age after which an upstream session takes no new calls and is replaced.
    #[arg(long, env = "GATEWAY_POOL_MAX_SESSION_AGE", value_name = "GATEWAY_POOL_MAX_SESSION_AGE", default_value = "1h", value_parser = parse_duration)]
    pub pool_max_session_age: Duration,

    /// MCP generation spoken upstream: `auto` (probe with `server/discover`, fall back to
    /// `initialize`), `session` (initialize + Mcp-Session-Id, up to 2025-11-25) or
    /// `stateless` (2026-07-28, no session id).
    #[arg(long, env = "GATEWAY_UPSTREAM_PROTOCOL", value_name = "GATEWAY_UPSTREAM_PROTOCOL", value_enum, default_value_t = UpstreamProtocol::Auto)]
    pub upstream_protocol: UpstreamProtocol,

    /// Hold each session's optional standalone `GET` stream open, so the server can push
    /// `notifications/tools/list_changed` at once. Costs one upstream connection per session,
    /// idle or not; off, tool lists refresh by TTL, on an unknown tool, and on a notification
    /// that arrives with an answer.
    #[arg(long, env = "GATEWAY_UPSTREAM_LISTEN", value_name = "GATEWAY_UPSTREAM_LISTEN", default_value_t = false, action = clap::ArgAction::Set)]
    pub upstream_listen: bool,

    /// Idle time after which a session-based upstream session is parked: its MCP client worker
    /// is stopped (most of an idle session's memory) while the session stays open upstream and
    /// is reached with plain POSTs. Not with `GATEWAY_UPSTREAM_LISTEN` (the stream needs the
    /// worker).
    #[arg(long, env = "GATEWAY_POOL_PARK_AFTER", value_name = "GATEWAY_POOL_PARK_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub pool_park_after: Duration,

    /// Consecutive upstream outages (5xx, connection failures, timeouts) that open a tenant's circuit.
    #[arg(long, env = "GATEWAY_CIRCUIT_FAILURE_THRESHOLD", value_name = "GATEWAY_CIRCUIT_FAILURE_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub circuit_failure_threshold: u32,

    /// How long an open circuit refuses calls before one probe call is let through.
    #[arg(long, env = "GATEWAY_CIRCUIT_COOLDOWN", value_name = "GATEWAY_CIRCUIT_COOLDOWN", default_value = "10s", value_parser = parse_duration)]
    pub circuit_cooldown: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Postgres server URL; the demo creates its own database there when it is missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/intercom_mcp_gateway_demo"
    )]
    pub database_url: SecretString,

    /// API listener of the demo gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Metrics listener of the demo gateway.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct MintArgs {
    /// Caller id (`sub`).
    #[arg(long, default_value = "dev-caller")]
    pub sub: String,
    /// Tenant id claim; omit for an admin-only token.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Space-separated scopes.
    #[arg(long, default_value = "intercom:read")]
    pub scope: String,
    /// Lifetime, e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

/// Parses `300s`, `5m`, `1h 30m` (humantime), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected e.g. `30s`, `5m`)"))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.01..=1.0).contains(&v) => Ok(v),
        _ => Err("expected a number between 0.01 and 1".into()),
    }
}

/// A start-up configuration problem, naming the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

impl ServeArgs {
    pub fn database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database
            .database_url
            .as_ref()
            .ok_or_else(|| ConfigError::new("DATABASE_URL", "is required"))
    }

    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        keyring_from(self.encryption_keys.as_ref())
    }
}

impl RotateKeysArgs {
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        keyring_from(self.encryption_keys.as_ref())
    }
}

fn keyring_from(raw: Option<&SecretString>) -> Result<Keyring, ConfigError> {
    let raw = raw.ok_or_else(|| {
        ConfigError::new(
            "GATEWAY_ENCRYPTION_KEYS",
            "is required (`kid:base64-32-bytes,...`)",
        )
    })?;
    Keyring::parse(raw).map_err(|e| ConfigError::new("GATEWAY_ENCRYPTION_KEYS", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_bad_value_is_reported_with_its_variable_name() {
        let err = Cli::try_parse_from(["gw", "--pool-max-sessions", "0"]).unwrap_err();
        assert!(
            err.to_string().contains("GATEWAY_POOL_MAX_SESSIONS"),
            "{err}"
        );
    }

    #[test]
    fn worker_threads_are_a_whole_number_from_1() {
        let cli = Cli::try_parse_from(["gw", "--worker-threads", "3"]).unwrap();
        assert_eq!(cli.worker_threads, Some(3));
        assert_eq!(Cli::try_parse_from(["gw"]).unwrap().worker_threads, None);
        // The same after a subcommand (the option is global).
        let cli = Cli::try_parse_from(["gw", "serve", "--worker-threads", "1"]).unwrap();
        assert_eq!(cli.worker_threads, Some(1));
        for bad in ["0", "-1", "many", "1025"] {
            let arg = format!("--worker-threads={bad}");
            let err = Cli::try_parse_from(["gw", arg.as_str()]).unwrap_err();
            assert!(err.to_string().contains("TOKIO_WORKER_THREADS"), "{err}");
        }
    }

    #[test]
    fn help_never_shows_secret_values() {
        // SAFETY: tests in this module run in one process; the variable is unique to this test.
        unsafe { std::env::set_var("GATEWAY_JWT_HS256_SECRET", "super-secret-value-123") };
        let help = Cli::try_parse_from(["gw", "--help"])
            .unwrap_err()
            .to_string();
        assert!(!help.contains("super-secret-value-123"));
        assert!(help.contains("GATEWAY_JWT_HS256_SECRET"));
    }
}
