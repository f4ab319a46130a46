//! Fuzz target `cni_args`: see `vfplex_fuzz::cni_args`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::cni_args(data));
