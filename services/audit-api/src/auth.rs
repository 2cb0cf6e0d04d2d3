//! Who may ask what: bearer tokens mapped to principals, roles and the
//! clinics they may read, in a configuration file, and the one table of
//! which role may run which query.

use std::{collections::BTreeSet, path::Path};

use axum::http::HeaderMap;
use prolo_schemas::{AccessRole, ClinicId, PrincipalId};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The clinics a principal may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClinicScope {
    /// Every clinic (`"clinics": ["*"]`, a group compliance office).
    All,
    /// These clinics only.
    Only(BTreeSet<ClinicId>),
}

/// A principal, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its id (goes into the access log).
    pub id: PrincipalId,
    /// Its role.
    pub role: AccessRole,
    /// The clinics it may read.
    pub clinics: ClinicScope,
}

/// The tokens file: `{"tokens": [{"token": "…", "principal": "officer-lee",
/// "role": "compliance", "clinics": ["riverside"]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    principal: PrincipalId,
    role: AccessRole,
    clinics: Vec<String>,
}

/// The principals that may use the API. Tokens are kept as SHA-256 digests
/// and every digest is compared, in constant time, on each request: how long
/// an answer takes says nothing about how much of a token was right.
#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_token: Vec<([u8; 32], Principal)>,
}

impl Principals {
    /// Reads a tokens file. Tokens must be at least 16 characters.
    pub fn load(path: &Path) -> Result<Principals, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the tokens file's JSON. Every token must be at least 16
    /// characters, appear once, and name the clinics it may read.
    pub fn parse(json: &str) -> Result<Principals, String> {
        let file: TokensFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut by_token: Vec<([u8; 32], Principal)> = Vec::new();
        for entry in file.tokens {
            if entry.token.len() < 16 {
                return Err(format!(
                    "the token of {} is shorter than 16 characters",
                    entry.principal
                ));
            }
            let clinics = scope(&entry.clinics)
                .map_err(|why| format!("the token of {}: {why}", entry.principal))?;
            let digest: [u8; 32] = Sha256::digest(entry.token.as_bytes()).into();
            if let Some((_, first)) = by_token.iter().find(|(d, _)| *d == digest) {
                return Err(format!(
                    "the token of {} is also the token of {}: every token must be distinct",
                    entry.principal, first.id
                ));
            }
            by_token.push((
                digest,
                Principal {
                    id: entry.principal,
                    role: entry.role,
                    clinics,
                },
            ));
        }
        Ok(Principals { by_token })
    }

    /// The principal presenting `Authorization: Bearer <token>`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let token = bearer
            .or_else(|| session_token(headers))
            .ok_or(ApiError::Unauthorized)?;
        self.principal_of(&token)
    }

    /// The principal a token names.
    pub fn principal_of(&self, token: &str) -> Result<Principal, ApiError> {
        let presented: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found = None;
        for (digest, principal) in &self.by_token {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(ApiError::Unauthorized)
    }
}

/// The web console's session cookie: the token itself, hex-encoded (so any
/// token fits a cookie), HttpOnly and SameSite=Strict (see `console`).
pub const SESSION_COOKIE: &str = "prolo_session";

/// The token in the session cookie, if one was sent.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .find_map(from_hex)
}

/// Hex of a token, for its cookie.
pub fn to_hex(token: &str) -> String {
    token.bytes().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The public tokens of `deploy/tokens.example.json`: anyone can read them.
const EXAMPLE_TOKENS: &[&str] = &[
    "demo-compliance-token-change-me",
    "demo-safety-token-change-me-too",
    "demo-service-token-change-me-3x",
];

impl Principals {
    /// Whether any token is one of the published example tokens.
    pub fn has_example_tokens(&self) -> bool {
        EXAMPLE_TOKENS.iter().any(|example| {
            let digest: [u8; 32] = Sha256::digest(example.as_bytes()).into();
            self.by_token.iter().any(|(d, _)| *d == digest)
        })
    }
}

/// Reads a token's `clinics`: `["*"]` or clinic ids.
fn scope(clinics: &[String]) -> Result<ClinicScope, String> {
    if clinics.iter().any(|c| c == "*") {
        return if clinics.len() == 1 {
            Ok(ClinicScope::All)
        } else {
            Err("\"*\" (every clinic) cannot be combined with clinic ids".into())
        };
    }
    if clinics.is_empty() {
        return Err(
            "names no clinics: give \"clinics\": [\"<clinic id>\", …] or [\"*\"] for every clinic"
                .into(),
        );
    }
    clinics
        .iter()
        .map(|c| {
            c.parse::<ClinicId>()
                .map_err(|e| format!("clinic {c:?}: {e}"))
        })
        .collect::<Result<BTreeSet<_>, _>>()
        .map(ClinicScope::Only)
}

/// A question a handler answers: the query kind the roles allow and the
/// access log names.
pub trait Asks: Send + Sync + 'static {
    /// The query, as the roles and the access log know it.
    const KIND: QueryKind;

    /// Refuses a principal whose role may not ask it.
    fn allowed(principal: &Principal) -> Result<(), ApiError> {
        principal.may(Self::KIND)
    }
}

/// Makes [`QueryKind`], its names, and a marker type per kind in [`ask`]
/// (the extractors of `crate::routes::admit` name the question a handler
/// answers by type): one list, so the two cannot drift.
macro_rules! query_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident => $name:literal,)*) => {
        /// The queries, for the permission table and the access log.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum QueryKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl QueryKind {
            /// The name in the access log and in errors.
            pub fn name(self) -> &'static str {
                match self {
                    $(QueryKind::$kind => $name,)*
                }
            }
        }

        /// The queries as types, one marker each.
        pub mod ask {
            $(
                #[doc = concat!("Asks [`QueryKind::", stringify!($kind), "`](super::QueryKind).")]
                pub struct $kind;

                impl super::Asks for $kind {
                    const KIND: super::QueryKind = super::QueryKind::$kind;
                }
            )*
        }
    };
}

query_kinds! {
    /// Stream position, lag, last verification.
    Status => "status",
    /// One event by id.
    EventById => "event_by_id",
    /// A patient's history.
    PatientHistory => "patient_history",
    /// A patient's current view.
    PatientSummary => "patient_summary",
    /// Who read a patient's data.
    AccessLog => "access_log",
    /// Everything around an adverse event.
    AdverseEventInvestigation => "adverse_event_investigation",
    /// Everyone exposed to a lot.
    LotTrace => "lot_trace",
    /// A practitioner's history.
    PractitionerHistory => "practitioner_history",
    /// Compliance findings.
    Findings => "findings",
    /// Adverse-event rates and safety signals.
    Signals => "signals",
    /// Refused requests (401, 403).
    AccessRefused => "access_refused",
    /// A patient's record or a lot's reach as a FHIR R4 Bundle.
    FhirExport => "fhir_export",
    /// The messages quarantined on a clinic's subjects, with their reasons.
    Quarantine => "quarantine",
}

impl QueryKind {
    /// Which roles may run it: compliance reads everything; safety reads
    /// clinical data but not who else looked; a service reads status only.
    pub fn allowed(self, role: AccessRole) -> bool {
        match (self, role) {
            (QueryKind::Status, _) => true,
            (_, AccessRole::Compliance) => true,
            (QueryKind::AccessLog | QueryKind::AccessRefused, AccessRole::Safety) => false,
            (_, AccessRole::Safety) => true,
            (_, AccessRole::Service) => false,
        }
    }
}

impl Principal {
    /// 403 unless this principal may read `clinic`.
    pub fn may_read(&self, clinic: &str) -> Result<(), ApiError> {
        let allowed = match &self.clinics {
            ClinicScope::All => true,
            ClinicScope::Only(clinics) => clinics.iter().any(|c| c.as_str() == clinic),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::ClinicForbidden {
                principal: self.id.to_string(),
                clinic: clinic.to_owned(),
            })
        }
    }

    /// 403 unless this principal's role may run `query`.
    pub fn may(&self, query: QueryKind) -> Result<(), ApiError> {
        if query.allowed(self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: prolo_schemas::names::name(&self.role),
                query: query.name(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_see_what_they_need_and_no_more() {
        assert!(QueryKind::AccessLog.allowed(AccessRole::Compliance));
        assert!(!QueryKind::AccessLog.allowed(AccessRole::Safety));
        assert!(QueryKind::LotTrace.allowed(AccessRole::Safety));
        assert!(!QueryKind::PatientHistory.allowed(AccessRole::Service));
        assert!(QueryKind::Status.allowed(AccessRole::Service));
    }

    #[test]
    fn short_tokens_are_refused() {
        let err = Principals::parse(
            r#"{"tokens":[{"token":"short","principal":"p","role":"safety","clinics":["c"]}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("shorter than 16"), "{err}");
    }

    fn entry(token: &str, principal: &str, clinics: &str) -> String {
        format!(
            r#"{{"token":"{token}","principal":"{principal}","role":"safety","clinics":{clinics}}}"#
        )
    }

    #[test]
    fn a_duplicate_token_or_a_token_without_clinics_is_refused_at_start() {
        let twice = format!(
            r#"{{"tokens":[{},{}]}}"#,
            entry("same-token-0123456789", "a", r#"["c"]"#),
            entry("same-token-0123456789", "b", r#"["c"]"#)
        );
        let err = Principals::parse(&twice).unwrap_err();
        assert!(err.contains("also the token of a"), "{err}");
        for clinics in [r#"[]"#, r#"["*","c"]"#, r#"["c.d"]"#] {
            let file = format!(
                r#"{{"tokens":[{}]}}"#,
                entry("token-0123456789abc", "a", clinics)
            );
            assert!(Principals::parse(&file).is_err(), "{clinics}");
        }
        let missing =
            r#"{"tokens":[{"token":"token-0123456789abc","principal":"a","role":"safety"}]}"#;
        assert!(Principals::parse(missing).unwrap_err().contains("clinics"));
    }

    #[test]
    fn a_token_reads_only_its_clinics() {
        let file = format!(
            r#"{{"tokens":[{},{}]}}"#,
            entry("riverside-token-0123456", "r", r#"["riverside"]"#),
            entry("group-token-0123456789", "g", r#"["*"]"#)
        );
        let principals = Principals::parse(&file).unwrap_or_else(|e| panic!("{e}"));
        let who = |token: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::header::AUTHORIZATION,
                format!("Bearer {token}")
                    .parse()
                    .unwrap_or_else(|_| panic!()),
            );
            principals.authenticate(&headers)
        };
        let riverside = who("riverside-token-0123456").unwrap_or_else(|e| panic!("{e}"));
        assert!(riverside.may_read("riverside").is_ok());
        assert!(riverside.may_read("northside").is_err());
        let group = who("group-token-0123456789").unwrap_or_else(|e| panic!("{e}"));
        assert!(group.may_read("northside").is_ok());
        assert!(
            who("riverside-token-012345").is_err(),
            "a prefix is not the token"
        );
    }
}
