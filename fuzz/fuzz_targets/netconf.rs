//! Fuzz target `netconf`: see `vfplex_fuzz::netconf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::netconf(data));
