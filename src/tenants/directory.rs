//! The tenant directory: tenant records and decrypted credentials, cached in memory.
//!
//! The hot path (a tool call) asks [`TenantDirectory::get`]; in steady state that is a cache hit
//! with no database round trip and no decrypt. Every admin change calls
//! [`TenantDirectory::invalidate`]. A time-to-live bounds how long another replica's change can
//! go unseen.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use moka::future::Cache;
use secrecy::SecretString;
use sqlx::PgPool;

use super::crypto::Keyring;
use super::model::{CredentialStatus, Tenant};
use super::{TenantId, repo};

/// A tenant as the hot path needs it.
pub struct TenantEntry {
    pub tenant: Tenant,
    pub credential: Option<LiveCredential>,
}

/// A credential opened for use. `token` never leaves the process except as the upstream
/// `Authorization` header.
pub struct LiveCredential {
    pub token: SecretString,
    pub status: CredentialStatus,
    pub generation: i64,
}

#[derive(Clone)]
pub struct TenantDirectory {
    db: PgPool,
    keyring: Arc<Keyring>,
    /// `None` caches "no such tenant" too, so unknown ids do not reach Postgres every time.
    cache: Cache<TenantId, Option<Arc<TenantEntry>>>,
}

impl TenantDirectory {
    pub fn new(db: PgPool, keyring: Arc<Keyring>, ttl: Duration) -> Self {
        Self {
            db,
            keyring,
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The tenant and its opened credential; concurrent misses share one load.
    pub async fn get(&self, id: &TenantId) -> anyhow::Result<Option<Arc<TenantEntry>>> {
        self.cache
            .try_get_with(
                id.clone(),
                // Only a cache miss reaches Postgres, so only a miss has a database span.
                self.load(id).instrument(tracing::info_span!(
                    "db.load_tenant",
                    db.system.name = "postgresql",
                    tenant = %id
                )),
            )
            .await
            .map_err(|e: Arc<anyhow::Error>| anyhow::anyhow!("loading tenant {id}: {e:#}"))
    }

    pub async fn invalidate(&self, id: &TenantId) {
        self.cache.invalidate(id).await;
    }

    /// Drops every cached tenant (change notifications may have been missed).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    async fn load(&self, id: &TenantId) -> anyhow::Result<Option<Arc<TenantEntry>>> {
        let Some(tenant) = repo::get_tenant(&self.db, id).await? else {
            return Ok(None);
        };
        let credential = match repo::get_credential(&self.db, id).await? {
            None => None,
            Some((meta, sealed)) => Some(LiveCredential {
                token: self.keyring.open(id, &sealed)?,
                status: meta.status,
                generation: meta.generation,
            }),
        };
        Ok(Some(Arc::new(TenantEntry { tenant, credential })))
    }
}
