#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_protocol::fuzzing::response_describe_share_group_offsets(data));
