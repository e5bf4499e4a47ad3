#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_registry::fuzzing::registry_avro_plan(data));
