//! EC private keys as Java writes them, made loadable by rustls's providers.
//!
//! RFC 5915 makes the public key of an `ECPrivateKey` optional, and Java leaves it out: a
//! key that keytool generated (`keytool -genkeypair -keyalg EC`) is stored as
//! `ECPrivateKey { 1, privateKey }` in its PKCS#8 (JDK's `ECPrivateKeyImpl`). ring requires
//! the public key ("The RFC says it is optional, but we require it to be present"), so such
//! a key fails with "failed to parse private key". [`complete`] computes the public point
//! from the private scalar (RustCrypto's p256/p384 curve arithmetic) and writes it in,
//! which is what OpenSSL writes anyway. Other keys (RSA, Ed25519, EC keys that have their
//! public key, curves other than P-256 and P-384, which ring cannot sign with) are left as
//! they are.

use zeroize::Zeroizing;

use super::der::{self, Der};

/// 1.2.840.10045.2.1 (id-ecPublicKey)
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 (prime256v1, P-256)
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.132.0.34 (secp384r1, P-384)
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// `[1]` constructed: ECPrivateKey's publicKey.
const CONTEXT_1: u8 = 0xa1;
const BIT_STRING: u8 = 0x03;

/// `pkcs8` with the EC public key added when it is an EC key on P-256 or P-384 without one;
/// `None` when nothing needs adding (or the key is not one this can complete: the
/// provider's own error then says what is wrong with it).
pub(crate) fn complete(pkcs8: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    const W: &str = "a PKCS#8 key";
    let mut outer = Der::new(pkcs8);
    let mut info = outer.sequence(W).ok()?;
    let version = info.tagged(der::INTEGER, W).ok()?;
    let alg = info.tagged(der::SEQUENCE, W).ok()?;
    let mut a = alg.children(&info, W).ok()?;
    if a.oid(W).ok()? != EC_PUBLIC_KEY {
        return None;
    }
    let curve = a.oid(W).ok()?;
    let private_key = info.octet_string(W).ok()?;
    let mut ec_outer = Der::new(private_key);
    let mut ec = ec_outer.sequence(W).ok()?;
    let ec_version = ec.tagged(der::INTEGER, W).ok()?;
    let scalar = ec.octet_string(W).ok()?;
    let params = ec.optional(der::CONTEXT_0, W).ok()?;
    if ec.peek_tag() == Some(CONTEXT_1) {
        return None; // already there
    }
    let (point, size) = match curve {
        P256 => (public_point::<p256::NistP256>(scalar)?, 32),
        P384 => (public_point::<p384::NistP384>(scalar)?, 48),
        _ => return None,
    };
    // ECPrivateKey { version, privateKey (left-padded to the field size), [0] parameters
    // as they were, [1] BIT STRING publicKey }
    let mut padded = Zeroizing::new(vec![0u8; size.max(scalar.len()) - scalar.len()]);
    padded.extend_from_slice(scalar);
    let mut body = Zeroizing::new(ec_version.raw.to_vec());
    body.extend_from_slice(&tlv(der::OCTET_STRING, &padded));
    if let Some(p) = params {
        body.extend_from_slice(p.raw);
    }
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(&point);
    body.extend_from_slice(&tlv(CONTEXT_1, &tlv(BIT_STRING, &bits)));
    let ec_key = Zeroizing::new(tlv(der::SEQUENCE, &body));
    // PrivateKeyInfo { version, algorithm, privateKey, the rest (attributes) as it was }
    let mut out = Zeroizing::new(version.raw.to_vec());
    out.extend_from_slice(alg.raw);
    out.extend_from_slice(&tlv(der::OCTET_STRING, &ec_key));
    let rest = info.any(W).map(|t| t.raw);
    if let Ok(rest) = rest {
        out.extend_from_slice(rest);
    }
    Some(Zeroizing::new(tlv(der::SEQUENCE, &out)))
}

/// The uncompressed public point of the private scalar `d` on curve `C`.
fn public_point<C>(d: &[u8]) -> Option<Vec<u8>>
where
    C: p256::elliptic_curve::CurveArithmetic,
    p256::elliptic_curve::AffinePoint<C>:
        p256::elliptic_curve::sec1::FromEncodedPoint<C> + p256::elliptic_curve::sec1::ToEncodedPoint<C>,
    p256::elliptic_curve::FieldBytesSize<C>: p256::elliptic_curve::sec1::ModulusSize,
{
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let key = p256::elliptic_curve::SecretKey::<C>::from_slice(d).ok()?;
    Some(key.public_key().to_encoded_point(false).as_bytes().to_vec())
}

/// A DER element: `tag`, the definite length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    v.push(tag);
    let len = content.len();
    if len < 0x80 {
        v.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        v.push(0x80 | (bytes.len() - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    v.extend_from_slice(content);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A P-256 key as JDK 17's keytool writes it (`ECPrivateKey { 1, d }`, no public key;
    /// from `keytool -genkeypair -keyalg EC`, then `openssl pkcs12 -nodes`): completing it
    /// adds the public point of the certificate keytool made for it.
    #[test]
    fn a_java_ec_key_gets_the_public_key_openssl_writes() {
        let java = hex("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420\
             0893edaf11211d1aafe6c28973f7183d870ced44650f8b421ab170dbb1bf6222");
        let done = complete(&java).expect("completed");
        let want = hex(&format!("{COMPLETED_PREFIX}{CERT_POINT}"));
        assert_eq!(&*done, &want[..]);
        // Complete keys, and keys that are not EC, are left alone.
        assert!(complete(&want).is_none());
        assert!(complete(b"\x30\x03\x02\x01\x00").is_none());
        assert!(complete(b"").is_none());
        for n in 0..java.len() {
            assert!(complete(&java[..n]).is_none());
        }
    }

    /// The completed key up to its public point: PrivateKeyInfo { 0, ecPublicKey P-256,
    /// ECPrivateKey { 1, d, [1] BIT STRING } }.
    const COMPLETED_PREFIX: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420\
        0893edaf11211d1aafe6c28973f7183d870ced44650f8b421ab170dbb1bf6222a144034200";
    /// The public point of keytool's certificate for that key (`openssl x509 -pubkey`).
    const CERT_POINT: &str = "042e3155f3736e55addb491e692103e0971333e8e983f35190a51faf4e47ceed9a\
        ea5743d9f5d0fef8b99b8a8c24c454df626d913e988a7d396cc49b0ad99dfa32";

    #[test]
    fn long_lengths() {
        assert_eq!(tlv(0x04, &[1; 3]), vec![0x04, 3, 1, 1, 1]);
        assert_eq!(&tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
