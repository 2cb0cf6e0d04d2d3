//! Compliance findings: where practice departed from policy (the safety
//! signals, where harm clusters, are in [`super::signals`]).
//!
//! Findings are *derived*: the fold raises them from the facts, each naming
//! the event ids that prove it, and resolves them when a later event
//! satisfies the rule (a consent recorded late). Both the raising and the
//! resolving stay in the read models; both are published on core NATS
//! (`prolo.finding.<clinic>.<rule>.raised|resolved`) for other systems. They
//! are not written to `CLINIC_EVENTS`: the stream holds facts, and findings
//! can always be derived again by a rebuild.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rules::disproportionality::Criteria;

/// The policy rules.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An injection without an active consent at its time (none, expired, withdrawn).
    NoActiveConsent,
    /// An injection at a site outside every active consent's scope.
    SiteOutsideConsent,
    /// An injection by a practitioner without a valid reconstructive-therapy credential then.
    NoValidCredential,
    /// An injection without an earlier examination and positive candidacy decision.
    NoExaminationOrCandidacy,
    /// A series past N sessions without follow-up imaging.
    SeriesWithoutFollowUpImaging,
    /// An adverse event linked to an injection that does not exist or is another patient's.
    AdverseEventLinkInvalid,
    /// An infection, misplaced injection or serious adverse event with no
    /// update within D days.
    NoAdverseEventUpdate,
    /// Recorded long after it happened.
    LateDocumentation,
    /// An injection with a lot expired at its time, or recalled before it.
    ExpiredOrRecalledLot,
    /// A spinal, thoracic or cervical site injected with palpation guidance alone.
    AxialSiteByPalpationOnly,
    /// A serious adverse event recorded long after its onset.
    SeriousEventReportedLate,
    /// An update, correction or entered-in-error mark whose target is
    /// another patient's or clinic's event, of another type than declared,
    /// or an access record: it changed nothing there.
    ReferenceOutsidePatient,
    /// An event whose `recorded_at` differs from the stream's own time by
    /// more than the bound: the stream's time is used.
    RecordedAtMismatch,
    /// An injection of an agent no active consent names.
    AgentOutsideConsent,
    /// An ultrasound- or fluoroscopy-guided injection by a practitioner
    /// without a valid credential for that guidance.
    GuidanceWithoutCredential,
    /// An injection recorded without aseptic preparation.
    AsepsisNotDone,
    /// An injection after the patient's latest candidacy decision said no.
    InjectionAfterNegativeCandidacy,
    /// A consent recorded (occurred) after an injection its period would
    /// cover: back-dating `valid_from` does not make it prior consent.
    ConsentAfterInjection,
    /// A second or later session under consents for a single session only.
    SeriesUnderSingleSessionConsent,
    /// An injection in a spinal, thoracic or cervical risk zone whose risk
    /// (dural puncture, pneumothorax, spinal cord injury) no active consent disclosed.
    RiskNotDisclosed,
    /// An injection at a site or side, or of an agent, outside its treatment plan.
    OutsideTreatmentPlan,
    /// A session beyond the number its treatment plan planned.
    SessionsBeyondPlan,
    /// A session sooner after the previous one than its plan's interval,
    /// by more than the tolerance.
    IntervalShorterThanPlanned,
    /// More local anaesthetic in one session than the agent's maximum
    /// single dose (mixtures by the sum of each agent's share).
    LocalAnaestheticAboveMaximum,
    /// A back-filled event that happened after the clinic began recording
    /// live, recorded later than the late-documentation limit: care that
    /// should have been recorded as it happened.
    BackfillAfterGoLive,
    /// The scheduled verification found a stored event or chain link that
    /// differs from the stream (raised by the verification, not the fold).
    ChainVerificationFailed,
    /// Several adverse events of one lot or one practitioner marked entered
    /// in error within a day: how a safety signal would be silenced, so a
    /// safety reviewer looks at each.
    AdverseEventsVoidedTogether,
    /// A message on the stream that no recording service sealed (published
    /// around them, e.g. with the stream's admin credentials, or altered):
    /// quarantined, never applied.
    UnprovenPublisher,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::NoActiveConsent,
        Rule::SiteOutsideConsent,
        Rule::NoValidCredential,
        Rule::NoExaminationOrCandidacy,
        Rule::SeriesWithoutFollowUpImaging,
        Rule::AdverseEventLinkInvalid,
        Rule::NoAdverseEventUpdate,
        Rule::LateDocumentation,
        Rule::ExpiredOrRecalledLot,
        Rule::AxialSiteByPalpationOnly,
        Rule::SeriousEventReportedLate,
        Rule::ReferenceOutsidePatient,
        Rule::RecordedAtMismatch,
        Rule::AgentOutsideConsent,
        Rule::GuidanceWithoutCredential,
        Rule::AsepsisNotDone,
        Rule::InjectionAfterNegativeCandidacy,
        Rule::ConsentAfterInjection,
        Rule::SeriesUnderSingleSessionConsent,
        Rule::RiskNotDisclosed,
        Rule::OutsideTreatmentPlan,
        Rule::SessionsBeyondPlan,
        Rule::IntervalShorterThanPlanned,
        Rule::LocalAnaestheticAboveMaximum,
        Rule::BackfillAfterGoLive,
        Rule::ChainVerificationFailed,
        Rule::AdverseEventsVoidedTogether,
        Rule::UnprovenPublisher,
    ];

    /// The rule's name on the wire and in subjects.
    pub fn code(self) -> String {
        prolo_schemas::names::name(&self)
    }

    /// Whether a finding of this rule is the injecting practitioner's (on
    /// their history): the act itself (guidance, asepsis, credential, dose,
    /// site, plan), not the clinic's paperwork (consent, examination,
    /// candidacy, lot).
    pub fn concerns_practitioner(self) -> bool {
        matches!(
            self,
            Rule::LocalAnaestheticAboveMaximum
                | Rule::GuidanceWithoutCredential
                | Rule::AsepsisNotDone
                | Rule::NoValidCredential
                | Rule::AxialSiteByPalpationOnly
                | Rule::OutsideTreatmentPlan
                | Rule::SessionsBeyondPlan
                | Rule::IntervalShorterThanPlanned
        )
    }

    /// How much it matters.
    pub fn severity(self) -> Severity {
        match self {
            Rule::NoActiveConsent
            | Rule::ExpiredOrRecalledLot
            | Rule::AdverseEventLinkInvalid
            | Rule::ReferenceOutsidePatient
            | Rule::AsepsisNotDone
            | Rule::InjectionAfterNegativeCandidacy
            | Rule::ConsentAfterInjection
            | Rule::RiskNotDisclosed
            | Rule::LocalAnaestheticAboveMaximum
            | Rule::ChainVerificationFailed
            | Rule::AdverseEventsVoidedTogether
            | Rule::UnprovenPublisher => Severity::High,
            Rule::RecordedAtMismatch => Severity::Medium,
            Rule::SiteOutsideConsent
            | Rule::AgentOutsideConsent
            | Rule::SeriesUnderSingleSessionConsent
            | Rule::GuidanceWithoutCredential
            | Rule::NoValidCredential
            | Rule::AxialSiteByPalpationOnly
            | Rule::SeriousEventReportedLate
            | Rule::NoAdverseEventUpdate
            | Rule::OutsideTreatmentPlan
            | Rule::SessionsBeyondPlan
            | Rule::BackfillAfterGoLive => Severity::Medium,
            Rule::NoExaminationOrCandidacy
            | Rule::SeriesWithoutFollowUpImaging
            | Rule::LateDocumentation
            | Rule::IntervalShorterThanPlanned => Severity::Low,
        }
    }
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Documentation quality.
    Low,
    /// Practice outside policy.
    Medium,
    /// Patient safety or consent.
    High,
}

/// The thresholds of the rules and signals. The same settings must be used
/// for a rebuild to give the same read models.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingSettings {
    /// Sessions allowed in a series before follow-up imaging is required.
    pub sessions_before_follow_up_imaging: u8,
    /// Days within which an infection or misplaced injection must be followed up.
    pub adverse_event_update_days: i64,
    /// Hours between occurred_at and recorded_at beyond which documentation is late.
    pub late_documentation_hours: i64,
    /// Hours after onset within which a serious adverse event must be recorded.
    pub serious_report_hours: i64,
    /// When a kind stands out in a group (see [`crate::rules::disproportionality`]).
    pub signal_criteria: Criteria,
    /// Days before its onset within which an adverse event that names no
    /// injection is attributed to the patient's latest injection.
    pub attribution_window_days: i64,
    /// Kinds expected after injections: measured and shown, never raised
    /// (a pain flare up to 72 h follows ~10% of injections in trials; with
    /// five dimensions watched after every event it would cry wolf).
    pub expected_kinds: Vec<String>,
    /// Days a session may come sooner than its plan's interval before
    /// `interval_shorter_than_planned` (a clinic books around weekends).
    pub plan_interval_tolerance_days: i64,
    /// Milliseconds an event's `recorded_at` may differ from the time
    /// JetStream stored it before `recorded_at_mismatch` is raised. (Events
    /// sourced later from a clinic edge will be judged against the edge's
    /// stored time, carried with them.)
    pub recorded_at_tolerance_ms: i64,
    /// Adverse events of one lot or practitioner voided within
    /// [`FindingSettings::void_window_hours`] that raise
    /// `adverse_events_voided_together`.
    pub voids_together: usize,
    /// The window of `voids_together`, hours of the stream's clock.
    pub void_window_hours: i64,
    /// The public keys of the recording services: a message they did not
    /// seal is quarantined and raises `unproven_publisher`. `None`: seals
    /// are not checked (development, or a stream from before sealing).
    pub seals: Option<std::sync::Arc<prolo_bus::Keyring>>,
}

impl Default for FindingSettings {
    fn default() -> Self {
        Self {
            sessions_before_follow_up_imaging: 3,
            adverse_event_update_days: 7,
            late_documentation_hours: 72,
            serious_report_hours: 24,
            signal_criteria: Criteria::default(),
            expected_kinds: vec!["pain_flare".to_owned()],
            attribution_window_days: 30,
            recorded_at_tolerance_ms: 5_000,
            plan_interval_tolerance_days: 3,
            voids_together: 3,
            void_window_hours: 24,
            seals: None,
        }
    }
}

/// A finding: a rule broken, with the events that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// Deterministic: derived from the rule and the first evidence event.
    pub id: Uuid,
    /// The rule.
    pub rule: Rule,
    /// Its severity.
    pub severity: Severity,
    /// Clinic.
    pub clinic_id: String,
    /// Patient, when the finding concerns one.
    pub patient_id: Option<String>,
    /// Practitioner, when the finding concerns one.
    pub practitioner_id: Option<String>,
    /// The events that prove it (the first is the one it is about).
    pub evidence: Vec<Uuid>,
    /// What is wrong, in words.
    pub detail: String,
    /// Sequence of the event whose folding raised it.
    pub raised_seq: u64,
    /// Clinical time of the event it is about, ms.
    pub about_ms: i64,
    /// The event that resolved it, if any, and its sequence.
    pub resolved_by: Option<(Uuid, u64)>,
}

impl Finding {
    /// The id of the finding of `rule` about `event`.
    pub fn id_for(rule: Rule, event: &Uuid) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{}\n{event}", rule.code()).as_bytes(),
        )
    }

    /// `open` or `resolved`.
    pub fn status(&self) -> &'static str {
        if self.resolved_by.is_some() {
            "resolved"
        } else {
            "open"
        }
    }
}

/// How many findings of one rule a clinic has had raised, and resolved.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct FindingCount {
    /// Raised.
    pub raised: u64,
    /// Of those, resolved by a later event.
    pub resolved: u64,
}

impl FindingCount {
    /// Still open.
    pub fn open(&self) -> u64 {
        self.raised.saturating_sub(self.resolved)
    }
}

/// A finding still open, kept on the summary of whoever can resolve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenFinding {
    /// The finding.
    pub id: Uuid,
    /// Its rule.
    pub rule: Rule,
    /// Clinical time of the event it is about, ms.
    pub about_ms: i64,
    /// The injection's site, for consent-scope findings.
    pub site_key: Option<String>,
}
