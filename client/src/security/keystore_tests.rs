//! Keystore tests on the fixtures of `client/tests/data/keystores/` (made by keytool and
//! OpenSSL with a throwaway CA; `generate.sh` there remakes them and says what each is).

use std::collections::BTreeMap;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

const PW: &str = "changeit";
/// A wrong password that must never show in an error.
const WRONG: &str = "Wr0ng-Passw0rd";

fn path(name: &str) -> String {
    format!("{}/tests/data/keystores/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn pem_cert(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path(name)).unwrap()
}

/// The private scalar of the client's P-256 key (`ECPrivateKey { 1, OCTET STRING(32) ..}`),
/// which every store must give back, however its writer re-encoded the PKCS#8 around it.
fn client_scalar() -> Vec<u8> {
    let PrivateKeyDer::Pkcs8(k) = PrivateKeyDer::from_pem_file(path("client.key")).unwrap() else {
        panic!("client.key is PKCS#8")
    };
    scalar(k.secret_pkcs8_der())
}

fn scalar(der: &[u8]) -> Vec<u8> {
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an ECPrivateKey");
    der[at + 5..at + 37].to_vec()
}

fn keystore_of(kv: &[(&str, &str)]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    keystore(&props(kv)).map(|o| o.expect("a keystore"))
}

fn err(r: Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert!(e.is_config(), "{e}");
            let s = e.to_string();
            assert!(!s.contains(WRONG) && !s.contains(PW), "a password leaked: {s}");
            s
        }
    }
}

#[test]
fn every_keystore_format_gives_the_client_key_and_chain() {
    let chain = vec![pem_cert("client.pem"), pem_cert("ca.pem")];
    let scalar_want = client_scalar();
    for file in [
        "keystore-keytool.p12",
        "keystore-keytool-legacy.p12",
        "keystore-openssl.p12",
        "keystore-openssl-legacy.p12",
        "keystore-openssl-2des-rc2-128.p12",
        "keystore.jks",
    ] {
        // No type (detected), each type in any case (Java's keystore.type.compat reads
        // either binary format under either name).
        for t in [None, Some("PKCS12"), Some("pkcs12"), Some("JKS"), Some("jks")] {
            let p = path(file);
            let mut kv = vec![("ssl.keystore.location", p.as_str()), ("ssl.keystore.password", PW)];
            if let Some(t) = t {
                kv.push(("ssl.keystore.type", t));
            }
            let (got_chain, key) = keystore_of(&kv).unwrap_or_else(|e| panic!("{file} {t:?}: {e}"));
            assert_eq!(got_chain, chain, "{file}");
            let PrivateKeyDer::Pkcs8(key) = key else {
                panic!("{file}: PKCS#8")
            };
            assert_eq!(scalar(key.secret_pkcs8_der()), scalar_want, "{file}");
        }
    }
}

/// Keys keytool generated itself: Java's EC encoding has no public key, which ring
/// refuses; the key handed to rustls has it, and it is the certificate's.
#[test]
fn java_generated_ec_keys_get_their_public_key() {
    for (file, point_len) in [("keystore-java-ec.p12", 65usize), ("keystore-java-ec384.jks", 97)] {
        let p = path(file);
        let (chain, key) = keystore_of(&[("ssl.keystore.location", &p), ("ssl.keystore.password", PW)]).unwrap();
        let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
        let bits = [0x03, (point_len + 1) as u8, 0x00, 0x04];
        let find = |der: &[u8]| -> Vec<u8> {
            let at = der.windows(4).rposition(|w| w == bits).expect("an uncompressed point") + 3;
            der[at..at + point_len].to_vec()
        };
        assert_eq!(find(key.secret_pkcs8_der()), find(chain[0].as_ref()), "{file}");
        // What the store holds is Java's encoding, without it.
        let raw = parse_store(
            sniff_format(&std::fs::read(&p).unwrap()),
            &std::fs::read(&p).unwrap(),
            "k",
            &p,
            Some(PW),
            "pw",
        )
        .unwrap();
        let plain = raw.keys[0].decrypt(PW, Limits::DEFAULT).unwrap();
        assert!(
            !plain.windows(4).any(|w| w == bits),
            "{file}: Java's key has no public key"
        );
    }
}

fn sniff_format(data: &[u8]) -> Format {
    match sniff(data) {
        Sniffed::Format(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_key_password_defaults_to_the_store_password_and_can_differ() {
    let p = path("keystore-keypass.jks");
    let base = [("ssl.keystore.location", p.as_str()), ("ssl.keystore.password", PW)];
    let e = err(keystore_of(&base));
    assert!(
        e.contains("ssl.keystore.password (used for the key: ssl.key.password is not set) is wrong")
            && e.contains("\"client\"")
            && e.contains("keystore-keypass.jks"),
        "{e}"
    );
    let mut kv = base.to_vec();
    kv.push(("ssl.key.password", "keypass1"));
    let (_, key) = keystore_of(&kv).unwrap();
    let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
    assert_eq!(scalar(key.secret_pkcs8_der()), client_scalar());
    // A wrong ssl.key.password on a PKCS12 store is named as such.
    let p = path("keystore-keytool.p12");
    let e = err(keystore_of(&[
        ("ssl.keystore.location", &p),
        ("ssl.keystore.password", PW),
        ("ssl.key.password", WRONG),
    ]));
    assert!(e.contains("ssl.key.password is wrong for the private key"), "{e}");
}

#[test]
fn a_wrong_store_password_names_the_property_and_the_file() {
    for file in ["keystore-keytool.p12", "keystore-openssl-legacy.p12", "keystore.jks"] {
        let p = path(file);
        let e = err(keystore_of(&[
            ("ssl.keystore.location", &p),
            ("ssl.keystore.password", WRONG),
        ]));
        assert!(
            e.contains("ssl.keystore.password is wrong for ssl.keystore.location=") && e.contains(file),
            "{e}"
        );
    }
    for file in ["truststore-keytool.p12", "truststore.jks"] {
        let p = path(file);
        let e = err(truststore(&props(&[
            ("ssl.truststore.location", &p),
            ("ssl.truststore.password", WRONG),
        ])));
        assert!(
            e.contains("ssl.truststore.password is wrong for ssl.truststore.location=") && e.contains(file),
            "{e}"
        );
    }
}

#[test]
fn truststores_trust_their_certificate_entries_with_or_without_a_password() {
    let ca = pem_cert("ca.pem");
    let trust = |kv: &[(&str, &str)]| truststore(&props(kv)).map(|o| o.expect("a truststore").0);
    for (file, password) in [
        ("truststore-keytool.p12", Some(PW)),
        ("truststore.jks", Some(PW)),
        // JKS without a password: read, integrity unchecked (Java's load(in, null)).
        ("truststore.jks", None),
        // A PKCS12 store with clear certificates and no MAC needs none.
        ("truststore-nopass.p12", None),
        ("truststore-nopass.p12", Some(PW)),
    ] {
        let p = path(file);
        let mut kv = vec![("ssl.truststore.location", p.as_str())];
        if let Some(pw) = password {
            kv.push(("ssl.truststore.password", pw));
        }
        assert_eq!(
            trust(&kv).unwrap_or_else(|e| panic!("{file}: {e}")),
            vec![ca.clone()],
            "{file}"
        );
        kv.push(("ssl.truststore.type", "PKCS12"));
        assert_eq!(trust(&kv).unwrap(), vec![ca.clone()], "{file} as PKCS12");
    }
    // keytool encrypts a PKCS12 store's certificates: without the password, nothing to trust.
    let p = path("truststore-keytool.p12");
    let e = err(trust(&[("ssl.truststore.location", &p)]));
    assert!(e.contains("set ssl.truststore.password"), "{e}");
    // Certificates without Java's trusted-certificate attribute are ignored, as in Java.
    let p = path("truststore-openssl.p12");
    let e = err(trust(&[
        ("ssl.truststore.location", &p),
        ("ssl.truststore.password", PW),
    ]));
    assert!(
        e.contains("without the trusted-certificate attribute") && e.contains("keytool -importcert"),
        "{e}"
    );
    // A keystore as truststore trusts its key entry's certificate (Java's TrustStoreUtil).
    let p = path("keystore-keytool.p12");
    let got = trust(&[("ssl.truststore.location", &p), ("ssl.truststore.password", PW)]).unwrap();
    assert_eq!(got, vec![pem_cert("client.pem")]);
    // PEM as before, with or without the type.
    let p = path("ca.pem");
    assert_eq!(trust(&[("ssl.truststore.location", &p)]).unwrap(), vec![ca.clone()]);
    assert_eq!(
        trust(&[("ssl.truststore.location", &p), ("ssl.truststore.type", "pem")]).unwrap(),
        vec![ca]
    );
}

#[test]
fn a_declared_type_that_does_not_fit_the_file_says_what_the_file_is() {
    let p12 = path("keystore-keytool.p12");
    let e = err(keystore_of(&[
        ("ssl.keystore.location", &p12),
        ("ssl.keystore.password", PW),
        ("ssl.keystore.type", "PEM"),
    ]));
    assert!(e.contains("is a PKCS12 store: set ssl.keystore.type=PKCS12"), "{e}");
    let pem = path("ca.pem");
    let e = err(truststore(&props(&[
        ("ssl.truststore.location", &pem),
        ("ssl.truststore.type", "JKS"),
    ])));
    assert!(e.contains("is a PEM file: set ssl.truststore.type=PEM"), "{e}");
    let e = err(truststore(&props(&[
        ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
        ("ssl.truststore.type", "PKCS12"),
    ])));
    assert!(e.contains("set ssl.truststore.type=PEM"), "{e}");
    for t in ["BCFKS", "PKCS11"] {
        let e = err(truststore(&props(&[("ssl.truststore.type", t)])));
        assert!(e.contains("expected PKCS12, JKS or PEM"), "{e}");
    }
}

#[test]
fn jceks_is_refused_by_name_with_the_conversion() {
    let p = path("truststore.jceks");
    for t in [None, Some("JKS"), Some("PKCS12")] {
        let mut kv = vec![("ssl.truststore.location", p.as_str())];
        if let Some(t) = t {
            kv.push(("ssl.truststore.type", t));
        }
        let e = err(truststore(&props(&kv)));
        assert!(
            e.contains("JCEKS") && e.contains("keytool -importkeystore -deststoretype PKCS12"),
            "{e}"
        );
    }
    let e = err(truststore(&props(&[("ssl.truststore.type", "JCEKS")])));
    assert!(e.contains("JCEKS is not supported"), "{e}");
}

#[test]
fn a_keystore_needs_exactly_one_key_entry() {
    let p = path("truststore.jks");
    let e = err(keystore_of(&[
        ("ssl.keystore.location", &p),
        ("ssl.keystore.password", PW),
    ]));
    assert!(
        e.contains("no private key entry") && e.contains("is it a truststore?"),
        "{e}"
    );
    for file in ["two-keys.p12", "two-keys.jks"] {
        let p = path(file);
        let e = err(keystore_of(&[
            ("ssl.keystore.location", &p),
            ("ssl.keystore.password", PW),
        ]));
        assert!(
            e.contains("has 2 private key entries")
                && e.contains("client")
                && e.contains("other")
                && e.contains("-srcalias"),
            "{e}"
        );
    }
}

#[test]
fn truncated_and_damaged_files_are_config_errors_naming_the_file() {
    for file in [
        "keystore-keytool.p12",
        "keystore-openssl-legacy.p12",
        "keystore.jks",
        "truststore.jks",
        "truststore-keytool.p12",
    ] {
        let data = std::fs::read(path(file)).unwrap();
        let dir = std::env::temp_dir().join(format!("strom-ks-trunc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cut = dir.join(file);
        let cut_s = cut.to_str().unwrap().to_owned();
        // Every length would take long with 10,000 iterations per try; every 37th byte, and
        // the last few.
        let lens = (1..data.len()).step_by(37).chain(data.len() - 3..data.len());
        for n in lens {
            std::fs::write(&cut, &data[..n]).unwrap();
            let e = err(keystore_of(&[
                ("ssl.keystore.location", &cut_s),
                ("ssl.keystore.password", PW),
            ]));
            assert!(e.contains(&cut_s), "{file} cut at {n}: {e}");
        }
        // One flipped byte in the middle: the MAC or digest catches it, or the structure.
        let mut bad = data.clone();
        bad[data.len() / 2] ^= 0x55;
        std::fs::write(&cut, &bad).unwrap();
        err(keystore_of(&[
            ("ssl.keystore.location", &cut_s),
            ("ssl.keystore.password", PW),
        ]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("strom-ks-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = err(truststore(&props(&[(
        "ssl.truststore.location",
        empty.to_str().unwrap(),
    )])));
    assert!(e.contains("not a PKCS12, JKS or PEM store (the file is empty)"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn encrypted_pem_keys_decrypt_with_the_key_password() {
    let want = client_scalar();
    for file in ["client-encrypted.pem", "client-encrypted-3des.pem"] {
        let p = path(file);
        let (chain, key) = keystore_of(&[("ssl.keystore.location", &p), ("ssl.key.password", PW)]).unwrap();
        assert_eq!(chain, vec![pem_cert("client.pem")]);
        let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
        assert_eq!(scalar(key.secret_pkcs8_der()), want, "{file}");
        let e = err(keystore_of(&[("ssl.keystore.location", &p)]));
        assert!(
            e.contains("the private key is encrypted") && e.contains("set ssl.key.password"),
            "{e}"
        );
        let e = err(keystore_of(&[
            ("ssl.keystore.location", &p),
            ("ssl.key.password", WRONG),
        ]));
        assert!(
            e.contains("ssl.key.password is wrong for the encrypted private key of ssl.keystore.location="),
            "{e}"
        );
        // Inline, as ssl.keystore.key.
        let text = std::fs::read_to_string(&p).unwrap();
        let (_, key) = keystore_of(&[
            ("ssl.keystore.key", &text),
            ("ssl.keystore.certificate.chain", &text),
            ("ssl.key.password", PW),
        ])
        .unwrap();
        let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
        assert_eq!(scalar(key.secret_pkcs8_der()), want);
    }
    let p = path("client-traditional-encrypted.pem");
    let e = err(keystore_of(&[("ssl.keystore.location", &p), ("ssl.key.password", PW)]));
    assert!(
        e.contains("Proc-Type: 4,ENCRYPTED") && e.contains("openssl pkcs8 -topk8"),
        "{e}"
    );
    // An encrypted key's base64 never reaches an error.
    let e = err(pem_key(
        "ssl.keystore.key",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nSECRETSTUFF\n-----END ENCRYPTED PRIVATE KEY-----\n",
        Some(PW),
    ));
    assert!(!e.contains("SECRETSTUFF"), "{e}");
}

#[test]
fn password_rules_follow_kafka() {
    // A JKS/PKCS12 keystore needs its password.
    let p = path("keystore.jks");
    let e = err(keystore_of(&[("ssl.keystore.location", &p)]));
    assert!(e.contains("is a JKS keystore: set ssl.keystore.password"), "{e}");
    // PEM has no store passwords.
    let pem = path("client-encrypted.pem");
    let e = err(keystore_of(&[
        ("ssl.keystore.location", &pem),
        ("ssl.keystore.password", PW),
    ]));
    assert!(
        e.contains("ssl.keystore.password cannot be used with a PEM keystore"),
        "{e}"
    );
    let ca = path("ca.pem");
    let e = err(truststore(&props(&[
        ("ssl.truststore.location", &ca),
        ("ssl.truststore.password", PW),
    ])));
    assert!(
        e.contains("ssl.truststore.password cannot be used with a PEM truststore"),
        "{e}"
    );
    // A password without a store.
    let e = err(truststore(&props(&[("ssl.truststore.password", PW)])));
    assert!(e.contains("ssl.truststore.location is not"), "{e}");
    let e = err(keystore(&props(&[("ssl.keystore.password", PW)])));
    assert!(e.contains("ssl.keystore.location is not"), "{e}");
    // The key password alone is ignored (with a warning), as Kafka does.
    assert!(keystore(&props(&[("ssl.key.password", PW)])).unwrap().is_none());
}

#[test]
fn sniffing() {
    assert_eq!(sniff(b""), Sniffed::Unknown);
    assert_eq!(sniff(b"\xfe\xed\xfe\xed\0\0\0\x02"), Sniffed::Format(Format::Jks));
    assert_eq!(sniff(b"\xce\xce\xce\xce\0\0\0\x02"), Sniffed::Jceks);
    assert_eq!(sniff(b"\x30\x82\x01\x00"), Sniffed::Format(Format::Pkcs12));
    assert_eq!(
        sniff(b"Bag Attributes\n    friendlyName: x\n-----BEGIN CERTIFICATE-----\n"),
        Sniffed::Format(Format::Pem)
    );
    assert_eq!(sniff(b"hello"), Sniffed::Unknown);
}

#[test]
fn librdkafka_certificate_and_key_files() {
    let want = client_scalar();
    let (chain, key) = keystore_of(&[
        ("ssl.certificate.location", &path("client.pem")),
        ("ssl.key.location", &path("client.key")),
    ])
    .unwrap();
    assert_eq!(chain, vec![pem_cert("client.pem")]);
    let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
    assert_eq!(scalar(key.secret_pkcs8_der()), want);
    // An encrypted key file with ssl.key.password, as librdkafka takes it.
    let (_, key) = keystore_of(&[
        ("ssl.certificate.location", &path("client.pem")),
        ("ssl.key.location", &path("client-encrypted.pem")),
        ("ssl.key.password", PW),
    ])
    .unwrap();
    let PrivateKeyDer::Pkcs8(key) = key else { panic!() };
    assert_eq!(scalar(key.secret_pkcs8_der()), want);
    // One without the other, mixed with Java's names, or a missing file: named errors.
    let e = err(keystore_of(&[("ssl.certificate.location", &path("client.pem"))]));
    assert!(e.contains("must be given together"), "{e}");
    let e = err(keystore_of(&[
        ("ssl.certificate.location", &path("client.pem")),
        ("ssl.key.location", &path("client.key")),
        ("ssl.keystore.location", &path("keystore.jks")),
    ]));
    assert!(e.contains("cannot be combined with ssl.keystore.location"), "{e}");
    let e = err(keystore_of(&[
        ("ssl.certificate.location", &path("client.pem")),
        ("ssl.key.location", "/no/such/key.pem"),
    ]));
    assert!(e.contains("ssl.key.location") && e.contains("/no/such/key.pem"), "{e}");
}
