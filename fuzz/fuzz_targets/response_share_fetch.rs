#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_protocol::fuzzing::response_share_fetch(data));
