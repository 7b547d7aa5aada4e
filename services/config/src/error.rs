//! Errors of loading and checking tenant files.

use std::fmt;

/// One problem with one field of one tenant file.
///
/// Displays as `FILE: FIELD: MESSAGE`, e.g.
/// `acme.yaml: queues[2].strategy: unknown value "longest", expected one of: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The file (or source name given to [`crate::load_str`]).
    pub file: String,
    /// Readable path of the field, such as `queues[2].strategy` or `menus[0].options["1"]`;
    /// [`FieldError::DOCUMENT`] when the problem is the document as a whole.
    pub field: String,
    /// What is wrong: lowercase, no trailing period.
    pub message: String,
}

impl FieldError {
    /// The `field` of an error about the whole document (e.g. it is not a mapping).
    pub const DOCUMENT: &'static str = "(document)";

    /// Builds a field error.
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.message)
    }
}

/// Why a tenant file (or a directory of them) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or directory could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file or directory.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML. `line` and `column` start at 1; both are 0 when the
    /// parser reported no position.
    #[error("{}", yaml_display(file, *line, *column, message))]
    Yaml {
        /// The file (or source name).
        file: String,
        /// Line of the problem, from 1 (0 if unknown).
        line: usize,
        /// Column of the problem, from 1 (0 if unknown).
        column: usize,
        /// What the YAML parser said, without the position.
        message: String,
    },
    /// The YAML is well formed but breaks the schema or the rules between fields.
    /// Holds every problem found, sorted by file and field; displays one per line.
    #[error("{}", lines(.0))]
    Invalid(Vec<FieldError>),
    /// Several of the above, from [`crate::load_dir`]; displays one per line.
    #[error("{}", lines(.0))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// Every field error held by this error (through [`ConfigError::Many`] as well).
    pub fn field_errors(&self) -> Vec<&FieldError> {
        match self {
            Self::Invalid(errors) => errors.iter().collect(),
            Self::Many(errors) => errors.iter().flat_map(Self::field_errors).collect(),
            Self::Io { .. } | Self::Yaml { .. } => Vec::new(),
        }
    }

    /// Merges several errors into one: nothing if there are none, the error itself if there
    /// is one, [`ConfigError::Many`] (flattened) otherwise.
    pub(crate) fn merge(errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut flat = Vec::with_capacity(errors.len());
        for error in errors {
            match error {
                Self::Many(inner) => flat.extend(inner),
                Self::Invalid(inner) if inner.is_empty() => {}
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(Self::Many(flat)),
        }
    }
}

fn yaml_display(file: &str, line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        format!("{file}: {message}")
    } else {
        format!("{file}: line {line}, column {column}: {message}")
    }
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&item.to_string());
    }
    out
}
