//! SASL authentication (KIP-43, KIP-152): SaslHandshake v1, then SaslAuthenticate rounds,
//! as Java's `SaslClientAuthenticator` does. Mechanisms: PLAIN and OAUTHBEARER through
//! rsasl; SCRAM-SHA-256/512 through [`super::scram_client`] (with Kafka's SCRAM extensions,
//! which delegation tokens need); GSSAPI through [`super::gssapi`] (feature `gssapi`).
//!
//! The exchange runs over a [`SaslChannel`]: the raw stream before the connection is handed
//! to [`Connection`](crate::lowlevel::Connection), or the in-band channel of [`super::reauth`] for
//! re-authentication (KIP-368).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::oauthbearer::properties::OAuthBearerErrored;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::{AuthId, OAuthBearerKV, OAuthBearerToken as TokenProperty, Password};
use strom_protocol::frame::ApiRequest;
use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use strom_protocol::ErrorCode;
use tracing::debug;

use crate::error::{Error, Result};
use crate::security::jaas::{self, JaasConfig};
use crate::security::mechanism::{Secret, Step};
use crate::security::oauth::{OAuthBearerToken, TokenFuture, TokenProvider, UnsecuredJwt};
use crate::security::scram_client::ScramClient;

pub(crate) const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
pub(crate) const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
pub(crate) const OAUTH_MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
pub(crate) const KRB5_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
    Gssapi,
}

impl Mechanism {
    fn parse(v: &str) -> Result<Self> {
        Ok(match v.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            "GSSAPI" => Mechanism::Gssapi,
            _ => {
                return Err(Error::config(format!(
                    "sasl.mechanism={v:?}: expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI"
                )))
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Gssapi => "GSSAPI",
        }
    }
}

#[derive(Clone)]
enum Credentials {
    Password {
        username: String,
        password: Secret,
        /// SCRAM extensions: `tokenauth=true` when the username and password are a
        /// delegation token's id and HMAC.
        scram_extensions: BTreeMap<String, String>,
    },
    OAuth(Arc<dyn TokenProvider>),
    #[cfg(feature = "gssapi")]
    Kerberos(super::gssapi::KerberosSettings),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password {
                username,
                password,
                scram_extensions,
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", password)
                .field("scram_extensions", scram_extensions)
                .finish(),
            Credentials::OAuth(_) => f.write_str("OAuthTokenProvider"),
            #[cfg(feature = "gssapi")]
            Credentials::Kerberos(k) => k.fmt(f),
        }
    }
}

/// The SASL settings of a client, resolved from `sasl.*` and validated once.
#[derive(Clone, Debug)]
pub(crate) struct SaslSettings {
    mechanism: Mechanism,
    credentials: Credentials,
}

/// Java client properties that would change how authentication works but that Strom does
/// not implement: refusing them beats silently ignoring them.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "sasl.login.callback.handler.class",
        "give ClientConfig::with_oauth_token_provider a token provider instead",
    ),
    (
        "sasl.client.callback.handler.class",
        "credentials come from sasl.jaas.config (or sasl.username/sasl.password)",
    ),
    ("sasl.login.class", "Java login classes cannot be loaded"),
    (
        "sasl.oauthbearer.token.endpoint.url",
        "fetch tokens in a TokenProvider given to ClientConfig::with_oauth_token_provider",
    ),
];

/// A Java provider type for [`UnsecuredJwt`].
struct Unsecured(UnsecuredJwt);

impl TokenProvider for Unsecured {
    fn token(&self) -> TokenFuture<'_> {
        let t = self.0.token();
        Box::pin(async move { Ok(t) })
    }
}

impl SaslSettings {
    /// From `sasl.mechanism` (Java's default is GSSAPI), `sasl.jaas.config` (or librdkafka's
    /// `sasl.username`/`sasl.password`) and the OAuth token provider, if any.
    pub(crate) fn from_properties(
        props: &BTreeMap<String, String>,
        token_provider: Option<Arc<dyn TokenProvider>>,
    ) -> Result<SaslSettings> {
        for (key, instead) in UNSUPPORTED {
            if props.get(*key).is_some_and(|v| !v.trim().is_empty()) {
                return Err(Error::config(format!("{key} is not supported: {instead}")));
            }
        }
        let mechanism = Mechanism::parse(props.get("sasl.mechanism").map_or("GSSAPI", String::as_str))?;
        let jaas = props
            .get("sasl.jaas.config")
            .filter(|v| !v.trim().is_empty())
            .map(|v| jaas::parse(v))
            .transpose()?;
        let module_must_be = |allowed: &[&str]| -> Result<()> {
            match &jaas {
                Some(j) if !allowed.contains(&j.module.as_str()) => Err(Error::config(format!(
                    "sasl.jaas.config: login module {} does not fit sasl.mechanism={}: use {}",
                    j.module,
                    mechanism.name(),
                    allowed.join(" or ")
                ))),
                _ => Ok(()),
            }
        };
        let credentials = match mechanism {
            Mechanism::Plain | Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                module_must_be(&[PLAIN_MODULE, SCRAM_MODULE])?;
                let from_jaas = |k: &str| jaas.as_ref().and_then(|j| j.get(k)).map(str::to_owned);
                let username = from_jaas("username").or_else(|| props.get("sasl.username").cloned());
                let password = from_jaas("password").or_else(|| props.get("sasl.password").cloned());
                // ScramLoginModule's tokenauth="true": the credentials are a delegation
                // token's id and HMAC (KIP-48), sent with the SCRAM extension saying so.
                let token_auth = match &jaas {
                    Some(j) => j.flag("tokenauth", false)?,
                    None => false,
                };
                if token_auth && mechanism == Mechanism::Plain {
                    return Err(Error::config(
                        "sasl.jaas.config: tokenauth=\"true\" (a delegation token) needs sasl.mechanism=SCRAM-SHA-256 or SCRAM-SHA-512",
                    ));
                }
                let scram_extensions = if token_auth {
                    BTreeMap::from([("tokenauth".to_owned(), "true".to_owned())])
                } else {
                    BTreeMap::new()
                };
                match (username, password) {
                    (Some(username), Some(password)) if !username.is_empty() => Credentials::Password {
                        username,
                        password: Secret(password),
                        scram_extensions,
                    },
                    _ => {
                        return Err(Error::config(format!(
                            "SASL {} needs a username and a password: sasl.jaas.config={} required username=\"...\" password=\"...\"; \
                             (or sasl.username and sasl.password)",
                            mechanism.name(),
                            if mechanism == Mechanism::Plain { PLAIN_MODULE } else { SCRAM_MODULE }
                        )))
                    }
                }
            }
            Mechanism::OAuthBearer => {
                module_must_be(&[OAUTH_MODULE])?;
                match (token_provider, &jaas) {
                    (Some(p), _) => Credentials::OAuth(p),
                    (None, Some(j)) => Credentials::OAuth(Arc::new(Unsecured(UnsecuredJwt::from_jaas(j)?))),
                    (None, None) => {
                        return Err(Error::config(
                            "SASL OAUTHBEARER needs a token: give ClientConfig::with_oauth_token_provider a provider, \
                             or (tests only) sasl.jaas.config with OAuthBearerLoginModule and unsecuredLoginStringClaim_sub",
                        ))
                    }
                }
            }
            Mechanism::Gssapi => {
                module_must_be(&[KRB5_MODULE])?;
                gssapi_credentials(props, jaas.as_ref())?
            }
        };
        Ok(SaslSettings { mechanism, credentials })
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Who we authenticate as, for messages (never a secret).
    fn identity(&self) -> String {
        match &self.credentials {
            Credentials::Password {
                username,
                scram_extensions,
                ..
            } if scram_extensions.contains_key("tokenauth") => format!(" with delegation token {username}"),
            Credentials::Password { username, .. } => format!(" as {username}"),
            Credentials::OAuth(_) => String::new(),
            #[cfg(feature = "gssapi")]
            Credentials::Kerberos(k) => k.identity(),
        }
    }

    /// A fresh mechanism instance for one authentication with the broker at `host`.
    async fn start(&self, host: &str) -> Result<Mech> {
        let name = self.mechanism.name();
        let callback = match &self.credentials {
            Credentials::Password {
                username,
                password,
                scram_extensions,
            } if matches!(self.mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha512) => {
                let m = if self.mechanism == Mechanism::ScramSha256 {
                    crate::ScramMechanism::Sha256
                } else {
                    crate::ScramMechanism::Sha512
                };
                return Ok(Mech::Scram(Box::new(ScramClient::new(
                    m,
                    username.clone(),
                    password.clone(),
                    scram_extensions.clone(),
                    ScramClient::random_nonce()?,
                ))));
            }
            Credentials::Password { username, password, .. } => Callback {
                username: Some(username.clone()),
                password: Some(password.clone()),
                token: None,
                oauth_error: Arc::default(),
            },
            Credentials::OAuth(provider) => {
                let token = provider.token().await?;
                token.validate()?;
                debug!(
                    principal = token.principal().unwrap_or("?"),
                    "OAUTHBEARER token obtained"
                );
                Callback {
                    username: None,
                    password: None,
                    token: Some(token),
                    oauth_error: Arc::default(),
                }
            }
            #[cfg(feature = "gssapi")]
            Credentials::Kerberos(k) => {
                let (k, host) = (k.clone(), host.to_owned());
                let client = tokio::task::spawn_blocking(move || super::gssapi::GssapiClient::new(&k, &host))
                    .await
                    .map_err(|e| Error::authentication(format!("GSSAPI: {e}")))??;
                return Ok(Mech::Gssapi(Box::new(client)));
            }
        };
        let _ = host;
        let oauth_error = callback.oauth_error.clone();
        let config = SASLConfig::builder()
            .with_default_mechanisms()
            .with_callback(callback)
            .map_err(|e| Error::authentication(format!("SASL {name}: {e}")))?;
        let mechname =
            Mechname::parse(name.as_bytes()).map_err(|e| Error::authentication(format!("SASL {name}: {e}")))?;
        let session = SASLClient::new(config)
            .start_suggested(&[mechname])
            .map_err(|e| Error::authentication(format!("SASL {name}: {e}")))?;
        Ok(Mech::Rsasl {
            session: Box::new(session),
            name,
            oauth_error,
        })
    }
}

#[cfg(feature = "gssapi")]
fn gssapi_credentials(props: &BTreeMap<String, String>, jaas: Option<&JaasConfig>) -> Result<Credentials> {
    Ok(Credentials::Kerberos(super::gssapi::KerberosSettings::from_properties(
        props, jaas,
    )?))
}

#[cfg(not(feature = "gssapi"))]
fn gssapi_credentials(_props: &BTreeMap<String, String>, _jaas: Option<&JaasConfig>) -> Result<Credentials> {
    Err(Error::config(
        "sasl.mechanism=GSSAPI (Java's default when sasl.mechanism is not set) needs strom-client built with \
         the `gssapi` cargo feature; otherwise set sasl.mechanism to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
    ))
}

/// Answers rsasl's questions; captures an OAUTHBEARER error the broker sends.
struct Callback {
    username: Option<String>,
    password: Option<Secret>,
    token: Option<OAuthBearerToken>,
    oauth_error: Arc<Mutex<Option<String>>>,
}

impl SessionCallback for Callback {
    fn callback(&self, _: &SessionData, _: &Context, request: &mut Request<'_>) -> Result<(), SessionError> {
        if let Some(e) = request.get_action::<OAuthBearerErrored>() {
            let text = format!(
                "status={}{}",
                e.status,
                e.scope.map(|s| format!(", scope={s}")).unwrap_or_default()
            );
            if let Ok(mut slot) = self.oauth_error.lock() {
                *slot = Some(text);
            }
            return Ok(());
        }
        if let Some(u) = &self.username {
            request.satisfy::<AuthId>(u.as_str())?;
        }
        if let Some(p) = &self.password {
            request.satisfy::<Password>(p.0.as_bytes())?;
        }
        if let Some(t) = &self.token {
            let kv: Vec<(&str, &str)> = t.extensions().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            request.satisfy::<OAuthBearerKV>(&kv)?;
            request.satisfy::<TokenProperty>(t.value())?;
        }
        Ok(())
    }
}

enum Mech {
    Rsasl {
        session: Box<Session>,
        name: &'static str,
        oauth_error: Arc<Mutex<Option<String>>>,
    },
    Scram(Box<ScramClient>),
    #[cfg(feature = "gssapi")]
    Gssapi(Box<super::gssapi::GssapiClient>),
}

impl Mech {
    async fn step(self, input: Option<Bytes>) -> Result<(Mech, Step)> {
        match self {
            Mech::Scram(mut client) => {
                // PBKDF2 with a bounded count (<= 16384 rounds): well under a millisecond.
                let step = client.step(input.as_deref())?;
                Ok((Mech::Scram(client), step))
            }
            Mech::Rsasl {
                mut session,
                name,
                oauth_error,
            } => {
                let mut out = Vec::new();
                let state = session.step(input.as_deref(), &mut out).map_err(|e| match e {
                    SessionError::MutualAuthenticationFailed => Error::kafka(ErrorCode::SaslAuthenticationFailed)
                        .with_context(format!(
                            "SASL {name}: the broker failed to prove it knows the credentials"
                        )),
                    e => Error::kafka(ErrorCode::SaslAuthenticationFailed).with_context(format!("SASL {name}: {e}")),
                })?;
                let step = match state {
                    State::Running => Step::Send(out),
                    State::Finished(rsasl::prelude::MessageSent::Yes) => {
                        // OAUTHBEARER after an error challenge: RFC 7628 §3.2.3 wants a lone
                        // ^A, after which the broker reports the failure.
                        let errored = oauth_error.lock().map(|e| e.is_some()).unwrap_or(false);
                        if errored && out.is_empty() {
                            Step::SendLast(vec![1])
                        } else {
                            Step::SendLast(out)
                        }
                    }
                    State::Finished(rsasl::prelude::MessageSent::No) => Step::Done,
                };
                Ok((
                    Mech::Rsasl {
                        session,
                        name,
                        oauth_error,
                    },
                    step,
                ))
            }
            #[cfg(feature = "gssapi")]
            Mech::Gssapi(mut client) => {
                // GSS calls may talk to the KDC: keep them off the async workers.
                tokio::task::spawn_blocking(move || {
                    let step = client.step(input.as_deref())?;
                    Ok((Mech::Gssapi(client), step))
                })
                .await
                .map_err(|e| Error::authentication(format!("GSSAPI: {e}")))?
            }
        }
    }

    fn oauth_error(&self) -> Option<String> {
        match self {
            Mech::Rsasl { oauth_error, .. } => oauth_error.lock().ok().and_then(|e| e.clone()),
            Mech::Scram(_) => None,
            #[cfg(feature = "gssapi")]
            Mech::Gssapi(_) => None,
        }
    }
}

/// Sends one request and waits for its response: the raw stream or the re-authentication
/// channel.
pub(crate) trait SaslChannel: Send {
    /// The request at `version`; the response, or a (fatal or retriable) error.
    fn call<R>(&mut self, request: &R, version: i16) -> impl Future<Output = Result<R::Response>> + Send
    where
        R: ApiRequest + Sync,
        R::Response: Send;
}

/// No mechanism needs more than a handful of rounds; a broker that keeps challenging is
/// broken or hostile.
const MAX_ROUNDS: usize = 16;

/// A mechanism ready to go, its first message computed (for GSSAPI that already asked the
/// KDC for a service ticket), so that re-authentication holds the connection only for the
/// exchange itself.
pub(crate) struct Prepared {
    mech: Mech,
    first: Step,
}

/// Starts a mechanism for the broker at `host` (fetches an OAuth token, acquires Kerberos
/// credentials) and computes its first message.
pub(crate) async fn prepare(settings: &SaslSettings, host: &str) -> Result<Prepared> {
    let (mech, first) = settings.start(host).await?.step(None).await?;
    Ok(Prepared { mech, first })
}

/// SaslHandshake, then the mechanism is prepared (so a listener without it says so before
/// any credential work), then SaslAuthenticate rounds over `channel` with the broker at
/// `addr`. Returns the session lifetime the broker granted (`None`: no re-authentication).
pub(crate) async fn authenticate<C: SaslChannel>(
    channel: &mut C,
    settings: &SaslSettings,
    addr: &str,
    host: &str,
    versions: (i16, i16),
) -> Result<Option<Duration>> {
    exchange(channel, settings, Err(host), addr, versions).await
}

/// SaslHandshake + SaslAuthenticate rounds, with a mechanism prepared already (`Ok`) or to
/// prepare for this host after the handshake (`Err`).
pub(crate) async fn exchange<C: SaslChannel>(
    channel: &mut C,
    settings: &SaslSettings,
    prepared: std::result::Result<Prepared, &str>,
    addr: &str,
    (handshake_version, authenticate_version): (i16, i16),
) -> Result<Option<Duration>> {
    let name = settings.mechanism.name();
    let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name));
    let resp = channel.call(&req, handshake_version).await?;
    let code = ErrorCode::from_code(resp.error_code);
    if code == ErrorCode::UnsupportedSaslMechanism {
        let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(Error::kafka(code).with_context(format!(
            "broker {addr} does not enable SASL mechanism {name} on this listener; it offers {} (sasl.mechanism)",
            offered.join(", ")
        )));
    }
    if code != ErrorCode::None {
        return Err(Error::kafka(code).with_context(format!("SaslHandshake({name}) with broker {addr}")));
    }
    let Prepared { mut mech, first } = match prepared {
        Ok(p) => p,
        Err(host) => prepare(settings, host).await?,
    };
    let mut step = first;
    let mut lifetime_ms = 0i64;
    for _ in 0..MAX_ROUNDS {
        let (bytes, last) = match step {
            Step::Send(b) => (b, false),
            Step::SendLast(b) => (b, true),
            Step::Done => return Ok(lifetime(lifetime_ms)),
        };
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let resp = channel.call(&req, authenticate_version).await?;
        let code = ErrorCode::from_code(resp.error_code);
        if code != ErrorCode::None {
            let mut msg = format!(
                "SASL {name} authentication{} with broker {addr} failed",
                settings.identity()
            );
            if let Some(m) = resp.error_message.as_deref().filter(|m| !m.is_empty()) {
                msg.push_str(&format!(": {m}"));
            }
            if let Some(e) = mech.oauth_error() {
                msg.push_str(&format!(" (token rejected: {e})"));
            }
            return Err(Error::kafka(code).with_context(msg));
        }
        lifetime_ms = resp.session_lifetime_ms;
        if last {
            return Ok(lifetime(lifetime_ms));
        }
        let (next, next_step) = mech.step(Some(resp.auth_bytes)).await?;
        mech = next;
        step = next_step;
    }
    Err(Error::kafka(ErrorCode::IllegalSaslState).with_context(format!(
        "SASL {name} with broker {addr}: no result after {MAX_ROUNDS} rounds"
    )))
}

fn lifetime(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().filter(|&ms| ms > 0).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn settings_from_java_and_librdkafka_names() {
        let s = SaslSettings::from_properties(
            &props(&[
                ("sasl.mechanism", "SCRAM-SHA-512"),
                (
                    "sasl.jaas.config",
                    "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"hunter2\";",
                ),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.mechanism(), Mechanism::ScramSha512);
        let dbg = format!("{s:?}");
        assert!(dbg.contains("\"u\"") && !dbg.contains("hunter2"), "{dbg}");

        let s = SaslSettings::from_properties(
            &props(&[
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u"),
                ("sasl.password", "hunter2"),
            ]),
            None,
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));

        for (kv, want) in [
            (vec![("sasl.mechanism", "PLAIN")], "needs a username and a password"),
            (vec![("sasl.mechanism", "CRAM-MD5")], "expected PLAIN"),
            (
                vec![
                    ("sasl.mechanism", "PLAIN"),
                    (
                        "sasl.jaas.config",
                        "com.sun.security.auth.module.Krb5LoginModule required;",
                    ),
                ],
                "does not fit sasl.mechanism=PLAIN",
            ),
            (vec![("sasl.mechanism", "OAUTHBEARER")], "needs a token"),
            (
                vec![("sasl.login.callback.handler.class", "com.example.X")],
                "not supported",
            ),
        ] {
            let e = SaslSettings::from_properties(&props(&kv), None).unwrap_err();
            assert!(e.is_fatal() && e.to_string().contains(want), "{kv:?}: {e}");
        }
        #[cfg(not(feature = "gssapi"))]
        {
            let e = SaslSettings::from_properties(&props(&[]), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`gssapi` cargo feature"), "{e}");
        }
    }

    #[tokio::test]
    async fn plain_and_scram_first_messages() {
        let s = SaslSettings::from_properties(
            &props(&[
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
            ]),
            None,
        )
        .unwrap();
        let (_, step) = s.start("h").await.unwrap().step(None).await.unwrap();
        assert_eq!(step, Step::SendLast(b"\0u\0p".to_vec()));

        let s = SaslSettings::from_properties(
            &props(&[
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", "u=1,"),
                ("sasl.password", "p"),
            ]),
            None,
        )
        .unwrap();
        let (_, step) = s.start("h").await.unwrap().step(None).await.unwrap();
        let Step::Send(first) = step else { panic!("{step:?}") };
        let first = String::from_utf8(first).unwrap();
        // RFC 5802: gs2 header, escaped user name, client nonce.
        assert!(first.starts_with("n,,n=u=3D1=2C,r="), "{first}");
    }
}
