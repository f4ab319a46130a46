//! Fuzz target `http_response`: see `vfplex_fuzz::http_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfplex_fuzz::http_response(data));
