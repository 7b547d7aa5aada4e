#![no_main]
//! `scripts/fuzz.sh envelope`: see `callgrid_codec::fuzz::envelope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_codec::fuzz::envelope(data));
