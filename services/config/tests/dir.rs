//! Loading a directory of tenant files.

use std::fs;

use callgrid_config::{generate_tenant, load_dir, to_yaml, ConfigError, DEMO_TENANT_YAML};

#[test]
fn loads_yaml_files_in_name_order_and_skips_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("b.yml"),
        to_yaml(&generate_tenant("bravo", 5, 2, 2, 2)),
    )
    .expect("write");
    fs::write(dir.path().join("a.yaml"), DEMO_TENANT_YAML).expect("write");
    fs::write(dir.path().join("notes.txt"), "not: [yaml").expect("write");
    fs::write(dir.path().join(".#a.yaml"), "editor lock file").expect("write");
    fs::create_dir(dir.path().join("sub.yaml")).expect("mkdir");
    let tenants = load_dir(dir.path()).expect("loads");
    let ids: Vec<&str> = tenants.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(ids, ["demo", "bravo"]);
}

#[test]
fn empty_directory_gives_no_tenants() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(load_dir(dir.path()).expect("empty").is_empty());
}

#[test]
fn missing_directory_is_an_io_error() {
    let error = load_dir(std::path::Path::new("/nonexistent-callgrid-dir")).expect_err("missing");
    assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
}

#[test]
fn errors_of_all_files_are_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    fs::write(p("1-good.yaml"), DEMO_TENANT_YAML).expect("write");
    fs::write(p("2-syntax.yaml"), "tenant: x\nname: [oops\n").expect("write");
    fs::write(
        p("3-schema.yaml"),
        DEMO_TENANT_YAML
            .replace("tenant: demo", "tenant: other")
            .replace("strategy: linear", "stratgy: linear")
            .replace("+8428730", "+8428740"),
    )
    .expect("write");
    // Same tenant id as 1-good, and the same main hotline.
    fs::write(
        p("4-dup.yaml"),
        DEMO_TENANT_YAML
            .replace("+842873000200", "+842873009200")
            .replace("+842873000300", "+842873009300"),
    )
    .expect("write");
    let mut third = generate_tenant("third", 3, 1, 1, 9);
    third.numbers[0].number = "842873000100".into(); // the demo's main hotline without '+'
    fs::write(p("5-number.yaml"), to_yaml(&third)).expect("write");

    let error = load_dir(dir.path()).expect_err("broken files");
    let ConfigError::Many(errors) = &error else {
        panic!("expected several errors, got {error:?}");
    };
    assert_eq!(errors.len(), 3, "{error}");
    assert!(
        matches!(&errors[0], ConfigError::Yaml { file, line: 3, .. } if file.ends_with("2-syntax.yaml"))
    );
    let text = error.to_string();
    let f = |name: &str| p(name).display().to_string();
    let expected = [
        format!(
            r#"{}: queues[2].stratgy: unknown field "stratgy" (did you mean "strategy"?)"#,
            f("3-schema.yaml")
        ),
        format!(
            r#"{}: tenant: tenant id "demo" is already used by {}"#,
            f("4-dup.yaml"),
            f("1-good.yaml")
        ),
        format!(
            r#"{}: numbers[0].number: number "842873000100" already belongs to tenant "demo" ({})"#,
            f("5-number.yaml"),
            f("1-good.yaml")
        ),
    ];
    for line in &expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert_eq!(error.field_errors().len(), 3, "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}
