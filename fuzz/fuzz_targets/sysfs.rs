//! Fuzz target `sysfs`: see `vfplex_fuzz::sysfs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::sysfs(data));
