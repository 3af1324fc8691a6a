//! Building and running the gateway: `Application::build` → `port()` → `run_until_stopped()`.
//! Tests build it on port 0 against their own database and fake upstream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{JwtSettings, JwtVerifier};
use crate::config::{ConfigError, ServeArgs};
use crate::db::{self, CheckoutCounter};
use crate::http::{self, AppState, HttpSettings, Services};
use crate::limits::{Quotas, RateLimits};
use crate::mcp::{PoolSettings, Upstream};
use crate::metering::{self, WriterHandle, spawn_retention, spawn_writer};
use crate::oauth::{IntercomRest, OAuthApp, OAuthConfig};
use crate::telemetry::{self, Metrics};
use crate::tenants::TenantDirectory;
use crate::tenants::model::{CredentialStatus, RateLimit, Region, TenantStatus};
use crate::tenants::{notify, repo, rotation};

pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    state: AppState,
    checkouts: CheckoutCounter,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
    usage_writer: WriterHandle,
    background: CancellationToken,
}

impl Application {
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let options = db::connect_options(args.database_url()?)?;
        Self::build_with_db(args, options).await
    }

    /// As [`Application::build`], with the database given as options (tests).
    pub async fn build_with_db(args: ServeArgs, options: PgConnectOptions) -> anyhow::Result<Self> {
        let keyring = Arc::new(args.keyring()?);
        let checkouts = CheckoutCounter::default();
        let db = db::pool(options, checkouts.clone());
        db::migrate(&db).await?;

        let metrics = Metrics::new(args.metrics_tenant_label);
        let http_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let verifier = JwtVerifier::new(
            JwtSettings {
                hs256_secret: args.jwt.jwt_hs256_secret.clone(),
                jwks_url: args.jwt.jwt_jwks_url.clone(),
                issuer: args.jwt.jwt_issuer.clone(),
                audience: args.jwt.jwt_audience.clone(),
                tenant_claim: args.jwt.tenant_claim.clone(),
                leeway: Duration::from_secs(30),
            },
            http_client,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let upstream = Upstream::new(
            PoolSettings {
                max_sessions: args.pool.pool_max_sessions as usize,
                per_session_cap: args.pool.pool_session_max_in_flight as usize,
                queue_timeout: args.pool.pool_queue_timeout,
                queue_length: args.pool.pool_queue_length as usize,
                max_session_age: args.pool.pool_max_session_age,
                circuit_failures: args.pool.circuit_failure_threshold,
                circuit_cooldown: args.pool.circuit_cooldown,
                idle_timeout: args.pool.pool_idle_timeout,
                catalog_ttl: Duration::from_secs(300),
                drain_timeout: args.shutdown_timeout,
                upstream_protocol: args.pool.upstream_protocol,
                upstream_listen: args.pool.upstream_listen,
                park_after: args.pool.pool_park_after,
            },
            metrics.clone(),
        )?;
        let quotas = Quotas::new(db.clone());
        let (meter, usage_writer) = spawn_writer(
            db.clone(),
            quotas.clone(),
            metrics.usage_writer(),
            args.usage_queue_capacity as usize,
            metering::FLUSH_EVERY,
        );
        let background = CancellationToken::new();
        quotas.spawn_refresher(background.clone());
        spawn_retention(
            db.clone(),
            args.usage_retention,
            Duration::from_secs(60),
            background.clone(),
        );
        let directory = TenantDirectory::new(db.clone(), keyring.clone(), args.tenant_cache_ttl);
        let shutdown = CancellationToken::new();
        let drain_with = upstream.clone();
        let reload_db = db.clone();
        let urls = (
            Arc::<str>::from(args.intercom.intercom_mcp_url.as_str()),
            Arc::<str>::from(args.intercom.intercom_mcp_url_eu.as_str()),
        );
        notify::spawn_listener(
            &db,
            directory.clone(),
            Box::new(move |tenant| {
                let (upstream, db, urls) = (drain_with.clone(), reload_db.clone(), urls.clone());
                Box::pin(async move {
                    // Read the tenant as it is now, straight from Postgres: going through the
                    // directory here could cache a copy older than a concurrent change.
                    let tenant_row = repo::get_tenant(&db, &tenant).await.ok().flatten();
                    let credential = repo::get_credential(&db, &tenant).await.ok().flatten();
                    let current = match (tenant_row, credential) {
                        (Some(t), Some((meta, _)))
                            if t.status == TenantStatus::Active
                                && meta.status == CredentialStatus::Active =>
                        {
                            let url = match t.region {
                                Region::Us => urls.0.clone(),
                                Region::Eu => urls.1.clone(),
                            };
                            Some((meta.generation, url))
                        }
                        _ => None,
                    };
                    let binding = current.as_ref().map(|(g, u)| (*g, &**u));
                    upstream
                        .close_tenant_unless_bound_to(&tenant, binding)
                        .await
                })
            }),
            shutdown.clone(),
        )
        .await
        .context("listening for tenant changes")?;
        rotation::spawn_background(db.clone(), keyring, args.reseal_interval, shutdown.clone())
            .await
            .context("checking for credentials to re-seal")?;
        let intercom = &args.intercom;
        let oauth = OAuthConfig {
            app: OAuthApp::from_parts(
                intercom.intercom_oauth_client_id.as_deref(),
                intercom.intercom_oauth_client_secret.as_ref(),
                intercom.public_url.as_ref(),
                intercom.intercom_oauth_authorize_url.clone(),
                intercom.intercom_oauth_authorize_url_eu.clone(),
                intercom.intercom_oauth_token_url.clone(),
            ),
            rest: IntercomRest::new(intercom.intercom_api_url.clone())?,
            success_redirect: intercom.oauth_success_redirect.clone(),
            revoke_on_disconnect: intercom.revoke_on_disconnect,
        };
        let state = AppState::new(Services {
            limits: RateLimits::new(
                RateLimit {
                    per_minute: args.default_rate_per_minute,
                    burst: args.default_burst,
                },
                args.caller_rate_share,
            ),
            quotas,
            meter,
            db,
            directory,
            upstream,
            verifier,
            metrics,
            settings: HttpSettings {
                intercom_mcp_url: Arc::from(args.intercom.intercom_mcp_url.as_str()),
                intercom_mcp_url_eu: Arc::from(args.intercom.intercom_mcp_url_eu.as_str()),
                upstream_timeout: args.pool.upstream_timeout,
                max_body_bytes: args.max_body_bytes,
            },
            oauth,
        });
        let listener = TcpListener::bind(args.listen).await.map_err(|e| {
            ConfigError::new(
                "GATEWAY_LISTEN",
                format!("cannot listen on {}: {e}", args.listen),
            )
        })?;
        let metrics_listener = TcpListener::bind(args.metrics_listen).await.map_err(|e| {
            ConfigError::new(
                "GATEWAY_METRICS_LISTEN",
                format!("cannot listen on {}: {e}", args.metrics_listen),
            )
        })?;
        Ok(Self {
            listener,
            metrics_listener,
            state,
            checkouts,
            shutdown,
            shutdown_timeout: args.shutdown_timeout,
            usage_writer,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Database connection checkouts since start (each query takes one).
    pub fn db_checkouts(&self) -> CheckoutCounter {
        self.checkouts.clone()
    }

    /// Cancelling it stops the gateway as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/Ctrl-C (or the shutdown token): then stops accepting, lets
    /// in-flight requests finish within `GATEWAY_SHUTDOWN_TIMEOUT`, and DELETEs every upstream
    /// session before returning.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        tokio::spawn({
            let token = token.clone();
            async move {
                shutdown_signal().await;
                token.cancel();
            }
        });
        let state = self.state.clone();
        let metrics_app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    telemetry::refresh_sampled_metrics(&state.metrics, &state.db).await;
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        state.metrics.render(),
                    )
                }
            }),
        );
        let metrics_server = http::serve(self.metrics_listener, metrics_app, token.clone());
        let api = http::serve(
            self.listener,
            http::router(self.state.clone()),
            token.clone(),
        );
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "gateway listening");

        let metrics_task = tokio::spawn(metrics_server);
        let api_task = tokio::spawn(api);
        token.cancelled().await;
        tracing::info!("shutting down: draining in-flight requests");
        match tokio::time::timeout(self.shutdown_timeout, api_task).await {
            Ok(r) => r.context("API server task")?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within the shutdown timeout")
            }
        }
        self.state.upstream.shutdown(Duration::from_secs(5)).await;
        self.background.cancel();
        self.usage_writer.shutdown(Duration::from_secs(10)).await;
        metrics_task.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
