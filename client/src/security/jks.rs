//! A reader of Java's JKS keystores (Sun's proprietary format, `sun.security.provider.
//! JavaKeyStore`), for `ssl.keystore.type` / `ssl.truststore.type` = JKS.
//!
//! The format, all integers big-endian:
//!
//! ```text
//! u32 magic 0xFEEDFEED | u32 version (1 or 2) | u32 entry count
//! entries:
//!   u32 tag 1 (private key): UTF alias | u64 date | u32 length, protected key |
//!                            u32 chain length | certificates
//!   u32 tag 2 (trusted certificate): UTF alias | u64 date | certificate
//!   (a certificate: version 2 only: UTF type "X.509" | u32 length, DER)
//! 20 bytes: SHA-1(password as UTF-16BE || "Mighty Aphrodite" || everything before)
//! ```
//!
//! A UTF string is Java's `DataOutput.writeUTF`: u16 length, modified UTF-8. A protected key
//! is a PKCS#8 `EncryptedPrivateKeyInfo` under Sun's key protector
//! (`1.3.6.1.4.1.42.2.17.1.1`): salt (20 bytes) | key XOR keystream | SHA-1(password ||
//! key), the keystream being SHA-1(password || previous block) from the salt on
//! (`sun.security.provider.KeyProtector`).
//!
//! Every length is checked against the bytes that remain before it is used, counts are
//! bounded, nothing is allocated from a length (only for what is there), and JCEKS
//! (0xCECECECE) is refused by name. As Java does, the integrity digest is checked only when
//! a password is given (a truststore may be read without one); keys are decrypted only
//! when used ([`decrypt_key`]).

use rustls::pki_types::CertificateDer;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::der::{self, oid, Der};
use super::store::{KeyEntry, ProtectedKey, Store, StoreError, TrustedCert};

/// JKS's magic number.
pub(crate) const MAGIC: u32 = 0xfeed_feed;
/// JCEKS's magic number (Sun's JCE keystore): refused.
pub(crate) const JCEKS_MAGIC: u32 = 0xcece_cece;
/// More entries than this is a damaged file, not a keystore.
const MAX_ENTRIES: u32 = 100_000;
/// Longer certificate chains than this are refused (Java's are a handful).
const MAX_CHAIN: u32 = 100;
const DIGEST_LEN: usize = 20;

/// A big-endian cursor with checked reads.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(StoreError::Malformed(what))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, StoreError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, StoreError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `writeUTF`'s string; modified UTF-8 is read as UTF-8, lossily (aliases are only shown).
    fn utf(&mut self, what: &'static str) -> Result<String, StoreError> {
        let n = self.u16(what)?;
        Ok(String::from_utf8_lossy(self.take(usize::from(n), what)?).into_owned())
    }

    /// A u32 length, then that many bytes.
    fn blob(&mut self, what: &'static str) -> Result<&'a [u8], StoreError> {
        let n = self.u32(what)?;
        let n = usize::try_from(n).map_err(|_| StoreError::Malformed(what))?;
        self.take(n, what)
    }

    fn cert(&mut self, version: u32) -> Result<CertificateDer<'static>, StoreError> {
        if version == 2 {
            let kind = self.utf("a certificate type")?;
            if kind != "X.509" {
                return Err(StoreError::Unsupported(format!(
                    "a certificate of type {kind:?} (only X.509)"
                )));
            }
        }
        let der = self.blob("a certificate")?;
        if der.is_empty() {
            return Err(StoreError::Malformed("an empty certificate"));
        }
        Ok(CertificateDer::from(der.to_vec()))
    }
}

/// The password as the JKS digests take it: each Java char as two bytes, big-endian.
fn utf16be(password: &str) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(password.len() * 2));
    for unit in password.encode_utf16() {
        v.extend_from_slice(&unit.to_be_bytes());
    }
    v
}

/// Reads a JKS store. With `password`, the integrity digest is checked after the entries are
/// read (`BadPassword` when it does not match); without, it is not (Java's `load(in, null)`).
pub(crate) fn parse(data: &[u8], password: Option<&str>) -> Result<Store, StoreError> {
    let mut r = Reader { data, pos: 0 };
    match r.u32("the magic number")? {
        MAGIC => {}
        JCEKS_MAGIC => return Err(StoreError::Unsupported(JCEKS.to_owned())),
        _ => return Err(StoreError::Malformed("the magic number (not a JKS file)")),
    }
    let version = r.u32("the version")?;
    if version != 1 && version != 2 {
        return Err(StoreError::Unsupported(format!("JKS version {version} (only 1 and 2)")));
    }
    let count = r.u32("the entry count")?;
    if count > MAX_ENTRIES {
        return Err(StoreError::Malformed("the entry count (implausibly many)"));
    }
    let mut store = Store::default();
    for _ in 0..count {
        match r.u32("an entry tag")? {
            1 => {
                let alias = r.utf("a key alias")?;
                r.take(8, "a key entry's date")?;
                let protected = r.blob("a protected key")?.to_vec();
                let n = r.u32("a certificate chain length")?;
                if n > MAX_CHAIN {
                    return Err(StoreError::Malformed("a certificate chain length (implausibly long)"));
                }
                let mut chain = Vec::new();
                for _ in 0..n {
                    chain.push(r.cert(version)?);
                }
                store.keys.push(KeyEntry {
                    alias,
                    key: ProtectedKey::Jks(protected),
                    chain,
                });
            }
            2 => {
                let alias = r.utf("a certificate alias")?;
                r.take(8, "a certificate entry's date")?;
                let cert = r.cert(version)?;
                store.trusted.push(TrustedCert { alias, cert });
            }
            3 => {
                return Err(StoreError::Unsupported(
                    "a secret key entry (a JCEKS entry: convert the store to PKCS12 with keytool -importkeystore)"
                        .to_owned(),
                ))
            }
            _ => return Err(StoreError::Malformed("an entry tag (not 1 or 2)")),
        }
    }
    let body = r.pos;
    let digest = r.take(DIGEST_LEN, "the integrity digest")?;
    if r.pos != data.len() {
        return Err(StoreError::Malformed("bytes after the integrity digest"));
    }
    if let Some(password) = password {
        let mut h = Sha1::new();
        h.update(&*utf16be(password));
        h.update(b"Mighty Aphrodite");
        h.update(&data[..body]);
        if h.finalize().as_slice() != digest {
            return Err(StoreError::BadPassword);
        }
    }
    Ok(store)
}

pub(crate) const JCEKS: &str =
    "a JCEKS store (Sun's JCE keystore): convert it with keytool -importkeystore -deststoretype PKCS12";

/// Recovers the PKCS#8 `PrivateKeyInfo` of a JKS key entry (`KeyProtector.recover`);
/// `BadPassword` when `password` is not the key's.
pub(crate) fn decrypt_key(protected: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    const W: &str = "a protected JKS key";
    let mut outer = Der::new(protected);
    let mut seq = outer.sequence(W)?;
    let (alg, _params) = der::algorithm(&mut seq, W)?;
    match alg {
        oid::JKS_KEY_PROTECTOR => {}
        oid::JCEKS_KEY_PROTECTOR => return Err(StoreError::Unsupported(JCEKS.to_owned())),
        other => {
            return Err(StoreError::Unsupported(format!(
                "the JKS key protection {} (only Sun's key protector)",
                der::dotted(other)
            )))
        }
    }
    let data = seq.octet_string(W)?;
    if data.len() <= 2 * DIGEST_LEN {
        return Err(StoreError::Malformed(W));
    }
    let (salt, rest) = data.split_at(DIGEST_LEN);
    let (encrypted, check) = rest.split_at(rest.len() - DIGEST_LEN);
    let pw = utf16be(password);
    let mut plain = Zeroizing::new(Vec::with_capacity(encrypted.len()));
    let mut block = Zeroizing::new(salt.to_vec());
    for chunk in encrypted.chunks(DIGEST_LEN) {
        let mut h = Sha1::new();
        h.update(&*pw);
        h.update(&*block);
        block = Zeroizing::new(h.finalize().to_vec());
        plain.extend(chunk.iter().zip(block.iter()).map(|(c, k)| c ^ k));
    }
    let mut h = Sha1::new();
    h.update(&*pw);
    h.update(&*plain);
    if h.finalize().as_slice() != check {
        return Err(StoreError::BadPassword);
    }
    super::pbe::check_private_key_info(&plain).map_err(|_| StoreError::Malformed("a JKS key that is not PKCS#8"))?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JKS file from parts, with a correct digest for `password`.
    fn jks(version: u32, entries: &[Vec<u8>], password: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(MAGIC.to_be_bytes());
        v.extend(version.to_be_bytes());
        v.extend((entries.len() as u32).to_be_bytes());
        for e in entries {
            v.extend(e);
        }
        let mut h = Sha1::new();
        h.update(&*utf16be(password));
        h.update(b"Mighty Aphrodite");
        h.update(&v);
        v.extend(h.finalize());
        v
    }

    fn utf(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    fn trusted(alias: &str, cert: &[u8]) -> Vec<u8> {
        let mut v = 2u32.to_be_bytes().to_vec();
        v.extend(utf(alias));
        v.extend([0; 8]);
        v.extend(utf("X.509"));
        v.extend((cert.len() as u32).to_be_bytes());
        v.extend(cert);
        v
    }

    #[test]
    fn a_built_store_reads_back_and_its_digest_is_checked() {
        let f = jks(2, &[trusted("ca", b"\x30\x00"), trusted("b", b"\x30\x01\x00")], "pw");
        let s = parse(&f, Some("pw")).unwrap();
        assert_eq!(s.trusted.len(), 2);
        assert_eq!(s.trusted[1].alias, "b");
        assert!(matches!(parse(&f, Some("other")), Err(StoreError::BadPassword)));
        // Without a password the digest is not checked (Java's load(in, null)).
        assert_eq!(parse(&f, None).unwrap().trusted.len(), 2);
    }

    /// Version 1 (JDK 1.1's) has no certificate type strings.
    #[test]
    fn version_1_has_no_certificate_types() {
        let mut e = 2u32.to_be_bytes().to_vec();
        e.extend(utf("old"));
        e.extend([0; 8]);
        e.extend(2u32.to_be_bytes());
        e.extend(b"\x30\x00");
        let f = jks(1, &[e], "pw");
        let s = parse(&f, Some("pw")).unwrap();
        assert_eq!(s.trusted[0].alias, "old");
        assert_eq!(s.trusted[0].cert.as_ref(), b"\x30\x00");
        // Read as version 2, the same bytes do not parse.
        let mut v2 = f.clone();
        v2[7] = 2;
        assert!(parse(&v2, None).is_err());
    }

    #[test]
    fn every_truncation_and_a_huge_length_fail_cleanly() {
        let f = jks(2, &[trusted("ca", b"\x30\x00")], "pw");
        for n in 0..f.len() {
            assert!(parse(&f[..n], None).is_err(), "{n}");
        }
        // A certificate length of 0xffffffff with a few bytes behind it.
        let mut e = trusted("ca", b"");
        let at = e.len() - 4;
        e[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        let f = jks(2, &[e], "pw");
        assert!(matches!(parse(&f, None), Err(StoreError::Malformed(_))));
        // An entry count no file could hold.
        let mut f = jks(2, &[], "pw");
        f[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse(&f, None), Err(StoreError::Malformed(_))));
    }

    #[test]
    fn jceks_and_other_versions_are_refused_by_name() {
        let mut f = jks(2, &[], "pw");
        f[..4].copy_from_slice(&JCEKS_MAGIC.to_be_bytes());
        let e = parse(&f, None).unwrap_err();
        assert!(
            matches!(e, StoreError::Unsupported(ref m) if m.contains("JCEKS")),
            "{e:?}"
        );
        let f = jks(3, &[], "pw");
        assert!(matches!(parse(&f, None), Err(StoreError::Unsupported(_))));
    }

    /// `KeyProtector.protect` as Java writes it, to check `decrypt_key` against.
    fn protect(key: &[u8], password: &str, salt: [u8; 20]) -> Vec<u8> {
        let pw = utf16be(password);
        let mut enc = Vec::new();
        let mut block = salt.to_vec();
        for chunk in key.chunks(20) {
            let mut h = Sha1::new();
            h.update(&*pw);
            h.update(&block);
            block = h.finalize().to_vec();
            enc.extend(chunk.iter().zip(&block).map(|(c, k)| c ^ k));
        }
        let mut h = Sha1::new();
        h.update(&*pw);
        h.update(key);
        let mut data = salt.to_vec();
        data.extend(enc);
        data.extend(h.finalize());
        // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING }
        let mut alg = vec![0x06, oid::JKS_KEY_PROTECTOR.len() as u8];
        alg.extend(oid::JKS_KEY_PROTECTOR);
        alg.extend([0x05, 0x00]);
        let mut inner = vec![0x30, alg.len() as u8];
        inner.extend(alg);
        inner.extend([0x04, data.len() as u8]);
        inner.extend(data);
        let mut out = vec![0x30, inner.len() as u8];
        out.extend(inner);
        out
    }

    #[test]
    fn key_protector_round_trip_and_wrong_password() {
        // A stand-in PrivateKeyInfo: one SEQUENCE of 45 bytes (three keystream blocks).
        let mut key = vec![0x30, 43];
        key.extend((0..43).map(|i| i as u8));
        let p = protect(&key, "changeit", [9; 20]);
        assert_eq!(&*decrypt_key(&p, "changeit").unwrap(), &key[..]);
        assert!(matches!(decrypt_key(&p, "changeme"), Err(StoreError::BadPassword)));
        for n in 0..p.len() {
            assert!(decrypt_key(&p[..n], "changeit").is_err());
        }
    }
}
