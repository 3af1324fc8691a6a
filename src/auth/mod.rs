//! Who is calling: bearer JWTs in, a [`Caller`] out.
//!
//! Every `/v1` request carries `Authorization: Bearer <JWT>` (RFC 6750 §2.1).
//! [`JwtVerifier::verify`] checks it against an allow-list of algorithms and key
//! sources (PRODUCT.md, "Callers and auth"):
//!
//! - `HS256` with the shared secret `GATEWAY_JWT_HS256_SECRET`;
//! - `RS256` / `ES256` with public keys from `GATEWAY_JWT_JWKS_URL` (`jwks.rs`).
//!
//! Each algorithm is bound to exactly one key source, which is what defeats
//! key-type confusion (an RSA public key used as an HMAC secret, `alg: none`);
//! see `jwt.rs` for the decision point. Successful results are cached by the
//! token's SHA-256 for at most a minute, and never past `exp`, so a steady
//! stream of requests with one token costs one signature check.
//!
//! Nothing here logs or returns a token, the secret or key material: errors carry
//! only the reason, phrased for the caller.
//!
//! Files: `jwt.rs` (settings, verifier, allow-list, result cache), `token.rs`
//! (JOSE header, claim rules, claims to [`Caller`]), `jwks.rs` (fetching and
//! caching the key set), `scopes.rs`, `mint.rs` (dev tokens), `testdata/`
//! (throw-away test keys).

mod jwks;
mod jwt;
mod mint;
mod scopes;
#[cfg(test)]
mod testdata;
mod token;

pub use jwks::JwksError;
pub use jwt::{JwksTiming, JwtSettings, JwtVerifier, bearer_token};
pub use mint::{MintRequest, mint_hs256};
pub use scopes::{Scope, Scopes};

/// An authenticated caller, parsed from a verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `sub` claim: who is calling.
    pub sub: String,
    /// The caller's tenant, from the claim named by `GATEWAY_TENANT_CLAIM`.
    /// `None` is normal for `gateway:admin` tokens.
    pub tenant_id: Option<String>,
    /// Scopes this gateway understands; others were dropped.
    pub scopes: Scopes,
    /// The token's `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

impl Caller {
    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// Why a bearer token was refused.
///
/// `Display` is a caller-safe sentence saying what to fix; it never contains the
/// token, the secret or key material, and stays within the characters RFC 6750
/// §3 allows in `error_description`, so it can go into `WWW-Authenticate` as is.
/// Every variant is the caller's problem (401) except
/// [`AuthError::KeySetUnavailable`], which is ours (503).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No bearer token on the request.
    #[error("send a bearer token: `Authorization: Bearer <JWT>`")]
    Missing,
    /// Not a compact JWS: three base64url parts with JSON header and claims.
    #[error("the bearer token is not a well-formed JWT (header.payload.signature, base64url JSON)")]
    Malformed,
    /// `exp` (plus leeway) is in the past.
    #[error("the token has expired; obtain a new one")]
    Expired,
    /// `nbf` (minus leeway) is in the future.
    #[error("the token is not valid yet (`nbf` is in the future); check the issuer's clock")]
    NotYetValid,
    /// The signature does not match the key the algorithm is bound to.
    #[error("the token signature does not verify; use a token issued by a trusted issuer")]
    InvalidSignature,
    /// The header's `alg` is not on the allow-list for the configured key sources.
    #[error(
        "the token's signing algorithm is not accepted here; use HS256, RS256 or ES256 as the gateway is configured"
    )]
    AlgorithmNotAllowed,
    /// No key in the JWKS matches the token's `kid` and `alg`, even after a refetch.
    #[error(
        "the token's `kid` names no current signing key; obtain a token signed with a current key"
    )]
    UnknownKey,
    /// `iss` is not the configured issuer.
    #[error("the token's `iss` is not the issuer this gateway trusts")]
    InvalidIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token's `aud` does not name this gateway")]
    InvalidAudience,
    /// A claim this gateway requires is absent (`exp`, `sub`, and `iss`/`aud`
    /// when configured).
    #[error("the token lacks the required `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim is present with the wrong JSON type (e.g. a string `exp`, an
    /// object as tenant id). Holds the claim name, never its value.
    #[error("the token's `{0}` claim has the wrong type")]
    InvalidClaim(String),
    /// The JWKS could not be fetched and no keys are cached. Not the caller's
    /// fault: answer 503 and log the source chain.
    #[error("the keys to verify this token are unavailable right now; retry shortly")]
    KeySetUnavailable(#[source] JwksError),
}

impl AuthError {
    /// A stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::UnknownKey => "unknown_key",
            AuthError::InvalidIssuer => "invalid_issuer",
            AuthError::InvalidAudience => "invalid_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::KeySetUnavailable(_) => "key_set_unavailable",
        }
    }

    /// Whether the gateway, not the caller, is at fault (answer 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeySetUnavailable(_))
    }

    /// The `WWW-Authenticate` value for a 401 (RFC 6750 §3). A request without
    /// credentials gets the bare challenge, as §3.1 asks; a bad token gets
    /// `error="invalid_token"` and our sentence as `error_description`.
    pub fn www_authenticate(&self) -> String {
        match self {
            AuthError::Missing => "Bearer".to_owned(),
            other => format!("Bearer error=\"invalid_token\", error_description=\"{other}\""),
        }
    }
}

/// Why [`JwtVerifier::new`] refused the settings. Each message names the
/// environment variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither key source is configured: no token could ever verify.
    #[error(
        "set GATEWAY_JWT_HS256_SECRET and/or GATEWAY_JWT_JWKS_URL: callers cannot be authenticated without a key"
    )]
    NoKeySource,
    /// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
    #[error(
        "GATEWAY_JWT_HS256_SECRET must be at least 32 bytes (HS256 needs a 256-bit key, RFC 7518 section 3.2); it has {len}"
    )]
    SecretTooShort {
        /// The secret's length in bytes (never its content).
        len: usize,
    },
    /// The JWKS URL must be fetched over HTTP(S).
    #[error("GATEWAY_JWT_JWKS_URL must be an http(s) URL, not `{scheme}:`")]
    JwksUrlScheme {
        /// The rejected scheme.
        scheme: String,
    },
    /// A blank claim name cannot be looked up.
    #[error("GATEWAY_TENANT_CLAIM must name a claim (for example `tenant_id`)")]
    EmptyTenantClaim,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<AuthError> {
        vec![
            AuthError::Missing,
            AuthError::Malformed,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::InvalidSignature,
            AuthError::AlgorithmNotAllowed,
            AuthError::UnknownKey,
            AuthError::InvalidIssuer,
            AuthError::InvalidAudience,
            AuthError::MissingClaim("exp"),
            AuthError::InvalidClaim("tenant_id".to_owned()),
            AuthError::KeySetUnavailable(JwksError::NotLoaded),
        ]
    }

    #[test]
    fn every_message_fits_an_rfc6750_error_description() {
        // RFC 6750 §3: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
        for err in every_error() {
            let text = err.to_string();
            assert!(!text.is_empty());
            assert!(
                text.bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{text:?} has a character RFC 6750 forbids"
            );
        }
    }

    #[test]
    fn a_missing_token_gets_the_bare_challenge_and_a_bad_one_invalid_token() {
        assert_eq!(AuthError::Missing.www_authenticate(), "Bearer");
        assert_eq!(
            AuthError::Expired.www_authenticate(),
            "Bearer error=\"invalid_token\", error_description=\"the token has expired; obtain a new one\""
        );
    }

    #[test]
    fn only_an_unavailable_key_set_is_the_gateways_fault() {
        let ours: Vec<_> = every_error()
            .into_iter()
            .filter(AuthError::is_unavailable)
            .map(|e| e.reason())
            .collect();
        assert_eq!(ours, ["key_set_unavailable"]);
    }

    #[test]
    fn config_errors_name_the_variable_to_fix() {
        assert!(
            ConfigError::SecretTooShort { len: 3 }
                .to_string()
                .contains("GATEWAY_JWT_HS256_SECRET")
        );
        assert!(
            ConfigError::NoKeySource
                .to_string()
                .contains("GATEWAY_JWT_JWKS_URL")
        );
    }
}
