//! Fuzz target `kubelet_checkpoint`: see `vfplex_fuzz::kubelet_checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::kubelet_checkpoint(data));
