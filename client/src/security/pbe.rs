//! Password-based encryption as keystores use it: PBES2 (PKCS#5: PBKDF2 with HMAC-SHA-1/2,
//! AES-CBC or 3DES-CBC), PKCS#12's own PBE schemes (its SHA-1 key derivation with 3DES or
//! RC2, what Java 8 and `openssl pkcs12 -legacy` write) and PKCS#12's HMAC integrity check.
//!
//! Which is which, as `openssl pkcs12 -info` shows them:
//!
//! | writer | keys | certificates | MAC |
//! |---|---|---|---|
//! | Java 17+ keytool, OpenSSL 3 | PBES2, PBKDF2-HmacSHA256, AES-256-CBC | the same | HmacSHA256 |
//! | Java 8 keytool, `openssl pkcs12 -legacy` | pbeWithSHAAnd3-KeyTripleDES-CBC | pbeWithSHAAnd40BitRC2-CBC | HmacSHA1 |
//!
//! Iteration counts above [`MAX_ITERATIONS`] are refused before any work, so a crafted file
//! cannot make loading take hours.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockSizeUser, InnerIvInit, KeyInit};
use des::{TdesEde2, TdesEde3};
use hmac::digest::core_api::BlockSizeUser as DigestBlockSize;
use hmac::digest::Digest;
use hmac::{Mac, SimpleHmac};
use sha1::Sha1;
use sha2::{Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::der::{self, oid, Der};
use super::store::StoreError;

/// Largest iteration count accepted for a key derivation or a MAC: Java's
/// `PKCS12KeyStore.MAX_ITERATION_COUNT`. keytool writes 10,000.
pub(crate) const MAX_ITERATIONS: u64 = 5_000_000;

/// How much work a store may ask for; the fuzz entry points lower it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_iterations: u64,
}

impl Limits {
    pub(crate) const DEFAULT: Limits = Limits {
        max_iterations: MAX_ITERATIONS,
    };

    fn iterations(&self, n: u64, what: &'static str) -> Result<u64, StoreError> {
        if n == 0 {
            return Err(StoreError::Malformed(what));
        }
        if n > self.max_iterations {
            return Err(StoreError::Unsupported(format!(
                "{what}: an iteration count of {n} (at most {} are accepted, as in Java)",
                self.max_iterations
            )));
        }
        Ok(n)
    }
}

/// A password as PKCS#12's key derivation takes it: UTF-16BE (Java's chars, a BMPString)
/// with a two-byte terminator.
pub(crate) fn bmp_password(password: &str) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        v.extend_from_slice(&unit.to_be_bytes());
    }
    v.extend_from_slice(&[0, 0]);
    v
}

/// PKCS#12's key derivation (RFC 7292 appendix B.2): `id` 1 for a key, 2 for an IV, 3 for a
/// MAC key; `n` bytes.
fn pkcs12_kdf<D: Digest + DigestBlockSize>(
    password_bmp: &[u8],
    salt: &[u8],
    id: u8,
    iterations: u64,
    n: usize,
) -> Zeroizing<Vec<u8>> {
    let v = <D as DigestBlockSize>::block_size();
    let fill = |src: &[u8]| -> Zeroizing<Vec<u8>> {
        let len = src.len().div_ceil(v) * v;
        Zeroizing::new(src.iter().copied().cycle().take(len).collect())
    };
    let mut i = fill(salt);
    i.extend_from_slice(&fill(password_bmp));
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    loop {
        let mut h = D::new();
        h.update(vec![id; v]);
        h.update(&*i);
        let mut a = h.finalize();
        for _ in 1..iterations {
            a = D::digest(&a);
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            out.truncate(n);
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^(8v) for each v-byte block of I, B = A repeated.
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for block in i.chunks_mut(v) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().rev().zip(b.iter().rev()) {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
}

/// Checks PKCS#12's `MacData` over `content` (the authenticated safe's bytes) with
/// `password`: `BadPassword` when it does not match (a wrong password or an altered file).
pub(crate) fn verify_pkcs12_mac(
    mac_data: &mut Der<'_>,
    content: &[u8],
    password: &str,
    limits: Limits,
) -> Result<(), StoreError> {
    const W: &str = "the PKCS#12 MacData";
    let mut digest_info = mac_data.sequence(W)?;
    let (alg, _params) = der::algorithm(&mut digest_info, W)?;
    let expected = digest_info.octet_string(W)?;
    let salt = mac_data.octet_string(W)?;
    let iterations = if mac_data.is_empty() {
        1
    } else {
        mac_data.small_uint(W)?
    };
    let iterations = limits.iterations(iterations, W)?;
    let bmp = bmp_password(password);
    fn check<D>(bmp: &[u8], salt: &[u8], iterations: u64, content: &[u8], expected: &[u8]) -> Result<(), StoreError>
    where
        D: Digest + DigestBlockSize + Clone,
    {
        let key = pkcs12_kdf::<D>(bmp, salt, 3, iterations, <D as Digest>::output_size());
        let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(&key).map_err(|_| StoreError::Malformed(W))?;
        mac.update(content);
        mac.verify_slice(expected).map_err(|_| StoreError::BadPassword)
    }
    match alg {
        oid::SHA1 => check::<Sha1>(&bmp, salt, iterations, content, expected),
        oid::SHA224 => check::<Sha224>(&bmp, salt, iterations, content, expected),
        oid::SHA256 => check::<Sha256>(&bmp, salt, iterations, content, expected),
        oid::SHA384 => check::<Sha384>(&bmp, salt, iterations, content, expected),
        oid::SHA512 => check::<Sha512>(&bmp, salt, iterations, content, expected),
        oid::PBMAC1 => Err(StoreError::Unsupported(
            "a PBMAC1 (RFC 9579) integrity check, which Java 17 cannot read either; re-export the \
             store with keytool or openssl without -pbmac1_pbkdf2"
                .to_owned(),
        )),
        other => Err(StoreError::Unsupported(format!(
            "the PKCS#12 MAC digest {}",
            der::dotted(other)
        ))),
    }
}

/// Decrypts `data`, encrypted with the algorithm `alg` (parameters in `params`) under
/// `password`. `BadPassword` when the padding comes out wrong.
pub(crate) fn decrypt(
    alg: &[u8],
    params: &mut Der<'_>,
    data: &[u8],
    password: &str,
    limits: Limits,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    match alg {
        oid::PBES2 => pbes2(params, data, password, limits),
        oid::PBE_SHA1_3DES | oid::PBE_SHA1_2DES | oid::PBE_SHA1_RC2_128 | oid::PBE_SHA1_RC2_40 => {
            pkcs12_pbe(alg, params, data, password, limits)
        }
        oid::JKS_KEY_PROTECTOR => Err(StoreError::Unsupported(
            "Sun's JKS key protector outside a JKS file".to_owned(),
        )),
        oid::JCEKS_KEY_PROTECTOR => Err(StoreError::Unsupported(
            "JCEKS's PBEWithMD5AndTripleDES key protection (convert the store: keytool -importkeystore \
             -deststoretype PKCS12)"
                .to_owned(),
        )),
        other => Err(StoreError::Unsupported(format!(
            "the encryption algorithm {} (supported: PBES2 with PBKDF2 and AES-CBC or 3DES, and PKCS#12's \
             pbeWithSHAAnd3-KeyTripleDES-CBC, 2-KeyTripleDES, 128- and 40-bit RC2)",
            der::dotted(other)
        ))),
    }
}

/// `EncryptedPrivateKeyInfo` (PKCS#8) decrypted to its `PrivateKeyInfo`; `BadPassword` when
/// the password is wrong.
pub(crate) fn decrypt_private_key_info(
    epki: &[u8],
    password: &str,
    limits: Limits,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    const W: &str = "an EncryptedPrivateKeyInfo";
    let mut outer = Der::new(epki);
    let mut seq = outer.sequence(W)?;
    let (alg, mut params) = der::algorithm(&mut seq, W)?;
    let data = seq.octet_string(W)?;
    let plain = decrypt(alg, &mut params, data, password, limits)?;
    check_private_key_info(&plain)?;
    Ok(plain)
}

/// A decrypted key must be one DER SEQUENCE: a right padding from a wrong password (one
/// chance in 256 for PKCS#7) is caught here.
pub(crate) fn check_private_key_info(plain: &[u8]) -> Result<(), StoreError> {
    let mut d = Der::new(plain);
    match d.tagged(der::SEQUENCE, "PrivateKeyInfo") {
        Ok(_) if d.is_empty() => Ok(()),
        _ => Err(StoreError::BadPassword),
    }
}

fn pbes2(params: &mut Der<'_>, data: &[u8], password: &str, limits: Limits) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    const W: &str = "PBES2 parameters";
    let mut p = params.sequence(W)?;
    let (kdf, mut kdf_params) = der::algorithm(&mut p, W)?;
    let (enc, mut enc_params) = der::algorithm(&mut p, W)?;
    match kdf {
        oid::PBKDF2 => {}
        oid::SCRYPT => {
            return Err(StoreError::Unsupported(
                "the scrypt key derivation (Java cannot read it either; use PBKDF2)".to_owned(),
            ))
        }
        other => {
            return Err(StoreError::Unsupported(format!(
                "the PBES2 key derivation {}",
                der::dotted(other)
            )))
        }
    }
    let mut k = kdf_params.sequence(W)?;
    let salt = k.octet_string("PBKDF2 parameters: the salt (otherSource is not supported)")?;
    let iterations = limits.iterations(k.small_uint(W)?, "PBKDF2")?;
    let iterations = u32::try_from(iterations).map_err(|_| StoreError::Malformed(W))?;
    let declared_len = if k.peek_tag() == Some(der::INTEGER) {
        Some(k.small_uint(W)?)
    } else {
        None
    };
    let prf = if k.is_empty() {
        oid::HMAC_SHA1
    } else {
        der::algorithm(&mut k, W)?.0
    };
    let (key_len, block) = match enc {
        oid::AES128_CBC => (16, 16),
        oid::AES192_CBC => (24, 16),
        oid::AES256_CBC => (32, 16),
        oid::DES_EDE3_CBC => (24, 8),
        other => {
            return Err(StoreError::Unsupported(format!(
                "the PBES2 cipher {} (supported: AES-128/192/256-CBC, DES-EDE3-CBC)",
                der::dotted(other)
            )))
        }
    };
    if declared_len.is_some_and(|l| l != key_len as u64) {
        return Err(StoreError::Malformed(
            "PBKDF2 parameters: a key length that does not fit the cipher",
        ));
    }
    let iv = enc_params.octet_string("PBES2 parameters: the IV")?;
    if iv.len() != block {
        return Err(StoreError::Malformed("PBES2 parameters: an IV of the wrong length"));
    }
    // PBKDF2 takes the password as UTF-8 bytes (Java's PBKDF2KeyImpl, OpenSSL).
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    let pw = password.as_bytes();
    match prf {
        oid::HMAC_SHA1 => pbkdf2::pbkdf2_hmac::<Sha1>(pw, salt, iterations, &mut key),
        oid::HMAC_SHA224 => pbkdf2::pbkdf2_hmac::<Sha224>(pw, salt, iterations, &mut key),
        oid::HMAC_SHA256 => pbkdf2::pbkdf2_hmac::<Sha256>(pw, salt, iterations, &mut key),
        oid::HMAC_SHA384 => pbkdf2::pbkdf2_hmac::<Sha384>(pw, salt, iterations, &mut key),
        oid::HMAC_SHA512 => pbkdf2::pbkdf2_hmac::<Sha512>(pw, salt, iterations, &mut key),
        other => {
            return Err(StoreError::Unsupported(format!(
                "the PBKDF2 function {}",
                der::dotted(other)
            )))
        }
    }
    let bad_key = || StoreError::Malformed(W);
    match enc {
        oid::AES128_CBC => cbc(Aes128::new_from_slice(&key).map_err(|_| bad_key())?, iv, data),
        oid::AES192_CBC => cbc(Aes192::new_from_slice(&key).map_err(|_| bad_key())?, iv, data),
        oid::AES256_CBC => cbc(Aes256::new_from_slice(&key).map_err(|_| bad_key())?, iv, data),
        _ => cbc(TdesEde3::new_from_slice(&key).map_err(|_| bad_key())?, iv, data),
    }
}

fn pkcs12_pbe(
    alg: &[u8],
    params: &mut Der<'_>,
    data: &[u8],
    password: &str,
    limits: Limits,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    const W: &str = "PKCS#12 PBE parameters";
    let mut p = params.sequence(W)?;
    let salt = p.octet_string(W)?;
    let iterations = limits.iterations(p.small_uint(W)?, W)?;
    let bmp = bmp_password(password);
    let derive = |id: u8, n: usize| pkcs12_kdf::<Sha1>(&bmp, salt, id, iterations, n);
    let bad_key = || StoreError::Malformed(W);
    match alg {
        oid::PBE_SHA1_3DES => cbc(
            TdesEde3::new_from_slice(&derive(1, 24)).map_err(|_| bad_key())?,
            &derive(2, 8),
            data,
        ),
        oid::PBE_SHA1_2DES => cbc(
            TdesEde2::new_from_slice(&derive(1, 16)).map_err(|_| bad_key())?,
            &derive(2, 8),
            data,
        ),
        oid::PBE_SHA1_RC2_128 => cbc(rc2::Rc2::new_with_eff_key_len(&derive(1, 16), 128), &derive(2, 8), data),
        _ => cbc(rc2::Rc2::new_with_eff_key_len(&derive(1, 5), 40), &derive(2, 8), data),
    }
}

/// CBC decryption with PKCS#7 padding; a bad padding is `BadPassword`.
fn cbc<C>(cipher: C, iv: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError>
where
    C: BlockDecryptMut + BlockCipher,
{
    let block = <C as BlockSizeUser>::block_size();
    if data.is_empty() || !data.len().is_multiple_of(block) {
        return Err(StoreError::Malformed(
            "encrypted data that is not a whole number of cipher blocks",
        ));
    }
    let dec = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv)
        .map_err(|_| StoreError::Malformed("an IV of the wrong length"))?;
    let mut buf = Zeroizing::new(data.to_vec());
    let n = dec
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| StoreError::BadPassword)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7292's key derivation against a vector computed with OpenSSL's
    /// `PKCS12_key_gen_uni` (password "smeg", salt 0A58CF64530D823F, 1 iteration), the one
    /// BouncyCastle's and OpenSSL's tests use.
    #[test]
    fn pkcs12_kdf_matches_the_published_vectors() {
        let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
        let key = pkcs12_kdf::<Sha1>(&bmp_password("smeg"), &salt, 1, 1, 24);
        assert_eq!(hex(&key), "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3");
        let iv = pkcs12_kdf::<Sha1>(&bmp_password("smeg"), &salt, 2, 1, 8);
        assert_eq!(hex(&iv), "79993dfe048d3b76");
        // 1000 iterations (the same sources): password "queeg", salt 1682C0FC5B3F7EC5.
        let salt = [0x16, 0x82, 0xc0, 0xfc, 0x5b, 0x3f, 0x7e, 0xc5];
        let key = pkcs12_kdf::<Sha1>(&bmp_password("queeg"), &salt, 1, 1000, 24);
        assert_eq!(hex(&key), "483dd6e919d7de2e8e648ba8f862f3fbfbdc2bcb2c02957f");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn iteration_counts_are_bounded_before_any_work() {
        let l = Limits { max_iterations: 10 };
        assert!(l.iterations(10, "x").is_ok());
        assert!(matches!(l.iterations(0, "x"), Err(StoreError::Malformed(_))));
        let e = l.iterations(11, "x").unwrap_err();
        assert!(matches!(e, StoreError::Unsupported(ref m) if m.contains("11")), "{e:?}");
    }

    #[test]
    fn wrong_padding_is_a_bad_password_and_ragged_data_is_malformed() {
        let key = [7u8; 16];
        let c = Aes128::new_from_slice(&key).unwrap();
        assert!(matches!(
            cbc(c.clone(), &[0; 16], &[1; 15]),
            Err(StoreError::Malformed(_))
        ));
        assert!(matches!(
            cbc(c.clone(), &[0; 15], &[1; 16]),
            Err(StoreError::Malformed(_))
        ));
        // Random bytes almost never decrypt to a valid padding; try a few.
        let bad = (0u8..8)
            .filter(|i| matches!(cbc(c.clone(), &[*i; 16], &[*i; 32]), Err(StoreError::BadPassword)))
            .count();
        assert!(bad >= 6);
    }
}
