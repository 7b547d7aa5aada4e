#![no_main]
//! `scripts/fuzz.sh sip`: see `callgrid_sip_edge::fuzz::sip`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_sip_edge::fuzz::sip(data));
