//! The token itself: the JOSE header we read before any crypto, the claim
//! rules handed to `jsonwebtoken`, its errors mapped to ours, and the claims we
//! read after the signature held.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::VerifyKey;
use super::{AuthError, Caller, JwtSettings, Scopes};

/// Larger "tokens" are rejected before any parsing or crypto.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

pub(super) fn base_validation(settings: &JwtSettings, leeway_secs: u64) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // `jsonwebtoken` checks `iss`/`aud` only when present, so a configured one
    // must also be required, or dropping the claim would bypass the check.
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &settings.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // RFC 7519 §4.1.3 wants tokens naming another audience rejected, but
        // PRODUCT.md checks `aud` only when configured: without
        // GATEWAY_JWT_AUDIENCE any `aud` is accepted. Set it in production.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The protected header, parsed by us before `jsonwebtoken` sees the token, so
/// that `alg: none` and unknown algorithms are refused as such instead of as
/// JSON errors, and `kid` is known before any key is chosen.
#[derive(Deserialize)]
pub(super) struct JoseHeader {
    pub(super) alg: String,
    #[serde(default)]
    pub(super) kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

impl JoseHeader {
    pub(super) fn parse(token: &str) -> Result<JoseHeader, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(sig).
        // The signature may be empty here so that an unsigned token is reported
        // as a refused algorithm.
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        if payload.is_empty() {
            return Err(AuthError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed)?;
        let header: JoseHeader = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we
        // understand none.
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        Ok(header)
    }
}

pub(super) fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, AuthError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| auth_error(e.kind()))
}

/// Tries each candidate key (several only for a JWKS token without `kid`).
/// The signature is checked before the claims, so only `InvalidSignature`
/// means "try the next key".
pub(super) fn decode_with_any(
    token: &str,
    keys: &[Arc<VerifyKey>],
    validation: &Validation,
) -> Result<Map<String, Value>, AuthError> {
    for key in keys {
        match decode(token, &key.key, validation) {
            Err(AuthError::InvalidSignature) => continue,
            other => return other,
        }
    }
    Err(AuthError::InvalidSignature)
}

fn auth_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
        ErrorKind::InvalidAudience => AuthError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "sub" => "sub",
            "iss" => "iss",
            "aud" => "aud",
            // `base_validation` requires no other claim.
            _ => "unknown",
        }),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => {
            // A JWKS entry that parsed but cannot verify: the IdP's problem, and
            // for the caller indistinguishable from a wrong signature.
            tracing::warn!("a JWKS key could not be used to verify a token");
            AuthError::InvalidSignature
        }
        _ => AuthError::Malformed,
    }
}

/// Parses verified claims. `exp`, `nbf`, `iss` and `aud` were checked by
/// `jsonwebtoken`; here we take what the gateway needs.
pub(super) fn caller_from_claims(
    claims: &Map<String, Value>,
    tenant_claim: &str,
) -> Result<Caller, AuthError> {
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(AuthError::MissingClaim("sub")),
    };
    let expires_at = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(AuthError::MissingClaim("exp"))?;
    let tenant_id = match claims.get(tenant_claim) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        // Some IdPs emit numeric tenant ids; a fraction cannot be one.
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(_) => return Err(AuthError::InvalidClaim(tenant_claim.to_owned())),
    };
    let mut scopes = Scopes::NONE;
    for name in ["scope", "scp"] {
        scopes = scopes.union(match claims.get(name) {
            None | Some(Value::Null) => Scopes::NONE,
            Some(Value::String(s)) => Scopes::parse(s),
            Some(Value::Array(items)) => Scopes::from_names(items.iter().filter_map(Value::as_str)),
            Some(_) => return Err(AuthError::InvalidClaim(name.to_owned())),
        });
    }
    Ok(Caller {
        sub,
        tenant_id,
        scopes,
        expires_at,
    })
}

/// RFC 7519 §2: NumericDate is seconds since the epoch and may have a fraction.
fn numeric_date(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_u64().map(|_| i64::MAX))
        .or_else(|| value.as_f64().map(|f| f as i64))
}
