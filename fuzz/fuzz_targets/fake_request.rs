#![no_main]
// A request frame (after its size) as the fake cluster decodes and answers it: every API it
// implements, any version; a malformed request must be refused, never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_fake::fuzzing::request(data));
