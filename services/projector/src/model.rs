//! The read models: plain structs stored with bincode (which cannot decode
//! `serde_json::Value`, so everything here is concrete). They hold what the
//! events imply, current views with corrections applied; the events
//! themselves (and so the full history) are kept as stored in the stream.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every message at its sequence, applied or quarantined: the exact bytes
/// the stream holds and the hash-chain link over them. Kept in blocks of
/// consecutive sequences ([`crate::store::records`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Stream sequence.
    pub seq: u64,
    /// Subject it was published on.
    pub subject: String,
    /// The message payload, byte for byte (its block is stored compressed,
    /// see [`crate::store::records`]).
    #[serde(with = "serde_bytes")]
    pub raw: Vec<u8>,
    /// `chain[seq]`, see [`crate::integrity::chain`].
    pub chain: [u8; 32],
    /// When JetStream stored it (ms): the recorded time `as_of` uses.
    pub stored_at_ms: i64,
    /// Why it was quarantined instead of applied; `None` when applied.
    /// Quarantined messages are kept, never dropped.
    pub quarantine: Option<String>,
}

/// A message the hub's stream sourced from a clinic's edge. Its recorded
/// time (the [`EventRecord::stored_at_ms`]) is the edge's; the hub's arrival
/// is kept here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcedRecord {
    /// The hub's source (one per clinic edge).
    pub source: String,
    /// Its sequence in the edge's stream.
    pub edge_seq: u64,
    /// When the hub's stream stored it (ms).
    pub arrived_at_ms: i64,
}

/// One clinic edge's hash chain as the hub recomputes it from the sourced
/// messages in edge order: `chain[n] = SHA-256(chain[n-1] ‖ n ‖ payload)`
/// with the edge's sequence `n`, so that it equals the chain head (and the
/// checkpoints) the edge's own fold computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EdgeChain {
    /// The clinic whose edge this is.
    pub clinic: String,
    /// The last edge sequence folded.
    pub through: u64,
    /// The chain head at `through` (hex in JSON and in the store).
    #[serde(with = "crate::integrity::chain::hex_serde")]
    #[schemars(with = "String")]
    pub head: [u8; 32],
    /// Edge sequences that did not follow the previous one (a source set up
    /// after the edge had events, or lost messages): when not zero, the head
    /// cannot equal the edge's.
    pub gaps: u64,
}

/// Whether a recorded fact still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Standing {
    /// As recorded.
    AsRecorded,
    /// Replaced by the `record.corrected` event at this sequence; the
    /// entry shows the corrected values.
    Corrected {
        /// Sequence of the correction.
        by_seq: u64,
    },
    /// Marked entered in error by the event at this sequence.
    EnteredInError {
        /// Sequence of the mark.
        by_seq: u64,
    },
}

impl Standing {
    /// True unless entered in error.
    pub fn counts(self) -> bool {
        !matches!(self, Standing::EnteredInError { .. })
    }
}

/// Where an entry came from, shared by every summary entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Origin {
    /// The event.
    pub event_id: Uuid,
    /// Its stream sequence.
    pub seq: u64,
    /// Its clinical time, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Its recording time, ms since the epoch.
    pub recorded_at_ms: i64,
    /// Corrected or entered in error since.
    pub standing: Standing,
}

/// A consent and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentEntry {
    /// The `consent.given` event.
    pub origin: Origin,
    /// Period start, ms.
    pub valid_from_ms: i64,
    /// Period end, ms, if any.
    pub valid_until_ms: Option<i64>,
    /// Site keys covered.
    pub sites: Vec<String>,
    /// Agents covered.
    pub solutions: Vec<String>,
    /// Consented to a series, not one session.
    pub series: bool,
    /// Risks disclosed, e.g. `pneumothorax`.
    pub risks: Vec<String>,
    /// When it was withdrawn (occurred_at ms) and by which sequence.
    pub withdrawn: Option<(i64, u64)>,
}

/// A treatment plan, as it stands, for the plan rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanEntry {
    /// The `treatment.planned` event.
    pub origin: Origin,
    /// Sessions planned.
    pub sessions_planned: u8,
    /// Days planned between sessions.
    pub interval_days: u16,
    /// Sites planned, as consent scopes (`KNEE_MCL:left`, `KNEE_MCL` for either side).
    pub sites: Vec<String>,
    /// Agents planned (empty: the plan names none).
    pub solutions: Vec<String>,
}

/// An injection, as the current view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InjectionEntry {
    /// The `injection.given` event.
    pub origin: Origin,
    /// Site key.
    pub site_key: String,
    /// Side, if any.
    pub laterality: Option<prolo_schemas::Laterality>,
    /// Lots of every component.
    pub lots: Vec<String>,
    /// Who injected.
    pub practitioner_id: String,
    /// Session number.
    pub session_number: u8,
    /// Guidance.
    pub guidance: prolo_schemas::Guidance,
    /// Volume, mL.
    pub volume_ml: f64,
    /// The signal groups it is counted in, `(dimension, group)`, the
    /// clinic's baseline first: moved when a correction changes them.
    pub groups: Vec<(crate::rules::signals::Dimension, String)>,
    /// Its plan, when named.
    pub plan: Option<Uuid>,
    /// Each local anaesthetic it carried and how much, mg (concentration ×
    /// volume: 1% is 10 mg/mL).
    pub anaesthetic_mg: Vec<(String, f64)>,
}

/// An injection as a practitioner's day lists it: what an investigation
/// shows of the practitioner's other injections around an adverse event,
/// kept in the day's index so that it reads these rows, not ~1,000 records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayInjection {
    /// Stream sequence.
    pub seq: u64,
    /// Event id.
    pub event_id: Uuid,
    /// Clinical time: seconds since the epoch and nanoseconds, as recorded.
    pub occurred_at: (i64, u32),
    /// Patient.
    pub patient_id: String,
    /// Site key.
    pub site_key: String,
    /// Side, if any.
    pub laterality: Option<prolo_schemas::Laterality>,
    /// Lots of every component.
    pub lots: Vec<String>,
    /// The solution, e.g. `dextrose 15% + lidocaine 1%`.
    pub solution: String,
    /// Volume, mL.
    pub volume_ml: f64,
    /// Guidance.
    pub guidance: prolo_schemas::Guidance,
}

impl DayInjection {
    /// The row of the `injection.given` event `e` at `seq`.
    pub fn of(e: &prolo_schemas::Envelope, seq: u64, p: &prolo_schemas::InjectionGiven) -> Self {
        DayInjection {
            seq,
            event_id: e.event_id,
            occurred_at: (
                e.occurred_at.timestamp(),
                e.occurred_at.timestamp_subsec_nanos(),
            ),
            patient_id: e
                .patient_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            site_key: p.site.site_key.as_str().to_owned(),
            laterality: p.site.laterality,
            lots: lots_of(p),
            solution: p
                .solution
                .components
                .iter()
                .map(prolo_schemas::names::solution_label)
                .collect::<Vec<_>>()
                .join(" + "),
            volume_ml: p.volume_ml,
            guidance: p.guidance,
        }
    }

    /// Its clinical time.
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        let (secs, nanos) = self.occurred_at;
        chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default()
    }
}

/// The lots of every component of an injection's solution.
pub fn lots_of(p: &prolo_schemas::InjectionGiven) -> Vec<String> {
    p.solution
        .components
        .iter()
        .map(|c| c.lot.to_string())
        .collect()
}

/// An examination, imaging study, candidacy decision, plan or adjunct recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClinicalEntry {
    /// The event.
    pub origin: Origin,
    /// Its event type.
    pub event_type: prolo_schemas::EventType,
    /// One line: e.g. `ultrasound baseline`, `candidate`, `4 sessions every 28 days`.
    pub summary: String,
    /// What the rules look at: the imaging purpose, the candidacy decision,
    /// the screening's decision, the outcome's instrument, why a series ended.
    /// Answers show its name (`follow_up`, `not_candidate`; empty for none).
    #[serde(serialize_with = "ClinicalTag::serialize_for_people")]
    #[schemars(with = "String")]
    pub tag: ClinicalTag,
}

/// What the rules look at in a clinical entry, typed as the schema has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalTag {
    /// Nothing the rules look at (a time-out, an observation).
    None,
    /// An imaging study's purpose: baseline or follow-up.
    Imaging(prolo_schemas::ImagingPurpose),
    /// A candidacy decision.
    Candidacy {
        /// A candidate or not.
        candidate: bool,
    },
    /// A screening's decision.
    Screening(prolo_schemas::ScreeningDecision),
    /// The instrument of a patient-reported outcome.
    Outcome(prolo_schemas::OutcomeInstrument),
    /// Why a series ended.
    SeriesEnd(prolo_schemas::SeriesEndReason),
}

impl ClinicalTag {
    /// Stored typed (bincode), answered by its name (JSON): a JSON answer
    /// keeps the one string it always had.
    fn serialize_for_people<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.name())
        } else {
            self.serialize(s)
        }
    }

    /// Its name for people: the value's recorded name (`follow_up`,
    /// `not_candidate`, `proceed`, …), empty for none.
    pub fn name(&self) -> String {
        match self {
            ClinicalTag::None => String::new(),
            ClinicalTag::Imaging(purpose) => prolo_schemas::names::name(purpose),
            ClinicalTag::Candidacy { candidate: true } => "candidate".to_owned(),
            ClinicalTag::Candidacy { candidate: false } => "not_candidate".to_owned(),
            ClinicalTag::Screening(decision) => prolo_schemas::names::name(decision),
            ClinicalTag::Outcome(instrument) => prolo_schemas::names::name(instrument),
            ClinicalTag::SeriesEnd(reason) => prolo_schemas::names::name(reason),
        }
    }
}

/// A correction or entered-in-error mark made on this patient's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CorrectionEntry {
    /// The correcting event.
    pub origin: Origin,
    /// The event corrected.
    pub target_event_id: Uuid,
    /// `record.corrected` or `record.entered_in_error`.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// Everything recorded about one patient, current view.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PatientSummary {
    /// Clinic.
    pub clinic_id: String,
    /// Patient.
    pub patient_id: String,
    /// Events applied for this patient.
    pub event_count: u64,
    /// Last sequence that touched this patient.
    pub last_seq: u64,
    /// Consents, in order given.
    pub consents: Vec<ConsentEntry>,
    /// Examinations, imaging, candidacy, plans, adjunct therapy, in stream order.
    pub clinical: Vec<ClinicalEntry>,
    /// Injections, in stream order.
    pub injections: Vec<InjectionEntry>,
    /// Treatment plans, in stream order.
    pub plans: Vec<PlanEntry>,
    /// Adverse events reported for this patient (state under `ae\0`).
    pub adverse_events: Vec<Uuid>,
    /// Corrections and entered-in-error marks.
    pub corrections: Vec<CorrectionEntry>,
    /// Findings about this patient that a later event can still resolve.
    pub open_findings: Vec<crate::rules::findings::OpenFinding>,
}

/// One follow-up of an adverse event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AdverseEventUpdate {
    /// The `adverse_event.updated` event.
    pub origin: Origin,
    /// Causality, if assessed.
    pub causality: Option<prolo_schemas::Causality>,
    /// Grade, if re-graded.
    pub grade: Option<u8>,
    /// `open` or `closed`.
    pub status: prolo_schemas::AdverseEventStatus,
    /// Outcome.
    pub outcome: prolo_schemas::Outcome,
}

/// How an adverse event is counted for the signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counted {
    /// The kind it is counted as.
    pub kind: String,
    /// The groups, `(dimension, group)`, the clinic's baseline first.
    pub groups: Vec<(crate::rules::signals::Dimension, String)>,
    /// The injection it is counted after: the one it names, or, when it
    /// names none, the patient's latest injection before its onset within
    /// the attribution window.
    pub injection: Uuid,
    /// Inferred (it named no injection).
    pub inferred: bool,
    /// The day that injection was given (see [`crate::rules::signals::day_of`]):
    /// where it counts in the rolling window.
    pub day: i64,
}

/// An adverse event with its follow-up, and the injection it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AdverseEventState {
    /// The `adverse_event.reported` event.
    pub origin: Origin,
    /// Clinic.
    pub clinic_id: String,
    /// Patient.
    pub patient_id: String,
    /// Kind (the latest escalation, else the reported one).
    pub kind: prolo_schemas::AdverseEventKind,
    /// Current grade (the latest re-grading, else the reported one).
    pub grade: u8,
    /// Serious (ICH E2A).
    pub serious: bool,
    /// Onset, ms.
    pub onset_at_ms: i64,
    /// The injection it follows, if named.
    pub linked_injection: Option<Uuid>,
    /// That injection's sequence, when it was found in the trail.
    pub injection_seq: Option<u64>,
    /// Who gave that injection.
    pub injection_practitioner: Option<String>,
    /// Its lots.
    pub injection_lots: Vec<String>,
    /// Its site key.
    pub injection_site: Option<String>,
    /// Its guidance.
    pub injection_guidance: Option<prolo_schemas::Guidance>,
    /// Its solution components, e.g. `dextrose 15%`.
    pub injection_solutions: Vec<String>,
    /// Follow-ups in order.
    pub updates: Vec<AdverseEventUpdate>,
    /// How it is counted in the signal groups, if it is: its kind and the
    /// groups of its injection. Moved or removed when a correction, a
    /// mark or an update changes them.
    pub counted: Option<Counted>,
    /// `open` until an update closes it.
    pub status: prolo_schemas::AdverseEventStatus,
    /// Latest outcome.
    pub outcome: Option<prolo_schemas::Outcome>,
}

/// A practitioner's credentials and work. The injections and adverse events
/// themselves are listed by the practitioner index (`ipr\0`): a summary
/// that grew with every injection would be rewritten whole each time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PractitionerSummary {
    /// Clinic.
    pub clinic_id: String,
    /// Practitioner.
    pub practitioner_id: String,
    /// Credentials.
    pub credentials: Vec<CredentialEntry>,
    /// Injections given.
    pub injection_count: u64,
    /// Adverse events after their injections.
    pub adverse_event_count: u64,
    /// Findings (missing credential) a later credential can still resolve.
    pub open_findings: Vec<crate::rules::findings::OpenFinding>,
}

/// A credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CredentialEntry {
    /// The `practitioner.credentialed` event.
    pub origin: Origin,
    /// Kind.
    pub credential: prolo_schemas::CredentialKind,
    /// First valid day (`YYYY-MM-DD` in JSON).
    pub valid_from: chrono::NaiveDate,
    /// Last valid day, if any.
    pub valid_until: Option<chrono::NaiveDate>,
}

/// Corrections of one event, by sequence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Marks {
    /// `(seq, corrected?)`: true for `record.corrected`, false for entered in error.
    pub marks: Vec<(u64, bool)>,
}
