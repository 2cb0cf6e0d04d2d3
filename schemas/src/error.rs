//! What is wrong with an event, field by field.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable reason. Clients match on these; the wording of
/// messages may change, the codes may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// The bytes are not JSON (or not a JSON object).
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field that the contract does not define.
    UnknownField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A value outside a closed list (enum, site key, event type).
    UnknownValue,
    /// An `event_type` this version does not know.
    UnknownEventType,
    /// A `schema_version` newer than this code, or one never defined.
    UnsupportedSchemaVersion,
    /// A number outside its plausible range.
    OutOfRange,
    /// Text empty where required, or too long.
    BadText,
    /// An identifier that cannot be a subject token.
    UnsafeIdentifier,
    /// A value with the wrong form (e.g. an event id that is not a UUIDv7).
    InvalidValue,
    /// Fields that contradict each other (grade 5 without a fatal outcome, …).
    Inconsistent,
}

impl ProblemCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::MalformedJson => "malformed_json",
            ProblemCode::MissingField => "missing_field",
            ProblemCode::UnknownField => "unknown_field",
            ProblemCode::WrongType => "wrong_type",
            ProblemCode::UnknownValue => "unknown_value",
            ProblemCode::UnknownEventType => "unknown_event_type",
            ProblemCode::UnsupportedSchemaVersion => "unsupported_schema_version",
            ProblemCode::OutOfRange => "out_of_range",
            ProblemCode::BadText => "bad_text",
            ProblemCode::UnsafeIdentifier => "unsafe_identifier",
            ProblemCode::InvalidValue => "invalid_value",
            ProblemCode::Inconsistent => "inconsistent",
        }
    }
}

/// One thing wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Dotted path of the field, e.g. `payload.solution.components[0].lot`.
    pub path: String,
    /// Why it is wrong, stable.
    pub code: ProblemCode,
    /// What is wrong, for people, e.g. `80 is above the maximum 20`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// An event (or request) that does not satisfy the contract: every problem
/// found, each naming its field, under the event type when it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ContractError {
    /// The event type, when it could be read.
    pub event_type: Option<String>,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl ContractError {
    /// A contract error with one problem.
    pub fn single(
        event_type: Option<String>,
        path: impl Into<String>,
        code: ProblemCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            event_type,
            problems: vec![Problem {
                path: path.into(),
                code,
                message: message.into(),
            }],
        }
    }

    /// The code of the first problem: the one a caller reports when it has room for one.
    pub fn code(&self) -> ProblemCode {
        self.problems
            .first()
            .map_or(ProblemCode::InvalidValue, |p| p.code)
    }

    /// Whether any problem is about `path`.
    pub fn names(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path == path)
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if let Some(event_type) = &self.event_type {
                write!(f, "{event_type}: ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Turns a serde_json error at `path` into a [`Problem`].
///
/// serde reports its kinds only as text; the prefixes matched here are the
/// stable wording of serde's `de::Error` helpers (`missing_field`,
/// `unknown_field`, `invalid_type`, `unknown_variant`).
pub fn problem_from_serde(path: &str, err: &serde_json::Error) -> Problem {
    let text = err.to_string();
    // serde_json appends " at line L column C"; the path says where already.
    let message = match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text.clone(),
    };
    let join = |field: &str| {
        if path == field || path.ends_with(&format!(".{field}")) {
            path.to_owned()
        } else if path.is_empty() || path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let backticked = |m: &str| m.split('`').nth(1).map(str::to_owned);
    if err.is_syntax() || err.is_eof() {
        return Problem {
            path: "$".into(),
            code: ProblemCode::MalformedJson,
            message,
        };
    }
    let (path, code) = if message.starts_with("missing field") {
        let field = backticked(&message).unwrap_or_default();
        (join(&field), ProblemCode::MissingField)
    } else if message.starts_with("unknown field") {
        let field = backticked(&message).unwrap_or_default();
        (join(&field), ProblemCode::UnknownField)
    } else if message.starts_with("invalid type") {
        (path.to_owned(), ProblemCode::WrongType)
    } else if message.starts_with("unknown variant") {
        (path.to_owned(), ProblemCode::UnknownValue)
    } else if message.contains("only letters, digits")
        || message.contains(" must not be empty")
        || message.contains("characters long, the maximum is")
    {
        (path.to_owned(), ProblemCode::UnsafeIdentifier)
    } else {
        (path.to_owned(), ProblemCode::InvalidValue)
    };
    Problem {
        path: if path.is_empty() { "$".into() } else { path },
        code,
        message,
    }
}

/// serde reads a struct from a JSON array too (field by position); the
/// contract only has objects, so anything else is refused before decoding.
pub fn require_json_object(bytes: &[u8]) -> Result<(), Problem> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(Problem {
            path: "$".into(),
            code: ProblemCode::MalformedJson,
            message: "expected a JSON object".into(),
        }),
    }
}
