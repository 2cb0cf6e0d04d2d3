//! The prolo-audit event contract.
//!
//! Every clinically relevant fact is an immutable [`Envelope`] on the JetStream
//! stream. This crate is the one definition of what such an event looks like:
//! the envelope and every payload (serde types), the validation shared by the
//! recording services and the projector, the canonical JSON wire form, the
//! subject scheme, upcasting of older schema versions and the JSON Schema
//! files that other clinic systems validate against.
//!
//! It does no I/O, so other systems can depend on it to read the trail.

pub mod bounds;
mod catalogue;
mod envelope;
mod error;
mod ids;
pub mod json_schema;
pub mod names;
mod payload;
mod sites;
pub mod subject;
mod upcast;
mod validate;

pub use catalogue::{EntityKind, EventType, Payload};
pub use envelope::{Actor, ActorProof, ActorRole, Envelope};
pub use error::{ContractError, Problem, ProblemCode, problem_from_serde, require_json_object};
pub use ids::{
    ClinicId, ID_PATTERN, IdError, LotNumber, PatientId, PractitionerId, PrincipalId, check_token,
};
pub use payload::*;
pub use sites::{Laterality, Region, RiskZone, SiteInfo, SiteKey};
pub use subject::{Entity, Subject, SubjectError};
pub use upcast::upcast_payload;
pub use validate::{clean_text, is_deceptive};

/// The `source` of events recorded through the batch command: a declared
/// back-fill (an EHR's history, a migration), documented elsewhere at the
/// time, so not judged as late documentation.
pub const BACKFILL_SOURCE: &str = "batch";
