#![no_main]
// The broker's SCRAM messages as the client parses them: server-first, a NUL, server-final.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_client::fuzzing::scram_client(data));
