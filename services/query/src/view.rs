//! One event as the trail shows it: both times, actor, source, and the
//! corrections made to it since.

use chrono::{DateTime, Utc};
use prolo_projector::{Store, model::Marks, store::RecordReader};
use prolo_schemas::{Actor, Envelope, EventType};
use serde::Serialize;
use uuid::Uuid;

use crate::QueryError;

/// A later event that corrected or voided this one.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Mark {
    /// The correcting event's sequence.
    pub seq: u64,
    /// `record.corrected` or `record.entered_in_error`.
    pub kind: EventType,
}

/// Whether an event shown still stands, as its marks known then say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewStanding {
    /// No correction or mark.
    AsRecorded,
    /// Its latest mark is a correction: the correction holds the values now shown.
    Corrected,
    /// Its latest mark says it was entered in error.
    EnteredInError,
}

impl ViewStanding {
    /// As the JSON answer and the console's classes name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ViewStanding::AsRecorded => "as_recorded",
            ViewStanding::Corrected => "corrected",
            ViewStanding::EnteredInError => "entered_in_error",
        }
    }
}

/// An electronic signature on this event, as 21 CFR Part 11 §11.50 asks
/// it be shown: printed name, date and time, meaning.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SignatureView {
    /// The `record.signed` event's sequence.
    pub seq: u64,
    /// The `record.signed` event.
    pub event_id: Uuid,
    /// The signer's staff id.
    pub signer_id: String,
    /// The signer's printed name.
    pub signer_name: String,
    /// `authorship`, `review`, `approval` or `responsibility`.
    pub meaning: String,
    /// When it was signed: when the trail stored the signature (JetStream's
    /// time), never a time the signer's system gave.
    pub signed_at: DateTime<Utc>,
    /// Whether the signer was proven to be the one who signed: the
    /// recording service verified the signer's own token (not an
    /// integration's) naming this `signer_id`.
    pub signer_proven: bool,
    /// Whether the hash it carries is the SHA-256 of this event's stored
    /// bytes: false means the signature is not of this record as stored.
    pub hash_matches: bool,
}

/// An event of the trail, as stored, with its correction marks.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EventView {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Event id.
    pub event_id: Uuid,
    /// Type.
    pub event_type: EventType,
    /// Schema version as read (after upcasting).
    pub schema_version: u32,
    /// Clinic.
    pub clinic_id: String,
    /// Patient, for patient events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    /// Clinical time.
    pub occurred_at: DateTime<Utc>,
    /// Recording time, as the recording service stamped it.
    pub recorded_at: DateTime<Utc>,
    /// When JetStream stored it: the time `as_of` goes by (a `recorded_at`
    /// further from it than a few seconds raises `recorded_at_mismatch`).
    pub stored_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: Actor,
    /// How the recording service proved `actor` (its identity provider's
    /// token); absent when the actor was recorded as claimed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_proof: Option<prolo_schemas::ActorProof>,
    /// Recording service.
    pub source: String,
    /// Correlation id.
    pub correlation_id: String,
    /// Causing event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The payload as recorded (current schema version).
    pub payload: serde_json::Value,
    /// Corrections and entered-in-error marks made since (as known at `as_of`).
    pub marks: Vec<Mark>,
    /// `as_recorded`, `corrected` or `entered_in_error` (the latest mark).
    pub standing: ViewStanding,
    /// Electronic signatures on it (as known at `as_of`).
    pub signatures: Vec<SignatureView>,
}

/// An applied event as stored: its record and its envelope, decoded once.
pub(crate) struct Stored {
    /// Its sequence.
    pub seq: u64,
    /// The record (subject, stored time).
    pub record: prolo_projector::model::EventRecord,
    /// The event.
    pub envelope: Envelope,
}

/// The applied event at `seq`; `None` for a quarantined or missing
/// sequence. Read through `records`, which decompresses a block of records
/// once for the consecutive sequences an answer often reads (a visit's
/// events are recorded one after another).
pub(crate) fn stored(
    records: &mut RecordReader<'_>,
    seq: u64,
) -> Result<Option<Stored>, QueryError> {
    let Some(record) = records.event(seq)? else {
        return Ok(None);
    };
    if record.quarantine.is_some() {
        return Ok(None);
    }
    let Ok(envelope) = Envelope::decode(&record.raw) else {
        return Ok(None);
    };
    Ok(Some(Stored {
        seq,
        record,
        envelope,
    }))
}

/// The event at `seq`, with the marks recorded up to `as_of` (all when
/// `None`). `None` for a quarantined or missing sequence.
pub fn event_view(
    store: &Store,
    seq: u64,
    as_of: Option<DateTime<Utc>>,
) -> Result<Option<EventView>, QueryError> {
    match stored(&mut store.record_reader(), seq)? {
        Some(stored) => view_of(store, stored, as_of).map(Some),
        None => Ok(None),
    }
}

/// The view of an event already read, with its marks up to `as_of`.
pub(crate) fn view_of(
    store: &Store,
    stored: Stored,
    as_of: Option<DateTime<Utc>>,
) -> Result<EventView, QueryError> {
    let Stored {
        seq,
        record,
        envelope,
    } = stored;
    let marks: Marks = store.marks(&envelope.event_id)?;
    let mut shown = Vec::new();
    for (mark_seq, corrected) in marks.marks {
        if let Some(as_of) = as_of {
            let known = store
                .event(mark_seq)?
                .is_some_and(|r| r.stored_at_ms <= as_of.timestamp_millis());
            if !known {
                continue;
            }
        }
        shown.push(Mark {
            seq: mark_seq,
            kind: if corrected {
                EventType::RecordCorrected
            } else {
                EventType::RecordEnteredInError
            },
        });
    }
    let standing = match shown.last() {
        None => ViewStanding::AsRecorded,
        Some(Mark {
            kind: EventType::RecordCorrected,
            ..
        }) => ViewStanding::Corrected,
        Some(_) => ViewStanding::EnteredInError,
    };
    let signatures = signatures_of(store, &envelope.event_id, &record.raw, as_of)?;
    let payload = serde_json::to_value(&envelope.payload).unwrap_or(serde_json::Value::Null);
    Ok(EventView {
        seq,
        subject: record.subject,
        event_id: envelope.event_id,
        event_type: envelope.event_type(),
        schema_version: envelope.schema_version(),
        clinic_id: envelope.clinic_id.to_string(),
        patient_id: envelope.patient_id.map(|p| p.to_string()),
        occurred_at: envelope.occurred_at,
        recorded_at: envelope.recorded_at,
        stored_at: DateTime::from_timestamp_millis(record.stored_at_ms).unwrap_or_default(),
        actor: envelope.actor,
        actor_proof: envelope.actor_proof,
        source: envelope.source,
        correlation_id: envelope.correlation_id,
        causation_id: envelope.causation_id,
        payload,
        marks: shown,
        standing,
        signatures,
    })
}

/// The signatures on the event `event_id` whose stored bytes are `raw`,
/// known at `as_of`.
fn signatures_of(
    store: &Store,
    event_id: &Uuid,
    raw: &[u8],
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<SignatureView>, QueryError> {
    let seqs = store.signatures(event_id)?;
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let digest = prolo_schemas::RecordSigned::sha256_of(raw);
    let mut shown = Vec::new();
    let mut records = store.record_reader();
    for seq in seqs {
        let Some(signed) = stored(&mut records, seq)? else {
            continue;
        };
        if as_of.is_some_and(|as_of| signed.record.stored_at_ms > as_of.timestamp_millis()) {
            continue;
        }
        if let prolo_schemas::Payload::RecordSigned(p) = &signed.envelope.payload {
            shown.push(SignatureView {
                seq,
                event_id: signed.envelope.event_id,
                signer_id: p.signer_id.clone(),
                signer_name: p.signer_name.clone(),
                meaning: prolo_schemas::names::name(&p.meaning),
                signed_at: DateTime::from_timestamp_millis(signed.record.stored_at_ms)
                    .unwrap_or(signed.envelope.recorded_at),
                signer_proven: signed.envelope.actor_proof.as_ref().is_some_and(|proof| {
                    !proof.delegated
                        && proof.subject == p.signer_id
                        && signed.envelope.actor.id == p.signer_id
                }),
                hash_matches: p.signed_event_sha256 == digest,
            });
        }
    }
    Ok(shown)
}
