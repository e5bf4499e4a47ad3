//! SASL/OAUTHBEARER tokens (KIP-255): the user's [`TokenProvider`], and Java's unsecured JWT
//! login (`OAuthBearerUnsecuredLoginCallbackHandler`) for tests and development.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use crate::error::{Error, Result};
use crate::security::jaas::JaasConfig;

/// An OAuth 2 bearer token to authenticate with (SASL/OAUTHBEARER, KIP-255).
///
/// Its value is a secret: `Debug` shows the principal and expiry, never the token.
#[derive(Clone)]
pub struct OAuthBearerToken {
    value: String,
    principal: Option<String>,
    expires_at: Option<SystemTime>,
    extensions: BTreeMap<String, String>,
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &"[redacted]")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OAuthBearerToken {
    /// A token with this compact-serialized value (e.g. a JWT).
    pub fn new(value: impl Into<String>) -> Self {
        OAuthBearerToken {
            value: value.into(),
            principal: None,
            expires_at: None,
            extensions: BTreeMap::new(),
        }
    }

    /// The principal the token names (shown in logs; optional).
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// When the token expires (shown in logs; optional).
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// A SASL extension (KIP-342) sent with the token; names are letters only, `auth` is
    /// reserved.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// The token value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The principal, if given.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The expiry, if given.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The SASL extensions.
    pub fn extensions(&self) -> &BTreeMap<String, String> {
        &self.extensions
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.value.is_empty() || self.value.contains(['\u{1}', ' ']) {
            return Err(Error::config(
                "OAUTHBEARER: the token provider returned an empty or malformed token",
            ));
        }
        for (k, v) in &self.extensions {
            // KIP-342 / RFC 7628: key = 1*ALPHA, value = printable (no ^A).
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) || k == "auth" {
                return Err(Error::config(format!(
                    "OAUTHBEARER: SASL extension name {k:?} is invalid (letters only; \"auth\" is reserved)"
                )));
            }
            if v.contains('\u{1}') {
                return Err(Error::config(format!(
                    "OAUTHBEARER: SASL extension {k} has an invalid value"
                )));
            }
        }
        Ok(())
    }
}

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<OAuthBearerToken>> + Send + 'a>>;

/// Supplies OAUTHBEARER tokens: called before every authentication and re-authentication
/// (KIP-368), so it can return a cached token until shortly before it expires.
///
/// ```
/// use std::sync::Arc;
/// use strom_client::{ClientConfig, OAuthBearerToken, TokenFuture, TokenProvider};
///
/// struct FromEnv;
/// impl TokenProvider for FromEnv {
///     fn token(&self) -> TokenFuture<'_> {
///         Box::pin(async {
///             let jwt = std::env::var("MY_JWT").map_err(|_| strom_client::Error::other("MY_JWT unset"))?;
///             Ok(OAuthBearerToken::new(jwt))
///         })
///     }
/// }
/// let config = ClientConfig::new("broker:9096").with_oauth_token_provider(Arc::new(FromEnv));
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// A token to authenticate with now. An error fails the connection attempt.
    fn token(&self) -> TokenFuture<'_>;
}

/// Java's `OAuthBearerUnsecuredLoginCallbackHandler`: an unsigned JWT (`alg: none`) built
/// from `unsecuredLogin*` JAAS options. Only for brokers using the unsecured validator.
pub(crate) struct UnsecuredJwt {
    principal_claim: String,
    principal: String,
    lifetime: Duration,
    /// Claims other than iat/exp, as JSON values.
    claims: BTreeMap<String, serde_json::Value>,
    extensions: BTreeMap<String, String>,
}

impl fmt::Debug for UnsecuredJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsecuredJwt")
            .field("principal", &self.principal)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl UnsecuredJwt {
    /// From the `OAuthBearerLoginModule` options (`unsecuredLoginStringClaim_sub="alice"` ...).
    pub(crate) fn from_jaas(jaas: &JaasConfig) -> Result<UnsecuredJwt> {
        let err = |m: String| Error::config(format!("sasl.jaas.config: {m}"));
        let principal_claim = jaas.get("unsecuredLoginPrincipalClaimName").unwrap_or("sub").to_owned();
        let lifetime = match jaas.get("unsecuredLoginLifetimeSeconds") {
            None => Duration::from_secs(3600),
            Some(v) => Duration::from_secs(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| err(format!("unsecuredLoginLifetimeSeconds={v:?} is not a whole number")))?,
            ),
        };
        let mut claims = BTreeMap::new();
        let mut extensions = BTreeMap::new();
        for (k, v) in &jaas.options {
            let (name, value) = if let Some(n) = k.strip_prefix("unsecuredLoginStringClaim_") {
                (n, serde_json::Value::String(v.clone()))
            } else if let Some(n) = k.strip_prefix("unsecuredLoginNumberClaim_") {
                let num: serde_json::Number = v.trim().parse().map_err(|_| err(format!("{k} is not a number")))?;
                (n, serde_json::Value::Number(num))
            } else if let Some(n) = k.strip_prefix("unsecuredLoginListClaim_") {
                // Java: the first character is the delimiter (",a,b" = ["a", "b"]).
                let mut chars = v.chars();
                let list = match chars.next() {
                    None => Vec::new(),
                    Some(d) => chars
                        .as_str()
                        .split(d)
                        .filter(|s| !s.is_empty())
                        .map(|s| serde_json::Value::String(s.to_owned()))
                        .collect(),
                };
                (n, serde_json::Value::Array(list))
            } else if let Some(n) = k.strip_prefix("unsecuredLoginExtension_") {
                extensions.insert(n.to_owned(), v.clone());
                continue;
            } else {
                continue;
            };
            if name == "iat" || name == "exp" {
                return Err(err(format!("{k}: the {name} claim is set automatically")));
            }
            claims.insert(name.to_owned(), value);
        }
        let principal = match claims.get(&principal_claim) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(err(format!(
                    "the unsecured OAUTHBEARER login needs unsecuredLoginStringClaim_{principal_claim}=\"<principal>\" \
                     (or give ClientConfig an OAuth token provider)"
                )))
            }
        };
        Ok(UnsecuredJwt {
            principal_claim,
            principal,
            lifetime,
            claims,
            extensions,
        })
    }

    /// A fresh token, issued now.
    pub(crate) fn token(&self) -> OAuthBearerToken {
        let now = SystemTime::now();
        let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as f64 / 1000.0;
        let mut claims = serde_json::Map::new();
        for (k, v) in &self.claims {
            claims.insert(k.clone(), v.clone());
        }
        let num = |x: f64| serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number);
        claims.insert("iat".into(), num(now_s));
        claims.insert("exp".into(), num(now_s + self.lifetime.as_secs_f64()));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none"}"#);
        let body = b64.encode(serde_json::Value::Object(claims).to_string());
        let mut token = OAuthBearerToken::new(format!("{header}.{body}."))
            .with_principal(self.principal.clone())
            .with_expiry(now + self.lifetime);
        for (k, v) in &self.extensions {
            token = token.with_extension(k.clone(), v.clone());
        }
        debug_assert!(self.claims.contains_key(&self.principal_claim));
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::jaas;

    #[test]
    fn unsecured_jwt_like_java() {
        let j = jaas::parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"alice\" unsecuredLoginListClaim_scope=\",read,write\" \
             unsecuredLoginExtension_traceId=\"abc\" unsecuredLoginLifetimeSeconds=\"60\";",
        )
        .unwrap();
        let t = UnsecuredJwt::from_jaas(&j).unwrap().token();
        t.validate().unwrap();
        let parts: Vec<&str> = t.value().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(b64.decode(parts[0]).unwrap(), br#"{"alg":"none"}"#);
        let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], serde_json::json!(["read", "write"]));
        let (iat, exp) = (claims["iat"].as_f64().unwrap(), claims["exp"].as_f64().unwrap());
        assert!((exp - iat - 60.0).abs() < 0.01);
        assert_eq!(t.extensions()["traceId"], "abc");
        assert_eq!(t.principal(), Some("alice"));
        assert!(!format!("{t:?}").contains(parts[1]));

        let j = jaas::parse("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;").unwrap();
        let e = UnsecuredJwt::from_jaas(&j).unwrap_err().to_string();
        assert!(e.contains("unsecuredLoginStringClaim_sub"), "{e}");
    }
}
