//! Loading single tenant files: the demo, defaults, and every kind of broken file.

use callgrid_config::{
    load_file, load_str, validate, ConfigError, FieldError, Strategy, Target, TenantFile,
    DEMO_TENANT_YAML,
};

const FILE: &str = "demo.yaml";

/// The demo with `from` replaced by `to` (which must occur exactly once).
fn demo_with(from: &str, to: &str) -> String {
    assert_eq!(
        DEMO_TENANT_YAML.matches(from).count(),
        1,
        "{from:?} must occur once in the demo"
    );
    DEMO_TENANT_YAML.replacen(from, to, 1)
}

/// The field errors of a file that must be invalid.
fn field_errors(yaml: &str) -> Vec<FieldError> {
    match load_str(FILE, yaml) {
        Err(ConfigError::Invalid(errors)) => errors,
        other => panic!("expected field errors, got {other:?}"),
    }
}

/// Asserts that `errors` holds exactly this error, and returns the display line.
fn assert_has(errors: &[FieldError], field: &str, message: &str) -> String {
    let wanted = FieldError::new(FILE, field, message);
    assert!(
        errors.contains(&wanted),
        "expected `{wanted}` among:\n{}",
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    wanted.to_string()
}

#[test]
fn demo_loads() {
    let demo = load_str(FILE, DEMO_TENANT_YAML).expect("the demo tenant is valid");
    assert_eq!(demo.tenant, "demo");
    assert_eq!(demo.agents.len(), 13);
    assert_eq!(demo.queues.len(), 3);
    let sales = demo.queue("200").expect("queue 200");
    assert_eq!(sales.strategy, Strategy::LongestIdle);
    assert_eq!(sales.service_level_seconds, Some(20));
    let strategies: std::collections::HashSet<_> = demo.queues.iter().map(|q| q.strategy).collect();
    assert_eq!(strategies.len(), 3, "three different strategies");
    assert_eq!(demo.groups.len(), 1);
    let menu = demo.menu("100").expect("menu 100");
    assert_eq!(menu.options["1"], Target::Queue("200".into()));
    assert_eq!(menu.options["2"], Target::Queue("201".into()));
    assert_eq!(menu.options["0"], Target::Group("1000".into()));
    let routes: Vec<&str> = demo.numbers.iter().map(|n| n.route.kind()).collect();
    assert_eq!(routes, ["menu", "queue", "group"]);
    validate(FILE, &demo).expect("the demo passes validate as well");
}

#[test]
fn demo_file_on_disk_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/demo.yaml");
    let demo = load_file(&path).expect("demo/demo.yaml loads");
    assert_eq!(demo, load_str(FILE, DEMO_TENANT_YAML).expect("demo"));
}

#[test]
fn omitted_fields_take_their_defaults() {
    let tenant = load_str(
        "min.yaml",
        r#"
tenant: min
name: Minimal
timezone: UTC
agents: [{ id: a, name: A, extension: "10001" }]
queues: [{ id: "200", name: Q, members: [{ agent: a }] }]
numbers: [{ number: "1900", name: N, route: { queue: "200" } }]
"#,
    )
    .expect("a minimal tenant is valid");
    assert_eq!(tenant.defaults, callgrid_config::Defaults::default());
    assert_eq!(tenant.defaults.wrapup_seconds, 10);
    assert_eq!(tenant.defaults.ring_timeout_seconds, 20);
    assert_eq!(tenant.defaults.max_missed_offers, 3);
    let queue = &tenant.queues[0];
    assert_eq!(queue.strategy, Strategy::LongestIdle);
    assert_eq!(
        (
            queue.members[0].tier,
            queue.members[0].penalty,
            queue.members[0].weight
        ),
        (1, 0, 1)
    );
    assert!(queue.when_no_agents.join && !queue.when_no_agents.leave);
    assert_eq!(queue.hold_music, "default");
    assert_eq!(queue.overflow_target(), Target::hangup("queue_timeout"));
    assert_eq!(queue.effective_service_level_seconds(&tenant.defaults), 20);
    assert_eq!(
        tenant.wrapup_seconds(tenant.numbers.first(), Some(queue)),
        10
    );
    assert_eq!(tenant.numbers[0].kind, callgrid_config::NumberKind::Carrier);
    assert!(tenant.reason_codes.is_empty());
}

#[test]
fn wrapup_precedence_is_queue_then_number_then_default() {
    let demo = load_str(FILE, DEMO_TENANT_YAML).expect("demo");
    let sales_line = demo.number("+842873000200").expect("sales line");
    let support = demo.queue("201").expect("support");
    let sales = demo.queue("200").expect("sales");
    assert_eq!(demo.wrapup_seconds(Some(sales_line), Some(support)), 20);
    assert_eq!(demo.wrapup_seconds(Some(sales_line), Some(sales)), 15);
    assert_eq!(demo.wrapup_seconds(None, Some(sales)), 10);
}

#[test]
fn typo_in_a_field_name_is_caught_with_a_suggestion() {
    let errors = field_errors(&demo_with(
        "    strategy: round_robin",
        "    stratgy: round_robin",
    ));
    let line = assert_has(
        &errors,
        "queues[1].stratgy",
        r#"unknown field "stratgy" (did you mean "strategy"?)"#,
    );
    assert_eq!(
        line,
        r#"demo.yaml: queues[1].stratgy: unknown field "stratgy" (did you mean "strategy"?)"#
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn unknown_field_far_from_any_lists_the_allowed_ones() {
    let errors = field_errors(&demo_with("tenant: demo", "tenant: demo\ncolour: blue"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "colour");
    assert!(
        errors[0]
            .message
            .starts_with(r#"unknown field "colour", expected one of: "#),
        "{}",
        errors[0]
    );
    assert!(errors[0].message.contains("timezone"), "{}", errors[0]);
}

#[test]
fn wrong_strategy_name_lists_the_strategies() {
    let errors = field_errors(&demo_with(
        "strategy: longest_idle",
        "strategy: longest_idel",
    ));
    assert_has(
        &errors,
        "queues[0].strategy",
        "unknown value \"longest_idel\", expected one of: ring_all, longest_idle, round_robin, \
         least_talk_time, fewest_calls, linear, random, weighted_random \
         (did you mean \"longest_idle\"?)",
    );
}

#[test]
fn negative_wrapup_is_out_of_range() {
    let errors = field_errors(&demo_with("wrapup_seconds: 20 ", "wrapup_seconds: -5 "));
    assert_has(
        &errors,
        "queues[1].wrapup_seconds",
        "must be at least 0, got -5",
    );
    let errors = field_errors(&demo_with(
        "  wrapup_seconds: 10\n",
        "  wrapup_seconds: 99999\n",
    ));
    assert_has(
        &errors,
        "defaults.wrapup_seconds",
        "must be at most 3600, got 99999",
    );
}

#[test]
fn missing_tenant_id_is_reported() {
    let errors = field_errors(&demo_with("tenant: demo\n", ""));
    assert_has(&errors, "tenant", "missing required field");
}

#[test]
fn malformed_tenant_id_is_reported() {
    let errors = field_errors(&demo_with("tenant: demo\n", "tenant: Demo Corp\n"));
    assert_has(
        &errors,
        "tenant",
        "expected a tenant id: lowercase letters, digits, '_' and '-', starting with a letter \
         or digit, at most 63 characters, got \"Demo Corp\"",
    );
}

#[test]
fn unknown_member_agent_is_reported_with_a_suggestion() {
    let errors = field_errors(&demo_with("- { agent: bob }", "- { agent: bobb }"));
    assert_has(
        &errors,
        "queues[0].members[1].agent",
        r#"unknown agent "bobb" (did you mean "bob"?)"#,
    );
    let errors = field_errors(&demo_with(
        "members: [ngoc, quang, khanh]",
        "members: [ngoc, zed]",
    ));
    assert_has(&errors, "groups[0].members[1]", r#"unknown agent "zed""#);
}

#[test]
fn duplicate_queue_id_and_its_dangling_references_are_all_reported() {
    let errors = field_errors(&demo_with("  - id: \"202\"", "  - id: \"200\""));
    assert_has(
        &errors,
        "queues[2].id",
        r#"duplicate queue id "200" (first used at queues[0])"#,
    );
    // Menu key 9 pointed at 202, which no longer exists.
    assert_has(
        &errors,
        r#"menus[0].options["9"].queue"#,
        r#"unknown queue "202""#,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn other_duplicates_are_reported() {
    let errors = field_errors(&demo_with(
        "  - { id: minh,  name: Minh Duong,   extension: \"10011\"",
        "  - { id: alice,  name: Minh Duong,   extension: \"10011\"",
    ));
    assert!(errors.iter().any(|e| e.field == "agents[10].id"
        && e.message == r#"duplicate agent id "alice" (first used at agents[0])"#));
    let errors = field_errors(&demo_with(
        "number: \"+842873000300\"",
        "number: \"842873000100\"",
    ));
    assert_has(
        &errors,
        "numbers[2].number",
        r#"duplicate number "842873000100" (first used at numbers[0])"#,
    );
    let errors = field_errors(&demo_with("- { agent: bob }", "- { agent: alice }"));
    assert_has(
        &errors,
        "queues[0].members[1].agent",
        r#"agent "alice" is already a member of this queue (members[0])"#,
    );
}

#[test]
fn menu_leading_to_a_menu_is_rejected() {
    let errors = field_errors(&demo_with(
        "\"9\": { queue: \"202\" }",
        "\"9\": { menu: \"100\" }",
    ));
    assert_has(
        &errors,
        r#"menus[0].options["9"]"#,
        "a menu may not lead to another menu (menus are one level only)",
    );
    let errors = field_errors(&demo_with(
        "on_timeout: { group: \"1000\" }",
        "on_timeout: { menu: \"100\" }",
    ));
    assert_has(
        &errors,
        "menus[0].on_timeout",
        "a menu may not lead to another menu (menus are one level only)",
    );
}

#[test]
fn menu_to_menu_built_in_code_is_rejected_by_validate() {
    let mut demo: TenantFile = load_str(FILE, DEMO_TENANT_YAML).expect("demo");
    demo.menus[0]
        .options
        .insert("5".into(), Target::Menu("100".into()));
    let error = validate("admin:demo", &demo).expect_err("menu to menu");
    assert!(
        error
            .to_string()
            .contains(r#"admin:demo: menus[0].options["5"]: a menu may not lead to another menu"#),
        "{error}"
    );
}

#[test]
fn queue_overflowing_to_itself_is_rejected() {
    let errors = field_errors(&demo_with(
        "overflow: { queue: \"201\" }",
        "overflow: { queue: \"202\" }",
    ));
    assert_has(
        &errors,
        "queues[2].overflow.queue",
        "a queue may not overflow to itself",
    );
}

#[test]
fn targets_must_exist() {
    let yaml = demo_with(
        "route: { group: \"1000\" }",
        "route: { extension: \"19999\" }",
    );
    assert_has(
        &field_errors(&yaml),
        "numbers[2].route.extension",
        r#"no agent has extension "19999""#,
    );
    let yaml = demo_with(
        "no_answer: { queue: \"201\" }",
        "no_answer: { group: \"1001\" }",
    );
    assert_has(
        &field_errors(&yaml),
        "groups[0].no_answer.group",
        r#"unknown group "1001""#,
    );
    let yaml = demo_with("route: { menu: \"100\" }", "route: { menu: \"101\" }");
    assert_has(
        &field_errors(&yaml),
        "numbers[0].route.menu",
        r#"unknown menu "101""#,
    );
    let yaml = demo_with("route: { menu: \"100\" }", "route: { agent: nobody }");
    assert_has(
        &field_errors(&yaml),
        "numbers[0].route.agent",
        r#"unknown agent "nobody""#,
    );
}

#[test]
fn a_target_has_exactly_one_key() {
    let errors = field_errors(&demo_with(
        "route: { menu: \"100\" }",
        "route: { menu: \"100\", queue: \"200\" }",
    ));
    assert_has(
        &errors,
        "numbers[0].route",
        "expected a target: exactly one of queue, extension, agent, group, menu or hangup",
    );
    let errors = field_errors(&demo_with(
        "route: { menu: \"100\" }",
        "route: { queu: \"200\" }",
    ));
    assert_has(
        &errors,
        "numbers[0].route.queu",
        r#"unknown field "queu" (did you mean "queue"?)"#,
    );
}

#[test]
fn digits_without_quotes_get_a_hint() {
    let errors = field_errors(&demo_with("extension: \"10001\"", "extension: 10001"));
    assert_has(
        &errors,
        "agents[0].extension",
        r#"expected a string, got 10001 (put it in quotes: "10001")"#,
    );
}

#[test]
fn unquoted_menu_keys_are_accepted_and_bad_keys_rejected() {
    let yaml = demo_with("\"1\": { queue: \"200\" }", "1: { queue: \"200\" }");
    let tenant = load_str(FILE, &yaml).expect("numeric key 1 is the key \"1\"");
    assert_eq!(tenant.menus[0].options["1"], Target::Queue("200".into()));

    let yaml = demo_with("\"1\": { queue: \"200\" }", "\"12\": { queue: \"200\" }");
    assert_has(
        &field_errors(&yaml),
        r#"menus[0].options["12"]"#,
        r#"invalid key "12": expected a keypad key: one of 0-9, * or #"#,
    );
}

#[test]
fn ids_outside_their_ranges_are_rejected() {
    let yaml = demo_with("  - id: \"202\"", "  - id: \"302\"");
    assert_has(
        &field_errors(&yaml),
        "queues[2].id",
        r#"expected a queue id: '2' followed by 2 to 6 digits, such as "200", got "302""#,
    );
    let yaml = demo_with("  - id: \"1000\"", "  - id: \"999\"");
    let errors = field_errors(&yaml);
    assert!(
        errors.iter().any(|e| e.field == "groups[0].id"),
        "{errors:?}"
    );
}

#[test]
fn dialled_numbers_may_not_collide() {
    let yaml = demo_with("extension: \"10011\"", "extension: \"20001\"")
        .replace("  - id: \"202\"", "  - id: \"20001\"")
        .replace("queue: \"202\"", "queue: \"20001\"");
    assert_has(
        &field_errors(&yaml),
        "queues[2].id",
        r#"queue id "20001" is also the extension of agent "minh" (agents[10]); a dialled number must reach one thing"#,
    );
}

#[test]
fn wrong_types_name_the_expected_type() {
    let errors = field_errors(&demo_with(
        "callback: true\n    hold_music",
        "callback: yes\n    hold_music",
    ));
    assert_has(
        &errors,
        "queues[0].callback",
        r#"expected true or false, got "yes""#,
    );
    let errors = field_errors(&demo_with("agents:\n", "agents:\n  - just a string\n"));
    assert_has(
        &errors,
        "agents[0]",
        r#"expected a mapping, got "just a string""#,
    );
}

#[test]
fn announce_position_is_off_or_at_least_15_seconds() {
    let errors = field_errors(&demo_with(
        "announce_position_seconds: 30",
        "announce_position_seconds: 5",
    ));
    assert_has(
        &errors,
        "queues[0].announce_position_seconds",
        "expected 0 (off) or a period from 15 to 3600 seconds",
    );
}

#[test]
fn passwords_never_appear_in_errors() {
    let errors = field_errors(&demo_with(
        "sip_password: bob-demo-secret",
        "sip_password: short",
    ));
    assert_has(
        &errors,
        "agents[1].sip_password",
        "must be at least 8 characters long",
    );
    let errors = field_errors(&demo_with(
        "sip_password: bob-demo-secret",
        "sip_password: 12345678",
    ));
    assert_has(
        &errors,
        "agents[1].sip_password",
        "expected a string, got a hidden value (put it in quotes)",
    );
    let demo = load_str(FILE, DEMO_TENANT_YAML).expect("demo");
    assert!(!format!("{demo:?}").contains("alice-demo-secret"));
    assert_eq!(
        demo.agents[0].sip_password.as_ref().map(|p| p.expose()),
        Some("alice-demo-secret")
    );
}

#[test]
fn all_errors_are_reported_at_once_one_per_line() {
    let yaml = demo_with("strategy: longest_idle", "strategy: fastest")
        .replace("wrapup_seconds: 20 ", "wrapup_seconds: -1 ")
        .replace("    stratgy", "    strategy")
        .replace("name: Bob Tran,", "nme: Bob Tran,");
    let error = load_str(FILE, &yaml).expect_err("three problems");
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        r#"demo.yaml: agents[1].name: missing required field"#
    );
    assert_eq!(
        lines[1],
        r#"demo.yaml: agents[1].nme: unknown field "nme" (did you mean "name"?)"#
    );
    assert!(lines[2].starts_with(r#"demo.yaml: queues[0].strategy: unknown value "fastest""#));
    assert_eq!(
        lines[3],
        "demo.yaml: queues[1].wrapup_seconds: must be at least 0, got -1"
    );
    for line in lines {
        assert!(!line.ends_with('.'), "{line}");
    }
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let yaml = demo_with("    name: Support\n", "    name: [Support\n");
    let line = yaml
        .lines()
        .position(|l| l.contains("[Support"))
        .expect("line")
        + 1;
    match load_str(FILE, &yaml) {
        Err(ConfigError::Yaml {
            file,
            line: l,
            message,
            ..
        }) => {
            assert_eq!(file, FILE);
            // Found at the next line; the message points back at the bracket.
            assert_eq!(l, line + 1);
            assert_eq!(
                message,
                format!(
                    "did not find expected ',' or ']', while parsing a flow sequence at line {line} column 11"
                )
            );
        }
        other => panic!("expected a yaml error, got {other:?}"),
    }

    let error = load_str("bad.yaml", "tenant: a\nname: [x\n  - y: :\n").expect_err("bad yaml");
    let text = error.to_string();
    assert!(text.starts_with("bad.yaml: line "), "{text}");

    match load_str("tab.yaml", "tenant: a\n\tname: x\n") {
        Err(ConfigError::Yaml { line, column, .. }) => assert_eq!((line, column), (2, 1)),
        other => panic!("expected a yaml error, got {other:?}"),
    }
}

#[test]
fn duplicate_yaml_keys_are_an_error() {
    let error = load_str(
        FILE,
        &demo_with("name: Demo Call Centre\n", "name: A\nname: B\n"),
    )
    .expect_err("duplicate key");
    assert!(error.to_string().contains("duplicate"), "{error}");
}

#[test]
fn empty_and_non_mapping_documents_are_reported() {
    let errors = field_errors("");
    assert_eq!(
        errors,
        [FieldError::new(
            FILE,
            "(document)",
            "expected a mapping, got nothing"
        )]
    );
    let errors = field_errors("- a\n- b\n");
    assert_eq!(errors[0].message, "expected a mapping, got a list");
}

#[test]
fn yaml_features_json_lacks_are_handled() {
    // Merge keys work.
    let yaml = r#"
tenant: merge
name: Merge
timezone: UTC
agents:
  - &base { id: a, name: A, extension: "10001" }
  - { <<: *base, id: b, name: B }
"#;
    let tenant = load_str("m.yaml", yaml).expect("merge keys");
    assert_eq!(tenant.agents[1].extension, "10001");
    // Tags and NaN are reported, not panicked on.
    let errors = field_errors("tenant: !custom x\nname: .nan\ntimezone: UTC\n");
    assert_has(
        &errors,
        "tenant",
        "yaml tags such as !custom are not supported",
    );
    assert_has(&errors, "name", "expected a finite number, got .nan");
    // Whole floats are whole numbers.
    let tenant = load_str(
        "f.yaml",
        "tenant: f\nname: F\ntimezone: UTC\ndefaults: { wrapup_seconds: 12.0 }\n",
    )
    .expect("12.0 is 12");
    assert_eq!(tenant.defaults.wrapup_seconds, 12);
}

#[test]
fn io_errors_name_the_file() {
    let error = load_file(std::path::Path::new("/nonexistent/acme.yaml")).expect_err("missing");
    assert!(matches!(error, ConfigError::Io { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/acme.yaml: cannot read: "),
        "{error}"
    );
}

/// Bad input of every shape gives an error, never a panic.
#[test]
fn no_input_panics() {
    let mut inputs: Vec<String> = vec![
        "~".into(),
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".into(),
        "a: &a [*a]".into(),
        "a: *undefined".into(),
        "? [a, b]\n: c\n".into(),
        "{ null: 1, ~: 2 }".into(),
        "--- a\n--- b\n".into(),
        "\u{feff}tenant: bom".into(),
        "tenant: x\nagents: [{ id: a, name: a, extension: '1', skills: { x: 99999999999999999999999 } }]".into(),
        "tenant: x\nqueues: [{ id: '200', name: q, members: [{ agent: a, tier: -1e300 }] }]".into(),
        "a: &x [1,2,3,4,5,6,7,8,9]\nb: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]\nc: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y]\nd: [*z,*z,*z,*z,*z,*z,*z,*z,*z]".into(),
        "[".repeat(10_000),
        "a:\n".repeat(1000),
        "\0\u{1}\u{2}".into(),
    ];
    // Every prefix of the demo, cut at line ends.
    let mut cut = 0;
    for line in DEMO_TENANT_YAML.split_inclusive('\n') {
        cut += line.len();
        inputs.push(DEMO_TENANT_YAML[..cut].to_owned());
        let mut half = cut.saturating_sub(line.len() / 2);
        while !DEMO_TENANT_YAML.is_char_boundary(half) {
            half -= 1;
        }
        inputs.push(DEMO_TENANT_YAML[..half].to_owned());
    }
    for input in &inputs {
        if let Err(error) = load_str("fuzz.yaml", input) {
            assert!(!error.to_string().is_empty());
        }
    }
}

#[test]
fn trunks_and_limits_load() {
    let demo = load_str(FILE, DEMO_TENANT_YAML).expect("valid");
    assert_eq!(demo.limits.max_concurrent_calls, Some(100));
    let trunk = &demo.trunks[0];
    assert_eq!(trunk.id, "local");
    assert_eq!(
        trunk.socket_addr(),
        Some("127.0.0.1:5080".parse().expect("addr"))
    );
    assert_eq!(trunk.max_concurrent_calls, Some(60));
    let number = demo.number("+842873000300").expect("number");
    assert_eq!(number.max_concurrent_calls, Some(10));
    let setup = callgrid_config::to_setup(&demo, 1);
    assert_eq!(setup.max_calls, Some(100));
    assert_eq!(setup.numbers["+842873000300"].max_calls, Some(10));
}

#[test]
fn a_trunk_without_a_port_uses_5060() {
    let yaml = demo_with(r#"address: "127.0.0.1:5080""#, r#"address: "192.0.2.7""#);
    let file = load_str(FILE, &yaml).expect("valid");
    assert_eq!(
        file.trunks[0].socket_addr(),
        Some("192.0.2.7:5060".parse().expect("addr"))
    );
}

#[test]
fn broken_trunks_name_the_field() {
    // digits and dots only: meant as an IPv4 address, and not one
    let bad_address = demo_with(
        r#"address: "127.0.0.1:5080""#,
        r#"address: "300.1.2.3:5080""#,
    );
    assert_has(
        &field_errors(&bad_address),
        "trunks[0].address",
        r#""300.1.2.3:5080": "300.1.2.3" is not an IPv4 address"#,
    );

    let out_of_range = demo_with(
        r#"address: "127.0.0.1:5080""#,
        r#"address: "127.0.0.1:99999""#,
    );
    let errors = field_errors(&out_of_range);
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("trunks[0].address")),
        "{errors:?}"
    );

    let duplicate = demo_with(
        "max_concurrent_calls: 60 }",
        "max_concurrent_calls: 60 }\n  - { id: other, name: Other, address: \"127.0.0.1:5080\" }",
    );
    let errors = field_errors(&duplicate);
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("trunks[1].address")
                && e.to_string().contains("trunks[0]")),
        "{errors:?}"
    );

    let user_without_password = demo_with(
        "max_concurrent_calls: 60 }",
        "max_concurrent_calls: 60, username: acct1 }",
    );
    let errors = field_errors(&user_without_password);
    assert!(
        errors.iter().any(|e| e.to_string().contains("trunks[0]")),
        "{errors:?}"
    );

    let zero_limit = demo_with(
        "limits: { max_concurrent_calls: 100 }",
        "limits: { max_concurrent_calls: 0 }",
    );
    let errors = field_errors(&zero_limit);
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("limits.max_concurrent_calls")),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Outbound calling (issue 18)

/// A small tenant: queue 200, group 1000, trunks `cheap` (an address) and `dear` (a host
/// name), then `rest` (YAML at the top level, e.g. `numbers:` and `outbound:`).
fn small(rest: &str) -> String {
    format!(
        r#"
tenant: small
name: Small
timezone: Asia/Ho_Chi_Minh
agents: [{{ id: a, name: A, extension: "10001" }}, {{ id: b, name: B, extension: "10002" }}]
queues: [{{ id: "200", name: Q, members: [{{ agent: a }}] }}]
groups: [{{ id: "1000", name: G, members: [b] }}]
trunks:
  - {{ id: cheap, name: Cheap, address: "203.0.113.1", cost_per_minute: 0.5 }}
  - {{ id: dear, name: Dear, address: "sip.carrier.example:5070", cost_per_minute: 1.25 }}
{rest}"#
    )
}

/// `small` with these numbers (YAML flow mappings without route, name or braces: each gets
/// a name and a route to queue 200).
fn small_numbers(numbers: &[&str]) -> String {
    let mut rest = String::from("numbers:\n");
    for (i, n) in numbers.iter().enumerate() {
        rest.push_str(&format!(
            "  - {{ name: N{i}, route: {{ queue: \"200\" }}, {n} }}\n"
        ));
    }
    small(&rest)
}

fn e164(n: &str) -> callgrid_numbers::E164 {
    n.parse().expect("e164")
}

fn carrier(id: &str) -> callgrid_numbers::CarrierId {
    callgrid_numbers::CarrierId::new(id).expect("carrier id")
}

#[test]
fn the_demo_calls_out_adaptively() {
    use callgrid_domain::AgentId;
    use callgrid_numbers::{ChoiceReason, DestinationClass, Dialled, Permit};

    let demo = load_str(FILE, DEMO_TENANT_YAML).expect("demo");
    assert_eq!(demo.region, "VN");
    assert_eq!(demo.emergency_trunk(), Some("local"));
    let setup = callgrid_config::to_setup(&demo, 1);
    let out = &setup.outbound;
    assert_eq!(out.normalizer.region(), "VN");
    assert_eq!(out.policy.emergency_trunk.as_deref(), Some("local"));
    assert!(out.policy.allow.contains(&DestinationClass::Mobile));
    assert!(!out.policy.allow.contains(&DestinationClass::Premium));
    // three numbers (the virtual one too: it never calls out), the main hotline the fallback
    let numbers: Vec<&str> = out
        .numbers
        .numbers()
        .iter()
        .map(|n| n.number.as_str())
        .collect();
    assert_eq!(numbers, ["+842873000100", "+842873000200", "+842873000300"]);
    assert_eq!(
        out.numbers.fallback().map(|n| n.number.as_str()),
        Some("+842873000100")
    );
    let main = &out.numbers.numbers()[0];
    let sales = &out.numbers.numbers()[1];
    assert_eq!(main.carrier, Some(carrier("viettel")));
    assert_eq!(sales.carrier, Some(carrier("vinaphone")));
    assert_eq!(
        sales.allowed_groups.as_deref(),
        Some(&["200".to_owned(), "1000".to_owned()][..])
    );
    // sales lists its trunk (priority 0); main uses every trunk, by cost
    assert_eq!(sales.trunks[0].priority, Some(0));
    assert_eq!(main.trunks[0].priority, None);
    assert_eq!(main.trunks[0].cost_per_minute_milli, Some(690_000));
    let local = out.trunk("local").expect("local trunk");
    assert_eq!(local.keepalive_ms, 0);
    assert_eq!(local.cost_per_minute_milli, Some(690_000));
    assert!(local.register.is_none() && local.p_asserted_identity);
    // recording, backup numbers, blocklist
    assert!(out.records(&e164("+842873000200")));
    assert!(!out.records(&e164("+842873000100")));
    assert_eq!(out.backup_of("+842873000100"), Some(&e164("+84903456789")));
    assert!(out.blocklist.blocks(&e164("+84987654321")).is_some());
    let premium = out.normalizer.dialled("1900 1234").expect("premium");
    assert_eq!(
        out.blocklist
            .blocks_dialled(&premium)
            .map(|e| e.written.as_str()),
        Some("+841900*")
    );

    // alice (sales) calls a Vinaphone mobile: the Vinaphone hotline; chi (support) may not
    // use it, so the fallback; everyone calls a Viettel mobile with the Viettel hotline
    let choose = |agent: &str, callee: &str| {
        let dialled = out.normalizer.dialled(callee).expect("callee");
        let class = out.normalizer.classify(&dialled);
        assert_eq!(out.policy.check(&dialled, class), Ok(Permit::Allowed));
        let Dialled::Public(number) = &dialled else {
            panic!("{callee} is public")
        };
        let groups = setup.outbound_groups_of(&AgentId::new(agent));
        let choice = out
            .numbers
            .choose(&groups, out.carriers.carrier_of(number), None)
            .expect("a number");
        (choice.number.number.to_string(), choice.reason)
    };
    let vina_mobile = "0912 000 111";
    let viettel_mobile = "0961 000 222";
    assert_eq!(
        choose("alice", vina_mobile),
        ("+842873000200".into(), ChoiceReason::SameCarrier)
    );
    assert_eq!(
        choose("chi", vina_mobile),
        ("+842873000100".into(), ChoiceReason::Fallback)
    );
    assert_eq!(
        choose("chi", viettel_mobile),
        ("+842873000100".into(), ChoiceReason::SameCarrier)
    );
    // *2* forces the sales hotline; 801 the main one
    let rule = out.normalizer.internal_rule();
    let forced = out
        .numbers
        .parse_dialled("*2*0912000111", rule)
        .expect("forced");
    assert_eq!(
        forced.forced.map(|n| n.number.as_str()),
        Some("+842873000200")
    );
    let forced = out
        .numbers
        .parse_dialled("8010912000111", rule)
        .expect("forced");
    assert_eq!(
        forced.forced.map(|n| n.number.as_str()),
        Some("+842873000100")
    );
    assert_eq!(forced.destination, "0912000111");
}

#[test]
fn outbound_defaults_apply() {
    let yaml = small_numbers(&[
        r#"number: "02873000100""#,
        r#"number: "1900", kind: virtual"#,
    ]);
    let t = load_str("min.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.region, "VN");
    assert_eq!(t.outbound, callgrid_config::Outbound::default());
    assert_eq!(
        t.outbound.classes,
        callgrid_numbers::ClassPolicy::default()
            .allow
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(t.blocklist.is_empty());
    let n = &t.numbers[0];
    assert_eq!(n.outbound, None);
    assert!(n.outbound_wanted() && !n.record_outbound);
    let trunk = &t.trunks[0];
    assert_eq!(trunk.keepalive_seconds, 30);
    assert_eq!(trunk.caller_id, callgrid_config::CallerId::default());
    assert_eq!(trunk.caller_id.from, callgrid_config::CallerIdFrom::Number);
    assert!(trunk.caller_id.p_asserted_identity);
    assert!(trunk.register.is_none());
    // no emergency trunk named: the first trunk
    assert_eq!(t.emergency_trunk(), Some("cheap"));

    let setup = callgrid_config::to_setup(&t, 1);
    let out = &setup.outbound;
    assert_eq!(
        out.policy,
        callgrid_numbers::ClassPolicy::new(
            callgrid_numbers::ClassPolicy::default().allow,
            Some("cheap".to_owned()),
        )
    );
    // the national form is read with the region; "1900" is no public number: inbound only
    let numbers = out.numbers.numbers();
    assert_eq!(numbers.len(), 1);
    assert_eq!(numbers[0].number.as_str(), "+842873000100");
    assert!(numbers[0].outbound && numbers[0].carrier.is_none());
    assert!(out.numbers.fallback().is_none());
    // every trunk, cheapest first, without priority
    let order: Vec<&str> = numbers[0]
        .trunk_order()
        .iter()
        .map(|t| t.trunk.as_str())
        .collect();
    assert_eq!(order, ["cheap", "dear"]);
    assert_eq!(numbers[0].trunks[0].cost_per_minute_milli, Some(500));
    assert_eq!(numbers[0].trunks[1].cost_per_minute_milli, Some(1250));
    assert!(numbers[0].trunks.iter().all(|t| t.priority.is_none()));
    let cheap = out.trunk("cheap").expect("cheap");
    assert_eq!(cheap.keepalive_ms, 30_000);
    assert_eq!(cheap.caller_id_from, callgrid_domain::CallerIdFrom::Number);
    assert!(out.recorded.is_empty() && out.backup_numbers.is_empty());

    // a tenant without trunks has no emergency trunk
    let bare = load_str(
        "bare.yaml",
        "tenant: bare\nname: Bare\ntimezone: UTC\nregion: US\n",
    )
    .expect("bare");
    assert_eq!(bare.emergency_trunk(), None);
    let setup = callgrid_config::to_setup(&bare, 1);
    assert_eq!(setup.outbound.normalizer.region(), "US");
    assert_eq!(setup.outbound.policy.emergency_trunk, None);
}

#[test]
fn a_numbers_trunks_are_tried_in_the_order_listed() {
    let yaml = small_numbers(&[r#"number: "+842873000100", trunks: [dear, cheap]"#]);
    let t = load_str(FILE, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let setup = callgrid_config::to_setup(&t, 1);
    let n = &setup.outbound.numbers.numbers()[0];
    let order: Vec<(&str, Option<u32>)> = n
        .trunk_order()
        .iter()
        .map(|t| (t.trunk.as_str(), t.priority))
        .collect();
    assert_eq!(order, [("dear", Some(0)), ("cheap", Some(1))]);
}

#[test]
fn backup_numbers_are_forwarded_on_the_numbers_trunks() {
    let yaml = small_numbers(&[
        r#"number: "02873000100", trunks: [dear, cheap], backup_number: "0903 456 789""#,
        r#"number: "1900", backup_number: "+84 90 345 6780""#,
        r#"number: "+842873000300""#,
    ]);
    let t = load_str(FILE, &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(!t.out_of_service);
    let routes = callgrid_config::backup_routes(&t);
    let route = |number: &str, destination: &str, presented: &str, trunks: &[&str]| {
        callgrid_config::BackupRoute {
            number: number.into(),
            destination: destination.into(),
            presented: presented.into(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
        }
    };
    assert_eq!(
        routes,
        [
            // the number's trunks as listed; the number presented in E.164
            route(
                "02873000100",
                "+84903456789",
                "+842873000100",
                &["dear", "cheap"]
            ),
            // an inbound-only number: every trunk, cheapest first; presented as written
            route("1900", "+84903456780", "1900", &["cheap", "dear"]),
        ]
    );
    let out = load_str(FILE, &format!("{yaml}out_of_service: true\n")).expect("out of service");
    assert!(out.out_of_service);
}

#[test]
fn trunks_may_register_and_name_their_caller_id() {
    let yaml = small("").replace(
        r#"cost_per_minute: 1.25 }"#,
        r#"cost_per_minute: 1.25, username: acct, password: acct-secret-1, register: { registrar: "sip:Reg.Carrier.example" }, caller_id: { from: account, p_asserted_identity: false }, keepalive_seconds: 0 }"#,
    );
    let t = load_str(FILE, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let register = t.trunks[1].register.as_ref().expect("register");
    assert_eq!(register.expires_seconds, 3600);
    let setup = callgrid_config::to_setup(&t, 1);
    let dear = setup.outbound.trunk("dear").expect("dear");
    let register = dear.register.as_ref().expect("register");
    assert_eq!(&*register.registrar, "reg.carrier.example:5060");
    assert_eq!(register.expires_s, 3600);
    assert_eq!(dear.caller_id_from, callgrid_domain::CallerIdFrom::Account);
    assert!(!dear.p_asserted_identity);
    assert_eq!(dear.keepalive_ms, 0);
    // without a registrar: the trunk's address
    let yaml = small("").replace(
        r#"cost_per_minute: 1.25 }"#,
        r#"username: acct, password: acct-secret-1, register: { expires_seconds: 600 } }"#,
    );
    let t = load_str(FILE, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let setup = callgrid_config::to_setup(&t, 1);
    let register = setup
        .outbound
        .trunk("dear")
        .and_then(|d| d.register.clone());
    assert_eq!(
        register.map(|r| (r.registrar.to_string(), r.expires_s)),
        Some(("sip.carrier.example:5070".to_owned(), 600))
    );
}

#[test]
fn a_trunk_may_be_a_host_name_but_not_an_ip_look_alike() {
    let t = load_str(FILE, &small("")).unwrap_or_else(|e| panic!("{e}"));
    let dear = &t.trunks[1];
    assert_eq!(dear.socket_addr(), None, "names are not resolved");
    let hp = dear.host_port().expect("host and port");
    assert_eq!(
        (hp.host.as_str(), hp.port, hp.ip),
        ("sip.carrier.example", 5070, None)
    );
    assert_eq!(
        t.trunks[0].host_port().map(|h| h.to_string()),
        Some("203.0.113.1:5060".to_owned())
    );
    for (address, field, message) in [
        (
            "1.2.3",
            "trunks[0].address",
            r#""1.2.3": "1.2.3" is not an IPv4 address"#,
        ),
        (
            "sip..example",
            "trunks[0].address",
            r#""sip..example": "sip..example" is neither an IPv4 address nor a host name"#,
        ),
        (
            "-sip.example",
            "trunks[0].address",
            r#"expected an IPv4 address or a host name with an optional port, such as "203.0.113.10:5060" or "sip.carrier.example", got "-sip.example""#,
        ),
        (
            "sip.example:70000",
            "trunks[0].address",
            r#""sip.example:70000": the port must be from 1 to 65535, got "70000""#,
        ),
        (
            "sip.example:0",
            "trunks[0].address",
            r#""sip.example:0": port 0 is not a carrier's port"#,
        ),
        // names compare without case; the later trunk is the duplicate
        (
            "SIP.Carrier.Example:5070",
            "trunks[2].address",
            "address sip.carrier.example:5070 is already the address of trunks[0]",
        ),
    ] {
        let yaml = small("").replace(
            "trunks:\n",
            &format!("trunks:\n  - {{ id: third, name: Third, address: \"{address}\" }}\n"),
        );
        assert_has(&field_errors(&yaml), field, message);
    }
}

/// Each case: the file, then the field and message of one of its errors.
fn assert_cases(cases: &[(String, &str, &str)]) {
    for (yaml, field, message) in cases {
        assert_has(&field_errors(yaml), field, message);
    }
}

#[test]
fn broken_tenant_outbound_settings_name_the_field() {
    assert_cases(&[
        (
            small("region: vn\n"),
            "region",
            r#"expected an ISO 3166 country code of two capital letters, such as "VN", got "vn""#,
        ),
        (
            small("region: XX\n"),
            "region",
            r#"region "XX" is not a country code with numbering metadata (e.g. "VN")"#,
        ),
        (
            small("outbound: { classes: [mobile, premium_rate] }\n"),
            "outbound.classes[1]",
            r#"unknown value "premium_rate", expected one of: internal, national, mobile, toll_free, premium, emergency, international"#,
        ),
        (
            small("outbound: { classes: [mobile, mobile] }\n"),
            "outbound.classes",
            r#"lists "mobile" more than once"#,
        ),
        (
            small("outbound: { emergency_trunk: chep }\n"),
            "outbound.emergency_trunk",
            r#"unknown trunk "chep" (did you mean "cheap"?)"#,
        ),
        (
            small("outbound: { fallbck_number: \"+842873000100\" }\n"),
            "outbound.fallbck_number",
            r#"unknown field "fallbck_number" (did you mean "fallback_number"?)"#,
        ),
        (
            small("outbound: { fallback_number: \"+842873000999\" }\n"),
            "outbound.fallback_number",
            r#""+842873000999" is not one of the tenant's numbers"#,
        ),
        (
            small("outbound: { fallback_number: \"0412345678\" }\n"),
            "outbound.fallback_number",
            r#"invalid number "0412345678": not a number in use in VN (+84)"#,
        ),
        (
            small(
                "numbers: [{ number: \"+842873000300\", name: V, kind: virtual, route: { queue: \"200\" } }]\noutbound: { fallback_number: \"028 7300 0300\" }\n",
            ),
            "outbound.fallback_number",
            "+842873000300 is virtual and cannot call out",
        ),
        (
            small("blocklist: [\"0987654321\", \"113\"]\n"),
            "blocklist[1]",
            r#"cannot block "113": emergency numbers are never blocked"#,
        ),
        (
            small("blocklist: [\"09*\"]\n"),
            "blocklist[0]",
            r#"cannot block "09*": a pattern is written in international form, starting with +"#,
        ),
        (
            small("blocklist: [\"call me\"]\n"),
            "blocklist[0]",
            r#"cannot block "call me": unexpected character 'c'"#,
        ),
        (
            small("blocklist: [\"\"]\n"),
            "blocklist[0]",
            "must not be empty",
        ),
    ]);
}

#[test]
fn broken_number_outbound_settings_name_the_field() {
    let n = |numbers: &[&str]| small_numbers(numbers);
    assert_cases(&[
        (
            n(&[r#"number: "+842873000300", kind: virtual, outbound: true"#]),
            "numbers[0].outbound",
            "a virtual number cannot call out (N1): leave this out, or make the number kind: carrier",
        ),
        (
            n(&[r#"number: "+842873000300", kind: virtual, record_outbound: true"#]),
            "numbers[0].record_outbound",
            "a virtual number cannot call out (N1): leave this out, or make the number kind: carrier",
        ),
        (
            n(&[r#"number: "+15550000200", short_code: "1""#]),
            "numbers[0].short_code",
            r#""+15550000200" cannot call out: it is not a valid public number in VN (not a number in use in country code +1)"#,
        ),
        (
            n(&[r#"number: "+842873000100", carrier: viettell"#]),
            "numbers[0].carrier",
            r#"unknown carrier "viettell", expected one of: gmobile, itelecom, mobifone, reddi, vietnamobile, viettel, vinaphone (did you mean "viettel"?)"#,
        ),
        (
            n(&[r#"number: "+842873000100", callee_carriers: [viettel, vnpt]"#]),
            "numbers[0].callee_carriers[1]",
            r#"unknown carrier "vnpt", expected one of: gmobile, itelecom, mobifone, reddi, vietnamobile, viettel, vinaphone"#,
        ),
        (
            n(&[r#"number: "+842873000100", callee_carriers: []"#]),
            "numbers[0].callee_carriers",
            "an empty list allows no callee; leave callee_carriers out to call every carrier",
        ),
        (
            n(&[r#"number: "+842873000100", outbound_groups: ["1000", "299"]"#]),
            "numbers[0].outbound_groups[1]",
            r#"unknown queue or group "299""#,
        ),
        (
            n(&[r#"number: "+842873000100", outbound_groups: []"#]),
            "numbers[0].outbound_groups",
            "an empty list allows no agent; leave outbound_groups out to allow every agent",
        ),
        (
            n(&[r#"number: "+842873000100", short_code: "1234567""#]),
            "numbers[0].short_code",
            r#"expected a short code of 1 to 6 digits, such as "1", got "1234567""#,
        ),
        (
            n(&[
                r#"number: "+842873000100", short_code: "1""#,
                r#"number: "+842873000200", short_code: "1""#,
            ]),
            "numbers[1].short_code",
            "1 is numbers[0]'s short code already",
        ),
        (
            n(&[
                r#"number: "+842873000100", short_prefix: "801""#,
                r#"number: "+842873000200", short_prefix: "80""#,
            ]),
            "numbers[1].short_prefix",
            "80 and numbers[0]'s 801 cannot be told apart",
        ),
        (
            n(&[r#"number: "+842873000100", short_prefix: "090""#]),
            "numbers[0].short_prefix",
            "090 starts with 0, as destinations do (0: national numbers, 1: service and emergency numbers)",
        ),
        // indexes are the file's, also when a number before does not call out
        (
            n(&[
                r#"number: "1900""#,
                r#"number: "+842873000100", short_prefix: "801""#,
                r#"number: "+842873000200", short_prefix: "8012""#,
            ]),
            "numbers[2].short_prefix",
            "8012 and numbers[1]'s 801 cannot be told apart",
        ),
        (
            n(&[r#"number: "+842873000100", trunks: [cheap, remote]"#]),
            "numbers[0].trunks[1]",
            r#"unknown trunk "remote""#,
        ),
        (
            n(&[r#"number: "+842873000100", trunks: []"#]),
            "numbers[0].trunks",
            "an empty list leaves the number no trunk; leave trunks out to use every trunk, or set outbound: false",
        ),
        (
            n(&[r#"number: "+842873000100", backup_number: "0903 4567""#]),
            "numbers[0].backup_number",
            r#"invalid number "0903 4567": not a number in use in VN (+84)"#,
        ),
        (
            n(&[
                r#"number: "+842873000100", backup_number: "028 7300 0200""#,
                r#"number: "+842873000200""#,
            ]),
            "numbers[0].backup_number",
            r#""028 7300 0200" is the tenant's own numbers[1], which the platform serves too; a backup number is elsewhere (e.g. a supervisor's mobile)"#,
        ),
        // one number written twice, in two forms
        (
            n(&[r#"number: "+842873000100""#, r#"number: "02873000100""#]),
            "numbers[1].number",
            "+842873000100 is listed already, as numbers[0]",
        ),
    ]);
    // a tenant without trunks: a number that must call out cannot
    let no_trunks = "tenant: t\nname: T\ntimezone: UTC\nnumbers: [{ number: \"+842873000100\", name: N, outbound: true, route: { hangup: { cause: closed } } }]\n";
    assert_has(
        &field_errors(no_trunks),
        "numbers[0].outbound",
        "the tenant has no trunk to call out on",
    );
}

#[test]
fn broken_trunk_outbound_settings_name_the_field() {
    let dear = |fields: &str| {
        small("").replace(
            "cost_per_minute: 1.25 }",
            &format!("cost_per_minute: 1.25, {fields} }}"),
        )
    };
    assert_cases(&[
        (
            dear("register: {}"),
            "trunks[1].register",
            "registering needs the trunk's account: give username and password",
        ),
        (
            dear("username: acct, password: acct-secret-1, register: { registrar: \"sips:reg.example\" }"),
            "trunks[1].register.registrar",
            r#""sips:reg.example": sips needs TLS, and trunks use udp or tcp"#,
        ),
        (
            dear("username: acct, password: acct-secret-1, register: { registrar: \"reg.example:0\" }"),
            "trunks[1].register.registrar",
            r#""reg.example:0": port 0 is not a carrier's port"#,
        ),
        (
            dear("username: acct, password: acct-secret-1, register: { expires_seconds: 30 }"),
            "trunks[1].register.expires_seconds",
            "must be at least 60, got 30",
        ),
        (
            small("").replace("cost_per_minute: 1.25", "cost_per_minute: 0.0005"),
            "trunks[1].cost_per_minute",
            "expected a price with at most three decimals (thousandths of the currency unit), got 0.0005",
        ),
        (
            small("").replace("cost_per_minute: 1.25", "cost_per_minute: -1"),
            "trunks[1].cost_per_minute",
            "must be at least 0, got -1",
        ),
        (
            dear("caller_id: { from: account }"),
            "trunks[1].caller_id.from",
            "account puts the trunk's username in From, and this trunk has none",
        ),
        (
            dear("caller_id: { from: header }"),
            "trunks[1].caller_id.from",
            r#"unknown value "header", expected one of: number, account"#,
        ),
        (
            dear("keepalive_seconds: 3601"),
            "trunks[1].keepalive_seconds",
            "must be at most 3600, got 3601",
        ),
    ]);
}

#[test]
fn numbers_that_are_not_public_numbers_take_inbound_calls_only() {
    // the SIPp tests' tenant: +1 555 numbers are not in use, so they answer calls only
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../callgrid/tests/sip/siptest.yaml");
    let sip = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(sip.numbers.iter().all(|n| n.outbound.is_none()));
    let setup = callgrid_config::to_setup(&sip, 1);
    assert!(setup.outbound.numbers.numbers().is_empty());
    assert_eq!(setup.numbers.len(), sip.numbers.len());
    assert_eq!(
        setup.outbound.policy.emergency_trunk.as_deref(),
        Some("local")
    );
    // the same numbers with a region where they are not numbers either, and `outbound: false`
    // (which is no outbound setting) on one
    let yaml = small_numbers(&[
        r#"number: "+15550000200", outbound: false, backup_number: "+84903456789""#,
    ]);
    let t = load_str(FILE, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let setup = callgrid_config::to_setup(&t, 1);
    assert!(setup.outbound.numbers.numbers().is_empty());
    // the backup number of an inbound-only number is kept
    assert_eq!(
        setup.outbound.backup_of("+15550000200"),
        Some(&e164("+84903456789"))
    );
}
