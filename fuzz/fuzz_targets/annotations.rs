//! Fuzz target `annotations`: see `vfplex_fuzz::annotations`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::annotations(data));
