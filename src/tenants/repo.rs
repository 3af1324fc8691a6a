//! All SQL about tenants and credentials. Nothing here is on the tool-call hot path: the
//! [`super::cache::TenantCache`] sits in front of [`load_entry`].

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

use super::TenantId;
use super::crypto::SealedToken;
use super::model::{CredentialMeta, CredentialStatus, RateLimit, Region, Tenant, TenantStatus};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("tenant already exists")]
    Conflict,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub struct NewTenant<'a> {
    pub id: &'a TenantId,
    pub name: &'a str,
    pub region: Region,
    pub rate_limit: Option<RateLimit>,
    pub monthly_quota: Option<i64>,
}

/// Fields a PATCH may change; `None` leaves a field alone, `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub region: Option<Region>,
    pub status: Option<TenantStatus>,
    pub rate_limit: Option<Option<RateLimit>>,
    pub monthly_quota: Option<Option<i64>>,
}

struct TenantRow {
    id: String,
    name: String,
    region: String,
    status: String,
    rate_per_minute: Option<i32>,
    rate_burst: Option<i32>,
    monthly_quota: Option<i64>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TenantRow {
    fn into_tenant(self) -> Result<Tenant, sqlx::Error> {
        let id = TenantId::parse(&self.id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let rate_limit = match (self.rate_per_minute, self.rate_burst) {
            (Some(p), Some(b)) => Some(RateLimit {
                per_minute: p.unsigned_abs(),
                burst: b.unsigned_abs(),
            }),
            _ => None,
        };
        Ok(Tenant {
            id,
            name: self.name,
            region: Region::from_db(&self.region),
            status: TenantStatus::from_db(&self.status),
            rate_limit,
            monthly_quota: self.monthly_quota,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn rate_parts(r: Option<RateLimit>) -> (Option<i32>, Option<i32>) {
    match r {
        Some(r) => (
            Some(i32::try_from(r.per_minute).unwrap_or(i32::MAX)),
            Some(i32::try_from(r.burst).unwrap_or(i32::MAX)),
        ),
        None => (None, None),
    }
}

pub async fn insert_tenant(db: &PgPool, t: NewTenant<'_>) -> Result<Tenant, RepoError> {
    let (per_minute, burst) = rate_parts(t.rate_limit);
    let row = sqlx::query_as!(
        TenantRow,
        r#"INSERT INTO tenants (id, name, region, rate_per_minute, rate_burst, monthly_quota)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (id) DO NOTHING
           RETURNING id, name, region, status, rate_per_minute, rate_burst, monthly_quota,
                     created_at, updated_at"#,
        t.id.as_str(),
        t.name,
        t.region.as_str(),
        per_minute,
        burst,
        t.monthly_quota,
    )
    .fetch_optional(db)
    .await?;
    row.ok_or(RepoError::Conflict)?
        .into_tenant()
        .map_err(Into::into)
}

pub async fn get_tenant(
    db: impl PgExecutor<'_>,
    id: &TenantId,
) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query_as!(
        TenantRow,
        r#"SELECT id, name, region, status, rate_per_minute, rate_burst, monthly_quota,
                  created_at, updated_at
           FROM tenants WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(db)
    .await?;
    row.map(TenantRow::into_tenant).transpose()
}

/// One page of tenants ordered by id, starting after `after`.
pub async fn list_tenants(
    db: &PgPool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Tenant>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TenantRow,
        r#"SELECT id, name, region, status, rate_per_minute, rate_burst, monthly_quota,
                  created_at, updated_at
           FROM tenants WHERE ($1::text IS NULL OR id > $1)
           ORDER BY id LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(TenantRow::into_tenant).collect()
}

pub async fn update_tenant(
    db: &PgPool,
    id: &TenantId,
    patch: TenantPatch,
) -> Result<Option<Tenant>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let current = sqlx::query_as!(
        TenantRow,
        r#"SELECT id, name, region, status, rate_per_minute, rate_burst, monthly_quota,
                  created_at, updated_at
           FROM tenants WHERE id = $1 FOR UPDATE"#,
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let mut t = current.into_tenant()?;
    if let Some(name) = patch.name {
        t.name = name;
    }
    if let Some(region) = patch.region {
        t.region = region;
    }
    if let Some(status) = patch.status {
        t.status = status;
    }
    if let Some(rate_limit) = patch.rate_limit {
        t.rate_limit = rate_limit;
    }
    if let Some(quota) = patch.monthly_quota {
        t.monthly_quota = quota;
    }
    let (per_minute, burst) = rate_parts(t.rate_limit);
    let row = sqlx::query_as!(
        TenantRow,
        r#"UPDATE tenants
           SET name = $2, region = $3, status = $4, rate_per_minute = $5, rate_burst = $6,
               monthly_quota = $7, updated_at = now()
           WHERE id = $1
           RETURNING id, name, region, status, rate_per_minute, rate_burst, monthly_quota,
                     created_at, updated_at"#,
        id.as_str(),
        t.name,
        t.region.as_str(),
        t.status.as_str(),
        per_minute,
        burst,
        t.monthly_quota,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    row.into_tenant().map(Some)
}

/// Deletes the tenant and (by cascade) its credential. Usage rows are kept.
pub async fn delete_tenant(db: &PgPool, id: &TenantId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM tenants WHERE id = $1", id.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

struct CredentialRow {
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    fingerprint: String,
    status: String,
    generation: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    rejected_at: Option<OffsetDateTime>,
    workspace_id: Option<String>,
    workspace_region: Option<String>,
}

impl CredentialRow {
    fn split(self) -> (CredentialMeta, SealedToken) {
        (
            CredentialMeta {
                status: CredentialStatus::from_db(&self.status),
                fingerprint: self.fingerprint,
                key_id: self.key_id.clone(),
                generation: self.generation,
                created_at: self.created_at,
                updated_at: self.updated_at,
                rejected_at: self.rejected_at,
                workspace_id: self.workspace_id,
                workspace_region: self.workspace_region,
            },
            SealedToken {
                key_id: self.key_id,
                nonce: self.nonce,
                ciphertext: self.ciphertext,
            },
        )
    }
}

pub async fn get_credential(
    db: &PgPool,
    id: &TenantId,
) -> Result<Option<(CredentialMeta, SealedToken)>, sqlx::Error> {
    let row = sqlx::query_as!(
        CredentialRow,
        r#"SELECT key_id, nonce, ciphertext, fingerprint, status, generation, created_at,
                  updated_at, rejected_at, workspace_id, workspace_region
           FROM intercom_credentials WHERE tenant_id = $1"#,
        id.as_str()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(CredentialRow::split))
}

/// The Intercom workspace a token was issued for (`GET /me`), when known.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkspaceRef<'a> {
    pub id: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Stores or replaces the tenant's credential; a replacement bumps the generation and makes it
/// `active` again. `None` when the tenant does not exist.
pub async fn put_credential(
    db: &PgPool,
    id: &TenantId,
    sealed: &SealedToken,
    fingerprint: &str,
    workspace: WorkspaceRef<'_>,
) -> Result<Option<CredentialMeta>, sqlx::Error> {
    let row = sqlx::query_as!(
        CredentialRow,
        r#"INSERT INTO intercom_credentials (tenant_id, key_id, nonce, ciphertext, fingerprint,
                                             workspace_id, workspace_region)
           SELECT id, $2, $3, $4, $5, $6, $7 FROM tenants WHERE id = $1
           ON CONFLICT (tenant_id) DO UPDATE
           SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce,
               ciphertext = EXCLUDED.ciphertext, fingerprint = EXCLUDED.fingerprint,
               workspace_id = EXCLUDED.workspace_id,
               workspace_region = EXCLUDED.workspace_region,
               status = 'active', rejected_at = NULL, updated_at = now(),
               generation = intercom_credentials.generation + 1
           RETURNING key_id, nonce, ciphertext, fingerprint, status, generation, created_at,
                     updated_at, rejected_at, workspace_id, workspace_region"#,
        id.as_str(),
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
        fingerprint,
        workspace.id,
        workspace.region,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.split().0))
}

pub async fn delete_credential(db: &PgPool, id: &TenantId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM intercom_credentials WHERE tenant_id = $1",
        id.as_str()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the credential `rejected`, but only the generation that Intercom actually refused: a
/// token replaced meanwhile stays active.
pub async fn mark_credential_rejected(
    db: &PgPool,
    id: &TenantId,
    generation: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE intercom_credentials
           SET status = 'rejected', rejected_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND generation = $2 AND status = 'active'"#,
        id.as_str(),
        generation
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tenants whose credential Intercom rejected (the `gateway_credentials_rejected` gauge).
pub async fn rejected_credential_tenants(db: &PgPool) -> Result<Vec<TenantId>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        "SELECT tenant_id FROM intercom_credentials WHERE status = 'rejected' ORDER BY tenant_id"
    )
    .fetch_all(db)
    .await?;
    Ok(ids
        .iter()
        .filter_map(|id| TenantId::parse(id).ok())
        .collect())
}

/// A sealed credential as key rotation sees it.
pub struct SealedRow {
    pub tenant_id: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Credentials per key id (`rotate-keys --dry-run`, and whether an old key may be removed).
pub async fn count_by_key(db: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT key_id, count(*) AS "rows!" FROM intercom_credentials
           GROUP BY key_id ORDER BY key_id"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key_id, r.rows)).collect())
}

/// Whether any credential is sealed with a key other than `primary`.
pub async fn any_sealed_with_other_key(db: &PgPool, primary: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM intercom_credentials WHERE key_id <> $1) AS "any!""#,
        primary
    )
    .fetch_one(db)
    .await?;
    Ok(row.any)
}

/// Locks up to `limit` credentials after `after` (by tenant id) that are sealed with a key other
/// than `primary`. Rows another replica (or a credential write) holds are skipped, not waited
/// for: they are that writer's business, and the next pass sees what is left.
pub async fn lock_stale_batch(
    tx: &mut sqlx::PgConnection,
    primary: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<SealedRow>, sqlx::Error> {
    sqlx::query_as!(
        SealedRow,
        r#"SELECT tenant_id, key_id, nonce, ciphertext FROM intercom_credentials
           WHERE key_id <> $1 AND tenant_id > $2
           ORDER BY tenant_id LIMIT $3
           FOR UPDATE SKIP LOCKED"#,
        primary,
        after,
        limit
    )
    .fetch_all(tx)
    .await
}

/// Replaces the sealing of a locked row. Token, generation and timestamps stay: nothing a
/// session or a cache keys on changes.
pub async fn reseal(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    sealed: &SealedToken,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE intercom_credentials SET key_id = $2, nonce = $3, ciphertext = $4
           WHERE tenant_id = $1"#,
        tenant,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
    )
    .execute(tx)
    .await?;
    Ok(())
}
