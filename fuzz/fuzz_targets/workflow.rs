//! cargo-fuzz target: [`drover_fuzz::workflow`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drover_fuzz::workflow(data));
