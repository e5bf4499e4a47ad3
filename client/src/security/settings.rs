//! What a client's `security.protocol`, `ssl.*` and `sasl.*` settings resolve to, once
//! per client: [`Security`].

use std::fmt;

use tracing::warn;

use super::sasl::SaslSettings;
use super::tls::TlsSettings;
use crate::config::{ClientConfig, SecurityProtocol};
use crate::error::Result;

/// Security settings resolved from a [`ClientConfig`]: read, parsed and validated once
/// (certificate files, keys, JAAS), then shared by every connection of a client.
///
/// Build it with [`ClientConfig::connection_config`] (or [`Security::from_config`]).
///
/// # Key and trust stores
///
/// As a Java client's properties name them (Kafka's `DefaultSslEngineFactory` is the
/// reference):
///
/// * `ssl.truststore.location`: the CAs, in a PEM, PKCS12 or JKS file (or
///   `ssl.truststore.certificates`, inline PEM); the system's roots when neither is given.
///   `ssl.truststore.password` is optional, as in Java: without it the store's integrity is
///   not checked and a PKCS12 store's encrypted certificates cannot be read (keytool
///   encrypts them, so keytool's PKCS12 truststores need it).
/// * `ssl.keystore.location`: the client's key and certificate chain for mTLS, in a PKCS12 or
///   JKS file with exactly one private key entry (`ssl.keystore.password` required), or a
///   PEM file (or `ssl.keystore.key` + `ssl.keystore.certificate.chain`, inline PEM).
///   `ssl.key.password` is the key's password, by default the store password; with PEM it
///   decrypts an `ENCRYPTED PRIVATE KEY`.
/// * `ssl.keystore.type` / `ssl.truststore.type`: `PKCS12`, `JKS` or `PEM`, any case. When
///   not given, the format is read from the file (Java would assume JKS); `JKS` and `PKCS12`
///   each read both binary formats, as Java 9+'s `keystore.type.compat`. JCEKS is refused.
///
/// PKCS12 is read as Java 8 to 17+ keytool and OpenSSL 1.x/3 write it (PBES2 with PBKDF2 and
/// AES or 3DES; PKCS#12 PBE with 3DES or RC2; HMAC-SHA-1/2 MACs), JKS with Sun's key
/// protector; in pure Rust. A wrong password is a configuration error naming its property
/// and the file; no password ever appears in an error, a log or `Debug` output.
pub struct Security {
    protocol: SecurityProtocol,
    pub(super) tls: Option<TlsSettings>,
    pub(super) sasl: Option<SaslSettings>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl Security {
    /// The settings for `config`; `None` for PLAINTEXT. Files named by `ssl.*` are read
    /// here; a missing file, a bad PEM, a damaged store, a wrong store or key password, an
    /// incomplete JAAS entry or a missing keytab is an error naming the property.
    pub fn from_config(config: &ClientConfig) -> Result<Option<Security>> {
        let props = &config.security;
        let (tls, sasl) = match config.security_protocol {
            SecurityProtocol::Plaintext => {
                if props.keys().any(|k| k.starts_with("sasl.") || k.starts_with("ssl.")) {
                    warn!("ssl.*/sasl.* settings are ignored: security.protocol is PLAINTEXT");
                }
                return Ok(None);
            }
            SecurityProtocol::Ssl => (true, false),
            SecurityProtocol::SaslPlaintext => (false, true),
            SecurityProtocol::SaslSsl => (true, true),
        };
        let tls = if tls {
            Some(TlsSettings::from_properties(props)?)
        } else {
            None
        };
        let sasl = if sasl {
            Some(SaslSettings::from_properties(
                props,
                config.oauth_token_provider.clone(),
            )?)
        } else {
            None
        };
        Ok(Some(Security {
            protocol: config.security_protocol,
            tls,
            sasl,
        }))
    }

    /// `security.protocol`.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// SASL is configured (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub(crate) fn has_sasl(&self) -> bool {
        self.sasl.is_some()
    }
}
