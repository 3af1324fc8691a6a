//! Minting HS256 tokens with the shared secret: for the `mint-token` command,
//! the demo and tests. Production callers get their tokens from the IdP.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// What to put in a minted token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// `sub`: the caller id.
    pub sub: String,
    /// The tenant id, written under `tenant_claim`; `None` for admin tokens.
    pub tenant_id: Option<String>,
    /// The `scope` claim, space-separated; omitted when blank.
    pub scopes: String,
    /// Lifetime: `exp` = now + `ttl`.
    pub ttl: Duration,
    /// `iss`, if the gateway checks it.
    pub issuer: Option<String>,
    /// `aud`, if the gateway checks it.
    pub audience: Option<String>,
    /// The claim name the gateway reads the tenant from (`GATEWAY_TENANT_CLAIM`).
    pub tenant_claim: String,
}

impl Default for MintRequest {
    fn default() -> Self {
        MintRequest {
            sub: String::new(),
            tenant_id: None,
            scopes: String::new(),
            ttl: Duration::from_secs(60 * 60),
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".to_owned(),
        }
    }
}

/// Signs an HS256 JWT with `iat`, `exp`, `sub` and the optional claims.
pub fn mint_hs256(
    secret: &SecretString,
    req: &MintRequest,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
    let ttl = i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX);
    let mut claims = Map::new();
    // The tenant goes in first so that a tenant claim named like a registered
    // claim cannot overwrite `sub` or `exp`.
    if let Some(tenant) = &req.tenant_id {
        claims.insert(req.tenant_claim.clone(), Value::from(tenant.as_str()));
    }
    claims.insert("sub".into(), Value::from(req.sub.as_str()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now.saturating_add(ttl)));
    let scopes = req
        .scopes
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !scopes.is_empty() {
        claims.insert("scope".into(), Value::from(scopes));
    }
    if let Some(issuer) = &req.issuer {
        claims.insert("iss".into(), Value::from(issuer.as_str()));
    }
    if let Some(audience) = &req.audience {
        claims.insert("aud".into(), Value::from(audience.as_str()));
    }
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testdata::{self, SECRET};
    use crate::auth::{JwtSettings, JwtVerifier, Scope};

    #[tokio::test]
    async fn a_minted_token_round_trips_through_the_verifier() {
        let settings = JwtSettings {
            issuer: Some("https://idp.example".into()),
            audience: Some("intercom-mcp-gateway".into()),
            tenant_claim: "org".into(),
            ..testdata::hs256_settings()
        };
        let verifier = JwtVerifier::new(settings, testdata::http()).unwrap();
        let req = MintRequest {
            sub: "ops-bot".into(),
            tenant_id: Some("acme".into()),
            scopes: " intercom:read  intercom:write ".into(),
            ttl: Duration::from_secs(600),
            issuer: Some("https://idp.example".into()),
            audience: Some("intercom-mcp-gateway".into()),
            tenant_claim: "org".into(),
        };
        let token = mint_hs256(&SecretString::from(SECRET), &req).unwrap();

        let caller = verifier.verify(&token).await.unwrap();
        assert_eq!(caller.sub, "ops-bot");
        assert_eq!(caller.tenant_id.as_deref(), Some("acme"));
        assert!(caller.has(Scope::IntercomRead) && caller.has(Scope::IntercomWrite));
        assert!(!caller.has(Scope::GatewayAdmin));
        assert!((caller.expires_at - testdata::now() - 600).abs() <= 2);
    }

    #[tokio::test]
    async fn an_admin_token_needs_no_tenant_and_blank_scopes_are_omitted() {
        let secret = SecretString::from(SECRET);
        let admin = MintRequest {
            sub: "root".into(),
            scopes: "gateway:admin".into(),
            ..MintRequest::default()
        };
        let verifier = JwtVerifier::new(testdata::hs256_settings(), testdata::http()).unwrap();
        let caller = verifier
            .verify(&mint_hs256(&secret, &admin).unwrap())
            .await
            .unwrap();
        assert_eq!(caller.tenant_id, None);
        assert!(caller.has(Scope::GatewayAdmin));

        let bare = MintRequest {
            sub: "nobody".into(),
            ..MintRequest::default()
        };
        let claims = testdata::claims_of(&mint_hs256(&secret, &bare).unwrap());
        assert!(claims.get("scope").is_none(), "{claims}");
    }

    #[test]
    fn the_tenant_claim_cannot_overwrite_registered_claims() {
        let req = MintRequest {
            sub: "real".into(),
            tenant_id: Some("fake".into()),
            tenant_claim: "sub".into(),
            ..MintRequest::default()
        };
        let token = mint_hs256(&SecretString::from(SECRET), &req).unwrap();
        assert_eq!(testdata::claims_of(&token)["sub"], "real");
    }
}
