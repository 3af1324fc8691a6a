//! All SQL about pending OAuth connects.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::tenants::TenantId;

/// Stores a state's hash for `tenant`; `false` when the tenant does not exist. Also forgets
/// states that expired more than an hour ago (an expired state is still recognised as expired
/// for a while, so the user is told the right reason).
pub async fn insert_state(
    db: &PgPool,
    hash: &[u8],
    tenant: &TenantId,
    actor: &str,
    expires_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query!("DELETE FROM oauth_states WHERE expires_at < now() - interval '1 hour'")
        .execute(db)
        .await?;
    let done = sqlx::query!(
        r#"INSERT INTO oauth_states (state_hash, tenant_id, actor, expires_at)
           SELECT $1, id, $3, $4 FROM tenants WHERE id = $2"#,
        hash,
        tenant.as_str(),
        actor,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A consumed state.
pub struct UsedState {
    pub tenant_id: String,
    pub actor: String,
    pub expires_at: OffsetDateTime,
}

/// Deletes and returns the state with this hash: whoever deletes it owns it, so a state works
/// once even when two callbacks race.
pub async fn take_state(db: &PgPool, hash: &[u8]) -> Result<Option<UsedState>, sqlx::Error> {
    sqlx::query_as!(
        UsedState,
        r#"DELETE FROM oauth_states WHERE state_hash = $1
           RETURNING tenant_id, actor, expires_at"#,
        hash
    )
    .fetch_optional(db)
    .await
}
