//! Fuzz target `device_plugin_config`: see `vfplex_fuzz::device_plugin_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::device_plugin_config(data));
