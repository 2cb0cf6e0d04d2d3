//! What a recording service answers.
//!
//! Success: `{event_id, stream_seq, subject, duplicate}`, sent only after
//! JetStream acknowledged the event. Failure: the NATS services error headers
//! (`Nats-Service-Error`, `Nats-Service-Error-Code`) and a JSON body
//! `{"error": {code, status, message, event_type, problems}}` whose `code`
//! is stable and whose problems name each field.

use prolo_schemas::{ContractError, Problem};
use serde::{Deserialize, Serialize};

/// The body of an error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable: `invalid_request`, `request_too_large`, `unauthenticated`,
    /// `actor_not_proven`, `not_permitted`, `idempotency_conflict`, `not_stored_retry`,
    /// `unknown_command`, `internal`.
    pub code: String,
    /// HTTP-like status, also in `Nats-Service-Error-Code`.
    pub status: u16,
    /// For people.
    pub message: String,
    /// The event type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Field-level problems (for `invalid_request`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl ErrorReply {
    /// A request that breaks the contract: 400 (413 when too large).
    pub fn invalid(err: ContractError) -> Self {
        let too_large = err
            .problems
            .iter()
            .any(|p| p.path == "$" && p.message.contains("maximum"));
        let (code, status) = if too_large {
            ("request_too_large", 413)
        } else {
            ("invalid_request", 400)
        };
        ErrorReply {
            error: ErrorBody {
                code: code.into(),
                status,
                message: err.to_string(),
                event_type: err.event_type.clone(),
                problems: err.problems,
            },
        }
    }

    /// The idempotency key is bound to another request: 409, nothing published.
    pub fn idempotency_conflict(event_type: &str, event_id: uuid::Uuid, message: String) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "idempotency_conflict".into(),
                status: 409,
                message,
                event_type: Some(event_type.to_owned()),
                problems: vec![Problem {
                    path: "idempotency_key".into(),
                    code: prolo_schemas::ProblemCode::Inconsistent,
                    message: format!("already used for event {event_id} with other content"),
                }],
            },
        }
    }

    /// A fault of the service itself: 500.
    pub fn internal(message: &str) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "internal".into(),
                status: 500,
                message: message.to_owned(),
                event_type: None,
                problems: Vec::new(),
            },
        }
    }

    /// No token, or one that proves no one: 401, naming why.
    pub fn unauthenticated(event_type: Option<&str>, refused: &crate::identity::Refused) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "unauthenticated".into(),
                status: 401,
                message: refused.to_string(),
                event_type: event_type.map(str::to_owned),
                problems: vec![Problem {
                    path: crate::identity::AUTHORIZATION.to_owned(),
                    code: prolo_schemas::ProblemCode::InvalidValue,
                    message: format!("{}: {refused}", refused.code()),
                }],
            },
        }
    }

    /// The body's `actor` is not who the token proves: 403, nothing stored.
    pub fn not_the_actor(event_type: &str, mismatch: &crate::identity::NotTheActor) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "actor_not_proven".into(),
                status: 403,
                message: mismatch.to_string(),
                event_type: Some(event_type.to_owned()),
                problems: vec![Problem {
                    path: "actor".into(),
                    code: prolo_schemas::ProblemCode::Inconsistent,
                    message: mismatch.to_string(),
                }],
            },
        }
    }

    /// A signature that is not its signer's own, freshly authenticated act:
    /// 403, nothing stored.
    pub fn not_the_signer(event_type: &str, why: &crate::identity::NotTheSigner) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "signature_not_proven".into(),
                status: 403,
                message: why.to_string(),
                event_type: Some(event_type.to_owned()),
                problems: vec![Problem {
                    path: "payload.signer_id".into(),
                    code: prolo_schemas::ProblemCode::Inconsistent,
                    message: why.to_string(),
                }],
            },
        }
    }

    /// A signature whose hash is not of the signed event as stored, or of
    /// an event the stream does not hold: 409, nothing stored.
    pub fn signature_not_of_record(message: String) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "signature_not_of_record".into(),
                status: 409,
                message: message.clone(),
                event_type: Some(prolo_schemas::EventType::RecordSigned.as_str().to_owned()),
                problems: vec![Problem {
                    path: "payload.signed_event_sha256".into(),
                    code: prolo_schemas::ProblemCode::Inconsistent,
                    message,
                }],
            },
        }
    }

    /// The actor's role may not record this: 403, nothing stored.
    pub fn not_permitted(event_type: &str, why: String) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "not_permitted".into(),
                status: 403,
                message: why.clone(),
                event_type: Some(event_type.to_owned()),
                problems: vec![Problem {
                    path: "actor.role".into(),
                    code: prolo_schemas::ProblemCode::Inconsistent,
                    message: why,
                }],
            },
        }
    }

    /// The broker did not acknowledge in time: 503, retry with the same key.
    pub fn not_stored(event_type: &str, message: String) -> Self {
        ErrorReply {
            error: ErrorBody {
                code: "not_stored_retry".into(),
                status: 503,
                message: format!("not stored, retry (with the same idempotency_key): {message}"),
                event_type: Some(event_type.to_owned()),
                problems: Vec::new(),
            },
        }
    }
}
