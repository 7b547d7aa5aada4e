//! The embedded JSON Schema, YAML → JSON conversion, and schema errors turned into
//! [`FieldError`]s with readable paths and messages.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use crate::error::FieldError;
use crate::TENANT_SCHEMA_JSON;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `queues[2].strategy` or `menus[0].options["1"]`.
pub(crate) fn render_path(path: &[Seg]) -> String {
    if path.is_empty() {
        return FieldError::DOCUMENT.to_owned();
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Seg::Key(key) if is_identifier(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Key(key) => {
                out.push('[');
                out.push_str(&quote(key));
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A string in double quotes, JSON-escaped.
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// The schema, parsed once.
pub(crate) fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(TENANT_SCHEMA_JSON)
            .expect("schemas/tenant.schema.json is valid JSON (checked by the crate's tests)")
    })
}

/// The validator, compiled once.
fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(schema())
            .expect("schemas/tenant.schema.json is a valid schema (checked by the crate's tests)")
    })
}

// ---------------------------------------------------------------------------------------
// YAML -> JSON

/// Converts a parsed YAML document to JSON. YAML allows what JSON does not (non-string
/// keys, tags, NaN); keys that are numbers or booleans become strings (so `1:` works as a
/// menu key), whole floats become integers, anything else is reported.
pub(crate) fn yaml_to_json(
    file: &str,
    yaml: serde_yaml::Value,
    errors: &mut Vec<FieldError>,
) -> Value {
    let mut path = Vec::new();
    convert(file, yaml, &mut path, errors)
}

fn convert(
    file: &str,
    yaml: serde_yaml::Value,
    path: &mut Vec<Seg>,
    errors: &mut Vec<FieldError>,
) -> Value {
    use serde_yaml::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
                    // Exactly representable: 10.0 means 10.
                    Value::from(f as i64)
                } else if let Some(number) = serde_json::Number::from_f64(f) {
                    Value::Number(number)
                } else {
                    errors.push(FieldError::new(
                        file,
                        render_path(path),
                        format!("expected a finite number, got {n}"),
                    ));
                    Value::Null
                }
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(Seg::Index(i));
                    let value = convert(file, item, path, errors);
                    path.pop();
                    value
                })
                .collect(),
        ),
        Y::Mapping(mapping) => {
            let mut object = serde_json::Map::new();
            for (key, item) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        errors.push(FieldError::new(
                            file,
                            render_path(path),
                            format!(
                                "keys must be plain names, got {}",
                                describe_yaml_key(&other)
                            ),
                        ));
                        continue;
                    }
                };
                path.push(Seg::Key(key.clone()));
                let value = convert(file, item, path, errors);
                path.pop();
                if object.insert(key.clone(), value).is_some() {
                    // `1:` and `"1":` are different YAML keys but the same key here.
                    path.push(Seg::Key(key));
                    errors.push(FieldError::new(
                        file,
                        render_path(path),
                        "key appears twice",
                    ));
                    path.pop();
                }
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            errors.push(FieldError::new(
                file,
                render_path(path),
                format!("yaml tags such as {} are not supported", tagged.tag),
            ));
            Value::Null
        }
    }
}

fn describe_yaml_key(key: &serde_yaml::Value) -> &'static str {
    match key {
        serde_yaml::Value::Null => "an empty key",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
        _ => "a scalar",
    }
}

// ---------------------------------------------------------------------------------------
// Schema validation

/// Every schema error of `instance`, as field errors sorted by field.
pub(crate) fn validate(file: &str, instance: &Value) -> Vec<FieldError> {
    let mut found: Vec<(Vec<Seg>, String)> = Vec::new();
    for error in validator().iter_errors(instance) {
        describe_error(&error, instance, &mut found);
    }
    // Sort by path (indexes numerically), keep the schema's order within one field.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup();
    found
        .into_iter()
        .map(|(path, message)| FieldError::new(file, render_path(&path), message))
        .collect()
}

/// Turns a JSON pointer into path steps, using the instance to tell list indexes from keys
/// (a menu option key `"1"` is a key, `queues/1` an index).
fn pointer_to_path(pointer: &str, instance: &Value) -> Vec<Seg> {
    let mut path = Vec::new();
    let mut node = Some(instance);
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => match token.parse::<usize>() {
                Ok(i) => {
                    node = items.get(i);
                    path.push(Seg::Index(i));
                }
                Err(_) => {
                    node = None;
                    path.push(Seg::Key(token));
                }
            },
            Some(Value::Object(map)) => {
                node = map.get(&token);
                path.push(Seg::Key(token));
            }
            _ => {
                node = None;
                path.push(Seg::Key(token));
            }
        }
    }
    path
}

/// The schema node at a keyword location (`/properties/queues/items/$ref/...`), following
/// `$ref`s within the schema.
fn schema_node<'a>(root: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = root;
    for seg in segments {
        node = if seg == "$ref" {
            let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
            root.pointer(target)?
        } else {
            match node {
                Value::Object(map) => map.get(seg.as_str())?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            }
        };
    }
    Some(node)
}

/// The schema's own message for `keyword` at the node holding it, if it has one
/// (`errorMessage: { pattern: "..." }`).
fn custom_message<'a>(node: Option<&'a Value>, keyword: &str) -> Option<&'a str> {
    node?.get("errorMessage")?.get(keyword)?.as_str()
}

fn describe_error(
    error: &ValidationError<'_>,
    instance: &Value,
    out: &mut Vec<(Vec<Seg>, String)>,
) {
    let path = pointer_to_path(error.instance_path.as_str(), instance);
    let segments: Vec<String> = error
        .schema_path
        .as_str()
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let root = schema();
    // The node that holds the failing keyword, and the keyword.
    let (parent, keyword) = match &error.kind {
        // The location of a propertyNames error points inside propertyNames.
        ValidationErrorKind::PropertyNames { .. } => {
            let at = segments
                .iter()
                .rposition(|s| s == "propertyNames")
                .unwrap_or(segments.len().saturating_sub(1));
            (schema_node(root, &segments[..at]), "propertyNames")
        }
        _ => match segments.split_last() {
            Some((last, rest)) => (schema_node(root, rest), last.as_str()),
            None => (Some(root), ""),
        },
    };
    // values of secrets never reach an error message (nor a log)
    let secret = path.iter().any(|s| {
        matches!(s, Seg::Key(k) if matches!(k.as_str(), "sip_password" | "password" | "password_enc" | "sip_ha1"))
    });
    let got = || {
        if secret {
            "a hidden value".to_owned()
        } else {
            describe_value(&error.instance)
        }
    };
    let custom = custom_message(parent, keyword);

    let message = match &error.kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<&str> = parent
                .and_then(|p| p.get("properties"))
                .and_then(Value::as_object)
                .map(|props| props.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in unexpected {
                let mut field = path.clone();
                field.push(Seg::Key(key.clone()));
                out.push((field, unknown_field_message(key, &allowed)));
            }
            return;
        }
        ValidationErrorKind::Required { property } => {
            let mut field = path.clone();
            field.push(Seg::Key(
                property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned),
            ));
            out.push((field, "missing required field".to_owned()));
            return;
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner
                .instance
                .as_str()
                .map_or_else(|| inner.instance.to_string(), str::to_owned);
            let mut field = path.clone();
            field.push(Seg::Key(key.clone()));
            let message = match custom {
                Some(message) => format!("invalid key {}: {message}", quote(&key)),
                None => format!("invalid key {}", quote(&key)),
            };
            out.push((field, message));
            return;
        }
        ValidationErrorKind::Type { kind } => type_message(kind, &error.instance, secret),
        ValidationErrorKind::Enum { options } => enum_message(&error.instance, options),
        ValidationErrorKind::Pattern { pattern } => match custom {
            Some(message) => format!("{message}, got {}", got()),
            None => format!("expected a value matching {pattern}, got {}", got()),
        },
        ValidationErrorKind::Minimum { limit } => {
            format!("must be at least {limit}, got {}", got())
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be at most {limit}, got {}", got())
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be greater than {limit}, got {}", got())
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be less than {limit}, got {}", got())
        }
        ValidationErrorKind::MinLength { limit } => match custom {
            Some(message) => message.to_owned(),
            None if *limit == 1 => "must not be empty".to_owned(),
            None => format!("must be at least {limit} characters long"),
        },
        ValidationErrorKind::MaxLength { limit } => match custom {
            Some(message) => message.to_owned(),
            None => format!("must be at most {limit} characters long"),
        },
        ValidationErrorKind::MinItems { limit } => match custom {
            Some(message) => message.to_owned(),
            None => format!("must have at least {limit} {}", entries(*limit)),
        },
        ValidationErrorKind::MaxItems { limit } => match custom {
            Some(message) => message.to_owned(),
            None => format!("must have at most {limit} {}", entries(*limit)),
        },
        ValidationErrorKind::MinProperties { limit } => match custom {
            Some(message) => message.to_owned(),
            None => format!("must have at least {limit} {}", entries(*limit)),
        },
        ValidationErrorKind::MaxProperties { limit } => match custom {
            Some(message) => message.to_owned(),
            None => format!("must have at most {limit} {}", entries(*limit)),
        },
        ValidationErrorKind::UniqueItems => match first_duplicate(&error.instance) {
            Some(dup) => format!("lists {} more than once", describe_value(dup)),
            None => "contains duplicates".to_owned(),
        },
        ValidationErrorKind::Not { .. } => match custom {
            Some(message) => message.to_owned(),
            None => format!("{} is not allowed here", got()),
        },
        ValidationErrorKind::FalseSchema => "not allowed here".to_owned(),
        _ => match custom {
            Some(message) => message.to_owned(),
            None => lowercase_first(&error.masked().to_string()),
        },
    };
    out.push((path, message));
}

fn entries(n: u64) -> &'static str {
    if n == 1 {
        "entry"
    } else {
        "entries"
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A short description of a value for "got ..." in messages.
pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            const MAX: usize = 64;
            if s.chars().count() > MAX {
                let head: String = s.chars().take(MAX).collect();
                format!("{}...", quote(&head))
            } else {
                quote(s)
            }
        }
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn type_name(ty: JsonType) -> &'static str {
    match ty {
        JsonType::Array => "a list",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "a whole number",
        JsonType::Null => "nothing",
        JsonType::Number => "a number",
        JsonType::Object => "a mapping",
        JsonType::String => "a string",
    }
}

fn type_message(kind: &TypeKind, instance: &Value, secret: bool) -> String {
    let expected: Vec<&str> = match kind {
        TypeKind::Single(ty) => vec![type_name(*ty)],
        TypeKind::Multiple(set) => set.iter().map(type_name).collect(),
    };
    let got = if secret {
        "a hidden value".to_owned()
    } else {
        describe_value(instance)
    };
    let mut message = format!("expected {}, got {got}", expected.join(" or "));
    let wants_string = matches!(kind, TypeKind::Single(JsonType::String));
    let scalar = matches!(instance, Value::Number(_) | Value::Bool(_));
    if wants_string && scalar && secret {
        message.push_str(" (put it in quotes)");
    } else if wants_string && scalar {
        message.push_str(&format!(" (put it in quotes: \"{instance}\")"));
    }
    message
}

fn enum_message(instance: &Value, options: &Value) -> String {
    let names: Vec<String> = match options {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        other => vec![other.to_string()],
    };
    let mut message = format!(
        "unknown value {}, expected one of: {}",
        describe_value(instance),
        names.join(", ")
    );
    if let Some(given) = instance.as_str() {
        if let Some(best) = did_you_mean(given, names.iter().map(String::as_str)) {
            message.push_str(&format!(" (did you mean {}?)", quote(best)));
        }
    }
    message
}

fn unknown_field_message(key: &str, allowed: &[&str]) -> String {
    match did_you_mean(key, allowed.iter().copied()) {
        Some(best) => format!(
            "unknown field {} (did you mean {}?)",
            quote(key),
            quote(best)
        ),
        None if allowed.is_empty() => format!("unknown field {}", quote(key)),
        None => format!(
            "unknown field {}, expected one of: {}",
            quote(key),
            allowed.join(", ")
        ),
    }
}

fn first_duplicate(value: &Value) -> Option<&Value> {
    let items = value.as_array()?;
    items
        .iter()
        .enumerate()
        .find(|(i, item)| items[..*i].contains(item))
        .map(|(_, item)| item)
}

/// The candidate closest to `given`, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given_lower = given.to_lowercase();
    let budget = match given.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .filter(|c| *c != given)
        .map(|c| (levenshtein(&given_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| {
            *d <= budget || (given_lower.len() >= 4 && c.to_lowercase().starts_with(&given_lower))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_readably() {
        let path = vec![
            Seg::Key("menus".into()),
            Seg::Index(0),
            Seg::Key("options".into()),
            Seg::Key("1".into()),
        ];
        assert_eq!(render_path(&path), r#"menus[0].options["1"]"#);
        assert_eq!(render_path(&[]), FieldError::DOCUMENT);
    }

    #[test]
    fn pointers_use_the_instance_to_tell_indexes_from_keys() {
        let instance = serde_json::json!({"menus": [{"options": {"1": {}}}]});
        let path = pointer_to_path("/menus/0/options/1", &instance);
        assert_eq!(render_path(&path), r#"menus[0].options["1"]"#);
        let path = pointer_to_path("/a~1b/x~0y", &serde_json::json!({}));
        assert_eq!(render_path(&path), r#"["a/b"]["x~y"]"#);
    }

    #[test]
    fn typos_get_suggestions() {
        assert_eq!(
            did_you_mean("stratgy", ["strategy", "name"]),
            Some("strategy")
        );
        assert_eq!(did_you_mean("queeu", ["queue", "menu"]), Some("queue"));
        assert_eq!(
            did_you_mean("longest", ["longest_idle", "linear"]),
            Some("longest_idle")
        );
        assert_eq!(did_you_mean("xyz", ["strategy"]), None);
    }

    #[test]
    fn the_embedded_schema_compiles_and_is_a_valid_2020_12_schema() {
        let _ = validator();
        assert!(jsonschema::meta::is_valid(schema()));
        assert_eq!(
            schema()["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    /// Every object in the schema rejects unknown fields.
    #[test]
    fn every_object_of_the_schema_is_closed() {
        fn walk(node: &Value, at: &str) {
            match node {
                Value::Object(map) => {
                    if map.contains_key("properties") {
                        assert_eq!(
                            map.get("additionalProperties"),
                            Some(&Value::Bool(false)),
                            "{at} must have additionalProperties: false"
                        );
                    }
                    for (key, child) in map {
                        walk(child, &format!("{at}/{key}"));
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(child, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        walk(schema(), "#");
    }

    /// The `default`s the schema documents are the ones the serde model applies.
    #[test]
    fn schema_defaults_match_the_model() {
        let tenant = crate::load_str(
            "min.yaml",
            r#"
tenant: min
name: Min
timezone: UTC
agents: [{ id: a, name: A, extension: "10001" }]
queues: [{ id: "200", name: Q, members: [{ agent: a }] }]
groups: [{ id: "1000", name: G, members: [a] }]
menus: [{ id: "100", name: M, prompt: p, options: { "1": { queue: "200" } } }]
numbers: [{ number: "1900", name: N, route: { queue: "200" } }]
trunks:
  - { id: t, name: T, address: "192.0.2.1", username: u, password: secret-1, register: {} }
"#,
        )
        .expect("minimal tenant");
        let model = serde_json::to_value(&tenant).expect("to json");
        let defs = &schema()["$defs"];
        let cases = [
            (&schema()["properties"], &model),
            (&defs["defaults"]["properties"], &model["defaults"]),
            (&defs["agent"]["properties"], &model["agents"][0]),
            (&defs["queue"]["properties"], &model["queues"][0]),
            (
                &defs["queue"]["properties"]["when_no_agents"]["properties"],
                &model["queues"][0]["when_no_agents"],
            ),
            (
                &defs["member"]["properties"],
                &model["queues"][0]["members"][0],
            ),
            (&defs["group"]["properties"], &model["groups"][0]),
            (&defs["menu"]["properties"], &model["menus"][0]),
            (&defs["number"]["properties"], &model["numbers"][0]),
            (&defs["trunk"]["properties"], &model["trunks"][0]),
            (
                &defs["trunk"]["properties"]["register"]["properties"],
                &model["trunks"][0]["register"],
            ),
            (
                &defs["trunk"]["properties"]["caller_id"]["properties"],
                &model["trunks"][0]["caller_id"],
            ),
            (
                &schema()["properties"]["outbound"]["properties"],
                &model["outbound"],
            ),
        ];
        let mut checked = 0;
        for (properties, value) in cases {
            let properties = properties.as_object().expect("properties");
            for (name, property) in properties {
                let default = property.get("default").or_else(|| {
                    // `"$ref": "#/$defs/defaults"` carries its default in the target.
                    let target = property.get("$ref")?.as_str()?.strip_prefix('#')?;
                    schema().pointer(target)?.get("default")
                });
                if let Some(default) = default {
                    let actual = &value[name.as_str()];
                    if default.as_object().is_some_and(|o| o.is_empty()) {
                        assert!(actual.is_object(), "{name}");
                    } else if default.as_array().is_some_and(|a| a.is_empty()) {
                        // The minimal tenant fills these lists in.
                        assert!(actual.is_array(), "{name}");
                    } else {
                        assert_eq!(actual, default, "default of {name}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 35, "only {checked} defaults checked");
    }
}
