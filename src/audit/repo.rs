//! All SQL about the audit log.

use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::Event;

pub async fn insert(db: &PgPool, e: &Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO audit_log (actor, action, tenant_id, request_id, detail)
           VALUES ($1, $2, $3, $4, $5)"#,
        e.actor,
        e.action.as_str(),
        e.tenant.map(|t| t.as_str()),
        e.request_id,
        e.detail,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// An entry as read back.
pub struct Entry {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
    pub detail: Value,
}

/// What to list: newest first, optionally one tenant and a `[from, to)` time window.
pub struct Filter<'a> {
    pub tenant: Option<&'a str>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Only entries older than this id (the cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

pub async fn list(db: &PgPool, f: Filter<'_>) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as!(
        Entry,
        r#"SELECT id, at, actor, action, tenant_id, request_id, detail
           FROM audit_log
           WHERE ($1::text IS NULL OR tenant_id = $1)
             AND ($2::timestamptz IS NULL OR at >= $2)
             AND ($3::timestamptz IS NULL OR at < $3)
             AND ($4::bigint IS NULL OR id < $4)
           ORDER BY id DESC
           LIMIT $5"#,
        f.tenant,
        f.from,
        f.to,
        f.before,
        f.limit,
    )
    .fetch_all(db)
    .await
}
