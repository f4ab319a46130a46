//! Fuzz target `kubeconfig`: see `vfplex_fuzz::kubeconfig`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::kubeconfig(data));
