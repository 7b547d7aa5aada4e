//! Loading tenant files: YAML → JSON → schema → serde model → cross-field rules.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::check::check;
use crate::error::{ConfigError, FieldError};
use crate::model::TenantFile;
use crate::schema::{self, quote};

/// Loads one tenant from YAML text. `source_name` names the text in errors (a file name,
/// or e.g. `admin:acme` for text received by the admin API).
///
/// Every problem is reported, not only the first: a YAML syntax error stops at once
/// ([`ConfigError::Yaml`]); otherwise all schema errors are collected, and if there are
/// none, all cross-field errors ([`ConfigError::Invalid`]).
pub fn load_str(source_name: &str, yaml: &str) -> Result<TenantFile, ConfigError> {
    let json = to_json(source_name, yaml)?;
    let errors = schema::validate(source_name, &json);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    // the schema accepts nothing the model rejects; the error path is a safety net
    let tenant = deserialize(source_name, json)?;
    let errors = check(source_name, &tenant);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    Ok(tenant)
}

/// Parses a configuration that was validated when it was first loaded (e.g. replayed from
/// the event log): no schema pass and no cross-field checks, so recovery stays fast. Still
/// never panics: malformed text is an error.
pub fn load_trusted_str(source_name: &str, yaml: &str) -> Result<TenantFile, ConfigError> {
    let json = to_json(source_name, yaml)?;
    deserialize(source_name, json)
}

/// YAML text as the JSON value the schema validates (merge keys applied).
fn to_json(source_name: &str, yaml: &str) -> Result<serde_json::Value, ConfigError> {
    let mut document: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| yaml_error(source_name, &e))?;
    document
        .apply_merge()
        .map_err(|e| yaml_error(source_name, &e))?;
    let mut errors = Vec::new();
    let json = schema::yaml_to_json(source_name, document, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    Ok(json)
}

fn deserialize(source_name: &str, json: serde_json::Value) -> Result<TenantFile, ConfigError> {
    serde_json::from_value(json).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new(
            source_name,
            FieldError::DOCUMENT,
            e.to_string(),
        )])
    })
}

/// Loads one tenant file. Errors name the file as the path was given.
pub fn load_file(path: &Path) -> Result<TenantFile, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: file.clone(),
        source,
    })?;
    load_str(&file, &text)
}

/// Checks a tenant built in code (e.g. by [`crate::generate_tenant`] or the admin API)
/// against the schema and the cross-field rules, as [`load_str`] would.
pub fn validate(source_name: &str, tenant: &TenantFile) -> Result<(), ConfigError> {
    let json = serde_json::to_value(tenant).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new(
            source_name,
            FieldError::DOCUMENT,
            e.to_string(),
        )])
    })?;
    let mut errors = schema::validate(source_name, &json);
    if errors.is_empty() {
        errors = check(source_name, tenant);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// Loads every `*.yaml` and `*.yml` file of a directory (not its subdirectories; names
/// starting with `.` are skipped), in file-name order, on all cores.
///
/// Every error of every file is reported. Across files, a tenant id may appear only once
/// and a number may belong to only one tenant. An empty directory gives an empty list.
pub fn load_dir(dir: &Path) -> Result<Vec<TenantFile>, ConfigError> {
    let paths = tenant_files(dir)?;
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(paths.len());
    let chunk = paths.len().div_ceil(threads);
    let results: Vec<Result<TenantFile, ConfigError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|p| load_file(p)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });

    let mut errors = Vec::new();
    let mut tenants = Vec::new();
    let mut cross = Vec::new();
    let mut tenant_file: HashMap<String, String> = HashMap::new();
    let mut number_owner: HashMap<String, (String, String)> = HashMap::new();
    for (path, result) in paths.iter().zip(results) {
        let tenant = match result {
            Ok(tenant) => tenant,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let file = path.display().to_string();
        if let Some(first) = tenant_file.get(&tenant.tenant) {
            cross.push(FieldError::new(
                &file,
                "tenant",
                format!(
                    "tenant id {} is already used by {first}",
                    quote(&tenant.tenant)
                ),
            ));
            continue;
        }
        tenant_file.insert(tenant.tenant.clone(), file.clone());
        for (i, number) in tenant.numbers.iter().enumerate() {
            let digits = number.number.trim_start_matches('+').to_owned();
            if let Some((owner, owner_file)) = number_owner.get(&digits) {
                cross.push(FieldError::new(
                    &file,
                    format!("numbers[{i}].number"),
                    format!(
                        "number {} already belongs to tenant {} ({owner_file})",
                        quote(&number.number),
                        quote(owner)
                    ),
                ));
            } else {
                number_owner.insert(digits, (tenant.tenant.clone(), file.clone()));
            }
        }
        tenants.push(tenant);
    }
    if !cross.is_empty() {
        errors.push(ConfigError::Invalid(cross));
    }
    match ConfigError::merge(errors) {
        Some(error) => Err(error),
        None => Ok(tenants),
    }
}

fn tenant_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io = |source| ConfigError::Io {
        file: dir.display().to_string(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_yaml = Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if is_yaml && !name.starts_with('.') && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn yaml_error(file: &str, error: &serde_yaml::Error) -> ConfigError {
    let mut message = error.to_string();
    let (line, column) = match error.location() {
        Some(location) => {
            let at = format!(" at line {} column {}", location.line(), location.column());
            if let Some(start) = message.find(&at) {
                message.replace_range(start..start + at.len(), "");
            }
            (location.line(), location.column())
        }
        None => (0, 0),
    };
    ConfigError::Yaml {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}
