#![no_main]
// A PKCS#12 keystore file (client/src/security/pkcs12.rs, pbe.rs): read with the MAC checked, without a password, and decrypted without the MAC check; every key decrypted.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strom_client::fuzzing::keystore_pkcs12(data);
});
