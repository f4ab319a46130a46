//! Fuzz target `result`: see `vfplex_fuzz::result`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::result(data));
