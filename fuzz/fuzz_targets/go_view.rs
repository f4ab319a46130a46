//! Fuzz target `go_view`: see `vfplex_fuzz::go_view`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::go_view(data));
