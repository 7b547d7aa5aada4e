#![no_main]
//! `scripts/fuzz.sh http`: see `callgrid_supervisor::fuzz::http`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_supervisor::fuzz::http(data));
