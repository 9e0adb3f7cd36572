//! [`PlanError`]: everything that can be wrong with a plan before it runs.

use arrow::datatypes::DataType;

/// A plan that cannot run, with the column, function or field that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown column '{column}' in {context}; available columns: {}", available.join(", "))]
    UnknownColumn {
        column: String,
        context: String,
        available: Vec<String>,
    },
    #[error(
        "user function '{name}' is not registered; registered functions: {}",
        list_or_none(registered)
    )]
    UnknownUserFunction {
        name: String,
        registered: Vec<String>,
    },
    #[error("unknown function '{name}'; built-in functions are: {}", known.join(", "))]
    UnknownFunction {
        name: String,
        known: Vec<&'static str>,
    },
    #[error("type error in {expr}: {message}")]
    TypeMismatch { expr: String, message: String },
    #[error("wrong number of arguments to {function}: expected {expected}, got {got}")]
    WrongArgumentCount {
        function: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("duplicate output column '{name}' in {context}")]
    DuplicateColumn { name: String, context: String },
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    #[error("malformed plan message: {field} {problem}")]
    MalformedProto {
        field: &'static str,
        problem: String,
    },
    #[error("schema encoding: {0}")]
    Schema(#[from] arrow::error::ArrowError),
    #[error("{what} {value:?} is not valid: {expected}")]
    InvalidId {
        what: &'static str,
        /// The value as received, cut to 80 characters.
        value: String,
        expected: &'static str,
    },
    #[error("{what} is {value}, over the limit of {limit} ({setting})")]
    LimitExceeded {
        what: String,
        value: u64,
        limit: u64,
        /// Where the limit is set, e.g. the coordinator flag.
        setting: &'static str,
    },
}

impl PlanError {
    pub(crate) fn missing(field: &'static str) -> Self {
        PlanError::MalformedProto {
            field,
            problem: "is missing".into(),
        }
    }

    pub(crate) fn invalid_id(what: &'static str, value: &str, expected: &'static str) -> Self {
        PlanError::InvalidId {
            what,
            value: value.chars().take(80).collect(),
            expected,
        }
    }

    pub(crate) fn type_mismatch(expr: impl std::fmt::Display, message: impl Into<String>) -> Self {
        PlanError::TypeMismatch {
            expr: expr.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn expected_type(expr: impl std::fmt::Display, want: &str, got: &DataType) -> Self {
        Self::type_mismatch(expr, format!("expected {want}, got {got}"))
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Result with [`PlanError`] as the default error.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
