//! Verifying a bearer JWT and turning its claims into a [`Caller`].
//!
//! Order of checks, cheapest first: the result cache (a keyed 128-bit SipHash of the token),
//! then our own parse of the JOSE header, then the algorithm allow-list (which
//! also picks the one key source), then signature and registered claims in
//! `jsonwebtoken`, then our claims (`sub`, tenant, scopes). The token-level
//! pieces live in `token.rs`; this file owns settings, key sources and caching.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::Expiry;
use moka::future::Cache;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;
use tracing::field::Empty;
use url::{Host, Url};

use super::jwks::{JwksCache, JwksError};
use super::token::{JoseHeader, base_validation, caller_from_claims, decode, decode_with_any};
use super::{AuthError, Caller, ConfigError};

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash (256 bits).
const MIN_HS256_SECRET_BYTES: usize = 32;
const MAX_LEEWAY_SECS: u64 = 5 * 60;
const RESULT_CACHE_CAPACITY: u64 = 10_000;
/// Bounds how long a key removed from the JWKS keeps authorising cached tokens.
const RESULT_CACHE_MAX_TTL: Duration = Duration::from_secs(60);

/// How callers' tokens are verified; built from the `GATEWAY_JWT_*` variables.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `GATEWAY_JWT_HS256_SECRET`: enables HS256.
    pub hs256_secret: Option<SecretString>,
    /// `GATEWAY_JWT_JWKS_URL`: enables RS256 and ES256.
    pub jwks_url: Option<Url>,
    /// `GATEWAY_JWT_ISSUER`: when set, `iss` is required and must equal it.
    pub issuer: Option<String>,
    /// `GATEWAY_JWT_AUDIENCE`: when set, `aud` is required and must contain it.
    pub audience: Option<String>,
    /// `GATEWAY_TENANT_CLAIM`: the claim holding the tenant id.
    pub tenant_claim: String,
    /// Allowed clock skew for `exp` and `nbf`, whole seconds, at most 5 min.
    pub leeway: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            hs256_secret: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".to_owned(),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Timing of the JWKS cache. The defaults suit production; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    /// Upper bound for one JWKS request, body included.
    pub fetch_timeout: Duration,
    /// Keys older than this are refreshed in the background.
    pub max_age: Duration,
    /// At most one fetch per this interval, whatever the tokens say.
    pub min_refetch_interval: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        JwksTiming {
            fetch_timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(10 * 60),
            min_refetch_interval: Duration::from_secs(10),
        }
    }
}

/// Verifies bearer tokens. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    /// Issuer, audience, leeway and required claims; `algorithms` is set per token.
    validation: Validation,
    tenant_claim: String,
    leeway_secs: u64,
    /// Verified tokens by [`CacheKey::of`] the token, never the token itself.
    verified: Cache<u128, Caller>,
    cache_key: CacheKey,
}

/// The single key source an allowed algorithm is bound to.
enum KeySource<'a> {
    Secret(&'a DecodingKey),
    Jwks(&'a JwksCache),
}

impl JwtVerifier {
    /// Builds a verifier. Fails, naming the variable to fix, when no key source
    /// is configured or the HS256 secret is too short to be safe.
    pub fn new(settings: JwtSettings, http: reqwest::Client) -> Result<Self, ConfigError> {
        Self::with_jwks_timing(settings, http, JwksTiming::default())
    }

    /// [`JwtVerifier::new`] with non-default JWKS cache timing.
    pub fn with_jwks_timing(
        settings: JwtSettings,
        http: reqwest::Client,
        timing: JwksTiming,
    ) -> Result<Self, ConfigError> {
        let tenant_claim = settings.tenant_claim.trim();
        if tenant_claim.is_empty() {
            return Err(ConfigError::EmptyTenantClaim);
        }
        let hs256 = match &settings.hs256_secret {
            Some(secret) => {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.len() < MIN_HS256_SECRET_BYTES {
                    return Err(ConfigError::SecretTooShort { len: bytes.len() });
                }
                Some(DecodingKey::from_secret(bytes))
            }
            None => None,
        };
        let jwks = match &settings.jwks_url {
            Some(url) => {
                check_jwks_url(url)?;
                Some(JwksCache::new(http, url.clone(), timing))
            }
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            return Err(ConfigError::NoKeySource);
        }
        // RFC 7519 §4.1.4 asks for "no more than a few minutes"; the cap also
        // keeps `jsonwebtoken`'s `now - leeway` arithmetic far from underflow.
        let leeway_secs = settings.leeway.as_secs().min(MAX_LEEWAY_SECS);
        if leeway_secs < settings.leeway.as_secs() {
            tracing::warn!(
                leeway_secs,
                "JWT clock-skew leeway capped at {MAX_LEEWAY_SECS} s"
            );
        }
        let verified = Cache::builder()
            .max_capacity(RESULT_CACHE_CAPACITY)
            .expire_after(UntilExpiry { leeway_secs })
            .build();
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                hs256,
                jwks,
                validation: base_validation(&settings, leeway_secs),
                tenant_claim: tenant_claim.to_owned(),
                leeway_secs,
                verified,
                cache_key: CacheKey::random(),
            }),
        })
    }

    /// Verifies `token` (the part after `Bearer `) and returns who is calling.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let key = self.inner.cache_key.of(token);
        if let Some(caller) = self.inner.verified.get(&key).await {
            // moka already drops entries at `exp`; this re-check makes "never
            // serve an expired token from the cache" independent of its timer.
            if cache_ttl(caller.expires_at, self.inner.leeway_secs, now_secs()).is_zero() {
                self.inner.verified.invalidate(&key).await;
                return Err(AuthError::Expired);
            }
            return Ok(caller);
        }
        // The `auth` span covers the verification a cache miss makes (signature, JWKS fetch);
        // a cache hit is a lookup and gets none (issue 8: one span fewer per call).
        let span = tracing::info_span!("auth", caller = Empty, outcome = Empty);
        let result = self.verify_uncached(token).instrument(span.clone()).await;
        span.record("outcome", if result.is_ok() { "ok" } else { "rejected" });
        if let Ok(c) = &result {
            span.record("caller", c.sub.as_str());
        }
        match &result {
            Ok(caller) => {
                if !cache_ttl(caller.expires_at, self.inner.leeway_secs, now_secs()).is_zero() {
                    self.inner.verified.insert(key, caller.clone()).await;
                }
            }
            Err(err) => tracing::debug!(reason = err.reason(), "bearer token rejected"),
        }
        result
    }

    /// Fetches the JWKS now (if one is configured) so the first caller does not
    /// wait for it; call at start-up and log a failure. Verification fetches
    /// lazily anyway, so a failure here is not fatal.
    pub async fn warm_up(&self) -> Result<(), JwksError> {
        match &self.inner.jwks {
            Some(jwks) => jwks.warm_up().await,
            None => Ok(()),
        }
    }

    async fn verify_uncached(&self, token: &str) -> Result<Caller, AuthError> {
        let header = JoseHeader::parse(token)?;
        let (alg, source) = self.key_source(&header.alg)?;
        let mut validation = self.inner.validation.clone();
        validation.algorithms = vec![alg];
        let claims = match source {
            KeySource::Secret(secret) => decode(token, secret, &validation)?,
            KeySource::Jwks(jwks) => {
                let keys = jwks.keys_for(alg, header.kid.as_deref()).await?;
                decode_with_any(token, &keys, &validation)?
            }
        };
        caller_from_claims(&claims, &self.inner.tenant_claim)
    }

    /// The algorithm allow-list. Each algorithm is bound to exactly one key
    /// source, so no key is ever used with an algorithm of another family: an
    /// HS256 token is checked only against the configured secret (never with a
    /// JWKS public key as HMAC secret, the classic RS256-to-HS256 confusion), and
    /// RS256/ES256 only against JWKS keys of that algorithm. Everything else,
    /// `none` included (RFC 8725 §3.1), is refused before any crypto runs.
    fn key_source(&self, alg: &str) -> Result<(Algorithm, KeySource<'_>), AuthError> {
        match (alg, &self.inner.hs256, &self.inner.jwks) {
            ("HS256", Some(secret), _) => Ok((Algorithm::HS256, KeySource::Secret(secret))),
            ("RS256", _, Some(jwks)) => Ok((Algorithm::RS256, KeySource::Jwks(jwks))),
            ("ES256", _, Some(jwks)) => Ok((Algorithm::ES256, KeySource::Jwks(jwks))),
            _ => Err(AuthError::AlgorithmNotAllowed),
        }
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.inner.hs256.is_some())
            .field("jwks_url", &self.inner.jwks.as_ref().map(JwksCache::url))
            .field("tenant_claim", &self.inner.tenant_claim)
            .finish_non_exhaustive()
    }
}

/// Extracts the token from an `Authorization` header value (RFC 6750 §2.1; the
/// scheme is case-insensitive, RFC 9110 §11.1). Another scheme, or no header,
/// is [`AuthError::Missing`]: there is no bearer token to judge.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AuthError::Missing),
    }
}

fn check_jwks_url(url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(Host::Domain(d)) => d == "localhost",
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback {
                // Whoever can rewrite this response can mint tokens; allowed for
                // in-cluster IdPs, but it should be a conscious choice.
                tracing::warn!(%url, "GATEWAY_JWT_JWKS_URL uses plain http; prefer https");
            }
            Ok(())
        }
        other => Err(ConfigError::JwksUrlScheme {
            scheme: other.to_owned(),
        }),
    }
}

/// The result cache's key for a token: SipHash-2-4 with a 128-bit output, keyed with a secret
/// drawn at start-up. A keyed PRF, so a caller who cannot see the key cannot aim a token at
/// another token's entry (a forged token would need a 128-bit collision with a secret function),
/// and the cache holds no token. SHA-256 did the same job at 8.8k instructions per call (3.6%
/// of a whole call, issue 8 callgrind); this is ~1.5k.
struct CacheKey(siphasher::sip128::SipHasher24);

impl CacheKey {
    fn random() -> Self {
        CacheKey(siphasher::sip128::SipHasher24::new_with_key(&rand::random()))
    }

    fn of(&self, token: &str) -> u128 {
        use siphasher::sip128::Hasher128;
        let mut hasher = self.0;
        std::hash::Hasher::write(&mut hasher, token.as_bytes());
        hasher.finish128().as_u128()
    }
}

fn now_secs() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

/// How long a verified result may be reused: until `exp` plus leeway (the
/// same instant `jsonwebtoken` would start refusing it), at most a minute.
/// Zero means "already expired, do not cache".
fn cache_ttl(expires_at: i64, leeway_secs: u64, now: i64) -> Duration {
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    let remaining = expires_at.saturating_add(leeway).saturating_sub(now);
    Duration::from_secs(u64::try_from(remaining).unwrap_or(0)).min(RESULT_CACHE_MAX_TTL)
}

struct UntilExpiry {
    leeway_secs: u64,
}

impl Expiry<u128, Caller> for UntilExpiry {
    fn expire_after_create(&self, _: &u128, caller: &Caller, _: Instant) -> Option<Duration> {
        Some(cache_ttl(caller.expires_at, self.leeway_secs, now_secs()))
    }

    fn expire_after_update(
        &self,
        _: &u128,
        caller: &Caller,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(cache_ttl(caller.expires_at, self.leeway_secs, now_secs()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

    use super::*;
    use crate::auth::testdata::{self, claims, claims_with, hand_built, hs256, http};
    use crate::auth::token::MAX_TOKEN_BYTES;
    use crate::auth::{Scope, Scopes};

    fn verifier(settings: JwtSettings) -> JwtVerifier {
        JwtVerifier::new(settings, http()).unwrap()
    }

    fn hs256_verifier() -> JwtVerifier {
        verifier(testdata::hs256_settings())
    }

    async fn rejects(verifier: &JwtVerifier, token: &str) -> AuthError {
        match verifier.verify(token).await {
            Ok(caller) => panic!("accepted: {caller:?}"),
            Err(err) => err,
        }
    }

    #[tokio::test]
    async fn an_hs256_token_yields_its_subject_tenant_and_scopes() {
        let claims = claims_with(json!({"scope": "intercom:read gateway:admin openid"}));
        let caller = hs256_verifier().verify(&hs256(&claims)).await.unwrap();
        assert_eq!(caller.sub, "user-1");
        assert_eq!(caller.tenant_id.as_deref(), Some("acme"));
        assert_eq!(caller.scopes, Scopes::READ.union(Scopes::ADMIN));
        assert_eq!(caller.expires_at, claims["exp"].as_i64().unwrap());
    }

    #[tokio::test]
    async fn the_tenant_comes_from_the_configured_claim_and_numbers_are_stringified() {
        let verifier = verifier(JwtSettings {
            tenant_claim: "org_id".into(),
            ..testdata::hs256_settings()
        });
        let named = hs256(&claims_with(json!({"org_id": "globex"})));
        assert_eq!(
            verifier.verify(&named).await.unwrap().tenant_id.as_deref(),
            Some("globex")
        );

        let numeric = hs256(&claims_with(
            json!({"org_id": 4711, "tenant_id": "ignored"}),
        ));
        assert_eq!(
            verifier
                .verify(&numeric)
                .await
                .unwrap()
                .tenant_id
                .as_deref(),
            Some("4711")
        );

        let absent = hs256(&claims());
        assert_eq!(verifier.verify(&absent).await.unwrap().tenant_id, None);

        let object = hs256(&claims_with(json!({"org_id": {"id": 1}})));
        assert!(
            matches!(rejects(&verifier, &object).await, AuthError::InvalidClaim(c) if c == "org_id")
        );
    }

    #[tokio::test]
    async fn scopes_may_come_as_an_scp_array() {
        let token = hs256(&claims_with(
            json!({"scope": null, "scp": ["intercom:write", "x"]}),
        ));
        let caller = hs256_verifier().verify(&token).await.unwrap();
        assert!(caller.has(Scope::IntercomWrite));
        assert!(!caller.has(Scope::IntercomRead));

        let numeric = hs256(&claims_with(json!({"scope": 7})));
        assert!(
            matches!(rejects(&hs256_verifier(), &numeric).await, AuthError::InvalidClaim(c) if c == "scope")
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_rejected_but_leeway_absorbs_clock_skew() {
        let long_gone = hs256(&claims_with(json!({"exp": testdata::now() - 120})));
        assert!(matches!(
            rejects(&hs256_verifier(), &long_gone).await,
            AuthError::Expired
        ));

        // 10 s past `exp` is within the default 30 s leeway.
        let just_gone = hs256(&claims_with(json!({"exp": testdata::now() - 10})));
        assert!(hs256_verifier().verify(&just_gone).await.is_ok());
        let strict = verifier(JwtSettings {
            leeway: Duration::ZERO,
            ..testdata::hs256_settings()
        });
        assert!(matches!(
            rejects(&strict, &just_gone).await,
            AuthError::Expired
        ));
    }

    #[tokio::test]
    async fn a_token_that_is_not_yet_valid_is_rejected() {
        let early = hs256(&claims_with(json!({"nbf": testdata::now() + 300})));
        assert!(matches!(
            rejects(&hs256_verifier(), &early).await,
            AuthError::NotYetValid
        ));
        let skewed = hs256(&claims_with(json!({"nbf": testdata::now() + 5})));
        assert!(hs256_verifier().verify(&skewed).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_secret_or_a_tampered_payload_fails_the_signature() {
        let other = EncodingKey::from_secret(b"another-secret-that-is-long-enough-0123");
        let forged = testdata::sign(Algorithm::HS256, None, &claims(), &other);
        assert!(matches!(
            rejects(&hs256_verifier(), &forged).await,
            AuthError::InvalidSignature
        ));

        let genuine = hs256(&claims());
        let signature = genuine.rsplit('.').next().unwrap();
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let tampered = hand_built(
            &header,
            &claims_with(json!({"tenant_id": "victim"})),
            signature,
        );
        assert!(matches!(
            rejects(&hs256_verifier(), &tampered).await,
            AuthError::InvalidSignature
        ));
    }

    #[tokio::test]
    async fn an_unsigned_alg_none_token_is_refused_in_every_spelling() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = hand_built(&json!({"alg": alg, "typ": "JWT"}), &claims(), "");
            assert!(
                matches!(
                    rejects(&hs256_verifier(), &token).await,
                    AuthError::AlgorithmNotAllowed
                ),
                "{alg}"
            );
        }
    }

    #[tokio::test]
    async fn algorithms_outside_the_allow_list_are_refused() {
        let hs512 = testdata::sign(
            Algorithm::HS512,
            None,
            &claims(),
            &EncodingKey::from_secret(testdata::SECRET.as_bytes()),
        );
        assert!(matches!(
            rejects(&hs256_verifier(), &hs512).await,
            AuthError::AlgorithmNotAllowed
        ));
        // RS256 without a JWKS URL has no key source at all.
        let rs256 = testdata::sign(
            Algorithm::RS256,
            None,
            &claims(),
            &testdata::rsa_key(testdata::RSA_A_PEM),
        );
        assert!(matches!(
            rejects(&hs256_verifier(), &rs256).await,
            AuthError::AlgorithmNotAllowed
        ));
    }

    #[tokio::test]
    async fn an_hs256_token_is_refused_when_only_a_jwks_is_configured() {
        let idp = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&idp)
            .await;
        let settings = JwtSettings {
            jwks_url: Some(format!("{}/jwks", idp.uri()).parse().unwrap()),
            ..JwtSettings::default()
        };
        let token = hs256(&claims());
        assert!(matches!(
            rejects(&verifier(settings), &token).await,
            AuthError::AlgorithmNotAllowed
        ));
    }

    #[tokio::test]
    async fn issuer_and_audience_are_enforced_when_configured() {
        let verifier = verifier(JwtSettings {
            issuer: Some("https://idp.example".into()),
            audience: Some("gateway".into()),
            ..testdata::hs256_settings()
        });
        let good = json!({"iss": "https://idp.example", "aud": ["other", "gateway"]});
        assert!(verifier.verify(&hs256(&claims_with(good))).await.is_ok());

        let cases = [
            (
                json!({"iss": "https://evil.example", "aud": "gateway"}),
                "invalid_issuer",
            ),
            (
                json!({"iss": "https://idp.example", "aud": "someone-else"}),
                "invalid_audience",
            ),
            (json!({"aud": "gateway"}), "missing_claim"),
            (json!({"iss": "https://idp.example"}), "missing_claim"),
        ];
        for (changes, reason) in cases {
            let token = hs256(&claims_with(changes.clone()));
            assert_eq!(
                rejects(&verifier, &token).await.reason(),
                reason,
                "{changes}"
            );
        }
    }

    #[tokio::test]
    async fn issuer_and_audience_are_not_checked_when_not_configured() {
        let token = hs256(&claims_with(json!({"iss": "anyone", "aud": "anything"})));
        assert!(hs256_verifier().verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn exp_and_sub_are_required() {
        let no_exp = hs256(&claims_with(json!({"exp": null})));
        assert!(matches!(
            rejects(&hs256_verifier(), &no_exp).await,
            AuthError::MissingClaim("exp")
        ));
        let no_sub = hs256(&claims_with(json!({"sub": null})));
        assert!(matches!(
            rejects(&hs256_verifier(), &no_sub).await,
            AuthError::MissingClaim("sub")
        ));
        let empty_sub = hs256(&claims_with(json!({"sub": ""})));
        assert!(matches!(
            rejects(&hs256_verifier(), &empty_sub).await,
            AuthError::MissingClaim("sub")
        ));
        // A string is not a NumericDate (RFC 7519 §2), so there is no usable `exp`.
        let text_exp = hs256(&claims_with(json!({"exp": "tomorrow"})));
        assert!(matches!(
            rejects(&hs256_verifier(), &text_exp).await,
            AuthError::MissingClaim("exp")
        ));
    }

    #[tokio::test]
    async fn garbage_is_malformed_and_nothing_is_missing() {
        let verifier = hs256_verifier();
        assert!(matches!(rejects(&verifier, "  ").await, AuthError::Missing));
        let too_long = format!("{}.e30.x", "a".repeat(MAX_TOKEN_BYTES));
        let crit = hand_built(&json!({"alg": "HS256", "crit": ["exp"]}), &claims(), "x");
        for token in [
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            "e30.e30.x",
            "eyJhbGciOiJIUzI1NiJ9..x",
            &too_long,
            &crit,
        ] {
            assert!(
                matches!(rejects(&verifier, token).await, AuthError::Malformed),
                "{token:.40}"
            );
        }
    }

    #[test]
    fn cache_keys_differ_per_token_and_per_verifier_secret() {
        let (a, b) = (CacheKey::random(), CacheKey::random());
        let token = hs256(&claims());
        assert_eq!(a.of(&token), a.of(&token));
        assert_ne!(a.of(&token), a.of(&format!("{token}x")));
        assert_ne!(a.of(&token), b.of(&token), "keyed with a secret of its own");
    }

    #[tokio::test]
    async fn a_verified_result_is_cached_and_served_from_the_cache() {
        let verifier = hs256_verifier();
        let token = hs256(&claims());
        verifier.verify(&token).await.unwrap();
        let key = verifier.inner.cache_key.of(&token);
        assert!(verifier.inner.verified.contains_key(&key));

        // Swap the cached entry: if the next call re-verified, it would not see it.
        let planted = Caller {
            sub: "from-cache".into(),
            tenant_id: None,
            scopes: Scopes::NONE,
            expires_at: testdata::now() + 60,
        };
        verifier.inner.verified.insert(key, planted).await;
        assert_eq!(verifier.verify(&token).await.unwrap().sub, "from-cache");
    }

    #[tokio::test]
    async fn the_cache_never_serves_a_token_past_its_expiry() {
        let verifier = verifier(JwtSettings {
            leeway: Duration::ZERO,
            ..testdata::hs256_settings()
        });
        let token = hs256(&claims_with(json!({"exp": testdata::now() + 1})));
        verifier.verify(&token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(matches!(
            rejects(&verifier, &token).await,
            AuthError::Expired
        ));
    }

    #[test]
    fn cache_entries_live_until_exp_plus_leeway_and_at_most_a_minute() {
        assert_eq!(cache_ttl(1_000, 30, 1_000), Duration::from_secs(30));
        assert_eq!(cache_ttl(1_000, 0, 990), Duration::from_secs(10));
        assert_eq!(cache_ttl(10_000, 30, 1_000), RESULT_CACHE_MAX_TTL);
        assert_eq!(cache_ttl(1_000, 0, 1_000), Duration::ZERO);
        assert_eq!(cache_ttl(1_000, 0, 5_000), Duration::ZERO);
        assert_eq!(
            cache_ttl(i64::MAX, u64::MAX, i64::MIN),
            RESULT_CACHE_MAX_TTL
        );
    }

    #[test]
    fn the_bearer_token_is_taken_from_the_authorization_header() {
        assert_eq!(
            bearer_token(Some("Bearer abc.def.ghi")).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(bearer_token(Some("bearer   abc ")).unwrap(), "abc");
        for value in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic dXNlcjpwdw=="),
        ] {
            assert!(
                matches!(bearer_token(value), Err(AuthError::Missing)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn settings_without_a_usable_key_source_are_refused() {
        let build = |settings| JwtVerifier::new(settings, http()).unwrap_err();
        assert!(matches!(
            build(JwtSettings::default()),
            ConfigError::NoKeySource
        ));
        let short = JwtSettings {
            hs256_secret: Some("too-short".into()),
            ..JwtSettings::default()
        };
        assert!(matches!(
            build(short),
            ConfigError::SecretTooShort { len: 9 }
        ));
        let ftp = JwtSettings {
            jwks_url: Some("ftp://idp.example/jwks".parse().unwrap()),
            ..JwtSettings::default()
        };
        assert!(matches!(build(ftp), ConfigError::JwksUrlScheme { .. }));
        let blank = JwtSettings {
            tenant_claim: " ".into(),
            ..testdata::hs256_settings()
        };
        assert!(matches!(build(blank), ConfigError::EmptyTenantClaim));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let verifier = hs256_verifier();
        let printed = format!("{verifier:?} {:?}", testdata::hs256_settings());
        assert!(!printed.contains(testdata::SECRET), "{printed}");
    }
}
