#![no_main]
// SASL tokens as the fake cluster reads them (PLAIN, SCRAM client-first and client-final):
// a malformed token is refused, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_fake::fuzzing::sasl(data));
