//! Key and trust stores for TLS as Java's `ssl.*` settings name them: PEM, PKCS12 and JKS
//! files, and inline PEM. [`truststore`] gives the CAs to trust, [`keystore`] the client
//! certificate chain and key for mTLS; `tls.rs` builds rustls's configuration from them.
//!
//! Kafka's `DefaultSslEngineFactory` and the JDK are the reference; the decisions:
//!
//! * **Type.** `ssl.keystore.type` and `ssl.truststore.type` accept `PEM`, `PKCS12` and
//!   `JKS`, in any case. Kafka's default is JKS, which Java 9+ reads as JKS *or* PKCS12
//!   (`keystore.type.compat=true` in `java.security`); Strom with no type given detects the
//!   format from the file (JKS magic `FEEDFEED`, a DER `SEQUENCE` for PKCS12, PEM text), so
//!   a PEM setup without a type keeps working too. Given `JKS` or `PKCS12`, either binary
//!   format is read, as Java's compat mode does; given one of them for a PEM file, or `PEM`
//!   for a binary one, the error says which type the file is. JCEKS (type or file) and other
//!   types (PKCS11, BCFKS) are refused by name, with the keytool command that converts.
//! * **Passwords.** `ssl.truststore.password` is optional, as in Java: without it a JKS
//!   store's integrity digest and a PKCS12 store's MAC are not checked, and encrypted PKCS12
//!   sections cannot be read (keytool encrypts certificates, so a keytool PKCS12 truststore
//!   needs its password; the error says so). `ssl.keystore.password` is required for a
//!   JKS/PKCS12 keystore (Kafka: "SSL key store is specified, but key store password is not
//!   specified"). `ssl.key.password` is the private key's password and defaults to the store
//!   password (Kafka's `FileBasedStore.keyPassword`). With PEM, store passwords are refused
//!   (Kafka refuses them too) and `ssl.key.password` decrypts an `ENCRYPTED PRIVATE KEY`
//!   (PKCS#8 with PBES2 or PKCS#12 PBE, as Java's PEM support; an unencrypted key needs
//!   none). A wrong password is a configuration error naming the password's property and
//!   the file; passwords never appear in errors, logs or `Debug` output.
//! * **Entries.** A keystore must hold exactly one private key entry, with its certificate:
//!   Java's key manager could pick one of several per handshake, but a silent pick is a
//!   surprise waiting to happen, so several is an error listing the aliases (and saying how
//!   to export one). A truststore trusts every trusted certificate entry and, as Java's
//!   PKIX trust manager (`TrustStoreUtil.getTrustedCerts`), the certificate of each key
//!   entry.
//! * **Keys.** An EC key as Java generates it has no public key in its encoding, which
//!   ring refuses; it gets its public key computed and written in ([`super::ec_key`]).
//!
//! The formats are read by [`super::jks`] and [`super::pkcs12`] (decryption in
//! [`super::pbe`]), both fuzzed (`fuzz/fuzz_targets/client_keystore_*.rs`).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::pbe::{self, Limits};
use super::store::{KeyEntry, ProtectedKey, Store, StoreError};
use super::{ec_key, jks, pkcs12};
use crate::error::{Error, Result};

impl KeyEntry {
    /// The key's PKCS#8 `PrivateKeyInfo`.
    pub(crate) fn decrypt(
        &self,
        password: &str,
        limits: Limits,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, StoreError> {
        match &self.key {
            ProtectedKey::Jks(p) => jks::decrypt_key(p, password),
            ProtectedKey::Pkcs8Encrypted(p) => pbe::decrypt_private_key_info(p, password, limits),
            ProtectedKey::Plain(k) => Ok(k.clone()),
        }
    }
}

/// A store file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Pem,
    Jks,
    Pkcs12,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pem => "PEM",
            Format::Jks => "JKS",
            Format::Pkcs12 => "PKCS12",
        })
    }
}

/// What a file's bytes look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Format(Format),
    Jceks,
    Unknown,
}

/// The format of `data` from its first bytes: JKS and JCEKS magic numbers, a DER SEQUENCE
/// (PKCS12), else PEM text if it has a `-----BEGIN` line.
pub(crate) fn sniff(data: &[u8]) -> Sniffed {
    if let Some(magic) = data.get(..4) {
        match u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]) {
            jks::MAGIC => return Sniffed::Format(Format::Jks),
            jks::JCEKS_MAGIC => return Sniffed::Jceks,
            _ => {}
        }
    }
    if data.first() == Some(&0x30) {
        return Sniffed::Format(Format::Pkcs12);
    }
    if data.windows(10).any(|w| w == b"-----BEGIN") {
        return Sniffed::Format(Format::Pem);
    }
    Sniffed::Unknown
}

/// The value of `key`, `None` when absent or blank (Java's "not set"; Kafka trims passwords
/// too).
pub(crate) fn get<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `ssl.keystore.type` / `ssl.truststore.type`: `None` when not given.
fn declared_type(props: &BTreeMap<String, String>, key: &str) -> Result<Option<Format>> {
    let Some(t) = get(props, key) else {
        return Ok(None);
    };
    let format = if t.eq_ignore_ascii_case("PEM") {
        Format::Pem
    } else if t.eq_ignore_ascii_case("JKS") {
        Format::Jks
    } else if t.eq_ignore_ascii_case("PKCS12") {
        Format::Pkcs12
    } else if t.eq_ignore_ascii_case("JCEKS") {
        return Err(Error::config(format!(
            "{key}=JCEKS is not supported: convert the store with keytool -importkeystore -deststoretype PKCS12"
        )));
    } else {
        return Err(Error::config(format!(
            "{key}={t}: not supported; expected PKCS12, JKS or PEM"
        )));
    };
    Ok(Some(format))
}

/// Larger store files than this are refused unread (a CA bundle is a few hundred KiB).
const MAX_FILE: u64 = 16 << 20;

/// The bytes of the file `path` named by `key`.
pub(crate) fn read_file(key: &str, path: &str) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| Error::config(format!("{key}={path:?}: cannot read the file: {e}"));
    let len = std::fs::metadata(path).map_err(cannot)?.len();
    if len > MAX_FILE {
        return Err(Error::config(format!(
            "{key}={path:?}: {len} bytes is too large for a key or trust store (at most {MAX_FILE})"
        )));
    }
    std::fs::read(path).map_err(cannot)
}

/// Reads the store file and settles its format from the declared type and the content.
fn open(declared: Option<Format>, type_key: &str, key: &str, path: &str) -> Result<(Format, Vec<u8>)> {
    let data = read_file(key, path)?;
    let found = match sniff(&data) {
        Sniffed::Format(f) => f,
        Sniffed::Jceks => return Err(Error::config(format!("{key}={path:?}: {}", jks::JCEKS))),
        Sniffed::Unknown => {
            return Err(Error::config(format!(
                "{key}={path:?}: not a PKCS12, JKS or PEM store{}",
                if data.is_empty() { " (the file is empty)" } else { "" }
            )))
        }
    };
    match (declared, found) {
        (None, f) => {
            debug!(file = %path, format = %f, "{key}: no {type_key} given; the format was detected from the file");
            Ok((f, data))
        }
        (Some(Format::Pem), Format::Pem) => Ok((Format::Pem, data)),
        (Some(Format::Pem), f) => Err(Error::config(format!(
            "{type_key}=PEM, but {key}={path:?} is a {f} store: set {type_key}={f} (or leave {type_key} out)"
        ))),
        (Some(d), Format::Pem) => Err(Error::config(format!(
            "{type_key}={d}, but {key}={path:?} is a PEM file: set {type_key}=PEM (or leave {type_key} out)"
        ))),
        (Some(d), f) => {
            // Java 9+ with keystore.type.compat=true (its default) reads JKS and PKCS12
            // files under either type; so does Strom.
            if d != f {
                debug!(file = %path, "{type_key}={d}, the file is {f}: read as {f}, as Java's keystore.type.compat does");
            }
            Ok((f, data))
        }
    }
}

/// A JKS or PKCS12 store's contents; errors name `key`'s file and the password property.
fn parse_store(
    format: Format,
    data: &[u8],
    key: &str,
    path: &str,
    password: Option<&str>,
    password_key: &str,
) -> Result<Store> {
    let r = match format {
        Format::Jks => jks::parse(data, password),
        _ => pkcs12::parse(
            data,
            pkcs12::Options {
                password,
                check_mac: true,
                limits: Limits::DEFAULT,
            },
        ),
    };
    r.map_err(|e| match e {
        StoreError::BadPassword => Error::config(format!(
            "{password_key} is wrong for {key}={path:?} ({format}): the store's integrity check failed \
             (a wrong password, or the file was altered)"
        )),
        other => store_error(other, key, path, format),
    })
}

fn store_error(e: StoreError, key: &str, path: &str, format: Format) -> Error {
    match e {
        StoreError::Malformed(what) => Error::config(format!(
            "{key}={path:?}: not a valid {format} store (truncated or damaged: bad {what})"
        )),
        StoreError::Unsupported(what) => {
            Error::config(format!("{key}={path:?}: {format} store with {what}: not supported"))
        }
        StoreError::BadPassword => Error::config(format!("{key}={path:?}: wrong password")),
    }
}

/// Trusted CAs from `ssl.truststore.*`, with a description of their source for errors;
/// `None` when no truststore is configured (the system's roots are used then).
pub(crate) fn truststore(props: &BTreeMap<String, String>) -> Result<Option<(Vec<CertificateDer<'static>>, String)>> {
    const TYPE: &str = "ssl.truststore.type";
    const PASSWORD: &str = "ssl.truststore.password";
    let declared = declared_type(props, TYPE)?;
    let password = get(props, PASSWORD);
    match (
        get(props, "ssl.truststore.location"),
        get(props, "ssl.truststore.certificates"),
    ) {
        (Some(_), Some(_)) => Err(Error::config(
            "ssl.truststore.location and ssl.truststore.certificates are both set: give one",
        )),
        (None, Some(pem)) => {
            const KEY: &str = "ssl.truststore.certificates";
            if let Some(t) = declared.filter(|t| *t != Format::Pem) {
                return Err(Error::config(format!(
                    "{KEY} is PEM text, but {TYPE}={t}: set {TYPE}=PEM (or leave it out)"
                )));
            }
            if password.is_some() {
                return Err(Error::config(format!(
                    "{PASSWORD} cannot be used with {KEY}: PEM certificates have no password (as in Kafka)"
                )));
            }
            Ok(Some((pem_certs(KEY, pem.as_bytes())?, KEY.to_owned())))
        }
        (Some(path), None) => {
            const KEY: &str = "ssl.truststore.location";
            let (format, data) = open(declared, TYPE, KEY, path)?;
            if format == Format::Pem {
                if password.is_some() {
                    return Err(Error::config(format!(
                        "{PASSWORD} cannot be used with a PEM truststore ({KEY}={path:?}): PEM files have no \
                         password (as in Kafka); remove it"
                    )));
                }
                return Ok(Some((pem_certs(KEY, &data)?, format!("{KEY}={path}"))));
            }
            let store = parse_store(format, &data, KEY, path, password, PASSWORD)?;
            let certs = store.trust_anchors();
            if certs.is_empty() {
                let why = if store.skipped_sections > 0 {
                    format!(
                        "its certificates are encrypted and {PASSWORD} is not set (keytool encrypts the \
                         certificates of a PKCS12 store): set {PASSWORD}"
                    )
                } else if store.ignored_certs > 0 {
                    format!(
                        "it holds {} certificate(s) without the trusted-certificate attribute keytool adds, \
                         which Java ignores as well: import the CA with keytool -importcert -trustcacerts \
                         -storetype PKCS12 (or give it as PEM: {TYPE}=PEM)",
                        store.ignored_certs
                    )
                } else {
                    "it holds no trusted certificate entry (keytool -list shows its entries)".to_owned()
                };
                return Err(Error::config(format!(
                    "{KEY}={path:?} ({format}): no CA to trust: {why}"
                )));
            }
            let aliases: Vec<&str> = store.trusted.iter().map(|t| t.alias.as_str()).collect();
            debug!(file = %path, %format, certificates = certs.len(), ?aliases, "truststore read");
            Ok(Some((certs, format!("{KEY}={path} ({format})"))))
        }
        (None, None) => {
            if password.is_some() {
                return Err(Error::config(format!(
                    "{PASSWORD} is set but ssl.truststore.location is not (as in Kafka, a password needs a store)"
                )));
            }
            Ok(None)
        }
    }
}

/// The client certificate chain and key for mTLS from `ssl.keystore.*` and
/// `ssl.key.password`; `None` when no keystore is configured.
pub(crate) fn keystore(
    props: &BTreeMap<String, String>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    const TYPE: &str = "ssl.keystore.type";
    const PASSWORD: &str = "ssl.keystore.password";
    const KEY_PASSWORD: &str = "ssl.key.password";
    let declared = declared_type(props, TYPE)?;
    let store_password = get(props, PASSWORD);
    let key_password = get(props, KEY_PASSWORD);
    let pem_only = |what: &str| -> Result<()> {
        if store_password.is_some() {
            return Err(Error::config(format!(
                "{PASSWORD} cannot be used with {what}: PEM has no store password, only the key's \
                 ({KEY_PASSWORD}), as in Kafka"
            )));
        }
        Ok(())
    };
    // librdkafka's names (kcat users paste them): the chain and the key in two PEM files.
    match (get(props, "ssl.certificate.location"), get(props, "ssl.key.location")) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let java = [
                "ssl.keystore.location",
                "ssl.keystore.certificate.chain",
                "ssl.keystore.key",
            ];
            if let Some(k) = java.iter().find(|k| get(props, k).is_some()) {
                return Err(Error::config(format!(
                    "ssl.certificate.location/ssl.key.location (librdkafka's names) cannot be combined with {k}: give one"
                )));
            }
            if let Some(t) = declared.filter(|t| *t != Format::Pem) {
                return Err(Error::config(format!(
                    "ssl.certificate.location and ssl.key.location are PEM files, but {TYPE}={t}"
                )));
            }
            pem_only("ssl.certificate.location")?;
            let what_key = format!("ssl.key.location={key:?}");
            let key = pem_key(&what_key, &read_file("ssl.key.location", key)?, key_password)?;
            let what_cert = format!("ssl.certificate.location={cert:?}");
            let chain = pem_certs(&what_cert, &read_file("ssl.certificate.location", cert)?)?;
            return Ok(Some((chain, key)));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::config(
                "ssl.certificate.location and ssl.key.location (librdkafka's names) must be given together",
            ))
        }
    }
    match (
        get(props, "ssl.keystore.location"),
        get(props, "ssl.keystore.certificate.chain"),
        get(props, "ssl.keystore.key"),
    ) {
        (None, None, None) => {
            if store_password.is_some() {
                return Err(Error::config(format!(
                    "{PASSWORD} is set but ssl.keystore.location is not (as in Kafka, a password needs a store)"
                )));
            }
            if key_password.is_some() {
                warn!(
                    "{KEY_PASSWORD} is ignored: no keystore is configured (ssl.keystore.location or ssl.keystore.key)"
                );
            }
            Ok(None)
        }
        (Some(path), None, None) => {
            const KEY: &str = "ssl.keystore.location";
            let (format, data) = open(declared, TYPE, KEY, path)?;
            let what = format!("{KEY}={path:?}");
            if format == Format::Pem {
                pem_only(&format!("a PEM keystore ({what})"))?;
                // The key first: a legacy-encrypted key's headers make the PEM parser fail.
                let key = pem_key(&what, &data, key_password)?;
                return Ok(Some((pem_certs(&what, &data)?, key)));
            }
            let Some(store_password) = store_password else {
                return Err(Error::config(format!(
                    "{what} is a {format} keystore: set {PASSWORD} (Kafka requires it too)"
                )));
            };
            let store = parse_store(format, &data, KEY, path, Some(store_password), PASSWORD)?;
            let entry = match store.keys.as_slice() {
                [one] => one,
                [] => {
                    return Err(Error::config(format!(
                        "{what} ({format}) has no private key entry{}: a keystore needs the client's key and \
                         certificate (keytool -list shows the entries)",
                        if store.trusted.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (only {} trusted certificate(s): is it a truststore?)",
                                store.trusted.len()
                            )
                        }
                    )))
                }
                several => {
                    let aliases: Vec<&str> = several.iter().map(|k| k.alias.as_str()).collect();
                    return Err(Error::config(format!(
                        "{what} ({format}) has {} private key entries ({}): Strom needs exactly one; export the \
                         one to use: keytool -importkeystore -srckeystore FILE -srcalias ALIAS -destkeystore NEW.p12",
                        several.len(),
                        aliases.join(", ")
                    )));
                }
            };
            if entry.chain.is_empty() {
                return Err(Error::config(format!(
                    "{what} ({format}): the key entry {:?} has no certificate",
                    entry.alias
                )));
            }
            let (password, password_key) = match key_password {
                Some(p) => (p, KEY_PASSWORD.to_owned()),
                None => (
                    store_password,
                    format!("{PASSWORD} (used for the key: {KEY_PASSWORD} is not set)"),
                ),
            };
            let key = entry.decrypt(password, Limits::DEFAULT).map_err(|e| match e {
                StoreError::BadPassword => Error::config(format!(
                    "{password_key} is wrong for the private key {:?} of {what} ({format})",
                    entry.alias
                )),
                other => store_error(other, KEY, path, format),
            })?;
            debug!(file = %path, %format, alias = %entry.alias, chain = entry.chain.len(), "keystore read");
            Ok(Some((entry.chain.clone(), pkcs8_key(&key))))
        }
        (None, Some(chain), Some(key)) => {
            if let Some(t) = declared.filter(|t| *t != Format::Pem) {
                return Err(Error::config(format!(
                    "ssl.keystore.key and ssl.keystore.certificate.chain are PEM text, but {TYPE}={t}: set \
                     {TYPE}=PEM (or leave it out)"
                )));
            }
            pem_only("ssl.keystore.key")?;
            let key = pem_key("ssl.keystore.key", key.as_bytes(), key_password)?;
            Ok(Some((
                pem_certs("ssl.keystore.certificate.chain", chain.as_bytes())?,
                key,
            )))
        }
        (Some(_), _, _) => Err(Error::config(
            "ssl.keystore.location cannot be combined with ssl.keystore.key / ssl.keystore.certificate.chain",
        )),
        _ => Err(Error::config(
            "ssl.keystore.key and ssl.keystore.certificate.chain must be given together",
        )),
    }
}

/// Every certificate of a PEM text; `what` names it in errors.
pub(crate) fn pem_certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("{what}: not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{what}: no PEM certificate (-----BEGIN CERTIFICATE-----) found"
        )));
    }
    Ok(certs)
}

/// The private key of a PEM text: PKCS#8, PKCS#1 or SEC1 in clear, or an encrypted PKCS#8
/// key (`ENCRYPTED PRIVATE KEY`) decrypted with `password` (`ssl.key.password`).
pub(crate) fn pem_key(what: &str, pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>> {
    if contains(pem, b"Proc-Type: 4,ENCRYPTED") {
        return Err(Error::config(format!(
            "{what}: a key encrypted the legacy OpenSSL way (Proc-Type: 4,ENCRYPTED), which Java does not read \
             either: convert it to encrypted PKCS#8 (openssl pkcs8 -topk8 -v2 aes-256-cbc) or decrypt it \
             (openssl pkcs8 -topk8 -nocrypt)"
        )));
    }
    if let Some(epki) = pem_section(what, pem, "ENCRYPTED PRIVATE KEY")? {
        let Some(password) = password else {
            return Err(Error::config(format!(
                "{what}: the private key is encrypted (ENCRYPTED PRIVATE KEY): set ssl.key.password"
            )));
        };
        let key = pbe::decrypt_private_key_info(&epki, password, Limits::DEFAULT).map_err(|e| match e {
            StoreError::BadPassword => Error::config(format!(
                "ssl.key.password is wrong for the encrypted private key of {what}"
            )),
            StoreError::Malformed(m) => Error::config(format!("{what}: a damaged encrypted private key (bad {m})")),
            StoreError::Unsupported(m) => {
                Error::config(format!("{what}: an encrypted private key with {m}: not supported"))
            }
        })?;
        return Ok(pkcs8_key(&key));
    }
    if password.is_some() {
        warn!("ssl.key.password is not used: the private key in {what} is not encrypted");
    }
    // The error text of the PEM parser never includes key material.
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        Error::config(format!(
            "{what}: no usable PEM private key (PKCS#8 BEGIN PRIVATE KEY or ENCRYPTED PRIVATE KEY, PKCS#1 or SEC1): {e}"
        ))
    })?;
    Ok(match key {
        PrivateKeyDer::Pkcs8(k) => pkcs8_key(k.secret_pkcs8_der()),
        other => other,
    })
}

/// A PKCS#8 key for rustls; an EC key as Java writes it gets its public key
/// ([`ec_key::complete`]).
fn pkcs8_key(der: &[u8]) -> PrivateKeyDer<'static> {
    let completed = ec_key::complete(der);
    let der = completed.as_deref().map_or(der, |v| v.as_slice());
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The base64-decoded body of the first `-----BEGIN {label}-----` section, if any.
fn pem_section(what: &str, pem: &[u8], label: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.windows(begin.len()).position(|w| w == begin.as_bytes()) else {
        return Ok(None);
    };
    let body = &pem[start + begin.len()..];
    let Some(stop) = body.windows(end.len()).position(|w| w == end.as_bytes()) else {
        return Err(Error::config(format!("{what}: {begin} without {end}")));
    };
    let b64: Zeroizing<Vec<u8>> = Zeroizing::new(
        body[..stop]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(&*b64)
        .map(|v| Some(Zeroizing::new(v)))
        .map_err(|_| Error::config(format!("{what}: the {label} section is not valid base64")))
}

#[cfg(test)]
#[path = "keystore_tests.rs"]
mod tests;
