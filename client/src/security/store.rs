//! What a key or trust store holds once read, whatever its format (JKS, PKCS12, PEM):
//! the model [`super::jks`] and [`super::pkcs12`] fill and [`super::keystore`] reads.

use std::fmt;

use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

/// What was wrong with a store's bytes; turned into a configuration error naming the file
/// and the property by the caller, which knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// Not what the format says: truncated, damaged, or not this format. What was being read.
    Malformed(&'static str),
    /// An integrity check or a decryption failed: the password is wrong (or the file was
    /// altered).
    BadPassword,
    /// Valid, but something Strom does not read (an algorithm, JCEKS, ...): what, and how to
    /// convert when there is a way.
    Unsupported(String),
}

/// A store's contents: key entries (keys still protected) and trusted certificates.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) keys: Vec<KeyEntry>,
    pub(crate) trusted: Vec<TrustedCert>,
    /// PKCS12 sections skipped because no password was given to decrypt them.
    pub(crate) skipped_sections: usize,
    /// PKCS12 certificates that are neither trusted entries nor part of a key's chain (Java
    /// ignores them).
    pub(crate) ignored_certs: usize,
}

/// Aliases and counts only: never key material.
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.keys.iter().map(|k| &k.alias).collect::<Vec<_>>())
            .field("trusted", &self.trusted.iter().map(|t| &t.alias).collect::<Vec<_>>())
            .field("skipped_sections", &self.skipped_sections)
            .field("ignored_certs", &self.ignored_certs)
            .finish()
    }
}

/// A private key entry.
pub(crate) struct KeyEntry {
    pub(crate) alias: String,
    pub(crate) key: ProtectedKey,
    /// The key's certificate first, then its issuers.
    pub(crate) chain: Vec<CertificateDer<'static>>,
}

/// A private key as stored.
pub(crate) enum ProtectedKey {
    /// A JKS `EncryptedPrivateKeyInfo` under Sun's key protector.
    Jks(Vec<u8>),
    /// A PKCS#8 `EncryptedPrivateKeyInfo` (PBES2 or PKCS#12 PBE).
    Pkcs8Encrypted(Vec<u8>),
    /// A PKCS#8 `PrivateKeyInfo` in clear (a PKCS12 keyBag).
    Plain(Zeroizing<Vec<u8>>),
}

/// A trusted certificate entry.
pub(crate) struct TrustedCert {
    pub(crate) alias: String,
    pub(crate) cert: CertificateDer<'static>,
}

impl Store {
    /// What a truststore trusts: the trusted certificate entries and each key entry's own
    /// certificate (Java's `TrustStoreUtil.getTrustedCerts`).
    pub(crate) fn trust_anchors(&self) -> Vec<CertificateDer<'static>> {
        let mut v: Vec<CertificateDer<'static>> = self.trusted.iter().map(|t| t.cert.clone()).collect();
        for k in &self.keys {
            if let Some(c) = k.chain.first() {
                if !v.contains(c) {
                    v.push(c.clone());
                }
            }
        }
        v
    }
}
