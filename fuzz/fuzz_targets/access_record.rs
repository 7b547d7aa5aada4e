#![no_main]
//! `scripts/fuzz.sh access_record`: see `callgrid_access::fuzz::access_records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_access::fuzz::access_records(data));
