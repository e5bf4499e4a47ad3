//! A reader of PKCS#12 stores (RFC 7292) as Java's keytool and OpenSSL write them, for
//! `ssl.keystore.type` / `ssl.truststore.type` = PKCS12 (Java's default since 9).
//!
//! ```text
//! PFX { version 3, authSafe ContentInfo(data: AuthenticatedSafe), macData OPTIONAL }
//! AuthenticatedSafe = SEQUENCE OF ContentInfo: data (SafeContents in clear) or
//!                     encryptedData (SafeContents encrypted with the store password)
//! SafeContents = SEQUENCE OF SafeBag { bagId, [0] value, attributes }
//!   keyBag (PrivateKeyInfo), pkcs8ShroudedKeyBag (EncryptedPrivateKeyInfo),
//!   certBag (x509Certificate); attributes friendlyName (the alias), localKeyId (links a
//!   key to its certificate), Oracle's trusted key usage (a trusted certificate entry)
//! ```
//!
//! What Java's `PKCS12KeyStore` does, and so what this does:
//! * The MAC is checked with the store password when one is given; without a password it
//!   is not, and encrypted sections are skipped (their certificates are then not read), as
//!   Java's `load(in, null)` does.
//! * A key entry is a key bag; its certificate is the certificate with the same localKeyId
//!   (with one key and no ids, the first certificate that is not a trusted entry), and its
//!   chain follows issuer to subject through the other certificates of the file.
//! * A trusted certificate entry is a certificate bag with Oracle's trusted key usage
//!   attribute (`2.16.840.1.113894.746875.1.1`), which keytool adds; Java ignores other
//!   certificates that belong to no key, and so does this.
//! * Keys stay encrypted until used ([`super::keystore`] decrypts the one it needs).
//!
//! The cryptography is in [`super::pbe`]; DER is read with [`super::der`]'s checked reader.

use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::der::{self, oid, Der};
use super::pbe::{self, Limits};
use super::store::{KeyEntry, ProtectedKey, Store, StoreError, TrustedCert};

/// More sections or bags than this is a damaged file, not a keystore.
const MAX_ITEMS: usize = 10_000;

/// What [`parse`] checks and decrypts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options<'p> {
    /// The store password: checks the MAC and decrypts encrypted sections. `None` (Java's
    /// `load(in, null)`): no MAC check, encrypted sections skipped.
    pub(crate) password: Option<&'p str>,
    /// `false` only for fuzzing: decrypt with the password but do not check the MAC, so
    /// mutated inputs reach the sections behind it.
    pub(crate) check_mac: bool,
    pub(crate) limits: Limits,
}

#[derive(Default)]
struct Bags {
    keys: Vec<(Attributes, ProtectedKey)>,
    certs: Vec<(Attributes, CertificateDer<'static>)>,
    /// Encrypted sections not read for want of a password.
    skipped: usize,
    items: usize,
}

#[derive(Default)]
struct Attributes {
    alias: Option<String>,
    local_key_id: Option<Vec<u8>>,
    trusted: bool,
}

/// Reads a PKCS#12 store: its key entries (keys still encrypted) and trusted certificates.
pub(crate) fn parse(data: &[u8], opts: Options<'_>) -> Result<Store, StoreError> {
    const W: &str = "the PKCS#12 PFX";
    let mut file = Der::new(data);
    let mut pfx = file.sequence(W)?;
    file.finish("bytes after the PKCS#12 PFX")?;
    let version = pfx.small_uint("the PKCS#12 version")?;
    if version != 3 {
        return Err(StoreError::Unsupported(format!("PKCS#12 version {version} (only 3)")));
    }
    let mut auth_safe = pfx.sequence("the PKCS#12 authSafe")?;
    match auth_safe.oid("the PKCS#12 authSafe")? {
        oid::DATA => {}
        other => {
            return Err(StoreError::Unsupported(format!(
                "a PKCS#12 authSafe of type {} (public-key integrity mode; only password integrity)",
                der::dotted(other)
            )))
        }
    }
    let content = auth_safe
        .nested(der::CONTEXT_0, "the PKCS#12 authSafe")?
        .octet_string("the PKCS#12 authSafe (a constructed OCTET STRING is BER, not DER)")?;
    let mac = pfx.optional(der::SEQUENCE, "the PKCS#12 MacData")?;
    pfx.finish("bytes after the PKCS#12 MacData")?;
    if let (Some(password), Some(mac), true) = (opts.password, mac, opts.check_mac) {
        let mut mac = mac.children(&pfx, "the PKCS#12 MacData")?;
        pbe::verify_pkcs12_mac(&mut mac, content, password, opts.limits)?;
    }

    let mut bags = Bags::default();
    let mut outer = Der::new(content);
    let mut sections = outer.sequence("the PKCS#12 AuthenticatedSafe")?;
    outer.finish("bytes after the PKCS#12 AuthenticatedSafe")?;
    while !sections.is_empty() {
        bags.count()?;
        let mut info = sections.sequence("a PKCS#12 ContentInfo")?;
        let kind = info.oid("a PKCS#12 ContentInfo")?;
        let mut value = info.nested(der::CONTEXT_0, "a PKCS#12 ContentInfo")?;
        match kind {
            oid::DATA => {
                let safe = value.octet_string("a PKCS#12 data section (a constructed OCTET STRING is BER)")?;
                safe_contents(safe, &mut bags)?;
            }
            oid::ENCRYPTED_DATA => {
                let Some(password) = opts.password else {
                    bags.skipped += 1;
                    continue;
                };
                let plain = encrypted_data(&mut value, password, opts.limits)?;
                safe_contents(&plain, &mut bags)?;
            }
            oid::ENVELOPED_DATA => {
                return Err(StoreError::Unsupported(
                    "a public-key encrypted (envelopedData) PKCS#12 section".to_owned(),
                ))
            }
            other => {
                return Err(StoreError::Unsupported(format!(
                    "a PKCS#12 section of type {}",
                    der::dotted(other)
                )))
            }
        }
    }
    Ok(assemble(bags))
}

impl Bags {
    fn count(&mut self) -> Result<(), StoreError> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(StoreError::Malformed("the PKCS#12 contents (implausibly many items)"));
        }
        Ok(())
    }
}

/// `EncryptedData { version, EncryptedContentInfo { contentType, algorithm, [0] IMPLICIT
/// OCTET STRING } }`, decrypted.
fn encrypted_data(value: &mut Der<'_>, password: &str, limits: Limits) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    const W: &str = "a PKCS#12 encryptedData section";
    let mut ed = value.sequence(W)?;
    ed.small_uint(W)?;
    let mut eci = ed.sequence(W)?;
    eci.oid(W)?;
    let (alg, mut params) = der::algorithm(&mut eci, W)?;
    let Some(encrypted) = eci.optional(der::CONTEXT_0_PRIMITIVE, W)? else {
        return Ok(Zeroizing::new(Vec::new()));
    };
    pbe::decrypt(alg, &mut params, encrypted.content, password, limits)
}

fn safe_contents(data: &[u8], bags: &mut Bags) -> Result<(), StoreError> {
    const W: &str = "a PKCS#12 SafeBag";
    if data.is_empty() {
        return Ok(());
    }
    let mut outer = Der::new(data);
    let mut list = outer.sequence("PKCS#12 SafeContents")?;
    outer.finish("bytes after PKCS#12 SafeContents")?;
    while !list.is_empty() {
        bags.count()?;
        let mut bag = list.sequence(W)?;
        let kind = bag.oid(W)?;
        let value = bag.tagged(der::CONTEXT_0, W)?;
        let mut value = value.children(&bag, W)?;
        let attrs = if bag.is_empty() {
            Attributes::default()
        } else {
            attributes(&mut bag.nested(der::SET, W)?)?
        };
        bag.finish(W)?;
        match kind {
            oid::KEY_BAG => {
                let key = value.tagged(der::SEQUENCE, "a PKCS#12 keyBag")?.raw;
                bags.keys
                    .push((attrs, ProtectedKey::Plain(Zeroizing::new(key.to_vec()))));
            }
            oid::SHROUDED_KEY_BAG => {
                let key = value.tagged(der::SEQUENCE, "a PKCS#12 pkcs8ShroudedKeyBag")?.raw;
                bags.keys.push((attrs, ProtectedKey::Pkcs8Encrypted(key.to_vec())));
            }
            oid::CERT_BAG => {
                const C: &str = "a PKCS#12 certBag";
                let mut cb = value.sequence(C)?;
                if cb.oid(C)? != oid::X509_CERTIFICATE {
                    continue; // SDSI certificates: nothing TLS can use
                }
                let cert = cb.nested(der::CONTEXT_0, C)?.octet_string(C)?;
                der::cert_names(cert)?;
                bags.certs.push((attrs, CertificateDer::from(cert.to_vec())));
            }
            // Secret keys, CRLs, nested SafeContents: nothing TLS uses (Java ignores the
            // last two as well).
            _ => {}
        }
    }
    Ok(())
}

fn attributes(set: &mut Der<'_>) -> Result<Attributes, StoreError> {
    const W: &str = "a PKCS#12 bag attribute";
    let mut a = Attributes::default();
    while !set.is_empty() {
        let mut attr = set.sequence(W)?;
        let kind = attr.oid(W)?;
        let mut values = attr.nested(der::SET, W)?;
        match kind {
            oid::FRIENDLY_NAME => {
                let name = values.tagged(der::BMP_STRING, "a PKCS#12 friendlyName")?.content;
                let units: Vec<u16> = name
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                    .collect();
                a.alias = Some(String::from_utf16_lossy(&units));
            }
            oid::LOCAL_KEY_ID => {
                a.local_key_id = Some(values.octet_string("a PKCS#12 localKeyId")?.to_vec());
            }
            oid::ORACLE_TRUSTED_KEY_USAGE => a.trusted = true,
            _ => {}
        }
    }
    Ok(a)
}

/// Key entries with their chains, and trusted certificates, from the bags (module docs).
fn assemble(bags: Bags) -> Store {
    let names: Vec<Option<(&[u8], &[u8])>> = bags.certs.iter().map(|(_, c)| der::cert_names(c).ok()).collect();
    let single_key = bags.keys.len() == 1;
    let mut store = Store {
        skipped_sections: bags.skipped,
        ..Store::default()
    };
    for (n, (attrs, key)) in bags.keys.into_iter().enumerate() {
        let by_id = attrs
            .local_key_id
            .as_ref()
            .and_then(|id| bags.certs.iter().position(|(a, _)| a.local_key_id.as_ref() == Some(id)));
        // Java's workaround for files without localKeyIds: one key, the first certificate.
        let leaf = by_id.or_else(|| {
            (single_key && attrs.local_key_id.is_none())
                .then(|| bags.certs.iter().position(|(a, _)| !a.trusted))
                .flatten()
        });
        let mut chain = Vec::new();
        let mut at = leaf;
        while let Some(i) = at {
            if chain.len() > bags.certs.len() {
                break;
            }
            chain.push(bags.certs[i].1.clone());
            at = names[i].and_then(|(issuer, subject)| {
                if issuer == subject {
                    return None; // self-signed: the root
                }
                (0..bags.certs.len()).find(|&j| j != i && names[j].is_some_and(|(_, s)| s == issuer))
            });
        }
        store.keys.push(KeyEntry {
            alias: attrs.alias.unwrap_or_else(|| format!("(key #{})", n + 1)),
            key,
            chain,
        });
    }
    for (n, (attrs, cert)) in bags.certs.iter().enumerate() {
        if attrs.trusted {
            store.trusted.push(TrustedCert {
                alias: attrs
                    .alias
                    .clone()
                    .unwrap_or_else(|| format!("(certificate #{})", n + 1)),
                cert: cert.clone(),
            });
        } else if !store.keys.iter().any(|k| k.chain.contains(cert)) {
            store.ignored_certs += 1;
        }
    }
    store
}
