//! What `crate::fuzzing` runs: the keystore readers on arbitrary bytes, with the password
//! the committed seeds use (`client/tests/data/keystores/generate.sh`).

use super::pbe::Limits;
use super::store::Store;
use super::{jks as jks_format, pkcs12 as pkcs12_format};

const PASSWORD: &str = "changeit";
/// The fuzz seeds are written with iteration counts of at most 10.
const LIMITS: Limits = Limits { max_iterations: 64 };

fn use_store(store: &Store) {
    let _ = store.trust_anchors();
    for k in &store.keys {
        if let Ok(key) = k.decrypt(PASSWORD, LIMITS) {
            let _ = super::ec_key::complete(&key);
        }
    }
}

pub(crate) fn jks(data: &[u8]) {
    let _ = super::keystore::sniff(data);
    let _ = jks_format::parse(data, Some(PASSWORD));
    if let Ok(store) = jks_format::parse(data, None) {
        use_store(&store);
    }
}

/// Every committed seed is read under the fuzzing limits, so the fuzzer starts from
/// inputs that reach the keys and certificates.
#[cfg(test)]
#[test]
fn the_seeds_parse_under_the_fuzzing_limits() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/");
    let seeds = |t: &str| -> Vec<Vec<u8>> {
        let mut v: Vec<_> = std::fs::read_dir(format!("{dir}{t}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seed-"))
            .collect();
        v.sort();
        v.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let mut read = 0;
    for s in seeds("client_keystore_pkcs12") {
        let opts = pkcs12_format::Options {
            password: Some(PASSWORD),
            check_mac: true,
            limits: LIMITS,
        };
        let store = pkcs12_format::parse(&s, opts).unwrap();
        assert!(!store.keys.is_empty() || !store.trusted.is_empty() || store.ignored_certs > 0);
        for k in &store.keys {
            k.decrypt(PASSWORD, LIMITS).unwrap();
        }
        read += 1;
    }
    assert!(read >= 8);
    for s in seeds("client_keystore_jks") {
        if super::keystore::sniff(&s) == super::keystore::Sniffed::Jceks {
            continue;
        }
        let store = jks_format::parse(&s, Some(PASSWORD)).unwrap();
        assert!(!store.keys.is_empty() || !store.trusted.is_empty());
    }
}

pub(crate) fn pkcs12(data: &[u8]) {
    let _ = super::keystore::sniff(data);
    for (password, check_mac) in [(Some(PASSWORD), true), (None, true), (Some(PASSWORD), false)] {
        let opts = pkcs12_format::Options {
            password,
            check_mac,
            limits: LIMITS,
        };
        if let Ok(store) = pkcs12_format::parse(data, opts) {
            use_store(&store);
        }
    }
}
