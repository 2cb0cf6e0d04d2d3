//! Compliance findings and safety signals: where practice departed from
//! policy, and where harm clusters.
//!
//! Findings are *derived*: the fold raises them from the facts, each naming
//! the event ids that prove it, and resolves them when a later event
//! satisfies the rule (a consent recorded late). Both the raising and the
//! resolving stay in the read models; both are published on core NATS
//! (`prolo.finding.<clinic>.<rule>.raised|resolved`) for other systems. They
//! are not written to `CLINIC_EVENTS`: the stream holds facts, and findings
//! can always be derived again by a rebuild.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rules::disproportionality::{Criteria, Measures, Table};

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
    ];

    /// The rule's name on the wire and in subjects.
    pub fn code(self) -> String {
        crate::names::name(&self)
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
            | Rule::ChainVerificationFailed => Severity::High,
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

/// Counts of one group for the signal rates: its injections and the
/// adverse events after them, by kind, so that expected pain flares do not
/// hide infections; all-time, and day by day over the rolling window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupCount {
    /// Injections in the group.
    pub injections: u64,
    /// Adverse events after them, all kinds.
    pub adverse_events: u64,
    /// Adverse events after them, by kind (`infection`, `pain_flare`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// The kinds a signal is active for.
    pub signalled: std::collections::BTreeSet<String>,
    /// The latest adverse events of each kind (at most
    /// [`EVENTS_KEPT_PER_KIND`]) with the day of the injection they
    /// follow, to tell whether another group's signal already explains
    /// this group's events.
    pub recent: BTreeMap<String, Vec<(Uuid, i64)>>,
    /// The same counts by the day of the injection (days since 1970-01-01,
    /// UTC), for the days of the rolling window only: older days are
    /// dropped as the stream's clock moves on.
    pub days: BTreeMap<i64, DayCount>,
}

/// One day of a group: the injections given that day and the adverse
/// events that followed them, by kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DayCount {
    /// Injections given that day.
    pub injections: u64,
    /// Adverse events after them, by kind.
    pub by_kind: BTreeMap<String, u64>,
}

/// How many event ids a group keeps per kind: enough for a cluster of rare
/// events; a kind with more is not explained away by a handful.
pub const EVENTS_KEPT_PER_KIND: usize = 64;

const DAY_MS: i64 = 86_400_000;

/// The day (since 1970-01-01, UTC) of a time in milliseconds.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Adds `sign` (±1) to a count, never below zero.
fn bump(count: &mut u64, sign: i8) {
    if sign > 0 {
        *count += 1;
    } else {
        *count = count.saturating_sub(1);
    }
}

impl GroupCount {
    /// Counts (`sign` 1) or takes away (-1) an injection given on `day`.
    /// Days before `window_from` are not kept.
    pub fn add_injection(&mut self, day: i64, sign: i8, window_from: i64) {
        bump(&mut self.injections, sign);
        if day >= window_from {
            bump(&mut self.days.entry(day).or_default().injections, sign);
        }
        self.days = self.days.split_off(&window_from);
    }

    /// Counts (`sign` 1) or takes away (-1) adverse event `event` of `kind`
    /// after an injection given on `day`.
    pub fn add_event(&mut self, kind: &str, event: Uuid, day: i64, sign: i8, window_from: i64) {
        bump(&mut self.adverse_events, sign);
        bump(self.by_kind.entry(kind.to_owned()).or_default(), sign);
        if day >= window_from {
            let today = self.days.entry(day).or_default();
            bump(today.by_kind.entry(kind.to_owned()).or_default(), sign);
        }
        self.days = self.days.split_off(&window_from);
        let recent = self.recent.entry(kind.to_owned()).or_default();
        if sign > 0 {
            recent.push((event, day));
            if recent.len() > EVENTS_KEPT_PER_KIND {
                recent.remove(0);
            }
        } else {
            recent.retain(|(id, _)| *id != event);
        }
    }

    /// The group's counts over the window from `from_day` on: its
    /// injections of those days and the adverse events after them.
    pub fn window(&self, from_day: i64) -> GroupCount {
        let mut window = GroupCount {
            signalled: self.signalled.clone(),
            ..GroupCount::default()
        };
        for day in self.days.range(from_day..).map(|(_, d)| d) {
            window.injections += day.injections;
            for (kind, n) in &day.by_kind {
                window.adverse_events += n;
                *window.by_kind.entry(kind.clone()).or_default() += n;
            }
        }
        window
    }

    /// The adverse events of `kind` it keeps after injections given from
    /// day `from` on, oldest first.
    pub fn recent_events(&self, kind: &str, from: i64) -> Vec<Uuid> {
        self.recent
            .get(kind)
            .map(|events| {
                let kept = events.iter().filter(|(_, day)| *day >= from);
                kept.map(|(id, _)| *id).collect()
            })
            .unwrap_or_default()
    }

    /// The 2×2 table a signal is judged on: this group's injections given
    /// in the window from day `from` and the events of `kind` after them,
    /// against the rest of `clinic` over all its history (the rest never
    /// includes the group: the two are disjoint). The window says whether
    /// a cluster is current; the longer history estimates the background
    /// (a 90-day window of a small clinic holds too few background events
    /// for χ² to tell four infections from chance).
    pub fn in_window_against_rest(&self, clinic: &GroupCount, kind: &str, from: i64) -> Table {
        let window = self.window(from);
        Table {
            group_events: window.events(kind),
            group_injections: window.injections,
            ..self.against_rest(clinic, kind)
        }
    }

    /// Adverse events (all kinds) per 1,000 injections.
    pub fn rate(&self) -> f64 {
        crate::rules::disproportionality::per_1000(self.adverse_events, self.injections)
    }

    /// 95% Wilson score interval of the rate, per 1,000 injections.
    pub fn interval(&self) -> (f64, f64) {
        crate::rules::disproportionality::wilson_per_1000(self.adverse_events, self.injections)
    }

    /// Events of `kind`.
    pub fn events(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// The 2×2 table of `kind`: this group against the rest of `clinic`
    /// (whose counts include this group's).
    pub fn against_rest(&self, clinic: &GroupCount, kind: &str) -> Table {
        Table {
            group_events: self.events(kind),
            group_injections: self.injections,
            rest_events: clinic.events(kind).saturating_sub(self.events(kind)),
            rest_injections: clinic.injections.saturating_sub(self.injections),
        }
    }
}

/// The dimensions adverse-event rates are grouped by. `vial` (a multi-dose
/// vial: its lot and the day it was opened) and `preparation` (who drew up
/// the syringes, and the day) count only injections that record them: they
/// tell a contamination inside the clinic from a bad manufacturer's lot.
pub const DIMENSIONS: &[Dimension] = &[
    Dimension::Vial,
    Dimension::Preparation,
    Dimension::Lot,
    Dimension::Solution,
    Dimension::Site,
    Dimension::Practitioner,
    Dimension::Guidance,
];

/// What injections are grouped by for their adverse-event rates; `clinic`
/// is the baseline (every injection of the clinic, group `all`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The whole clinic: the baseline.
    Clinic,
    /// A multi-dose vial: its lot and the day it was opened.
    Vial,
    /// Who drew up the syringes, and the day.
    Preparation,
    /// A solution component's lot.
    Lot,
    /// The solution (agents and concentrations).
    Solution,
    /// The site injected.
    Site,
    /// The practitioner who injected.
    Practitioner,
    /// The guidance mode.
    Guidance,
}

impl Dimension {
    /// Its name, as the signal keys, the JSON answers and the console use it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Clinic => "clinic",
            Dimension::Vial => "vial",
            Dimension::Preparation => "preparation",
            Dimension::Lot => "lot",
            Dimension::Solution => "solution",
            Dimension::Site => "site",
            Dimension::Practitioner => "practitioner",
            Dimension::Guidance => "guidance",
        }
    }

    /// The dimension of that name (as a signal key holds it).
    pub fn named(name: &str) -> Option<Dimension> {
        [Dimension::Clinic]
            .iter()
            .chain(DIMENSIONS)
            .copied()
            .find(|d| d.as_str() == name)
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raised signal, published and kept: one adverse-event kind standing out
/// in one group against the rest of the clinic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signal {
    /// Clinic.
    pub clinic_id: String,
    /// What it groups by: `lot`, `solution`, `site`, `practitioner`, …
    pub dimension: Dimension,
    /// The group, e.g. the lot number.
    pub group: String,
    /// The adverse-event kind, e.g. `infection`.
    pub kind: String,
    /// The 2×2 table when raised.
    pub table: Table,
    /// Its measures then (PRR with its interval and χ², IC and IC025).
    pub measures: Measures,
    /// The adverse event whose folding raised it (last raised).
    pub raised_by: Uuid,
    /// Its sequence.
    pub raised_seq: u64,
    /// Raised and not cleared since.
    pub active: bool,
    /// Every time it was raised or cleared, in order.
    pub transitions: Vec<SignalTransition>,
}

/// A signal raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignalTransition {
    /// Raised or cleared.
    pub state: SignalState,
    /// The adverse event whose folding did it.
    pub by: Uuid,
    /// Its sequence.
    pub seq: u64,
    /// Why (for a clearing: no longer meets the criteria, or explained by
    /// another group's signal).
    pub reason: String,
    /// The table then.
    pub table: Table,
}

/// What a signal's transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalState {
    /// The group's counts met the criteria.
    Raised,
    /// They no longer do, or another group's signal explains its events.
    Cleared,
}

impl SignalState {
    /// `raised` or `cleared`, as published and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalState::Raised => "raised",
            SignalState::Cleared => "cleared",
        }
    }
}

impl std::fmt::Display for SignalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let g = GroupCount {
            injections: 200,
            adverse_events: 10,
            ..GroupCount::default()
        };
        let (lo, hi) = g.interval();
        assert!((g.rate() - 50.0).abs() < 1e-9);
        assert!(lo < 50.0 && 50.0 < hi, "{lo} {hi}");
        assert!(
            (lo - 27.4).abs() < 1.0 && (hi - 89.7).abs() < 1.0,
            "{lo} {hi}"
        );
    }

    #[test]
    fn a_group_is_compared_with_the_rest_of_the_clinic_kind_by_kind() {
        let counts = |injections, infections, flares| GroupCount {
            injections,
            adverse_events: infections + flares,
            by_kind: [
                ("infection".to_owned(), infections),
                ("pain_flare".to_owned(), flares),
            ]
            .into(),
            ..GroupCount::default()
        };
        let clinic = counts(2000, 6, 60);
        let lot = counts(250, 4, 7);
        let infections = lot.against_rest(&clinic, "infection");
        assert_eq!(
            infections,
            Table {
                group_events: 4,
                group_injections: 250,
                rest_events: 2,
                rest_injections: 1750
            }
        );
        let criteria = Criteria::default();
        assert!(infections.signals(&criteria));
        // Pooled with the flares, the same lot would not stand out.
        assert!(!lot.against_rest(&clinic, "pain_flare").signals(&criteria));
        assert_eq!(lot.against_rest(&clinic, "nerve_injury").group_events, 0);
    }
}
