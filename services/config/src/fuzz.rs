//! The fuzz target of tenant files (docs/DECISIONS.md "Fuzzing"): YAML from the admin API
//! (`load_str`) and from the event log (`load_trusted_str`, recovery and the projector).
//! Run by libFuzzer (`fuzz/fuzz_targets/tenant_yaml.rs`, `scripts/fuzz.sh tenant_yaml`) and
//! smoked by the test below.

/// Tenant file text through loading: never a panic, and a file that loads is valid, converts
/// to the domain's setup, and written back loads to the same file. The same text loaded as
/// trusted (no schema, no checks: how recovery reads a configuration from the log) converts
/// too.
pub fn tenant_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = crate::load_str("fuzz.yaml", text) {
        if let Err(e) = crate::validate("fuzz.yaml", &file) {
            panic!("a loaded tenant is not valid: {e}");
        }
        let setup = crate::to_setup(&file, 7);
        assert_eq!(setup.version, 7);
        assert_eq!(setup.agents.len(), file.agents.len());
        assert_eq!(setup.queues.len(), file.queues.len());
        let yaml = crate::to_yaml(&file);
        match crate::load_str("fuzz-again.yaml", &yaml) {
            Ok(again) => assert_eq!(again, file, "a tenant written back loads differently"),
            Err(e) => panic!("a tenant written back does not load: {e}\n{yaml}"),
        }
    }
    if let Ok(file) = crate::load_trusted_str("fuzz.yaml", text) {
        let _ = crate::to_setup(&file, 1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_tenant_yaml() {
        let r = callgrid_fuzz_smoke::run("tenant_yaml", 20_000, 16_384, super::tenant_yaml);
        assert!(r.seeds > 0);
    }
}
