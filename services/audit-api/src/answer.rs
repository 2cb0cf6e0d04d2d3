//! The shapes of the API's JSON answers. The handlers build these types and
//! the OpenAPI document describes them from the same types, so the two
//! cannot drift apart (the API tests check every answer against it).

use prolo_projector::{
    VerifyReport, integrity::consistency::Consistency, model::PractitionerSummary,
};
use prolo_query::{EventView, LotTrace};
use schemars::JsonSchema;
use serde::Serialize;

/// One page of a list, in stream order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<T> {
    /// Items in the whole answer (every page).
    pub total: usize,
    /// This page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A practitioner's history: a page of their events and their summary.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PractitionerHistory {
    /// The events.
    #[serde(flatten)]
    pub page: Page<EventView>,
    /// Credentials and counts; `null` for a practitioner never recorded.
    pub summary: Option<PractitionerSummary>,
}

/// A lot trace: a page of its injections, every adverse event after them
/// and every recall.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LotTracePage {
    /// The trace (its `injections` are this page's).
    #[serde(flatten)]
    pub trace: LotTrace,
    /// Injections with the lot (every page).
    pub total_injections: usize,
    /// Pass as `cursor` for the next page of injections; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The database against the stream, or why that is not known.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StreamConsistency {
    /// Same stream, at least as long as what was applied.
    Consistent,
    /// Not the history the database was folded from.
    Diverged {
        /// Why.
        reason: String,
        /// The first sequence of the database the stream cannot confirm.
        first_missing_seq: u64,
    },
    /// No stream yet, or the broker away.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl From<Consistency> for StreamConsistency {
    fn from(c: Consistency) -> Self {
        match c {
            Consistency::Consistent => StreamConsistency::Consistent,
            Consistency::Diverged {
                reason,
                first_missing_seq,
            } => StreamConsistency::Diverged {
                reason,
                first_missing_seq,
            },
        }
    }
}

/// Where the trail stands.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// The stream's name.
    pub stream: &'static str,
    /// Its last sequence; `null` when the broker did not answer.
    pub stream_last_seq: Option<u64>,
    /// The last sequence folded into the read models.
    pub applied_seq: u64,
    /// Sequences not folded yet.
    pub lag: Option<u64>,
    /// Messages kept in quarantine (never dropped).
    pub quarantined: u64,
    /// The hash chain's head over everything folded, hex.
    pub chain_head: String,
    /// The last `verify`, if any.
    pub last_verification: Option<VerifyReport>,
    /// The broker's fsync policy, as found at start.
    pub broker: Option<prolo_bus::BrokerDurability>,
    /// The database against the stream.
    pub stream_consistency: StreamConsistency,
    /// At a hub: each clinic edge its stream sources, how far behind the
    /// hub is, and the edge's hash chain as recomputed here (to compare
    /// with the edge's own chain head or checkpoints). Empty elsewhere.
    pub edges: Vec<EdgeStatus>,
    /// Whether the fold checks that a recording service sealed each event.
    pub seals: SealStatus,
}

/// Which seals the fold accepts (docs/identity.md).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SealStatus {
    /// False: every message on the stream is believed, whoever published it.
    pub checked: bool,
    /// The ids of the recording services' keys it trusts.
    pub keys: Vec<String>,
    /// The first sequence that must be sealed (earlier ones predate sealing).
    pub sealed_from: Option<u64>,
}

/// One clinic edge, as the hub sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EdgeStatus {
    /// The clinic.
    pub clinic: String,
    /// Messages at the edge the hub's stream has not stored yet; `null`
    /// when the hub's stream does not (or no longer) source this edge.
    pub sourcing_lag: Option<u64>,
    /// Milliseconds since the hub last heard from the edge; `null` while
    /// the link is down or being set up.
    pub active_ms: Option<u64>,
    /// The edge's hash chain over what the read models hold; `null` before
    /// anything of this edge was folded.
    pub chain: Option<prolo_projector::model::EdgeChain>,
}

/// Every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorAnswer {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable code and a message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable: clients branch on it.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

/// The error codes.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No or unknown bearer token (401).
    Unauthorized,
    /// The role may not ask this (403).
    Forbidden,
    /// The token does not cover this clinic (403).
    ClinicForbidden,
    /// A parameter is not usable; the message names it (400).
    BadRequest,
    /// Nothing matches (404).
    NotFound,
    /// The read could not be recorded, so it is not served (503).
    NotAudited,
    /// Anything else (500).
    Internal,
}
