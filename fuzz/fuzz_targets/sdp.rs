#![no_main]
//! `scripts/fuzz.sh sdp`: see `callgrid_media::fuzz::sdp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_media::fuzz::sdp(data));
