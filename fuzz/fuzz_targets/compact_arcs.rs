#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| viralglobe_protocol::fuzzing::compact_arcs(data));
