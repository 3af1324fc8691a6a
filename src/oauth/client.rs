//! Intercom's REST endpoints around OAuth: the code exchange, `/me` and `/auth/uninstall`.
//! Redirects are never followed: they could carry a token to another origin.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::OAuthApp;

/// The Intercom workspace a token belongs to (`GET /me` → `app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// `app.id_code`: the stable workspace id.
    pub id: String,
    /// `app.region` as Intercom spells it (`US`, `EU`, `AU`).
    pub region: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Intercom refused the code (expired, used, wrong client): the user must start again.
    #[error("Intercom refused the authorization code ({0})")]
    Refused(String),
    /// The token endpoint failed or answered something unusable.
    #[error("Intercom's token endpoint failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct IntercomRest {
    http: reqwest::Client,
    api_url: Url,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Me {
    app: Option<MeApp>,
}

#[derive(Deserialize)]
struct MeApp {
    id_code: Option<String>,
    region: Option<String>,
}

impl IntercomRest {
    pub fn new(api_url: Url) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("intercom-mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, api_url })
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.as_str().trim_end_matches('/'))
    }

    /// `POST INTERCOM_OAUTH_TOKEN_URL` with the form fields `code`, `client_id`,
    /// `client_secret`; Intercom answers `{token, access_token, token_type}`.
    pub async fn exchange(
        &self,
        app: &OAuthApp,
        code: &str,
    ) -> Result<SecretString, ExchangeError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", code)
            .append_pair("client_id", &app.client_id)
            .append_pair("client_secret", app.client_secret.expose_secret())
            .finish();
        let res = self
            .http
            .post(app.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| ExchangeError::Failed(format!("request failed: {e}")))?;
        let status = res.status();
        if status.is_client_error() {
            // The body names the reason (`invalid_grant`, ...) and never holds a token.
            let body = res.text().await.unwrap_or_default();
            return Err(ExchangeError::Refused(format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        if !status.is_success() {
            return Err(ExchangeError::Failed(format!("HTTP {status}")));
        }
        let body: TokenResponse = res
            .json()
            .await
            .map_err(|_| ExchangeError::Failed("the answer is not the expected JSON".into()))?;
        let token = body
            .access_token
            .or(body.token)
            .filter(|t| !t.is_empty() && t.len() <= 4096 && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| ExchangeError::Failed("the answer holds no usable token".into()))?;
        Ok(SecretString::from(token))
    }

    /// The workspace of `token` (`GET /me`); `None` when Intercom does not say.
    pub async fn workspace(&self, token: &SecretString) -> anyhow::Result<Option<Workspace>> {
        let res = self
            .http
            .get(self.api("/me"))
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = res.status();
        anyhow::ensure!(status.is_success(), "GET /me answered HTTP {status}");
        let me: Me = res.json().await?;
        Ok(me.app.and_then(|a| {
            Some(Workspace {
                id: a.id_code.filter(|i| !i.is_empty())?,
                region: a.region,
            })
        }))
    }

    /// Revokes `token` (`POST /auth/uninstall`): the app is uninstalled from the workspace.
    pub async fn uninstall(&self, token: &SecretString) -> anyhow::Result<()> {
        let res = self
            .http
            .post(self.api("/auth/uninstall"))
            .bearer_auth(token.expose_secret())
            .json(&serde_json::json!({}))
            .send()
            .await?;
        let status = res.status();
        // 401: the token is already unusable, which is what revoking wanted.
        anyhow::ensure!(
            status.is_success() || status == reqwest::StatusCode::UNAUTHORIZED,
            "POST /auth/uninstall answered HTTP {status}"
        );
        Ok(())
    }
}
