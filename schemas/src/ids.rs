//! Identifiers that become NATS subject tokens.
//!
//! "Parse, don't validate": each newtype can only be built through
//! [`std::str::FromStr`] / `TryFrom<String>`, which admit `[A-Za-z0-9_-]`
//! only, so a subject wildcard (`*`, `>`), a token separator (`.`) or
//! whitespace cannot reach a subject anywhere in the program.

use std::{borrow::Cow, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Longest identifier accepted in a subject token. Judgement call: long
/// enough for any EHR pseudonym or lot number seen, short enough to keep
/// subjects (and per-subject indexes) small.
pub const MAX_ID_LEN: usize = 64;

/// The JSON Schema pattern equivalent to [`check_token`].
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Why a string is not a safe subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier (e.g. `patient_id`).
        kind: &'static str,
    },
    /// The identifier was longer than [`MAX_ID_LEN`].
    #[error("{kind} is {len} characters long, the maximum is {MAX_ID_LEN}")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length in characters.
        len: usize,
    },
    /// The identifier contained a character outside `[A-Za-z0-9_-]`.
    #[error("{kind} {value:?} contains {found:?}; only letters, digits, '_' and '-' are allowed")]
    BadChar {
        /// Which identifier.
        kind: &'static str,
        /// The offending value.
        value: String,
        /// The first character that is not allowed.
        found: char,
    },
}

/// Checks that `value` can stand as one subject token.
pub fn check_token(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    let len = value.chars().count();
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, len });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(IdError::BadChar {
            kind,
            value: value.to_owned(),
            found,
        });
    }
    Ok(())
}

macro_rules! subject_token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier as it appears in subjects and JSON.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                check_token($kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check_token($kind, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": ID_PATTERN,
                    "description": concat!("A ", $kind, ": letters, digits, '_' and '-' only (it becomes a NATS subject token).")
                })
            }
        }
    };
}

subject_token_id!(
    /// A clinic, as named in subjects (`clinic.<clinic_id>.…`).
    ClinicId,
    "clinic_id"
);
subject_token_id!(
    /// A pseudonymous patient id. Names and contact details stay in the EHR.
    PatientId,
    "patient_id"
);
subject_token_id!(
    /// A practitioner who gives injections or records facts.
    PractitionerId,
    "practitioner_id"
);
subject_token_id!(
    /// A manufacturer's lot (batch) number of one solution component.
    LotNumber,
    "lot"
);
subject_token_id!(
    /// A principal that reads the trail (a compliance officer, a safety
    /// reviewer, a system), as named in the query service's tokens file.
    PrincipalId,
    "principal_id"
);

impl ClinicId {
    /// Where what names no clinic is filed (a refused request whose path or
    /// subject names none, a message whose subject names none): `_unscoped`.
    pub fn unscoped() -> Self {
        Self("_unscoped".to_owned())
    }
}

impl PrincipalId {
    /// Who asked when no token proved anyone: `anonymous`.
    pub fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_ids_are_ids() {
        let unscoped = ClinicId::unscoped();
        assert_eq!(unscoped.as_str().parse::<ClinicId>(), Ok(unscoped));
        let anonymous = PrincipalId::anonymous();
        assert_eq!(anonymous.as_str().parse::<PrincipalId>(), Ok(anonymous));
    }

    #[test]
    fn accepts_safe_tokens() {
        for ok in ["P-001", "clinic_7", "a", "LOT2026A"] {
            assert!(ok.parse::<PatientId>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_tokens_naming_the_problem() {
        for (bad, found) in [
            ("a.b", '.'),
            ("*", '*'),
            (">", '>'),
            ("a b", ' '),
            ("x\t", '\t'),
        ] {
            let err = bad.parse::<ClinicId>().unwrap_err();
            assert_eq!(
                err,
                IdError::BadChar {
                    kind: "clinic_id",
                    value: bad.into(),
                    found
                },
                "{bad:?}"
            );
            assert!(err.to_string().contains("clinic_id"));
        }
        assert_eq!(
            "".parse::<LotNumber>().unwrap_err(),
            IdError::Empty { kind: "lot" }
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(matches!(
            long.parse::<PatientId>(),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn serde_refuses_unsafe_ids() {
        let err = serde_json::from_str::<PatientId>("\"p.1\"").unwrap_err();
        assert!(err.to_string().contains("only letters"), "{err}");
    }
}
