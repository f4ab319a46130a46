//! Fuzz target `kubelet_rpc`: see `vfplex_fuzz::kubelet_rpc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::kubelet_rpc(data));
