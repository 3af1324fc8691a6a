//! Tenant records as the API and the cache see them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::TenantId;

/// Which Intercom data centre hosts the tenant's workspace; it picks the MCP endpoint.
/// Australia has no Intercom MCP server, so it is not a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }

    pub(crate) fn from_db(s: &str) -> Region {
        if s == "eu" { Region::Eu } else { Region::Us }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub(crate) fn from_db(s: &str) -> TenantStatus {
        if s == "suspended" {
            TenantStatus::Suspended
        } else {
            TenantStatus::Active
        }
    }
}

/// The largest `per_minute` and `burst` a tenant may have: 100 million a minute is ~1.7M calls
/// a second, beyond what a replica serves, so a tenant can be limited by capacity alone.
pub const MAX_RATE: u32 = 100_000_000;

/// A GCRA bucket: `per_minute` sustained, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    // `maximum` is MAX_RATE: utoipa takes a literal only.
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub per_minute: u32,
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub region: Region,
    pub status: TenantStatus,
    /// `None` = the gateway defaults.
    pub rate_limit: Option<RateLimit>,
    /// `None` = unlimited.
    pub monthly_quota: Option<i64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Usable.
    Active,
    /// Intercom answered 401 for it; replace it to resume calls.
    Rejected,
}

impl CredentialStatus {
    pub(crate) fn from_db(s: &str) -> CredentialStatus {
        if s == "rejected" {
            CredentialStatus::Rejected
        } else {
            CredentialStatus::Active
        }
    }
}

/// What may be said about a stored credential: never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialMeta {
    pub status: CredentialStatus,
    pub fingerprint: String,
    pub key_id: String,
    pub generation: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub rejected_at: Option<OffsetDateTime>,
    /// Intercom's `app.id_code` for the token's workspace, when known (OAuth connects).
    pub workspace_id: Option<String>,
    /// Intercom's `app.region` (`US`, `EU`, `AU`), when known.
    pub workspace_region: Option<String>,
}
