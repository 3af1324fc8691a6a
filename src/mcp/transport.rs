//! The HTTP client the gateway talks to the upstream with.
//!
//! Two clients share one TLS configuration (the platform verifier, TLS 1.2 and 1.3, ALPN `h2`
//! then `http/1.1`, as reqwest sets up its own):
//! - reqwest, under rmcp's transport, and for an upstream reached through a proxy
//!   (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, read as reqwest reads them);
//! - hyper-util's pooled client for the direct path (`direct.rs`) to an upstream reached without
//!   a proxy. Per request reqwest adds a URL parse for its redirect policy, another for the
//!   response, a clone for its retry layer and its proxy lookup (issue 8: ~28k of the ~87k
//!   instructions of a `tools/call`); the direct path needs none of them: it follows no
//!   redirect, and the proxy question has one answer per upstream URL, settled once in
//!   [`UpstreamHttp::endpoint`].
//!
//! Both keep reqwest's connection settings: `TCP_NODELAY` (without it, Nagle's algorithm holds a
//! request's body until the previous segment is acknowledged: ~40 ms per call on loopback),
//! TCP keepalive, a 5 s connect timeout and a 90 s idle timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::{UpstreamError, transport_failure};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const KEEPALIVE: Duration = Duration::from_secs(15);
const USER_AGENT: &str = concat!("intercom-mcp-gateway/", env!("CARGO_PKG_VERSION"));

/// An answer's body, from either client.
pub(super) type Body = Either<Incoming, reqwest::Body>;

type Direct = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The upstream HTTP clients (cheap to clone: one `Arc`).
#[derive(Clone)]
pub(crate) struct UpstreamHttp(Arc<Inner>);

struct Inner {
    rest: reqwest::Client,
    direct: Direct,
    proxies: Matcher,
}

/// An upstream URL, parsed once for every request a session sends to it, and which client
/// reaches it.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    uri: Uri,
    /// No proxy applies: hyper-util's client sends the requests.
    direct: bool,
}

/// A request that got no answer.
#[derive(Debug)]
pub(super) enum SendError {
    Direct(hyper_util::client::legacy::Error),
    Rest(reqwest::Error),
}

impl SendError {
    pub(super) fn classify(&self) -> UpstreamError {
        match self {
            // hyper-util reports a connect timeout as a connect error, like reqwest.
            SendError::Direct(e) => transport_failure(e.is_connect(), false),
            SendError::Rest(e) => transport_failure(e.is_connect(), e.is_timeout()),
        }
    }
}

impl UpstreamHttp {
    /// Builds both clients. Upstream redirects are refused by both: following one could hand
    /// the tenant's bearer token to another origin.
    pub(crate) fn new() -> anyhow::Result<Self> {
        Self::build(tls_config(None)?, None)
    }

    /// `proxy`: an HTTP proxy and its `NO_PROXY` list instead of the environment's (tests).
    fn build(tls: rustls::ClientConfig, proxy: Option<(&str, &str)>) -> anyhow::Result<Self> {
        // hyper-rustls sets the same ALPN on its own copy (and insists on setting it).
        let mut rest_tls = tls.clone();
        rest_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut rest = reqwest::Client::builder();
        let proxies = match proxy {
            None => Matcher::from_system(),
            Some((url, no)) => {
                let no_proxy = reqwest::NoProxy::from_string(no);
                rest = rest.proxy(reqwest::Proxy::http(url)?.no_proxy(no_proxy));
                Matcher::builder().http(url).no(no).build()
            }
        };
        let rest = rest
            .tls_backend_preconfigured(rest_tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(KEEPALIVE));
        http.set_keepalive_interval(Some(KEEPALIVE));
        http.set_keepalive_retries(Some(3));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let direct = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self(Arc::new(Inner {
            rest,
            direct,
            proxies,
        })))
    }

    /// reqwest's client (rmcp's transport runs on it).
    pub(crate) fn rest(&self) -> &reqwest::Client {
        &self.0.rest
    }

    /// Parses `url` and settles which client reaches it.
    pub(super) fn endpoint(&self, url: &str) -> Result<Endpoint, UpstreamError> {
        let bad = |e: &dyn std::fmt::Display| UpstreamError::Failed {
            detail: format!("the upstream URL does not parse: {e}"),
            retryable: false,
            outage: false,
        };
        let url = reqwest::Url::parse(url).map_err(|e| bad(&e))?;
        let uri: Uri = url.as_str().parse().map_err(|e| bad(&e))?;
        let direct = self.0.proxies.intercept(&uri).is_none();
        Ok(Endpoint { uri, direct })
    }

    /// Sends one request to `to`; `headers` are the request's own (the user agent is added).
    pub(super) async fn send(
        &self,
        to: &Endpoint,
        method: Method,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, SendError> {
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = to.uri.clone();
        *request.headers_mut() = headers;
        if to.direct {
            self.0
                .direct
                .request(request.map(Full::new))
                .await
                .map(|r| r.map(Either::Left))
                .map_err(SendError::Direct)
        } else {
            let request = reqwest::Request::try_from(request).map_err(SendError::Rest)?;
            self.0
                .rest
                .execute(request)
                .await
                .map(|r| http::Response::from(r).map(Either::Right))
                .map_err(SendError::Rest)
        }
    }
}

/// reqwest's TLS defaults, with the crypto provider `main` installed (ring), without ALPN.
fn tls_config(
    extra_root: Option<rustls::pki_types::CertificateDer<'static>>,
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = match extra_root {
        None => rustls_platform_verifier::Verifier::new(provider.clone())?,
        Some(root) => {
            rustls_platform_verifier::Verifier::new_with_extra_roots([root], provider.clone())?
        }
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers every request with what it saw: `<version> <method> <uri> <authorization>`.
    async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let said = format!("{:?} {} {} {auth}", req.version(), req.method(), req.uri());
        Ok(Response::new(Full::new(Bytes::from(said))))
    }

    /// Serves [`echo`] on 127.0.0.1, over TLS when `tls` is given (HTTP/1.1 and HTTP/2, as
    /// ALPN settles).
    async fn serve(tls: Option<rustls::ServerConfig>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let service = service_fn(echo);
                    let _ = match acceptor {
                        Some(a) => match a.accept(tcp).await {
                            Ok(tls) => server.serve_connection(TokioIo::new(tls), service).await,
                            Err(_) => return,
                        },
                        None => server.serve_connection(TokioIo::new(tcp), service).await,
                    };
                });
            }
        });
        port
    }

    /// A CA, and a server configuration for `localhost` with a certificate it signed.
    fn pki(alpn: &[&[u8]]) -> (CertificateDer<'static>, rustls::ServerConfig) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        (ca_cert.der().clone(), server)
    }

    fn client(root: Option<CertificateDer<'static>>) -> UpstreamHttp {
        UpstreamHttp::build(tls_config(root).unwrap(), None).unwrap()
    }

    async fn post(http: &UpstreamHttp, url: &str) -> Result<String, SendError> {
        let to = http.endpoint(url).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer t"),
        );
        let response = http.send(&to, Method::POST, headers, Bytes::new()).await?;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn tls_upstreams_are_reached_directly_over_http2_or_http1_as_alpn_settles() {
        for (alpn, version) in [
            (&[b"h2".as_slice(), b"http/1.1"][..], "HTTP/2.0"),
            (&[b"http/1.1".as_slice()][..], "HTTP/1.1"),
        ] {
            let (ca, server) = pki(alpn);
            let port = serve(Some(server)).await;
            let http = client(Some(ca));
            let url = format!("https://localhost:{port}/mcp");
            assert!(http.endpoint(&url).unwrap().direct);
            let said = post(&http, &url).await.unwrap();
            assert!(said.starts_with(&format!("{version} POST ")), "{said}");
            assert!(said.ends_with(" Bearer t"), "{said}");
            // A second request reuses the pooled connection.
            assert!(post(&http, &url).await.unwrap().starts_with(version));
        }
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_connect_failure() {
        let (_, server) = pki(&[b"http/1.1"]);
        let port = serve(Some(server)).await;
        // The platform's roots only: the test CA is not among them.
        let http = client(None);
        let e = post(&http, &format!("https://localhost:{port}/mcp"))
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Direct(_)), "{e:?}");
        let UpstreamError::Failed {
            detail, retryable, ..
        } = e.classify()
        else {
            panic!("not a failure");
        };
        assert_eq!(detail, "could not connect to Intercom");
        assert!(retryable, "nothing was sent");
    }

    #[tokio::test]
    async fn a_proxied_upstream_is_reached_through_the_proxy() {
        // The "proxy" is the echo server: a proxied plain-HTTP request arrives in absolute form.
        let proxy = serve(None).await;
        let proxy = format!("http://127.0.0.1:{proxy}");
        let http = UpstreamHttp::build(tls_config(None).unwrap(), Some((&proxy, "direct.invalid")))
            .unwrap();
        let url = "http://upstream.invalid:81/mcp";
        assert!(!http.endpoint(url).unwrap().direct);
        let said = post(&http, url).await.unwrap();
        assert_eq!(said, format!("HTTP/1.1 POST {url} Bearer t"));
        // NO_PROXY hosts are reached directly (and here, not at all).
        let bypass = "http://direct.invalid:81/mcp";
        assert!(http.endpoint(bypass).unwrap().direct);
        assert!(matches!(
            post(&http, bypass).await.unwrap_err(),
            SendError::Direct(e) if e.is_connect()
        ));
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused() {
        let http = client(None);
        assert!(matches!(
            http.endpoint("not a url"),
            Err(UpstreamError::Failed {
                retryable: false,
                ..
            })
        ));
    }
}
