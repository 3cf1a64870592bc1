//! cargo-fuzz target: [`drover_fuzz::plugin_outcome`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drover_fuzz::plugin_outcome(data));
