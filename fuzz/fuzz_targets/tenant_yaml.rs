#![no_main]
//! `scripts/fuzz.sh tenant_yaml`: see `callgrid_config::fuzz::tenant_yaml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgrid_config::fuzz::tenant_yaml(data));
