//! Test fixtures: throw-away keys and token builders. The PEM files here were
//! generated once with the `openssl` CLI (see README.md); they protect nothing.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::JwtSettings;

/// A 44-byte HS256 secret.
pub const SECRET: &str = "test-only-hs256-secret-0123456789abcdefghij";

/// PKCS#1 RSA 2048 private key, `kid` "rsa-a" in the tests.
pub const RSA_A_PEM: &str = include_str!("rsa-a.pem");
/// The SPKI public key of `rsa-a.pem`, as an attacker would download it.
pub const RSA_A_PUBLIC_PEM: &str = include_str!("rsa-a.pub.pem");
/// A second RSA key, the "rotated in" one.
pub const RSA_B_PEM: &str = include_str!("rsa-b.pem");
/// PKCS#8 P-256 private key.
pub const EC_P256_PEM: &str = include_str!("ec-p256.pem");

/// A reqwest client, with the ring provider installed as `main` does.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn hs256_settings() -> JwtSettings {
    JwtSettings {
        hs256_secret: Some(SecretString::from(SECRET)),
        ..JwtSettings::default()
    }
}

pub fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

/// Valid claims for tenant "acme" with read scope, expiring in ten minutes.
pub fn claims() -> Value {
    json!({
        "sub": "user-1",
        "tenant_id": "acme",
        "scope": "intercom:read",
        "exp": now() + 600,
        "iat": now(),
    })
}

/// `claims()` with `changes` merged in; a `null` removes the claim.
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => map.remove(name),
            value => map.insert(name.clone(), value.clone()),
        };
    }
    claims
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn rsa_key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_der(&der(pem))
}

pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_der(&der(EC_P256_PEM))
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

/// A token built by hand from raw header and claims, with `signature` as is.
pub fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", part(header), part(claims))
}

/// The claims of a token, unverified: for inspecting minted tokens.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The public JWK of a private key, as an IdP would publish it.
pub fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}
