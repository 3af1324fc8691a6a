//! Connecting a tenant's Intercom workspace with Intercom's OAuth (authorization code, no PKCE,
//! no refresh token: Intercom tokens do not expire until the app is uninstalled).
//! See docs/research §2.1 and https://developers.intercom.com/docs/build-an-integration/learn-more/authentication/setting-up-oauth
//!
//! `start` mints a random `state`, stores only its SHA-256 bound to the tenant (single use, ten
//! minutes), and builds the authorize URL; the browser comes back to the callback with `code`
//! and `state`, which is the callback's only authentication.

mod client;
pub mod repo;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;
use url::Url;

pub use client::{ExchangeError, IntercomRest, Workspace};

use crate::tenants::model::Region;

/// How long a `state` may be used (PRODUCT.md: ten minutes, once).
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// The callback path under `GATEWAY_PUBLIC_URL`.
pub const CALLBACK_PATH: &str = "/v1/oauth/intercom/callback";

/// Everything the OAuth routes and disconnect need.
#[derive(Clone)]
pub struct OAuthConfig {
    /// `None` = OAuth not configured; `start` answers 503 `oauth_not_configured`.
    pub app: Option<OAuthApp>,
    pub rest: IntercomRest,
    /// `GATEWAY_OAUTH_SUCCESS_REDIRECT`.
    pub success_redirect: Option<Url>,
    /// `INTERCOM_REVOKE_ON_DISCONNECT`.
    pub revoke_on_disconnect: bool,
}

/// The gateway's Intercom app, when OAuth is configured.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: Url,
    pub authorize_url_eu: Url,
    pub token_url: Url,
    pub redirect_uri: Url,
}

impl OAuthApp {
    /// `None` unless the client id, the secret and `GATEWAY_PUBLIC_URL` are all set.
    pub fn from_parts(
        client_id: Option<&str>,
        client_secret: Option<&SecretString>,
        public_url: Option<&Url>,
        authorize_url: Url,
        authorize_url_eu: Url,
        token_url: Url,
    ) -> Option<Self> {
        // `GATEWAY_PUBLIC_URL` may carry a path prefix (`https://x.example/gw`): keep it.
        let base = public_url?.as_str().trim_end_matches('/');
        let redirect_uri = Url::parse(&format!("{base}{CALLBACK_PATH}")).ok()?;
        Some(Self {
            client_id: client_id.filter(|c| !c.is_empty())?.to_owned(),
            client_secret: client_secret?.clone(),
            authorize_url,
            authorize_url_eu,
            token_url,
            redirect_uri,
        })
    }

    /// Intercom's consent page for this state: the regional host for EU workspaces.
    pub fn authorize_url(&self, region: Region, state: &str) -> Url {
        let mut url = match region {
            Region::Us => self.authorize_url.clone(),
            Region::Eu => self.authorize_url_eu.clone(),
        };
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("state", state)
            .append_pair("redirect_uri", self.redirect_uri.as_str());
        url
    }
}

/// A fresh `state`: 256 random bits, URL-safe.
pub fn new_state() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a state: its SHA-256.
pub fn state_hash(state: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, state.as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(public: &str) -> OAuthApp {
        OAuthApp::from_parts(
            Some("cid"),
            Some(&SecretString::from("sec".to_owned())),
            Some(&Url::parse(public).unwrap()),
            Url::parse("https://app.intercom.com/oauth").unwrap(),
            Url::parse("https://app.eu.intercom.com/oauth").unwrap(),
            Url::parse("https://api.intercom.io/auth/eagle/token").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_authorize_url_carries_client_id_state_and_redirect_uri() {
        let url = app("https://gw.example.com").authorize_url(Region::Us, "st");
        assert_eq!(url.host_str(), Some("app.intercom.com"));
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&("client_id".into(), "cid".into())));
        assert!(q.contains(&("state".into(), "st".into())));
        assert!(q.contains(&(
            "redirect_uri".into(),
            "https://gw.example.com/v1/oauth/intercom/callback".into()
        )));
    }

    #[test]
    fn eu_tenants_go_to_the_eu_host_and_path_prefixes_are_kept() {
        let url = app("https://x.example/gw/").authorize_url(Region::Eu, "st");
        assert_eq!(url.host_str(), Some("app.eu.intercom.com"));
        assert!(
            url.as_str()
                .contains("x.example%2Fgw%2Fv1%2Foauth%2Fintercom%2Fcallback")
        );
    }

    #[test]
    fn oauth_is_off_without_a_client_id_secret_or_public_url() {
        let u = Url::parse("https://a.example").unwrap();
        let s = SecretString::from("s".to_owned());
        let none = |id, sec, pu| OAuthApp::from_parts(id, sec, pu, u.clone(), u.clone(), u.clone());
        assert!(none(None, Some(&s), Some(&u)).is_none());
        assert!(none(Some("c"), None, Some(&u)).is_none());
        assert!(none(Some("c"), Some(&s), None).is_none());
    }

    #[test]
    fn states_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_state(), new_state());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(state_hash(&a).len(), 32);
        assert_ne!(state_hash(&a), a.as_bytes());
    }
}
