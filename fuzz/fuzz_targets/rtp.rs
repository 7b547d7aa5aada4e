#![no_main]
//! `scripts/fuzz.sh rtp`: see `callgrid_media::fuzz::rtp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_media::fuzz::rtp(data));
