//! Fuzz target `plugin_configs`: see `vfplex_fuzz::plugin_configs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::plugin_configs(data));
