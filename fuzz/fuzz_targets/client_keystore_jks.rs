#![no_main]
// A JKS keystore file (client/src/security/jks.rs): read with and without its password, every key decrypted.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strom_client::fuzzing::keystore_jks(data);
});
