//! cargo-fuzz target: [`drover_fuzz::inventory`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drover_fuzz::inventory(data));
