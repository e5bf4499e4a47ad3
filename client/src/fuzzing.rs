//! Fuzz entry points for what strom-client decodes itself from untrusted bytes: the JKS and
//! PKCS#12 keystore readers, and the broker's SCRAM messages.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/client_keystore_*.rs` and the corpus replay
//! test (`client/tests/fuzz_corpus.rs`) call exactly these functions, so a crash the fuzzer
//! finds becomes a regression test by saving its input under `fuzz/artifacts/<target>/`.
//! Every function must return normally for every input: errors are expected and ignored, a
//! panic (or an abort) is a bug. Not a stable API: hidden from the docs, for Strom's own
//! fuzzing only.

use crate::security::keystore_fuzzing as ks;

/// A JKS store: read without a password (no integrity check, so mutated inputs reach every
/// entry) and with one, then every key entry decrypted (and an EC key completed with its
/// public key), and the trust anchors collected.
pub fn keystore_jks(data: &[u8]) {
    ks::jks(data);
}

/// A PKCS#12 store: read with the MAC checked, without a password, and with the password but
/// no MAC check (so mutated inputs reach the encrypted sections and bags behind the MAC);
/// then every key entry decrypted. Iteration counts are capped low so runs stay fast.
pub fn keystore_pkcs12(data: &[u8]) {
    ks::pkcs12(data);
}

/// The broker's SCRAM messages as the client parses them: the input split at its first NUL
/// into the server-first and server-final messages.
pub fn scram_client(data: &[u8]) {
    crate::security::fuzz_scram_exchange(data);
}
