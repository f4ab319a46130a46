//! Fuzz target `nad`: see `vfplex_fuzz::nad`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::nad(data));
