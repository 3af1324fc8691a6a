//! The tenant directory: tenant records and decrypted credentials, cached in memory.
//!
//! The hot path (a tool call) asks [`TenantDirectory::get`]; in steady state that is a cache hit
//! with no database round trip and no decrypt. Every admin change calls
//! [`TenantDirectory::invalidate`]; another replica's change arrives as a notification and
//! [`TenantDirectory::reload`] reads the tenant again at once. A time-to-live bounds how long a
//! missed change can go unseen.
//!
//! A tool call needs no database: while Postgres cannot be reached, a tenant whose cached copy
//! expired is served from the last copy read (at most [`MAX_STALE`] old), and Postgres is tried
//! again at most every [`STALE_RETRY`], so one call pays the connection timeout, not every call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
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

/// How long a tenant record may be served from memory after the last successful read while
/// Postgres cannot be reached. Changes cannot be committed while Postgres is down, and every
/// replica re-reads each tenant as soon as Postgres answers again, so this only bounds the
/// window of a partition that cuts this replica off while others still write.
const MAX_STALE: Duration = Duration::from_secs(15 * 60);

/// How long a read may take before the last copy read is served instead.
const FALLBACK_AFTER: Duration = Duration::from_secs(2);

/// While a stale copy is being served, how often a call retries Postgres for that tenant.
const STALE_RETRY: Duration = Duration::from_secs(5);

/// What the cache holds for a tenant: its entry (`None`: no such tenant) and whether it came
/// from the last-known-good copy because Postgres could not be read.
#[derive(Clone)]
struct Slot {
    entry: Option<Arc<TenantEntry>>,
    stale: bool,
}

/// Fresh slots live for the directory's time-to-live, stale ones for [`STALE_RETRY`].
struct SlotExpiry {
    ttl: Duration,
}

impl SlotExpiry {
    fn of(&self, slot: &Slot) -> Duration {
        if slot.stale {
            STALE_RETRY.min(self.ttl)
        } else {
            self.ttl
        }
    }
}

impl moka::Expiry<TenantId, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &TenantId, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(self.of(slot))
    }

    fn expire_after_update(
        &self,
        _: &TenantId,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(slot))
    }
}

#[derive(Clone)]
pub struct TenantDirectory {
    db: PgPool,
    keyring: Arc<Keyring>,
    /// Caches "no such tenant" too, so unknown ids do not reach Postgres every time.
    cache: Cache<TenantId, Slot>,
    /// The last record read from Postgres per tenant, served when Postgres cannot be read (a
    /// tool call needs no database). Dropped when the tenant is known to have changed.
    last_good: moka::sync::Cache<TenantId, Arc<TenantEntry>>,
    /// Bumped by every invalidation: a load that overlapped one reads again, so it cannot
    /// cache a copy older than the change.
    epoch: Arc<AtomicU64>,
    /// Until when Postgres is presumed unreachable (the last read failed to connect).
    unreachable_until: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl TenantDirectory {
    pub fn new(db: PgPool, keyring: Arc<Keyring>, ttl: Duration) -> Self {
        Self {
            db,
            keyring,
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(SlotExpiry { ttl })
                .build(),
            last_good: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MAX_STALE)
                .build(),
            epoch: Arc::default(),
            unreachable_until: Arc::default(),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The tenant and its opened credential; concurrent misses share one load. When Postgres
    /// cannot be read, the last copy read (at most [`MAX_STALE`] old) is served instead.
    pub async fn get(&self, id: &TenantId) -> Result<Option<Arc<TenantEntry>>, LoadError> {
        self.cache
            .try_get_with(
                id.clone(),
                // Only a cache miss reaches Postgres, so only a miss has a database span: the
                // span is made inside the future, which only a miss polls (made outside, every
                // hit built, closed and exported one, and paid ~5k instructions for it).
                async {
                    let span = tracing::info_span!(
                        "db.load_tenant",
                        db.system.name = "postgresql",
                        tenant = %id
                    );
                    self.load_slot(id).instrument(span).await
                },
            )
            .await
            .map(|slot| slot.entry)
            .map_err(|e: Arc<LoadError>| LoadError {
                database_unreachable: e.database_unreachable,
                message: format!("loading tenant {id}: {}", e.message),
            })
    }

    /// Forgets the tenant: it changed. The next call reads it again.
    pub async fn invalidate(&self, id: &TenantId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.last_good.invalidate(id);
        self.cache.invalidate(id).await;
    }

    /// The tenant changed (a change notification). A tenant this replica has cached is read
    /// again now, while Postgres is known to answer, so calls do not depend on reaching Postgres
    /// later; one it has not cached is only forgotten (reading it ahead could cache a copy that
    /// predates a change whose notification is still on its way). If the read fails the tenant
    /// is forgotten and the next call reads it.
    pub async fn reload(&self, id: &TenantId) {
        let cached = self.cache.contains_key(id);
        self.invalidate(id).await;
        if !cached {
            return;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Ok(slot) = self.load_slot(id).await
            && !slot.stale
            && self.epoch.load(Ordering::Acquire) == epoch
        {
            self.cache.insert(id.clone(), slot).await;
        }
    }

    /// Drops every cached tenant (change notifications may have been missed). The last-known
    /// copies stay as the fallback for an outage; the next call of each tenant reads Postgres.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    async fn load_slot(&self, id: &TenantId) -> Result<Slot, LoadError> {
        let stale = |entry| Slot {
            entry: Some(entry),
            stale: true,
        };
        if self.presumed_unreachable()
            && let Some(entry) = self.last_good.get(id)
        {
            return Ok(stale(entry));
        }
        let mut attempt = 0;
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            let read = if self.last_good.contains_key(id) {
                // With a copy to fall back on, a hung Postgres must not hold the call for the
                // pool's whole acquire timeout.
                tokio::time::timeout(FALLBACK_AFTER, self.load(id))
                    .await
                    .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut.into()))
            } else {
                self.load(id).await
            };
            let loaded = match read {
                Ok(loaded) => loaded,
                Err(e) => {
                    let e = LoadError::from(e);
                    if e.database_unreachable {
                        self.set_unreachable_until(Some(Instant::now() + STALE_RETRY));
                    }
                    let Some(entry) = self.last_good.get(id) else {
                        return Err(e);
                    };
                    tracing::warn!(
                        tenant = %id,
                        error = %e,
                        "tenant record unreadable; serving the last copy read"
                    );
                    return Ok(stale(entry));
                }
            };
            self.set_unreachable_until(None);
            attempt += 1;
            if self.epoch.load(Ordering::Acquire) != epoch && attempt < 3 {
                continue; // a change landed while reading: read again
            }
            match &loaded {
                Some(entry) => self.last_good.insert(id.clone(), entry.clone()),
                None => self.last_good.invalidate(id),
            }
            return Ok(Slot {
                entry: loaded,
                stale: false,
            });
        }
    }

    fn presumed_unreachable(&self) -> bool {
        let until = *self
            .unreachable_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn set_unreachable_until(&self, until: Option<Instant>) {
        *self
            .unreachable_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = until;
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

/// The tenant could not be read and no earlier copy of it is at hand.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// Postgres could not be reached (as opposed to, say, a credential that does not open).
    pub database_unreachable: bool,
    message: String,
}

impl From<anyhow::Error> for LoadError {
    fn from(e: anyhow::Error) -> Self {
        LoadError {
            database_unreachable: e.chain().any(|c| {
                c.downcast_ref::<sqlx::Error>()
                    .is_some_and(crate::db::is_unreachable)
            }),
            message: format!("{e:#}"),
        }
    }
}
