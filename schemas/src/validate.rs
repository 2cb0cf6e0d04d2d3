//! The contract's rules beyond shape: plausible ranges and consistency.
//!
//! One validation, used by the recording services before publishing and by
//! the projector when folding. Every problem is collected (not just the
//! first) and names its field path, e.g.
//! `injection.given: payload.volume_ml: 80 is above the maximum 20`.

use std::fmt::Display;

use chrono::{DateTime, Duration, Utc};

use crate::{
    ContractError, EntityKind, Envelope, Payload, Problem, ProblemCode, SiteKey, bounds::*,
    payload::*,
};

/// `text` as the contract takes it in free text: at most `max` characters,
/// control and deceptive characters replaced by `?`.
pub fn clean_text(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || is_deceptive(c) {
                '?'
            } else {
                c
            }
        })
        .take(max)
        .collect()
}

/// Characters refused in free text because they change how it reads
/// without being seen ("Trojan Source", CVE-2021-42574): the bidirectional
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), and
/// the invisible separators U+200B (zero-width space), U+2060 (word joiner)
/// and U+FEFF (byte-order mark). The zero-width joiners U+200C/U+200D and
/// the direction marks U+200E/U+200F/U+061C stay allowed: Persian, Indic
/// scripts and right-to-left text need them, and they reorder nothing.
/// Identifiers allow only `[A-Za-z0-9_-]` anyway.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// How far `occurred_at` may lie after `recorded_at`: the caller's clock and
/// the service's clock are not the same clock. Beyond this the clinical time
/// is in the future, which is a typo, not a fact.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::minutes(5);

/// Collects problems with their paths.
struct Check {
    problems: Vec<Problem>,
    /// The schema version the event was written in: a rule added in a
    /// later version is not applied to it, so that a record accepted once
    /// is never quarantined when the stream is folded again.
    written: u32,
}

impl Check {
    fn problem(&mut self, path: impl Into<String>, code: ProblemCode, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn range<T: PartialOrd + Display>(&mut self, path: &str, value: T, min: T, max: T) {
        if value < min {
            self.problem(
                path,
                ProblemCode::OutOfRange,
                format!("{value} is below the minimum {min}"),
            );
        } else if value > max {
            self.problem(
                path,
                ProblemCode::OutOfRange,
                format!("{value} is above the maximum {max}"),
            );
        }
    }

    /// `above < value <= max`, for quantities that cannot be zero.
    fn above_up_to(&mut self, path: &str, value: f64, above: f64, max: f64) {
        if value.is_nan() || value <= above {
            self.problem(
                path,
                ProblemCode::OutOfRange,
                format!("{value} must be above {above}"),
            );
        } else if value > max {
            self.problem(
                path,
                ProblemCode::OutOfRange,
                format!("{value} is above the maximum {max}"),
            );
        }
    }

    fn text(&mut self, path: &str, text: &str, max_chars: usize) {
        if text.trim().is_empty() {
            self.problem(path, ProblemCode::BadText, "must not be empty");
        } else if text.chars().count() > max_chars {
            self.problem(
                path,
                ProblemCode::BadText,
                format!("is longer than {max_chars} characters"),
            );
        } else if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.problem(path, ProblemCode::BadText, "contains control characters");
        } else if let Some(c) = text.chars().find(|c| is_deceptive(*c)) {
            self.problem(
                path,
                ProblemCode::BadText,
                format!(
                    "contains U+{:04X}, an invisible or direction-changing character that would make \
                     the text read differently from what is stored",
                    c as u32
                ),
            );
        }
    }

    fn opt_text(&mut self, path: &str, text: Option<&String>, max_chars: usize) {
        if let Some(text) = text {
            self.text(path, text, max_chars);
        }
    }

    fn non_empty<T>(&mut self, path: &str, items: &[T]) {
        if items.is_empty() {
            self.problem(path, ProblemCode::MissingField, "must name at least one");
        }
    }

    fn inconsistent(&mut self, path: &str, message: impl Into<String>) {
        self.problem(path, ProblemCode::Inconsistent, message);
    }

    /// A site where the record says where: a sided site needs its side.
    fn site(&mut self, path: &str, site: &Site) {
        self.site_with(path, site, false);
    }

    /// A site on a consent: a sided site may leave its side out (either side).
    fn consented_site(&mut self, path: &str, site: &Site) {
        self.site_with(path, site, true);
    }

    fn site_with(&mut self, path: &str, site: &Site, either_side: bool) {
        let key = site.site_key;
        if key == SiteKey::OTHER {
            match &site.snomed_code {
                None => self.problem(
                    format!("{path}.snomed_code"),
                    ProblemCode::MissingField,
                    "a site not on the list names its SNOMED CT body-structure code",
                ),
                Some(code) if !is_sctid(code) => self.problem(
                    format!("{path}.snomed_code"),
                    ProblemCode::InvalidValue,
                    format!("{code:?} is not a SNOMED CT concept id (digits, partition 00 or 10, check digit)"),
                ),
                Some(_) => {}
            }
            match &site.description {
                None => self.problem(
                    format!("{path}.description"),
                    ProblemCode::MissingField,
                    "a site not on the list is described in words",
                ),
                Some(text) => self.text(&format!("{path}.description"), text, SHORT_TEXT_MAX_CHARS),
            }
            return;
        }
        for (field, given) in [
            ("snomed_code", site.snomed_code.is_some()),
            ("description", site.description.is_some()),
        ] {
            if given {
                self.inconsistent(
                    &format!("{path}.{field}"),
                    format!(
                        "only an OTHER site has one: {} is on the list",
                        key.as_str()
                    ),
                );
            }
        }
        match (key.info().takes_laterality, site.laterality) {
            (true, None) if !either_side => self.problem(
                format!("{path}.laterality"),
                ProblemCode::MissingField,
                format!(
                    "{} has sides: left, right or bilateral is required",
                    key.as_str()
                ),
            ),
            (false, Some(_)) => self.inconsistent(
                &format!("{path}.laterality"),
                format!("{} is a midline site and takes no laterality", key.as_str()),
            ),
            _ => {}
        }
    }
}

/// Whether `code` is a SNOMED CT concept identifier: 6–18 digits, no leading
/// zero, partition identifier `00` (international) or `10` (extension), and
/// a valid Verhoeff check digit (SNOMED CT Technical Implementation Guide).
fn is_sctid(code: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let bytes = code.as_bytes();
    if !(6..=18).contains(&bytes.len()) || bytes[0] == b'0' || !bytes.iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let partition = &code[code.len() - 3..code.len() - 1];
    if partition != "00" && partition != "10" {
        return false;
    }
    let mut check = 0u8;
    for (i, digit) in bytes.iter().rev().enumerate() {
        check = D[check as usize][P[i % 8][(digit - b'0') as usize] as usize];
    }
    check == 0
}

/// Validates a whole event written in the current schema version.
pub(crate) fn envelope(e: &Envelope) -> Result<(), ContractError> {
    envelope_as_written(e, e.event_type().current_version())
}

/// Validates a whole event (upcast from `written`): envelope fields,
/// payload, and how they fit, by the rules of the version it was written in.
pub(crate) fn envelope_as_written(e: &Envelope, written: u32) -> Result<(), ContractError> {
    let mut c = Check {
        problems: Vec::new(),
        written,
    };
    if e.event_id.get_version_num() != 7 {
        c.problem(
            "event_id",
            ProblemCode::InvalidValue,
            format!("{} is not a UUIDv7", e.event_id),
        );
    }
    c.text("actor.id", &e.actor.id, SHORT_TEXT_MAX_CHARS);
    if let Some(proof) = &e.actor_proof {
        c.text("actor_proof.issuer", &proof.issuer, SHORT_TEXT_MAX_CHARS);
        c.text("actor_proof.subject", &proof.subject, SHORT_TEXT_MAX_CHARS);
        c.opt_text(
            "actor_proof.key_id",
            proof.key_id.as_ref(),
            SHORT_TEXT_MAX_CHARS,
        );
        c.opt_text(
            "actor_proof.token_id",
            proof.token_id.as_ref(),
            SHORT_TEXT_MAX_CHARS,
        );
    }
    c.text("source", &e.source, SHORT_TEXT_MAX_CHARS);
    c.text("correlation_id", &e.correlation_id, SHORT_TEXT_MAX_CHARS);
    if e.occurred_at > e.recorded_at + CLOCK_SKEW_ALLOWANCE {
        c.inconsistent(
            "occurred_at",
            format!(
                "{} is after recorded_at {}: a fact cannot be recorded before it happens",
                e.occurred_at, e.recorded_at
            ),
        );
    }
    entity(&mut c, e);
    payload(&mut c, &e.payload, "payload", e.occurred_at);
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(ContractError {
            event_type: Some(e.event_type().as_str().to_owned()),
            problems: c.problems,
        })
    }
}

/// The entity the subject is filed under must be named, and only that one.
fn entity(c: &mut Check, e: &Envelope) {
    let kind = match &e.payload {
        Payload::RecordCorrected(RecordCorrected { target, .. })
        | Payload::RecordEnteredInError(RecordEnteredInError { target, .. })
        | Payload::RecordSigned(RecordSigned { target, .. }) => {
            correction_target(c, target);
            target.event_type.entity_kind()
        }
        other => other.event_type().entity_kind(),
    };
    match (kind, &e.patient_id) {
        (EntityKind::Patient, None) => c.problem(
            "patient_id",
            ProblemCode::MissingField,
            "is required on a patient event",
        ),
        (EntityKind::Practitioner | EntityKind::Lot | EntityKind::Principal, Some(_)) => c.inconsistent(
            "patient_id",
            "must be absent: this event is filed under a practitioner, lot or principal, not a patient",
        ),
        _ => {}
    }
}

fn correction_target(c: &mut Check, target: &CorrectionTarget) {
    let path = "payload.target";
    match target.event_type.entity_kind() {
        EntityKind::TargetOf | EntityKind::Principal => c.inconsistent(
            &format!("{path}.event_type"),
            "a correction cannot target another correction or an access record",
        ),
        EntityKind::Practitioner if target.practitioner_id.is_none() => c.problem(
            format!("{path}.practitioner_id"),
            ProblemCode::MissingField,
            "is required when correcting a practitioner event",
        ),
        EntityKind::Lot if target.lot.is_none() => c.problem(
            format!("{path}.lot"),
            ProblemCode::MissingField,
            "is required when correcting a lot event",
        ),
        _ => {}
    }
}

fn payload(c: &mut Check, payload: &Payload, p: &str, occurred_at: DateTime<Utc>) {
    match payload {
        Payload::PractitionerCredentialed(x) => {
            c.text(&format!("{p}.issuer"), &x.issuer, SHORT_TEXT_MAX_CHARS);
            if x.valid_until.is_some_and(|until| until < x.valid_from) {
                c.inconsistent(&format!("{p}.valid_until"), "is before valid_from");
            }
        }
        Payload::ConsentGiven(x) => {
            c.non_empty(&format!("{p}.sites"), &x.sites);
            for (i, site) in x.sites.iter().enumerate() {
                c.consented_site(&format!("{p}.sites[{i}]"), site);
            }
            c.non_empty(&format!("{p}.solutions"), &x.solutions);
            c.non_empty(&format!("{p}.risks_disclosed"), &x.risks_disclosed);
            c.opt_text(
                &format!("{p}.form_reference"),
                x.form_reference.as_ref(),
                SHORT_TEXT_MAX_CHARS,
            );
            if x.valid_until.is_some_and(|until| until <= x.valid_from) {
                c.inconsistent(&format!("{p}.valid_until"), "is not after valid_from");
            }
        }
        Payload::ConsentWithdrawn(x) => {
            c.opt_text(&format!("{p}.reason"), x.reason.as_ref(), TEXT_MAX_CHARS);
        }
        Payload::ExaminationDone(x) => {
            for (i, f) in x.palpation_findings.iter().enumerate() {
                c.site(&format!("{p}.palpation_findings[{i}].site"), &f.site);
            }
            for (i, rom) in x.range_of_motion.iter().enumerate() {
                // Version 1 had one range, 0–200°, for every movement.
                let (min, max) = if c.written >= 2 {
                    rom.movement.degrees_range()
                } else {
                    (0, ROM_DEGREES_MAX)
                };
                c.range(
                    &format!("{p}.range_of_motion[{i}].degrees"),
                    rom.degrees,
                    min,
                    max,
                );
            }
            if let Some(nrs) = x.pain_nrs {
                c.range(&format!("{p}.pain_nrs"), nrs, PAIN_NRS_MIN, PAIN_NRS_MAX);
            }
            c.text(
                &format!("{p}.history_summary"),
                &x.history_summary,
                TEXT_MAX_CHARS,
            );
        }
        Payload::ImagingRecorded(x) => {
            c.text(&format!("{p}.findings"), &x.findings, TEXT_MAX_CHARS);
            c.text(
                &format!("{p}.study_reference"),
                &x.study_reference,
                SHORT_TEXT_MAX_CHARS,
            );
        }
        Payload::CandidacyAssessed(x) => {
            c.text(&format!("{p}.rationale"), &x.rationale, TEXT_MAX_CHARS);
        }
        Payload::TreatmentPlanned(x) => {
            c.range(
                &format!("{p}.sessions_planned"),
                x.sessions_planned,
                SESSION_NUMBER_MIN,
                SESSION_NUMBER_MAX,
            );
            c.range(
                &format!("{p}.interval_days"),
                x.interval_days,
                INTERVAL_DAYS_MIN,
                INTERVAL_DAYS_MAX,
            );
            c.non_empty(&format!("{p}.target_sites"), &x.target_sites);
            for (i, site) in x.target_sites.iter().enumerate() {
                c.site(&format!("{p}.target_sites[{i}]"), site);
            }
        }
        Payload::InjectionGiven(x) => injection(c, x, p, occurred_at),
        Payload::AdverseEventReported(x) => adverse_event(c, x, p, occurred_at),
        Payload::AdverseEventUpdated(x) => {
            if let Some(grade) = x.grade {
                c.range(
                    &format!("{p}.grade"),
                    grade,
                    CTCAE_GRADE_MIN,
                    CTCAE_GRADE_MAX,
                );
                if grade == 5 && x.outcome != Outcome::Fatal {
                    c.inconsistent(
                        &format!("{p}.outcome"),
                        "grade 5 means death: the outcome must be fatal",
                    );
                }
            }
            c.opt_text(&format!("{p}.note"), x.note.as_ref(), TEXT_MAX_CHARS);
            match (x.serious, x.seriousness_criteria.is_empty()) {
                (Some(true), true) => c.problem(
                    format!("{p}.seriousness_criteria"),
                    ProblemCode::MissingField,
                    "a serious event names at least one criterion",
                ),
                (Some(false) | None, false) => c.inconsistent(
                    &format!("{p}.serious"),
                    "criteria are given: serious must be true",
                ),
                _ => {}
            }
            match (x.kind, &x.infection) {
                (Some(AdverseEventKind::MisplacedInjection), _) => c.inconsistent(
                    &format!("{p}.kind"),
                    "a misplaced injection is reported on its own, naming the injection and both sites",
                ),
                (Some(AdverseEventKind::Infection), None) => c.problem(
                    format!("{p}.infection"),
                    ProblemCode::MissingField,
                    "an update that makes the event an infection names its signs",
                ),
                (Some(kind), Some(_)) if kind != AdverseEventKind::Infection => c.inconsistent(
                    &format!("{p}.infection"),
                    "only an infection has infection details",
                ),
                (_, Some(i)) => infection(c, i, &format!("{p}.infection")),
                _ => {}
            }
        }
        Payload::LotRecalled(x) => {
            c.text(&format!("{p}.reason"), &x.reason, TEXT_MAX_CHARS);
        }
        Payload::AdjunctTherapyRecommended(x) => {
            c.non_empty(&format!("{p}.therapies"), &x.therapies);
            c.opt_text(&format!("{p}.notes"), x.notes.as_ref(), TEXT_MAX_CHARS);
        }
        Payload::RecordCorrected(x) => {
            c.text(&format!("{p}.reason"), &x.reason, TEXT_MAX_CHARS);
            corrected_payload(c, x, p, occurred_at);
        }
        Payload::RecordEnteredInError(x) => {
            c.text(&format!("{p}.reason"), &x.reason, TEXT_MAX_CHARS);
        }
        Payload::ScreeningDone(x) => screening(c, x, p),
        Payload::ProcedureTimeOut(x) => {
            if x.identity_verified {
                let mut kinds = x.identifiers_used.clone();
                kinds.sort_by_key(|k| *k as u8);
                kinds.dedup();
                if kinds.len() < 2 {
                    c.problem(
                        format!("{p}.identifiers_used"),
                        ProblemCode::MissingField,
                        "identity is verified with at least two different identifiers (Universal Protocol)",
                    );
                }
            }
            c.non_empty(&format!("{p}.sites"), &x.sites);
            for (i, site) in x.sites.iter().enumerate() {
                c.site(&format!("{p}.sites[{i}]"), site);
            }
            c.non_empty(&format!("{p}.participants"), &x.participants);
            for (i, who) in x.participants.iter().enumerate() {
                c.text(
                    &format!("{p}.participants[{i}].id"),
                    &who.id,
                    SHORT_TEXT_MAX_CHARS,
                );
            }
            c.opt_text(
                &format!("{p}.concerns"),
                x.concerns.as_ref(),
                TEXT_MAX_CHARS,
            );
        }
        Payload::ObservationCompleted(x) => {
            c.range(
                &format!("{p}.minutes"),
                x.minutes,
                0,
                OBSERVATION_MINUTES_MAX,
            );
            if let Some(v) = &x.vital_signs {
                c.range(
                    &format!("{p}.vital_signs.systolic_mmhg"),
                    v.systolic_mmhg,
                    SYSTOLIC_MMHG_MIN,
                    SYSTOLIC_MMHG_MAX,
                );
                c.range(
                    &format!("{p}.vital_signs.diastolic_mmhg"),
                    v.diastolic_mmhg,
                    DIASTOLIC_MMHG_MIN,
                    DIASTOLIC_MMHG_MAX,
                );
                c.range(
                    &format!("{p}.vital_signs.heart_rate_bpm"),
                    v.heart_rate_bpm,
                    HEART_RATE_BPM_MIN,
                    HEART_RATE_BPM_MAX,
                );
                if let Some(spo2) = v.spo2_pct {
                    c.range(
                        &format!("{p}.vital_signs.spo2_pct"),
                        spo2,
                        SPO2_PCT_MIN,
                        SPO2_PCT_MAX,
                    );
                }
                if v.diastolic_mmhg >= v.systolic_mmhg {
                    c.inconsistent(
                        &format!("{p}.vital_signs.diastolic_mmhg"),
                        "is not below the systolic pressure",
                    );
                }
            }
            if !x.discharged_well && x.notes.is_none() {
                c.problem(
                    format!("{p}.notes"),
                    ProblemCode::MissingField,
                    "say why the patient was not discharged well",
                );
            }
            c.opt_text(&format!("{p}.notes"), x.notes.as_ref(), TEXT_MAX_CHARS);
        }
        Payload::OutcomeReported(x) => {
            let (min, max) = x.instrument.score_range();
            if x.score.is_nan() {
                c.problem(
                    format!("{p}.score"),
                    ProblemCode::OutOfRange,
                    "is not a number",
                );
            } else {
                c.range(&format!("{p}.score"), x.score, min, max);
            }
            c.range(
                &format!("{p}.weeks_since_series_start"),
                x.weeks_since_series_start,
                0,
                OUTCOME_WEEKS_MAX,
            );
        }
        Payload::SeriesCompleted(x) => {
            c.range(
                &format!("{p}.sessions_given"),
                x.sessions_given,
                0,
                SESSION_NUMBER_MAX,
            );
            if x.reason == SeriesEndReason::Other && x.notes.is_none() {
                c.problem(
                    format!("{p}.notes"),
                    ProblemCode::MissingField,
                    "say why, when the reason is other",
                );
            }
            c.opt_text(&format!("{p}.notes"), x.notes.as_ref(), TEXT_MAX_CHARS);
        }
        Payload::RecordSigned(x) => {
            c.text(
                &format!("{p}.signer_id"),
                &x.signer_id,
                SHORT_TEXT_MAX_CHARS,
            );
            c.text(
                &format!("{p}.signer_name"),
                &x.signer_name,
                SHORT_TEXT_MAX_CHARS,
            );
            let hash = &x.signed_event_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                c.problem(
                    format!("{p}.signed_event_sha256"),
                    ProblemCode::InvalidValue,
                    "is not a SHA-256 in lower-case hex (64 characters)",
                );
            }
        }
        Payload::AccessRefused(x) => {
            c.text(&format!("{p}.path"), &x.path, 500);
            c.text(&format!("{p}.reason"), &x.reason, SHORT_TEXT_MAX_CHARS);
            if !(400..=499).contains(&x.status) {
                c.problem(
                    format!("{p}.status"),
                    ProblemCode::OutOfRange,
                    format!("{} is not a 4xx status", x.status),
                );
            }
        }
        Payload::AccessRecorded(x) => {
            c.text(&format!("{p}.query"), &x.query, SHORT_TEXT_MAX_CHARS);
            if let Some(incomplete) = &x.incomplete {
                c.text(
                    &format!("{p}.incomplete.reason"),
                    &incomplete.reason,
                    SHORT_TEXT_MAX_CHARS,
                );
            }
            if x.exposed_patients.len() > ACCESS_PATIENTS_PER_EVENT_MAX {
                c.problem(
                    format!("{p}.exposed_patients"),
                    ProblemCode::OutOfRange,
                    format!(
                        "{} patients, at most {ACCESS_PATIENTS_PER_EVENT_MAX} per event",
                        x.exposed_patients.len()
                    ),
                );
            }
        }
    }
}

fn screening(c: &mut Check, x: &ScreeningDone, p: &str) {
    for (i, allergy) in x.allergies.iter().enumerate() {
        c.text(
            &format!("{p}.allergies[{i}].substance"),
            &allergy.substance,
            SHORT_TEXT_MAX_CHARS,
        );
    }
    for (i, taken) in x.anticoagulants.iter().enumerate() {
        let path = format!("{p}.anticoagulants[{i}].held_days");
        match (taken.held, taken.held_days) {
            (false, Some(_)) => c.inconsistent(&path, "is given but the agent was not held"),
            (true, Some(days)) => c.range(&path, days, HELD_DAYS_MIN, HELD_DAYS_MAX),
            _ => {}
        }
    }
    let infection_listed = x
        .contraindications
        .contains(&Contraindication::InfectionAtSite);
    if x.skin_infection_at_site != infection_listed {
        c.inconsistent(
            &format!("{p}.contraindications"),
            "skin_infection_at_site and the contraindication infection_at_site disagree",
        );
    }
    c.opt_text(&format!("{p}.notes"), x.notes.as_ref(), TEXT_MAX_CHARS);
}

fn injection(c: &mut Check, x: &InjectionGiven, p: &str, occurred_at: DateTime<Utc>) {
    c.site(&format!("{p}.site"), &x.site);
    c.non_empty(&format!("{p}.solution.components"), &x.solution.components);
    for (i, component) in x.solution.components.iter().enumerate() {
        let name_path = format!("{p}.solution.components[{i}].agent_name");
        match (component.agent, &component.agent_name) {
            (Agent::Other, None) => c.problem(
                name_path,
                ProblemCode::MissingField,
                "an agent not on the list is named",
            ),
            (Agent::Other, Some(name)) => c.text(&name_path, name, SHORT_TEXT_MAX_CHARS),
            (_, Some(_)) => c.inconsistent(&name_path, "only an `other` agent is named here"),
            (_, None) => {}
        }
        if let Some(vial) = &component.vial {
            let path = format!("{p}.solution.components[{i}].vial.opened_at");
            match (vial.kind, vial.opened_at) {
                (VialKind::MultiDose, None) => c.problem(
                    path,
                    ProblemCode::MissingField,
                    "a multi-dose vial says when it was first opened",
                ),
                (_, Some(opened)) if opened > occurred_at + CLOCK_SKEW_ALLOWANCE => {
                    c.inconsistent(&path, "is after the injection")
                }
                _ => {}
            }
        }
        let path = format!("{p}.solution.components[{i}].concentration_pct");
        match (
            component.agent.max_concentration_pct(),
            component.concentration_pct,
        ) {
            (None, Some(_)) => c.inconsistent(&path, "PRP has no concentration; leave it out"),
            (Some(_), None) => c.problem(
                path,
                ProblemCode::MissingField,
                "is required for this agent",
            ),
            (Some(agent_max), Some(pct)) => {
                c.above_up_to(
                    &path,
                    pct,
                    CONCENTRATION_PCT_ABOVE,
                    CONCENTRATION_PCT_MAX.min(agent_max),
                );
            }
            (None, None) => {}
        }
    }
    c.above_up_to(
        &format!("{p}.volume_ml"),
        x.volume_ml,
        VOLUME_ML_ABOVE,
        VOLUME_ML_MAX,
    );
    c.range(
        &format!("{p}.needle.gauge"),
        x.needle.gauge,
        NEEDLE_GAUGE_MIN,
        NEEDLE_GAUGE_MAX,
    );
    c.range(
        &format!("{p}.needle.length_mm"),
        x.needle.length_mm,
        NEEDLE_LENGTH_MM_MIN,
        NEEDLE_LENGTH_MM_MAX,
    );
    if let Some(prep) = &x.preparation {
        c.text(
            &format!("{p}.preparation.prepared_by"),
            &prep.prepared_by,
            SHORT_TEXT_MAX_CHARS,
        );
        if prep.prepared_at > occurred_at + CLOCK_SKEW_ALLOWANCE {
            c.inconsistent(
                &format!("{p}.preparation.prepared_at"),
                "is after the injection",
            );
        }
        if prep.sterile_probe_cover.is_some() && x.guidance != Guidance::Ultrasound {
            c.inconsistent(
                &format!("{p}.preparation.sterile_probe_cover"),
                "applies to ultrasound guidance only",
            );
        }
    }
    // Gauge by length since version 3.
    let longest = needle_length_max_mm(x.needle.gauge);
    if c.written >= 3 && x.needle.length_mm <= NEEDLE_LENGTH_MM_MAX && x.needle.length_mm > longest
    {
        c.inconsistent(
            &format!("{p}.needle.length_mm"),
            format!(
                "no {} G needle is {} mm long (the longest made is about {longest} mm): check gauge and length",
                x.needle.gauge, x.needle.length_mm
            ),
        );
    }
    c.range(
        &format!("{p}.session_number"),
        x.session_number,
        SESSION_NUMBER_MIN,
        SESSION_NUMBER_MAX,
    );
}

fn adverse_event(c: &mut Check, x: &AdverseEventReported, p: &str, occurred_at: DateTime<Utc>) {
    c.range(
        &format!("{p}.grade"),
        x.grade,
        CTCAE_GRADE_MIN,
        CTCAE_GRADE_MAX,
    );
    let criteria = &x.seriousness_criteria;
    if x.serious && criteria.is_empty() {
        c.problem(
            format!("{p}.seriousness_criteria"),
            ProblemCode::MissingField,
            "a serious event names at least one criterion",
        );
    }
    if !x.serious && !criteria.is_empty() {
        c.inconsistent(
            &format!("{p}.serious"),
            "is false but seriousness criteria are given",
        );
    }
    if x.grade == 5 {
        if !x.serious || !criteria.contains(&SeriousnessCriterion::Death) {
            c.inconsistent(
                &format!("{p}.serious"),
                "grade 5 means death: serious with the criterion death",
            );
        }
        if x.outcome != Some(Outcome::Fatal) {
            c.inconsistent(
                &format!("{p}.outcome"),
                "grade 5 means death: the outcome must be fatal",
            );
        }
    } else if x.outcome == Some(Outcome::Fatal) {
        c.inconsistent(&format!("{p}.grade"), "a fatal outcome is grade 5");
    }
    match (x.kind, &x.misplacement) {
        (AdverseEventKind::MisplacedInjection, None) => c.problem(
            format!("{p}.misplacement"),
            ProblemCode::MissingField,
            "a misplaced injection names the intended site and where it went",
        ),
        (AdverseEventKind::MisplacedInjection, Some(m)) => {
            c.site(&format!("{p}.misplacement.intended_site"), &m.intended_site);
            if let Some(actual) = &m.actual_site {
                c.site(&format!("{p}.misplacement.actual_site"), actual);
                if *actual == m.intended_site {
                    c.inconsistent(
                        &format!("{p}.misplacement.actual_site"),
                        "is the intended site",
                    );
                }
            }
        }
        (_, Some(_)) => c.inconsistent(
            &format!("{p}.misplacement"),
            "only a misplaced injection has one",
        ),
        _ => {}
    }
    if x.kind == AdverseEventKind::MisplacedInjection && x.linked_injection.is_none() {
        c.problem(
            format!("{p}.linked_injection"),
            ProblemCode::MissingField,
            "a misplaced injection names the injection",
        );
    }
    match (x.kind, &x.infection) {
        (AdverseEventKind::Infection, None) => c.problem(
            format!("{p}.infection"),
            ProblemCode::MissingField,
            "an infection names its signs",
        ),
        (AdverseEventKind::Infection, Some(i)) => infection(c, i, &format!("{p}.infection")),
        (_, Some(_)) => c.inconsistent(
            &format!("{p}.infection"),
            "only an infection has infection details",
        ),
        _ => {}
    }
    if let Some(linked) = &x.linked_injection
        && x.onset_at < linked.occurred_at
    {
        c.inconsistent(
            &format!("{p}.onset_at"),
            format!(
                "{} is before the injection it follows ({})",
                x.onset_at, linked.occurred_at
            ),
        );
    }
    if x.onset_at > occurred_at + CLOCK_SKEW_ALLOWANCE {
        c.inconsistent(
            &format!("{p}.onset_at"),
            "is after the report's occurred_at",
        );
    }
    c.opt_text(
        &format!("{p}.description"),
        x.description.as_ref(),
        TEXT_MAX_CHARS,
    );
    if let Some(aware) = x.aware_at {
        if aware < x.onset_at {
            c.inconsistent(
                &format!("{p}.aware_at"),
                "is before the onset: nobody can be aware of an event before it begins",
            );
        }
        if aware > occurred_at + CLOCK_SKEW_ALLOWANCE {
            c.inconsistent(
                &format!("{p}.aware_at"),
                "is after the report's occurred_at",
            );
        }
    }
    if let Some(term) = &x.meddra {
        if term.pt_code.len() != 8 || !term.pt_code.bytes().all(|b| b.is_ascii_digit()) {
            c.problem(
                format!("{p}.meddra.pt_code"),
                ProblemCode::InvalidValue,
                "a MedDRA preferred-term code is 8 digits",
            );
        }
        c.text(&format!("{p}.meddra.version"), &term.version, 20);
    }
}

fn infection(c: &mut Check, i: &Infection, path: &str) {
    c.non_empty(&format!("{path}.signs"), &i.signs);
    c.opt_text(
        &format!("{path}.organism"),
        i.organism.as_ref(),
        SHORT_TEXT_MAX_CHARS,
    );
}

/// The corrected payload must be a valid payload of the target's type.
fn corrected_payload(c: &mut Check, x: &RecordCorrected, p: &str, occurred_at: DateTime<Utc>) {
    let path = format!("{p}.corrected_payload");
    let value = serde_json::Value::Object(x.corrected_payload.clone().into_iter().collect());
    match Payload::from_corrected(x.target.event_type, value) {
        Ok(corrected) => {
            if let Payload::PractitionerCredentialed(credential) = &corrected
                && x.target.practitioner_id.as_ref() != Some(&credential.practitioner_id)
            {
                c.inconsistent(
                    &format!("{p}.target.practitioner_id"),
                    "differs from the corrected payload's",
                );
            }
            payload(c, &corrected, &path, occurred_at);
        }
        Err(err) => {
            for problem in err.problems {
                let rest = problem
                    .path
                    .strip_prefix("payload")
                    .unwrap_or(&problem.path);
                c.problem(format!("{path}{rest}"), problem.code, problem.message);
            }
        }
    }
}

#[cfg(test)]
mod sctid_tests {
    use super::is_sctid;

    #[test]
    fn the_verified_codes_pass_and_typos_fail() {
        for code in [
            "1627004",
            "5580002",
            "59713001",
            "80108009",
            "700027005",
            "7771000",
            "24028007",
            "51440002",
            "39723000",
            "72696002",
        ] {
            assert!(is_sctid(code), "{code}");
        }
        for code in [
            "1627005", "1672004", "01627004", "12345", "16270a4", "1627014",
        ] {
            assert!(!is_sctid(code), "{code}");
        }
    }
}
