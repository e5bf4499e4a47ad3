//! A small DER reader for the keystore formats (PKCS#12, the PKCS#8 keys inside JKS and PEM,
//! the names in X.509 certificates), in the style of rustls's `Reader`: every length is
//! checked against the bytes that are there before anything is sliced, nothing is allocated
//! from a length, and an error says what was being read.
//!
//! Only what those formats use: single-byte tags, definite lengths up to four bytes. BER's
//! indefinite lengths (some very old PKCS#12 writers) are refused with a clear error; Java's
//! keytool and OpenSSL write DER.

use super::store::StoreError;

/// `SEQUENCE` (constructed).
pub(crate) const SEQUENCE: u8 = 0x30;
/// `SET` (constructed).
pub(crate) const SET: u8 = 0x31;
/// `INTEGER`.
pub(crate) const INTEGER: u8 = 0x02;
/// `OCTET STRING` (primitive).
pub(crate) const OCTET_STRING: u8 = 0x04;
/// `OBJECT IDENTIFIER`.
pub(crate) const OID: u8 = 0x06;
/// `BMPString` (UTF-16BE), PKCS#12's friendly names.
pub(crate) const BMP_STRING: u8 = 0x1e;
/// `[0]` constructed (EXPLICIT tagging).
pub(crate) const CONTEXT_0: u8 = 0xa0;
/// `[0]` primitive (IMPLICIT OCTET STRING).
pub(crate) const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// Nesting deeper than this is refused: no structure read here nests half as deep, and a
/// bound keeps a crafted input from recursing.
const MAX_DEPTH: u8 = 32;

/// A cursor over DER bytes; `what` errors name the structure being read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Der<'a> {
    data: &'a [u8],
    depth: u8,
}

/// One element: its tag, its content, and the whole encoding (tag and length included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) content: &'a [u8],
    pub(crate) raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The content of a constructed element, to read its children.
    pub(crate) fn children(&self, parent: &Der<'_>, what: &'static str) -> Result<Der<'a>, StoreError> {
        if parent.depth >= MAX_DEPTH {
            return Err(StoreError::Malformed(what));
        }
        Ok(Der {
            data: self.content,
            depth: parent.depth + 1,
        })
    }
}

impl<'a> Der<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Der { data, depth: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next element, without reading it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element, whatever its tag.
    pub(crate) fn any(&mut self, what: &'static str) -> Result<Tlv<'a>, StoreError> {
        let bad = StoreError::Malformed(what);
        let (&tag, rest) = self.data.split_first().ok_or(bad.clone())?;
        if tag & 0x1f == 0x1f {
            // High-tag-number form: nothing in these formats uses it.
            return Err(bad);
        }
        let (&first, mut rest) = rest.split_first().ok_or(bad.clone())?;
        let len = if first < 0x80 {
            usize::from(first)
        } else if first == 0x80 {
            return Err(StoreError::Malformed(
                "BER indefinite-length encoding (only DER is read: re-export the store with keytool or openssl)",
            ));
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 || rest.len() < n {
                return Err(bad);
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return Err(bad);
        }
        let header = self.data.len() - rest.len();
        let raw = &self.data[..header + len];
        let content = &rest[..len];
        self.data = &rest[len..];
        Ok(Tlv { tag, content, raw })
    }

    /// The next element, which must have `tag`.
    pub(crate) fn tagged(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, StoreError> {
        let tlv = self.any(what)?;
        if tlv.tag != tag {
            return Err(StoreError::Malformed(what));
        }
        Ok(tlv)
    }

    /// The next element if it has `tag`, else nothing is read.
    pub(crate) fn optional(&mut self, tag: u8, what: &'static str) -> Result<Option<Tlv<'a>>, StoreError> {
        if self.peek_tag() == Some(tag) {
            self.tagged(tag, what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A constructed element with `tag` (a SEQUENCE, a SET, an explicit `[n]`): a reader
    /// over its children.
    pub(crate) fn nested(&mut self, tag: u8, what: &'static str) -> Result<Der<'a>, StoreError> {
        let tlv = self.tagged(tag, what)?;
        tlv.children(self, what)
    }

    /// A SEQUENCE's children.
    pub(crate) fn sequence(&mut self, what: &'static str) -> Result<Der<'a>, StoreError> {
        self.nested(SEQUENCE, what)
    }

    /// An OBJECT IDENTIFIER's content bytes (compare with the constants in [`oid`]).
    pub(crate) fn oid(&mut self, what: &'static str) -> Result<&'a [u8], StoreError> {
        let c = self.tagged(OID, what)?.content;
        if c.is_empty() {
            return Err(StoreError::Malformed(what));
        }
        Ok(c)
    }

    /// An OCTET STRING's content.
    pub(crate) fn octet_string(&mut self, what: &'static str) -> Result<&'a [u8], StoreError> {
        Ok(self.tagged(OCTET_STRING, what)?.content)
    }

    /// A non-negative INTEGER that fits in a `u64` (versions, iteration counts, lengths).
    pub(crate) fn small_uint(&mut self, what: &'static str) -> Result<u64, StoreError> {
        let c = self.tagged(INTEGER, what)?.content;
        let bad = StoreError::Malformed(what);
        let (&first, _) = c.split_first().ok_or(bad.clone())?;
        if first & 0x80 != 0 {
            return Err(bad); // negative
        }
        let c = if first == 0 && c.len() > 1 { &c[1..] } else { c };
        if c.len() > 8 {
            return Err(bad);
        }
        Ok(c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Nothing may follow.
    pub(crate) fn finish(self, what: &'static str) -> Result<(), StoreError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Malformed(what))
        }
    }
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`: the OID and
/// the parameters' reader (empty when absent).
pub(crate) fn algorithm<'a>(der: &mut Der<'a>, what: &'static str) -> Result<(&'a [u8], Der<'a>), StoreError> {
    let mut seq = der.sequence(what)?;
    let oid = seq.oid(what)?;
    Ok((oid, seq))
}

/// The issuer and subject names of an X.509 certificate, as encoded (compared bytewise to
/// link a chain, as Java's PKCS12KeyStore links issuer to subject).
pub(crate) fn cert_names(cert: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    const W: &str = "an X.509 certificate";
    let mut outer = Der::new(cert);
    let mut c = outer.sequence(W)?;
    let mut tbs = c.sequence(W)?;
    tbs.optional(CONTEXT_0, W)?; // version
    tbs.tagged(INTEGER, W)?; // serialNumber
    tbs.tagged(SEQUENCE, W)?; // signature
    let issuer = tbs.tagged(SEQUENCE, W)?.raw;
    tbs.tagged(SEQUENCE, W)?; // validity
    let subject = tbs.tagged(SEQUENCE, W)?.raw;
    Ok((issuer, subject))
}

/// Object identifiers (their DER content bytes); `tests::oids_encode_their_dotted_names`
/// checks each against its dotted form.
pub(crate) mod oid {
    /// 1.2.840.113549.1.7.1 (PKCS#7 data)
    pub(crate) const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    /// 1.2.840.113549.1.7.6 (PKCS#7 encryptedData)
    pub(crate) const ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
    /// 1.2.840.113549.1.7.3 (PKCS#7 envelopedData: public-key encrypted, not supported)
    pub(crate) const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    /// 1.2.840.113549.1.12.10.1.1 (PKCS#12 keyBag)
    pub(crate) const KEY_BAG: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01];
    /// 1.2.840.113549.1.12.10.1.2 (PKCS#12 pkcs8ShroudedKeyBag)
    pub(crate) const SHROUDED_KEY_BAG: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02];
    /// 1.2.840.113549.1.12.10.1.3 (PKCS#12 certBag)
    pub(crate) const CERT_BAG: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03];
    /// 1.2.840.113549.1.9.22.1 (x509Certificate, in a certBag)
    pub(crate) const X509_CERTIFICATE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
    /// 1.2.840.113549.1.9.20 (friendlyName: Java's alias)
    pub(crate) const FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
    /// 1.2.840.113549.1.9.21 (localKeyId: links a key to its certificate)
    pub(crate) const LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];
    /// 2.16.840.1.113894.746875.1.1 (Oracle's "trusted key usage": what makes a PKCS#12
    /// certificate a trusted certificate entry for Java)
    pub(crate) const ORACLE_TRUSTED_KEY_USAGE: &[u8] =
        &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf9, 0x66, 0xad, 0xca, 0x7b, 0x01, 0x01];

    /// 1.3.14.3.2.26 (SHA-1)
    pub(crate) const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    /// 2.16.840.1.101.3.4.2.4 (SHA-224)
    pub(crate) const SHA224: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    /// 2.16.840.1.101.3.4.2.1 (SHA-256)
    pub(crate) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// 2.16.840.1.101.3.4.2.2 (SHA-384)
    pub(crate) const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// 2.16.840.1.101.3.4.2.3 (SHA-512)
    pub(crate) const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

    /// 1.2.840.113549.1.5.13 (PBES2)
    pub(crate) const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    /// 1.2.840.113549.1.5.12 (PBKDF2)
    pub(crate) const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
    /// 1.2.840.113549.1.5.14 (PBMAC1, RFC 9579: not supported)
    pub(crate) const PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
    /// 1.3.6.1.4.1.11591.4.11 (scrypt: not supported)
    pub(crate) const SCRYPT: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b];
    /// 1.2.840.113549.2.7 (hmacWithSHA1)
    pub(crate) const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
    /// 1.2.840.113549.2.8 (hmacWithSHA224)
    pub(crate) const HMAC_SHA224: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x08];
    /// 1.2.840.113549.2.9 (hmacWithSHA256)
    pub(crate) const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
    /// 1.2.840.113549.2.10 (hmacWithSHA384)
    pub(crate) const HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
    /// 1.2.840.113549.2.11 (hmacWithSHA512)
    pub(crate) const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
    /// 2.16.840.1.101.3.4.1.2 (aes128-CBC)
    pub(crate) const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    /// 2.16.840.1.101.3.4.1.22 (aes192-CBC)
    pub(crate) const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
    /// 2.16.840.1.101.3.4.1.42 (aes256-CBC)
    pub(crate) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    /// 1.2.840.113549.3.7 (des-ede3-cbc)
    pub(crate) const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];

    /// 1.2.840.113549.1.12.1.3 (pbeWithSHAAnd3-KeyTripleDES-CBC)
    pub(crate) const PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
    /// 1.2.840.113549.1.12.1.4 (pbeWithSHAAnd2-KeyTripleDES-CBC)
    pub(crate) const PBE_SHA1_2DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x04];
    /// 1.2.840.113549.1.12.1.5 (pbeWithSHAAnd128BitRC2-CBC)
    pub(crate) const PBE_SHA1_RC2_128: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
    /// 1.2.840.113549.1.12.1.6 (pbeWithSHAAnd40BitRC2-CBC)
    pub(crate) const PBE_SHA1_RC2_40: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];

    /// 1.3.6.1.4.1.42.2.17.1.1 (Sun's JKS key protector)
    pub(crate) const JKS_KEY_PROTECTOR: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];
    /// 1.3.6.1.4.1.42.2.19.1 (JCEKS's PBEWithMD5AndTripleDES key protector: not supported)
    pub(crate) const JCEKS_KEY_PROTECTOR: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x13, 0x01];
}

/// The dotted form of an OID's content bytes, for error messages.
pub(crate) fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    let mut first = true;
    for &b in oid {
        if value > u64::MAX >> 7 {
            return "(an overlong OID)".to_owned();
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if first {
                let (a, b) = match value {
                    0..=39 => (0, value),
                    40..=79 => (1, value - 40),
                    _ => (2, value - 80),
                };
                out.push_str(&format!("{a}.{b}"));
                first = false;
            } else {
                out.push_str(&format!(".{value}"));
            }
            value = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_encode_their_dotted_names() {
        for (bytes, name) in [
            (oid::DATA, "1.2.840.113549.1.7.1"),
            (oid::ENCRYPTED_DATA, "1.2.840.113549.1.7.6"),
            (oid::ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
            (oid::KEY_BAG, "1.2.840.113549.1.12.10.1.1"),
            (oid::SHROUDED_KEY_BAG, "1.2.840.113549.1.12.10.1.2"),
            (oid::CERT_BAG, "1.2.840.113549.1.12.10.1.3"),
            (oid::X509_CERTIFICATE, "1.2.840.113549.1.9.22.1"),
            (oid::FRIENDLY_NAME, "1.2.840.113549.1.9.20"),
            (oid::LOCAL_KEY_ID, "1.2.840.113549.1.9.21"),
            (oid::ORACLE_TRUSTED_KEY_USAGE, "2.16.840.1.113894.746875.1.1"),
            (oid::SHA1, "1.3.14.3.2.26"),
            (oid::SHA224, "2.16.840.1.101.3.4.2.4"),
            (oid::SHA256, "2.16.840.1.101.3.4.2.1"),
            (oid::SHA384, "2.16.840.1.101.3.4.2.2"),
            (oid::SHA512, "2.16.840.1.101.3.4.2.3"),
            (oid::PBES2, "1.2.840.113549.1.5.13"),
            (oid::PBKDF2, "1.2.840.113549.1.5.12"),
            (oid::PBMAC1, "1.2.840.113549.1.5.14"),
            (oid::SCRYPT, "1.3.6.1.4.1.11591.4.11"),
            (oid::HMAC_SHA1, "1.2.840.113549.2.7"),
            (oid::HMAC_SHA224, "1.2.840.113549.2.8"),
            (oid::HMAC_SHA256, "1.2.840.113549.2.9"),
            (oid::HMAC_SHA384, "1.2.840.113549.2.10"),
            (oid::HMAC_SHA512, "1.2.840.113549.2.11"),
            (oid::AES128_CBC, "2.16.840.1.101.3.4.1.2"),
            (oid::AES192_CBC, "2.16.840.1.101.3.4.1.22"),
            (oid::AES256_CBC, "2.16.840.1.101.3.4.1.42"),
            (oid::DES_EDE3_CBC, "1.2.840.113549.3.7"),
            (oid::PBE_SHA1_3DES, "1.2.840.113549.1.12.1.3"),
            (oid::PBE_SHA1_2DES, "1.2.840.113549.1.12.1.4"),
            (oid::PBE_SHA1_RC2_128, "1.2.840.113549.1.12.1.5"),
            (oid::PBE_SHA1_RC2_40, "1.2.840.113549.1.12.1.6"),
            (oid::JKS_KEY_PROTECTOR, "1.3.6.1.4.1.42.2.17.1.1"),
            (oid::JCEKS_KEY_PROTECTOR, "1.3.6.1.4.1.42.2.19.1"),
        ] {
            assert_eq!(dotted(bytes), name);
        }
    }

    #[test]
    fn lengths_are_checked_before_slicing() {
        // A SEQUENCE claiming 5 bytes with 2 there; long forms past 4 bytes; indefinite.
        for bad in [
            &[0x30, 0x05, 0x01, 0x02][..],
            &[0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30],
            &[],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(Der::new(bad).any("x").is_err(), "{bad:02x?}");
        }
        let mut d = Der::new(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x07, 0x05, 0x00]);
        let mut s = d.sequence("s").unwrap();
        assert_eq!(s.small_uint("i").unwrap(), 7);
        assert!(s.finish("s").is_ok());
        assert_eq!(d.tagged(0x05, "n").unwrap().raw, &[0x05, 0x00]);
        assert!(d.is_empty());
        // Negative and oversized integers.
        assert!(Der::new(&[0x02, 0x01, 0xff]).small_uint("i").is_err());
        assert!(Der::new(&[0x02, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0])
            .small_uint("i")
            .is_err());
        assert_eq!(Der::new(&[0x02, 0x02, 0x00, 0x80]).small_uint("i").unwrap(), 128);
    }

    #[test]
    fn nesting_is_bounded() {
        // 40 nested SEQUENCEs, each wrapping the next.
        let mut v: Vec<u8> = vec![0x05, 0x00];
        for _ in 0..40 {
            let mut w = vec![0x30, v.len() as u8];
            w.extend(v);
            v = w;
        }
        let mut d = Der::new(&v);
        let mut depth = 0;
        while let Ok(inner) = d.sequence("s") {
            d = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }
}
