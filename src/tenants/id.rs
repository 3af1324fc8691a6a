//! `TenantId`: the one spelling of a tenant id the gateway accepts.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A tenant id: 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
///
/// Kept this narrow because it travels in URL paths, metric labels and log fields; anything
/// wider would need escaping in all three. Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "tenant id must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
)]
pub struct InvalidTenantId;

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if first_ok && rest_ok && s.len() <= 64 {
            Ok(Self(Arc::from(s)))
        } else {
            Err(InvalidTenantId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["acme", "a", "Acme-EU_2", "t.1", &"x".repeat(64)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_ids_that_would_need_escaping() {
        for bad in [
            "",
            "-acme",
            ".x",
            "a/b",
            "a b",
            "é",
            "a%2F",
            &"x".repeat(65),
        ] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad}");
        }
    }
}
