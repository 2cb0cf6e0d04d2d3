//! Who may ask what: bearer tokens mapped to principals and roles in a
//! configuration file, and the one table of which role may run which query.

use std::{collections::HashMap, path::Path};

use axum::http::HeaderMap;
use prolo_schemas::{AccessRole, PrincipalId};
use serde::Deserialize;

use crate::error::ApiError;

/// A principal, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its id (goes into the access log).
    pub id: PrincipalId,
    /// Its role.
    pub role: AccessRole,
}

/// The tokens file: `{"tokens": [{"token": "…", "principal": "officer-lee", "role": "compliance"}]}`.
#[derive(Debug, Deserialize)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
struct TokenEntry {
    token: String,
    principal: PrincipalId,
    role: AccessRole,
}

/// The principals that may use the API, by token.
#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_token: HashMap<String, Principal>,
}

impl Principals {
    /// Reads a tokens file. Tokens must be at least 16 characters.
    pub fn load(path: &Path) -> Result<Principals, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the tokens file's JSON.
    pub fn parse(json: &str) -> Result<Principals, String> {
        let file: TokensFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut by_token = HashMap::new();
        for entry in file.tokens {
            if entry.token.len() < 16 {
                return Err(format!(
                    "the token of {} is shorter than 16 characters",
                    entry.principal
                ));
            }
            by_token.insert(
                entry.token,
                Principal {
                    id: entry.principal,
                    role: entry.role,
                },
            );
        }
        Ok(Principals { by_token })
    }

    /// The principal presenting `Authorization: Bearer <token>`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        self.by_token
            .get(token.trim())
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// The queries, for the permission table and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// Stream position, lag, last verification.
    Status,
    /// One event by id.
    EventById,
    /// A patient's history.
    PatientHistory,
    /// A patient's current view.
    PatientSummary,
    /// Who read a patient's data.
    AccessLog,
    /// Everything around an adverse event.
    AdverseEventInvestigation,
    /// Everyone exposed to a lot.
    LotTrace,
    /// A practitioner's history.
    PractitionerHistory,
    /// Compliance findings.
    Findings,
    /// Adverse-event rates and safety signals.
    Signals,
}

impl QueryKind {
    /// The name in the access log and in errors.
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Status => "status",
            QueryKind::EventById => "event_by_id",
            QueryKind::PatientHistory => "patient_history",
            QueryKind::PatientSummary => "patient_summary",
            QueryKind::AccessLog => "access_log",
            QueryKind::AdverseEventInvestigation => "adverse_event_investigation",
            QueryKind::LotTrace => "lot_trace",
            QueryKind::PractitionerHistory => "practitioner_history",
            QueryKind::Findings => "findings",
            QueryKind::Signals => "signals",
        }
    }

    /// Which roles may run it: compliance reads everything; safety reads
    /// clinical data but not who else looked; a service reads status only.
    pub fn allowed(self, role: AccessRole) -> bool {
        match (self, role) {
            (QueryKind::Status, _) => true,
            (_, AccessRole::Compliance) => true,
            (QueryKind::AccessLog, AccessRole::Safety) => false,
            (_, AccessRole::Safety) => true,
            (_, AccessRole::Service) => false,
        }
    }
}

impl Principal {
    /// 403 unless this principal's role may run `query`.
    pub fn may(&self, query: QueryKind) -> Result<(), ApiError> {
        if query.allowed(self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: prolo_projector::fold::name(&self.role),
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
        let err =
            Principals::parse(r#"{"tokens":[{"token":"short","principal":"p","role":"safety"}]}"#)
                .unwrap_err();
        assert!(err.contains("shorter than 16"), "{err}");
    }
}
