#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| viralglobe_protocol::fuzzing::event_line(data));
