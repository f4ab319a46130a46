//! Fuzz target `device_info`: see `vfplex_fuzz::device_info`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::device_info(data));
