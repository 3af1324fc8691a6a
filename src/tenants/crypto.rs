//! Sealing Intercom tokens at rest: AES-256-GCM (ring), a fresh random 96-bit nonce per write,
//! the key id stored with each row, and the tenant id bound as associated data.
//!
//! Binding the tenant id means a ciphertext copied into another tenant's row fails to open:
//! an attacker with write access to the table cannot make tenant B's calls run with tenant A's
//! token. Random nonces are safe for far more writes than a credential table will ever see
//! (NIST SP 800-38D §8.3 bounds them at 2^32 per key).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

use super::TenantId;

/// Associated-data prefix; versioned so a future format change cannot be confused with this one.
const AAD_PREFIX: &str = "intercom-mcp-gateway/credential/v1/";

/// The keys of `GATEWAY_ENCRYPTION_KEYS`: the first seals, all open.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

/// A sealed token as stored in `intercom_credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("no keys given")]
    Empty,
    #[error("entry {0} is not `kid:base64-32-bytes`")]
    Malformed(usize),
    #[error("key `{0}` is not 32 bytes of base64")]
    BadKey(String),
    #[error("key id `{0}` appears twice")]
    DuplicateKid(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("credential sealed with key `{0}`, which is not in GATEWAY_ENCRYPTION_KEYS")]
    UnknownKey(String),
    #[error("credential failed authentication (wrong key, wrong tenant, or tampered row)")]
    Tampered,
}

impl Keyring {
    /// Parses `kid:base64,kid2:base64`. Key ids are 1-32 characters of `[A-Za-z0-9._-]`.
    pub fn parse(raw: &SecretString) -> Result<Self, KeyringError> {
        let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
        for (i, entry) in raw.expose_secret().split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (kid, b64) = entry
                .split_once(':')
                .ok_or(KeyringError::Malformed(i + 1))?;
            let kid_ok = !kid.is_empty()
                && kid.len() <= 32
                && kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !kid_ok {
                return Err(KeyringError::Malformed(i + 1));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyringError::DuplicateKid(kid.to_owned()));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| KeyringError::BadKey(kid.to_owned()))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| KeyringError::BadKey(kid.to_owned()))?;
            keys.push((kid.to_owned(), LessSafeKey::new(key)));
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// A fresh random key in the `GATEWAY_ENCRYPTION_KEYS` format (for the demo and tests).
    pub fn generate_entry(kid: &str) -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random source works");
        format!("{kid}:{}", STANDARD.encode(bytes))
    }

    pub fn primary_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key id, the primary first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }

    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == kid)
    }

    pub fn seal(&self, tenant: &TenantId, token: &SecretString) -> SealedToken {
        let (kid, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random source works");
        let mut in_out = token.expose_secret().as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            aad(tenant),
            &mut in_out,
        )
        .expect("AES-GCM sealing of a short token cannot fail");
        SealedToken {
            key_id: kid.clone(),
            nonce: nonce.to_vec(),
            ciphertext: in_out,
        }
    }

    pub fn open(&self, tenant: &TenantId, sealed: &SealedToken) -> Result<SecretString, OpenError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(kid, _)| *kid == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| OpenError::Tampered)?;
        let mut in_out = sealed.ciphertext.clone();
        let plain = key
            .open_in_place(nonce, aad(tenant), &mut in_out)
            .map_err(|_| OpenError::Tampered)?;
        let token = std::str::from_utf8(plain).map_err(|_| OpenError::Tampered)?;
        Ok(SecretString::from(token.to_owned()))
    }
}

fn aad(tenant: &TenantId) -> Aad<Vec<u8>> {
    Aad::from(format!("{AAD_PREFIX}{tenant}").into_bytes())
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Keyring").field("kids", &kids).finish()
    }
}

/// A short non-reversible fingerprint (`sha256:` + 16 hex digits) that lets operators tell two
/// tokens apart without seeing either.
pub fn fingerprint(token: &SecretString) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(spec: &str) -> Keyring {
        Keyring::parse(&SecretString::from(spec.to_owned())).unwrap()
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_for_its_tenant_and_never_contains_the_plaintext() {
        let ring = keyring(&Keyring::generate_entry("k1"));
        let token = SecretString::from("tok_live_abcdef".to_owned());
        let sealed = ring.seal(&tenant("acme"), &token);
        assert_eq!(sealed.key_id, "k1");
        assert!(
            !sealed
                .ciphertext
                .windows(15)
                .any(|w| w == b"tok_live_abcdef")
        );
        let opened = ring.open(&tenant("acme"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "tok_live_abcdef");
    }

    #[test]
    fn a_ciphertext_moved_to_another_tenant_fails_to_open() {
        let ring = keyring(&Keyring::generate_entry("k1"));
        let sealed = ring.seal(&tenant("acme"), &SecretString::from("t".to_owned()));
        assert_eq!(
            ring.open(&tenant("globex"), &sealed).err(),
            Some(OpenError::Tampered)
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let ring = keyring(&Keyring::generate_entry("k1"));
        let token = SecretString::from("same".to_owned());
        let a = ring.seal(&tenant("acme"), &token);
        let b = ring.seal(&tenant("acme"), &token);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn old_keys_still_open_after_a_new_key_is_put_first() {
        let old = Keyring::generate_entry("old");
        let sealed = keyring(&old).seal(&tenant("acme"), &SecretString::from("t".to_owned()));
        let rotated = keyring(&format!("{},{old}", Keyring::generate_entry("new")));
        assert_eq!(rotated.primary_kid(), "new");
        assert_eq!(
            rotated
                .open(&tenant("acme"), &sealed)
                .unwrap()
                .expose_secret(),
            "t"
        );
        let without_old = keyring(&Keyring::generate_entry("new"));
        assert_eq!(
            without_old.open(&tenant("acme"), &sealed).err(),
            Some(OpenError::UnknownKey("old".into()))
        );
    }

    #[test]
    fn tampering_is_detected() {
        let ring = keyring(&Keyring::generate_entry("k1"));
        let mut sealed = ring.seal(&tenant("acme"), &SecretString::from("t".to_owned()));
        sealed.ciphertext[0] ^= 1;
        assert_eq!(
            ring.open(&tenant("acme"), &sealed).err(),
            Some(OpenError::Tampered)
        );
    }

    #[test]
    fn malformed_key_lists_are_refused() {
        let parse = |s: &str| Keyring::parse(&SecretString::from(s.to_owned())).err();
        assert_eq!(parse(""), Some(KeyringError::Empty));
        assert_eq!(parse("nokid"), Some(KeyringError::Malformed(1)));
        assert_eq!(parse("k:c2hvcnQ="), Some(KeyringError::BadKey("k".into())));
        let k = Keyring::generate_entry("k");
        assert_eq!(
            parse(&format!("{k},{k}")),
            Some(KeyringError::DuplicateKid("k".into()))
        );
    }

    #[test]
    fn debug_output_shows_key_ids_only() {
        let entry = Keyring::generate_entry("k1");
        let secret = entry.split_once(':').unwrap().1.to_owned();
        let shown = format!("{:?}", keyring(&entry));
        assert!(shown.contains("k1") && !shown.contains(&secret));
    }
}
