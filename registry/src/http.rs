//! HTTP/1.1 to the registry on hyper's connection-level client: one kept-alive connection
//! pool per base URL, TLS through rustls for `https`, every wait bounded by
//! `http.connect.timeout.ms` / `http.read.timeout.ms`, answers capped at [`MAX_BODY`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{Error, ErrorKind, Result};

/// The largest answer read (a schema with its references is kilobytes; this bounds a
/// misbehaving server).
pub(crate) const MAX_BODY: usize = 16 << 20;

/// Idle connections kept per URL.
const MAX_IDLE: usize = 4;

/// A parsed base URL: `http(s)://[user:password@]host[:port][/path]`.
#[derive(Clone)]
pub(crate) struct BaseUrl {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path prefix without a trailing slash (`/apis/ccompat/v7`), or empty.
    pub(crate) path: String,
    /// `user:password` from the URL, for `basic.auth.credentials.source=URL`.
    pub(crate) user_info: Option<String>,
    /// The URL as configured, with its user info hidden (for messages).
    pub(crate) shown: String,
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<BaseUrl> {
        let bad = |why: &str| {
            Error::config(format!(
                "schema.registry.url {:?}: {why}",
                crate::config::redact_url(url)
            ))
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("expected an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("a base URL has no query or fragment"));
        }
        let (user_info, hostport) = match authority.rfind('@') {
            Some(i) => (Some(authority[..i].to_owned()), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
            let port = v6[end + 1..].strip_prefix(':');
            (v6[..end].to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(BaseUrl {
            tls,
            host,
            port,
            path: path.to_owned(),
            user_info,
            shown: crate::config::redact_url(url),
        })
    }

    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What a request got back.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// Connections to one base URL.
pub(crate) struct Endpoint {
    pub(crate) url: BaseUrl,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Endpoint {
    pub(crate) fn new(url: BaseUrl, tls: Option<tokio_rustls::TlsConnector>) -> Self {
        Endpoint {
            url,
            tls,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, s: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
    }

    async fn connect(&self, timeout: Duration) -> Result<SendRequest<Full<Bytes>>> {
        let url = &self.url;
        let tls = self.tls.as_ref();
        let unreachable = |e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot connect to the schema registry at {}", url.shown),
            )
            .with_url(url.shown.clone())
            .with_source(e)
        };
        let connecting = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(unreachable)?;
            let _ = tcp.set_nodelay(true);
            match (url.tls, tls) {
                (false, _) => handshake(tcp).await,
                (true, Some(connector)) => {
                    let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
                        Error::config(format!(
                            "schema.registry.url {}: not a valid TLS server name",
                            url.shown
                        ))
                        .with_source(e)
                    })?;
                    let stream = connector.connect(name, tcp).await.map_err(|e| {
                        let kind = if e.kind() == std::io::ErrorKind::InvalidData {
                            ErrorKind::Authentication
                        } else {
                            ErrorKind::Unavailable
                        };
                        Error::new(
                            kind,
                            format!("TLS handshake with the schema registry at {} failed", url.shown),
                        )
                        .with_url(url.shown.clone())
                        .with_source(e)
                    })?;
                    handshake(stream).await
                }
                (true, None) => Err(Error::config(format!(
                    "schema.registry.url {} is https but no TLS configuration was built (a bug)",
                    url.shown
                ))),
            }
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "connecting to the schema registry at {} took over http.connect.timeout.ms ({timeout:?})",
                    url.shown
                ),
            )
            .with_url(url.shown.clone())),
        }
    }

    /// One request: `path_and_query` is appended to the base path.
    pub(crate) async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        authorization: Option<&str>,
        body: Option<Bytes>,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Answer> {
        let full = format!("{}{}", self.url.path, path_and_query);
        let shown = format!("{}{}", self.url.shown, path_and_query);
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect(connect_timeout).await?,
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(full.as_str())
            .header(hyper::header::HOST, self.url.host_header())
            .header(
                hyper::header::ACCEPT,
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("strom-registry/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = authorization {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/vnd.schemaregistry.v1+json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::config(format!("a request to {shown} cannot be built")).with_source(e))?;
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(|e| {
                Error::new(ErrorKind::Unavailable, "the schema registry connection failed")
                    .with_url(shown.clone())
                    .with_source(e)
            })?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("reading the schema registry's answer failed (or it is over {MAX_BODY} bytes)"),
                )
                .with_url(shown.clone())
                .with_http(status, None)
                .with_source(Boxed(e))
            })?;
            Ok(Answer {
                status,
                body: body.to_bytes(),
            })
        };
        let answer = match tokio::time::timeout(read_timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the schema registry did not answer within http.read.timeout.ms ({read_timeout:?})"),
                )
                .with_url(shown))
            }
        };
        self.put_idle(sender);
        Ok(answer)
    }
}

/// hyper's boxed body error as a concrete error type.
#[derive(Debug)]
struct Boxed(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Boxed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, "HTTP handshake with the schema registry failed").with_source(e)
        })?;
    // The connection task ends when the sender is dropped or the server closes it.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("schema registry connection ended: {e}");
        }
    });
    Ok(sender)
}

/// The rustls connector for `https` URLs: the configured PEM CAs, else the system's roots.
pub(crate) fn tls_connector(trust: Option<&crate::config::TrustStore>) -> Result<tokio_rustls::TlsConnector> {
    use crate::config::TrustStore;
    let provider = provider()?;
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Some(t) => {
            let pem = match t {
                TrustStore::File(path) => std::fs::read(path).map_err(|e| {
                    Error::config(format!(
                        "schema.registry.ssl.truststore.location {path:?} cannot be read"
                    ))
                    .with_source(e)
                })?,
                TrustStore::Pem(text) => text.as_bytes().to_vec(),
            };
            use rustls::pki_types::pem::PemObject;
            let mut n = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| Error::config("the schema registry truststore is not valid PEM").with_source(e))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::config("a schema registry truststore certificate is invalid").with_source(e))?;
                n += 1;
            }
            if n == 0 {
                return Err(Error::config("the schema registry truststore holds no PEM certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("TLS protocol versions").with_source(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn provider() -> Result<Arc<rustls::crypto::CryptoProvider>> {
    if let Some(p) = rustls::crypto::CryptoProvider::get_default() {
        return Ok(p.clone());
    }
    #[cfg(feature = "tls-ring")]
    {
        return Ok(Arc::new(rustls::crypto::ring::default_provider()));
    }
    #[cfg(all(feature = "tls-graviola", not(feature = "tls-ring")))]
    {
        return Ok(Arc::new(rustls_graviola::default_provider()));
    }
    #[allow(unreachable_code)]
    Err(Error::config(
        "an https schema.registry.url needs TLS crypto: enable strom-registry's tls-ring or tls-graviola feature, or install a rustls CryptoProvider (CryptoProvider::install_default)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = BaseUrl::parse("https://fred:pw@reg.example:8443/apis/ccompat/v7").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("reg.example", 8443, "/apis/ccompat/v7")
        );
        assert_eq!(u.user_info.as_deref(), Some("fred:pw"));
        assert!(!u.shown.contains("pw"));
        let v6 = BaseUrl::parse("http://[::1]:8081").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.host_header().as_str()),
            ("::1", 8081, "[::1]:8081")
        );
        assert_eq!(BaseUrl::parse("http://h").unwrap().port, 80);
        for bad in ["h:8081", "http://:80", "http://h:99999", "http://h/x?y=1"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
