//! The identity provider's public keys (JWKS, RFC 7517 §5), fetched and cached.
//!
//! Three promises, all at the decision points below:
//! - **Single flight.** Every fetch runs under one async gate; a caller that
//!   waited at the gate while someone else fetched reuses that result instead of
//!   fetching again, so 20 tokens with the same new `kid` cause one request.
//! - **Rate limit.** A refetch for an unknown `kid` happens at most once per
//!   `min_refetch_interval` (10 s), so tokens with made-up `kid`s cannot turn
//!   the gateway into a load generator against the IdP.
//! - **Freshness.** Keys older than `max_age` (10 min) are refreshed in the
//!   background while the old ones keep serving; if the IdP is down we keep
//!   using the last good set rather than locking every caller out.
//!
//! Only signature keys we can use are kept: RSA for `RS256`, P-256 EC for
//! `ES256`. Symmetric (`oct`) keys in a JWKS are dropped: the HMAC secret comes
//! only from configuration, never from a URL.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use url::Url;

use super::AuthError;
use super::jwt::JwksTiming;

/// A real JWKS is a few kB; anything past this is not a key set.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why the key set could not be loaded. Operators see this as the source of
/// [`AuthError::KeySetUnavailable`]; callers never do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The request failed (connect, TLS, timeout).
    #[error("fetching the JWKS failed")]
    Http(#[source] Arc<reqwest::Error>),
    /// The IdP answered with an error status.
    #[error("the JWKS endpoint answered HTTP {0}")]
    Status(u16),
    /// The body exceeded 256 KiB.
    #[error("the JWKS response is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The body is not a JSON object with a `keys` array.
    #[error("the JWKS response is not a JSON key set")]
    Json(#[source] Arc<serde_json::Error>),
    /// No fetch has succeeded yet and none may be attempted right now.
    #[error("no JWKS has been loaded yet")]
    NotLoaded,
}

/// One usable verification key.
#[derive(Debug)]
pub(crate) struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one fetched JWKS.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// Keys for `alg`: the one named by `kid`, or, for a token without `kid`,
    /// every key of that algorithm (RFC 7515 §4.1.4 makes `kid` optional).
    fn matching(&self, alg: Algorithm, kid: Option<&str>) -> Vec<Arc<VerifyKey>> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .cloned()
            .collect()
    }

    fn parse(body: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(body).map_err(|e| JwksError::Json(Arc::new(e)))?;
        let total = raw.keys.len();
        // Parse key by key: one exotic entry (an encryption key, a new `kty`)
        // must not hide the signing keys next to it.
        let keys: Vec<_> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| usable_key(&jwk).map(Arc::new))
            .collect();
        if keys.len() < total {
            tracing::debug!(
                kept = keys.len(),
                skipped = total - keys.len(),
                "ignored JWKS entries that are not RS256/ES256 signature keys"
            );
        }
        Ok(KeySet { keys })
    }
}

/// Turns a JWK into a key bound to exactly one algorithm, or `None` if this
/// gateway must not use it for verifying tokens.
fn usable_key(jwk: &Jwk) -> Option<VerifyKey> {
    // RFC 7517 §4.2/§4.3: a key marked for another use or operation is not ours.
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) if matches!(declared, None | Some(KeyAlgorithm::RS256)) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?,
        ),
        AlgorithmParameters::EllipticCurve(ec)
            if ec.curve == EllipticCurve::P256
                && matches!(declared, None | Some(KeyAlgorithm::ES256)) =>
        {
            (
                Algorithm::ES256,
                DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?,
            )
        }
        _ => return None,
    };
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

struct State {
    keys: Arc<KeySet>,
    /// When the current `keys` were fetched; `None` until the first success.
    loaded_at: Option<Instant>,
    /// When the last fetch (successful or not) started: the rate limit's clock.
    last_attempt: Option<Instant>,
    /// Counts finished fetches, so a caller that waited at the gate can tell
    /// that somebody else already fetched on its behalf.
    attempts: u64,
    last_error: Option<JwksError>,
}

impl State {
    fn current(&self) -> Result<Arc<KeySet>, AuthError> {
        match self.loaded_at {
            Some(_) => Ok(self.keys.clone()),
            None => Err(AuthError::KeySetUnavailable(
                self.last_error.clone().unwrap_or(JwksError::NotLoaded),
            )),
        }
    }
}

/// The key-set cache. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub(crate) struct JwksCache {
    shared: Arc<Shared>,
}

struct Shared {
    http: reqwest::Client,
    url: Url,
    timing: JwksTiming,
    /// Held only for short, non-async sections.
    state: Mutex<State>,
    /// Whoever holds this is the one fetching.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl JwksCache {
    pub(crate) fn new(http: reqwest::Client, url: Url, timing: JwksTiming) -> JwksCache {
        let state = State {
            keys: Arc::default(),
            loaded_at: None,
            last_attempt: None,
            attempts: 0,
            last_error: None,
        };
        JwksCache {
            shared: Arc::new(Shared {
                http,
                url,
                timing,
                state: Mutex::new(state),
                gate: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    pub(crate) fn url(&self) -> &Url {
        &self.shared.url
    }

    /// The keys that may verify a token with this `alg` and `kid`. Never empty:
    /// no match even after a (possibly rate-limited) refetch is `UnknownKey`.
    pub(crate) async fn keys_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<Arc<VerifyKey>>, AuthError> {
        let (keys, seen_attempts, stale) = {
            let state = self.state();
            let stale = state
                .loaded_at
                .is_some_and(|at| at.elapsed() >= self.shared.timing.max_age);
            (state.keys.clone(), state.attempts, stale)
        };
        if stale {
            self.refresh_in_background();
        }
        let found = keys.matching(alg, kid);
        if !found.is_empty() {
            return Ok(found);
        }
        // Unknown `kid` (the IdP may have rotated keys) or nothing loaded yet.
        let keys = self.refresh_after_miss(seen_attempts).await?;
        let found = keys.matching(alg, kid);
        if found.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        Ok(found)
    }

    /// Loads the key set now, e.g. at start-up so the first request does not
    /// pay for the fetch. Counts towards the rate limit like any fetch.
    pub(crate) async fn warm_up(&self) -> Result<(), JwksError> {
        let _gate = self.shared.gate.lock().await;
        self.fetch_and_store().await
    }

    async fn refresh_after_miss(&self, seen_attempts: u64) -> Result<Arc<KeySet>, AuthError> {
        let _gate = self.shared.gate.lock().await;
        {
            let state = self.state();
            if state.attempts != seen_attempts {
                // Someone fetched while we queued at the gate: that answer is ours too.
                return state.current();
            }
            if self.rate_limited(&state) {
                tracing::debug!("JWKS refetch for an unknown key skipped: rate limit");
                return state.current();
            }
        }
        // A failed refetch keeps the old keys; only "never loaded" is fatal.
        let _ = self.fetch_and_store().await;
        self.state().current()
    }

    fn refresh_in_background(&self) {
        // `try_lock`: if a fetch is already running, it is the refresh we want.
        let Ok(gate) = self.shared.gate.clone().try_lock_owned() else {
            return;
        };
        if self.rate_limited(&self.state()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _gate = gate;
            let _ = this.fetch_and_store().await;
        });
    }

    fn rate_limited(&self, state: &State) -> bool {
        state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.shared.timing.min_refetch_interval)
    }

    /// Fetches and installs a new key set. Call only while holding the gate.
    async fn fetch_and_store(&self) -> Result<(), JwksError> {
        let started = Instant::now();
        let result = self.fetch().await;
        let mut state = self.state();
        state.last_attempt = Some(started);
        state.attempts += 1;
        match result {
            Ok(keys) => {
                tracing::info!(url = %self.shared.url, keys = keys.keys.len(), "loaded JWKS");
                state.keys = Arc::new(keys);
                state.loaded_at = Some(Instant::now());
                state.last_error = None;
                Ok(())
            }
            Err(err) => {
                tracing::warn!(
                    url = %self.shared.url,
                    error = %ErrorChain(&err),
                    cached_keys = state.keys.keys.len(),
                    "JWKS fetch failed; keeping the cached keys"
                );
                state.last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let http_err = |e: reqwest::Error| JwksError::Http(Arc::new(e));
        let mut response = self
            .shared
            .http
            .get(self.shared.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.shared.timing.fetch_timeout)
            .send()
            .await
            .map_err(http_err)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_err)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is
        // a handful of field assignments.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Formats an error with its sources, `a: b: c`, for one-line logs.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::{Value, json};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::auth::testdata::{
        self, RSA_A_PEM, RSA_B_PEM, claims, claims_with, ec_key, public_jwk, rsa_key, sign,
    };
    use crate::auth::{JwksTiming, JwtSettings, JwtVerifier, Scope};

    fn rsa_a() -> EncodingKey {
        rsa_key(RSA_A_PEM)
    }

    fn rsa_b() -> EncodingKey {
        rsa_key(RSA_B_PEM)
    }

    fn key_set_a() -> Value {
        testdata::jwks(&[public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a")])
    }

    fn serves(body: &Value) -> Mock {
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
    }

    fn jwks_settings(idp: &MockServer) -> JwtSettings {
        JwtSettings {
            jwks_url: Some(format!("{}/jwks", idp.uri()).parse().unwrap()),
            ..JwtSettings::default()
        }
    }

    /// No rate limit: tests that count fetches then prove single flight, not throttling.
    fn eager() -> JwksTiming {
        JwksTiming {
            min_refetch_interval: Duration::ZERO,
            ..JwksTiming::default()
        }
    }

    fn verifier(idp: &MockServer, timing: JwksTiming) -> JwtVerifier {
        JwtVerifier::with_jwks_timing(jwks_settings(idp), testdata::http(), timing).unwrap()
    }

    /// Distinct claims per call, so the result cache never hides a fetch.
    fn claims_for(sub: &str) -> Value {
        claims_with(json!({ "sub": sub }))
    }

    async fn fetches(idp: &MockServer) -> usize {
        idp.received_requests().await.map_or(0, |r| r.len())
    }

    #[tokio::test]
    async fn an_rs256_token_verifies_with_the_jwks_key_its_kid_names() {
        let idp = MockServer::start().await;
        serves(&key_set_a()).expect(1).mount(&idp).await;
        let verifier = verifier(&idp, JwksTiming::default());

        let token = sign(
            Algorithm::RS256,
            Some("rsa-a"),
            &claims_with(json!({"scp": ["intercom:write"]})),
            &rsa_a(),
        );
        let caller = verifier.verify(&token).await.unwrap();
        assert_eq!(caller.tenant_id.as_deref(), Some("acme"));
        assert!(caller.has(Scope::IntercomRead) && caller.has(Scope::IntercomWrite));

        let wrong_key = sign(Algorithm::RS256, Some("rsa-a"), &claims_for("x"), &rsa_b());
        assert!(matches!(
            verifier.verify(&wrong_key).await,
            Err(AuthError::InvalidSignature)
        ));
    }

    #[tokio::test]
    async fn an_es256_token_verifies_with_a_p256_jwks_key() {
        let idp = MockServer::start().await;
        let set = testdata::jwks(&[
            public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a"),
            public_jwk(&ec_key(), Algorithm::ES256, "ec-1"),
        ]);
        serves(&set).expect(1).mount(&idp).await;
        let verifier = verifier(&idp, JwksTiming::default());

        let token = sign(Algorithm::ES256, Some("ec-1"), &claims(), &ec_key());
        assert_eq!(verifier.verify(&token).await.unwrap().sub, "user-1");
    }

    #[tokio::test]
    async fn a_token_without_kid_is_tried_against_the_keys_of_its_algorithm() {
        let idp = MockServer::start().await;
        let set = testdata::jwks(&[
            public_jwk(&ec_key(), Algorithm::ES256, "ec-1"),
            public_jwk(&rsa_b(), Algorithm::RS256, "rsa-b"),
            public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a"),
        ]);
        serves(&set).expect(1).mount(&idp).await;
        let verifier = verifier(&idp, JwksTiming::default());

        let token = sign(Algorithm::RS256, None, &claims(), &rsa_a());
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_kid_naming_a_key_of_another_type_finds_no_key() {
        let idp = MockServer::start().await;
        serves(&key_set_a()).mount(&idp).await;
        let verifier = verifier(&idp, JwksTiming::default());

        // ES256 header pointing at the RSA key: never verified with it.
        let token = sign(Algorithm::ES256, Some("rsa-a"), &claims(), &ec_key());
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::UnknownKey)
        ));
    }

    #[tokio::test]
    async fn an_hs256_token_signed_with_the_rsa_public_key_is_rejected() {
        // The classic confusion: the attacker downloads the public key and uses
        // its bytes as the HMAC secret, hoping the verifier does the same.
        let forged = |kid| {
            let secret = EncodingKey::from_secret(testdata::RSA_A_PUBLIC_PEM.as_bytes());
            sign(
                Algorithm::HS256,
                kid,
                &claims_with(json!({"scope": "gateway:admin"})),
                &secret,
            )
        };
        let idp = MockServer::start().await;
        serves(&key_set_a()).mount(&idp).await;

        let jwks_only = verifier(&idp, JwksTiming::default());
        for kid in [Some("rsa-a"), None] {
            assert!(matches!(
                jwks_only.verify(&forged(kid)).await,
                Err(AuthError::AlgorithmNotAllowed)
            ));
        }

        let both = JwtSettings {
            hs256_secret: testdata::hs256_settings().hs256_secret,
            ..jwks_settings(&idp)
        };
        let both = JwtVerifier::new(both, testdata::http()).unwrap();
        for kid in [Some("rsa-a"), None] {
            assert!(matches!(
                both.verify(&forged(kid)).await,
                Err(AuthError::InvalidSignature)
            ));
        }
        // And the genuine article still works on the same verifier.
        let genuine = sign(Algorithm::RS256, Some("rsa-a"), &claims(), &rsa_a());
        assert!(both.verify(&genuine).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_kid_triggers_exactly_one_refetch_that_picks_up_rotated_keys() {
        let idp = MockServer::start().await;
        serves(&key_set_a())
            .up_to_n_times(1)
            .expect(1)
            .mount(&idp)
            .await;
        let rotated = testdata::jwks(&[public_jwk(&rsa_b(), Algorithm::RS256, "rsa-b")]);
        serves(&rotated).mount(&idp).await;
        let verifier = verifier(&idp, eager());

        let old = sign(Algorithm::RS256, Some("rsa-a"), &claims_for("a"), &rsa_a());
        verifier.verify(&old).await.unwrap();
        assert_eq!(fetches(&idp).await, 1);

        let new = sign(Algorithm::RS256, Some("rsa-b"), &claims_for("b"), &rsa_b());
        verifier.verify(&new).await.unwrap();
        let another_new = sign(Algorithm::RS256, Some("rsa-b"), &claims_for("c"), &rsa_b());
        verifier.verify(&another_new).await.unwrap();
        assert_eq!(fetches(&idp).await, 2);

        // rsa-a left the key set: a fresh token signed with it no longer verifies
        // (after its own refetch, as nothing rate-limits this verifier).
        let retired = sign(Algorithm::RS256, Some("rsa-a"), &claims_for("d"), &rsa_a());
        assert!(matches!(
            verifier.verify(&retired).await,
            Err(AuthError::UnknownKey)
        ));
        assert_eq!(fetches(&idp).await, 3);
    }

    #[tokio::test]
    async fn concurrent_tokens_with_the_same_unknown_kid_cause_one_fetch() {
        let idp = MockServer::start().await;
        serves(&key_set_a())
            .up_to_n_times(1)
            .expect(1)
            .mount(&idp)
            .await;
        let rotated = testdata::jwks(&[
            public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a"),
            public_jwk(&ec_key(), Algorithm::ES256, "ec-2"),
        ]);
        let slow = ResponseTemplate::new(200)
            .set_body_json(&rotated)
            .set_delay(Duration::from_millis(300));
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(slow)
            .expect(1)
            .mount(&idp)
            .await;
        let verifier = verifier(&idp, eager());
        verifier.warm_up().await.unwrap();

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let token = sign(
                Algorithm::ES256,
                Some("ec-2"),
                &claims_for(&format!("caller-{i}")),
                &ec_key(),
            );
            let verifier = verifier.clone();
            tasks.spawn(async move { verifier.verify(&token).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(fetches(&idp).await, 2);
    }

    #[tokio::test]
    async fn made_up_kids_refetch_at_most_once_per_interval() {
        let idp = MockServer::start().await;
        serves(&key_set_a()).expect(2).mount(&idp).await;
        let timing = JwksTiming {
            min_refetch_interval: Duration::from_millis(1500),
            ..JwksTiming::default()
        };
        let verifier = verifier(&idp, timing);
        verifier.warm_up().await.unwrap();

        let garbage = |i: usize| {
            sign(
                Algorithm::RS256,
                Some(&format!("kid-{i}")),
                &claims_for("g"),
                &rsa_a(),
            )
        };
        for i in 0..5 {
            assert!(matches!(
                verifier.verify(&garbage(i)).await,
                Err(AuthError::UnknownKey)
            ));
        }
        assert_eq!(fetches(&idp).await, 1, "refetched inside the interval");

        tokio::time::sleep(Duration::from_millis(1600)).await;
        for i in 5..10 {
            assert!(matches!(
                verifier.verify(&garbage(i)).await,
                Err(AuthError::UnknownKey)
            ));
        }
        assert_eq!(
            fetches(&idp).await,
            2,
            "one refetch once the interval passed"
        );
    }

    #[tokio::test]
    async fn a_jwks_outage_without_cached_keys_is_key_set_unavailable() {
        let idp = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&idp)
            .await;
        let verifier = verifier(&idp, JwksTiming::default());

        let token = sign(Algorithm::RS256, Some("rsa-a"), &claims(), &rsa_a());
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(err, AuthError::KeySetUnavailable(JwksError::Status(503))),
            "{err:?}"
        );
        assert!(err.is_unavailable());
        // Inside the rate-limit window the failure is remembered, not retried.
        let again = sign(
            Algorithm::RS256,
            Some("rsa-a"),
            &claims_for("again"),
            &rsa_a(),
        );
        assert!(matches!(
            verifier.verify(&again).await,
            Err(AuthError::KeySetUnavailable(_))
        ));
        assert_eq!(fetches(&idp).await, 1);
    }

    #[tokio::test]
    async fn an_unreachable_or_slow_jwks_is_key_set_unavailable() {
        let idp = MockServer::start().await;
        let slow = ResponseTemplate::new(200)
            .set_body_json(key_set_a())
            .set_delay(Duration::from_secs(3));
        Mock::given(method("GET"))
            .respond_with(slow)
            .mount(&idp)
            .await;
        let timing = JwksTiming {
            fetch_timeout: Duration::from_millis(200),
            ..JwksTiming::default()
        };
        let token = sign(Algorithm::RS256, Some("rsa-a"), &claims(), &rsa_a());
        let err = verifier(&idp, timing).verify(&token).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::KeySetUnavailable(JwksError::Http(e)) if e.is_timeout()),
            "{err:?}"
        );

        let nowhere = JwtSettings {
            jwks_url: Some("http://127.0.0.1:9/jwks".parse().unwrap()),
            ..JwtSettings::default()
        };
        let verifier = JwtVerifier::new(nowhere, testdata::http()).unwrap();
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::KeySetUnavailable(JwksError::Http(_)))
        ));
    }

    #[tokio::test]
    async fn a_failed_refetch_keeps_serving_the_cached_keys() {
        let idp = MockServer::start().await;
        serves(&key_set_a()).up_to_n_times(1).mount(&idp).await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&idp)
            .await;
        let verifier = verifier(&idp, eager());
        verifier.warm_up().await.unwrap();

        let unknown = sign(
            Algorithm::RS256,
            Some("rsa-new"),
            &claims_for("u"),
            &rsa_b(),
        );
        assert!(matches!(
            verifier.verify(&unknown).await,
            Err(AuthError::UnknownKey)
        ));
        let known = sign(Algorithm::RS256, Some("rsa-a"), &claims_for("k"), &rsa_a());
        assert!(verifier.verify(&known).await.is_ok());
        assert_eq!(fetches(&idp).await, 2);
    }

    #[tokio::test]
    async fn keys_older_than_max_age_are_refreshed_in_the_background() {
        let idp = MockServer::start().await;
        serves(&key_set_a()).expect(2).mount(&idp).await;
        let timing = JwksTiming {
            max_age: Duration::from_millis(200),
            ..eager()
        };
        let verifier = verifier(&idp, timing);
        verifier.warm_up().await.unwrap();

        tokio::time::sleep(Duration::from_millis(300)).await;
        let token = sign(
            Algorithm::RS256,
            Some("rsa-a"),
            &claims_for("late"),
            &rsa_a(),
        );
        // Served from the stale set at once; the refresh runs behind it.
        verifier.verify(&token).await.unwrap();
        for _ in 0..50 {
            if fetches(&idp).await == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fetches(&idp).await, 2);
    }

    #[test]
    fn only_rs256_and_p256_signature_keys_are_kept() {
        let usable = public_jwk(&rsa_a(), Algorithm::RS256, "good");
        let mut no_alg = public_jwk(&ec_key(), Algorithm::ES256, "ec-no-alg");
        no_alg.as_object_mut().unwrap().remove("alg");
        let mut encryption = public_jwk(&rsa_b(), Algorithm::RS256, "enc");
        encryption["use"] = json!("enc");
        let mut pss = public_jwk(&rsa_b(), Algorithm::RS256, "pss");
        pss["alg"] = json!("PS256");
        let mut sign_only = public_jwk(&rsa_b(), Algorithm::RS256, "ops");
        sign_only["key_ops"] = json!(["sign"]);
        let body = testdata::jwks(&[
            usable,
            no_alg,
            encryption,
            pss,
            sign_only,
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"}),
            json!({"kty": "MLWE", "kid": "future"}),
            json!("not even an object"),
        ]);
        let set = KeySet::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        let kept: Vec<_> = set
            .keys
            .iter()
            .map(|k| (k.kid.clone().unwrap(), k.alg))
            .collect();
        assert_eq!(
            kept,
            [
                ("good".into(), Algorithm::RS256),
                ("ec-no-alg".into(), Algorithm::ES256)
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_a_key_set_is_an_error() {
        assert!(matches!(KeySet::parse(b"<html>"), Err(JwksError::Json(_))));
        assert!(matches!(
            KeySet::parse(b"{\"no_keys\": []}"),
            Err(JwksError::Json(_))
        ));
    }
}
