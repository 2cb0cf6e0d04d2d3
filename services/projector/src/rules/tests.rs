//! The rules, each tested without sled or NATS.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use prolo_schemas::{CredentialKind, Envelope, Guidance, InjectionGiven, Payload};
use uuid::Uuid;

use super::*;
use crate::{
    model::{
        ClinicalEntry, ClinicalTag, ConsentEntry, CredentialEntry, Origin, PatientSummary, Standing,
    },
    rules::{
        findings::{FindingSettings, OpenFinding, Rule},
        signals::{Dimension, explained_by_signalled},
    },
};

use prolo_tests::example_envelope as example;

fn injection() -> (Envelope, InjectionGiven) {
    let e = example("injection.given");
    let Payload::InjectionGiven(p) = e.payload.clone() else {
        unreachable!("the example is an injection")
    };
    (e, p)
}

fn origin(at_ms: i64) -> Origin {
    Origin {
        event_id: Uuid::now_v7(),
        seq: 1,
        occurred_at_ms: at_ms,
        recorded_at_ms: at_ms,
        standing: Standing::AsRecorded,
    }
}

fn entry(event_type: &str, tag: ClinicalTag, at_ms: i64) -> ClinicalEntry {
    ClinicalEntry {
        origin: origin(at_ms),
        event_type: event_type.parse().expect("an event type"),
        summary: String::new(),
        tag,
    }
}

/// A patient consented for `sites`, examined and found a candidate, a day before `at`.
fn prepared(at: i64, sites: &[&str]) -> PatientSummary {
    let day = 86_400_000;
    PatientSummary {
        consents: vec![ConsentEntry {
            origin: origin(at - day),
            valid_from_ms: at - day,
            valid_until_ms: Some(at + 90 * day),
            sites: sites.iter().map(|s| s.to_string()).collect(),
            solutions: vec!["dextrose".into(), "lidocaine".into()],
            series: true,
            risks: vec!["pain_flare".into(), "dural_puncture".into()],
            withdrawn: None,
        }],
        clinical: vec![
            entry("examination.done", ClinicalTag::None, at - day),
            entry(
                "candidacy.assessed",
                ClinicalTag::Candidacy { candidate: true },
                at - day,
            ),
        ],
        ..PatientSummary::default()
    }
}

fn credentialed() -> Vec<CredentialEntry> {
    credentialed_with(&[])
}

/// A reconstructive-therapy credential and the `others` named, all valid since 2020.
fn credentialed_with(others: &[CredentialKind]) -> Vec<CredentialEntry> {
    [CredentialKind::ReconstructiveTherapy]
        .iter()
        .chain(others)
        .map(|kind| CredentialEntry {
            origin: origin(0),
            credential: *kind,
            valid_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            valid_until: None,
        })
        .collect()
}

/// The findings of an injection by a credentialed practitioner.
fn judged(
    e: &Envelope,
    p: &InjectionGiven,
    patient: &PatientSummary,
    recalls: Vec<&[(i64, Uuid)]>,
) -> Vec<Draft> {
    let credentials = credentialed();
    let context = InjectionContext {
        patient: Some(patient),
        credentials: &credentials,
        recalls,
    };
    injection_findings(e, p, &context, &FindingSettings::default())
}

fn rules(drafts: &[Draft]) -> Vec<Rule> {
    drafts.iter().map(|d| d.rule).collect()
}

#[test]
fn a_prepared_injection_by_a_credentialed_practitioner_raises_nothing() {
    let (e, p) = injection();
    let at = e.occurred_at.timestamp_millis();
    let patient = prepared(at, &["KNEE_MCL"]);
    let drafts = judged(&e, &p, &patient, vec![&[], &[]]);
    assert_eq!(drafts, vec![]);
}

#[test]
fn an_unprepared_injection_raises_consent_examination_and_credential_findings() {
    let (e, p) = injection();
    let patient = PatientSummary::default();
    let context = InjectionContext {
        patient: Some(&patient),
        credentials: &[],
        recalls: vec![],
    };
    let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
    assert_eq!(
        rules(&drafts),
        [
            Rule::NoActiveConsent,
            Rule::NoExaminationOrCandidacy,
            Rule::NoValidCredential
        ]
    );
    let credential = &drafts[2];
    assert_eq!(credential.practitioner.as_deref(), Some("dr-hale"));
    assert_eq!(credential.evidence, [e.event_id]);
    assert_eq!(drafts[0].site_key.as_deref(), Some("KNEE_MCL"));
}

#[test]
fn a_site_outside_the_consent_names_the_consents_in_evidence() {
    let (e, p) = injection();
    let at = e.occurred_at.timestamp_millis();
    let patient = prepared(at, &["KNEE_LCL"]);
    let drafts = judged(&e, &p, &patient, vec![]);
    assert_eq!(rules(&drafts), [Rule::SiteOutsideConsent]);
    assert_eq!(
        drafts[0].evidence,
        [e.event_id, patient.consents[0].origin.event_id]
    );
}

#[test]
fn a_lot_recalled_before_the_injection_is_found_and_one_recalled_after_is_not() {
    let (e, p) = injection();
    let at = e.occurred_at.timestamp_millis();
    let patient = prepared(at, &["KNEE_MCL"]);
    let (before, after) = ([(at - 1, Uuid::now_v7())], [(at + 1, Uuid::now_v7())]);
    let drafts = judged(&e, &p, &patient, vec![&after, &before]);
    assert_eq!(rules(&drafts), [Rule::ExpiredOrRecalledLot]);
    assert_eq!(drafts[0].evidence, [e.event_id, before[0].1]);
    assert!(
        drafts[0].detail.contains("LID1-88A"),
        "{}",
        drafts[0].detail
    );
}

#[test]
fn an_axial_site_by_palpation_alone_concerns_the_practitioner() {
    let (e, mut p) = injection();
    p.site.site_key = prolo_schemas::SiteKey::LUMBAR_INTERSPINOUS_LIG;
    p.site.laterality = None;
    let at = e.occurred_at.timestamp_millis();
    let patient = prepared(at, &["LUMBAR_INTERSPINOUS_LIG"]);
    let drafts = judged(&e, &p, &patient, vec![]);
    assert_eq!(rules(&drafts), [Rule::AxialSiteByPalpationOnly]);
    assert_eq!(drafts[0].practitioner.as_deref(), Some("dr-hale"));
}

#[test]
fn a_late_consent_resolves_the_no_consent_finding_it_covers() {
    let (e, _) = injection();
    let at = e.occurred_at.timestamp_millis();
    let open = OpenFinding {
        id: Uuid::now_v7(),
        rule: Rule::NoActiveConsent,
        about_ms: at,
        site_key: Some("KNEE_MCL".into()),
    };
    assert!(!patient_finding_resolved(&PatientSummary::default(), &open));
    assert!(patient_finding_resolved(
        &prepared(at, &["KNEE_MCL"]),
        &open
    ));
    let outside = OpenFinding {
        rule: Rule::SiteOutsideConsent,
        ..open
    };
    assert!(!patient_finding_resolved(&prepared(at, &["HIP"]), &outside));
}

#[test]
fn standing_matters_for_consents() {
    let origin = Origin {
        event_id: Uuid::nil(),
        seq: 1,
        occurred_at_ms: 0,
        recorded_at_ms: 0,
        standing: Standing::EnteredInError { by_seq: 2 },
    };
    let consent = ConsentEntry {
        origin,
        valid_from_ms: 0,
        valid_until_ms: None,
        sites: vec![],
        solutions: vec![],
        series: false,
        risks: vec![],
        withdrawn: None,
    };
    assert_eq!(
        active_consents(std::slice::from_ref(&consent), 5).count(),
        0
    );
}

#[test]
fn an_adverse_event_must_name_an_injection_of_its_own_patient() {
    let report = example("adverse_event.reported");
    let (injection, _) = injection();
    let linked = injection.event_id;
    assert_eq!(adverse_event_link(&report, linked, Some(&injection)), None);
    let missing = adverse_event_link(&report, linked, None).unwrap();
    assert_eq!(missing.rule, Rule::AdverseEventLinkInvalid);
    assert_eq!(missing.evidence, [report.event_id, linked]);
    assert!(missing.detail.contains("not in the trail"));
    let mut someone_else = injection.clone();
    someone_else.patient_id = Some("P-9999".parse().unwrap());
    let other = adverse_event_link(&report, linked, Some(&someone_else)).unwrap();
    assert!(other.detail.contains("another patient"), "{}", other.detail);
    let consent = example("consent.given");
    let wrong_type = adverse_event_link(&report, consent.event_id, Some(&consent)).unwrap();
    assert!(wrong_type.detail.contains("not an injection"));
}

#[test]
fn a_correction_may_not_reach_another_patients_record() {
    let correction = example("record.corrected");
    let (injection, _) = injection();
    assert_eq!(reference_target(&correction), Some(injection.event_id));
    assert_eq!(reference_outside(&correction, Some(&injection)), None);
    assert_eq!(reference_outside(&correction, None), None, "not judged yet");
    let mut someone_else = injection.clone();
    someone_else.patient_id = Some("P-9999".parse().unwrap());
    let outside = reference_outside(&correction, Some(&someone_else)).unwrap();
    assert_eq!(outside.target, injection.event_id);
    assert!(
        outside.reason.contains("patient P-9999"),
        "{}",
        outside.reason
    );
    assert_eq!(reference_target(&injection), None);
}

#[test]
fn documentation_is_late_after_the_configured_hours() {
    let (mut e, _) = injection();
    let settings = FindingSettings::default();
    e.recorded_at = e.occurred_at + Duration::hours(settings.late_documentation_hours);
    assert_eq!(late_documentation(&e, &settings), None);
    e.recorded_at += Duration::minutes(1);
    let draft = late_documentation(&e, &settings).unwrap();
    assert_eq!(draft.rule, Rule::LateDocumentation);
}

#[test]
fn a_recorded_at_within_the_tolerance_of_the_stream_is_accepted() {
    let (e, _) = injection();
    let settings = FindingSettings::default();
    let tolerance = Duration::milliseconds(settings.recorded_at_tolerance_ms);
    assert_eq!(
        recorded_at_mismatch(&e, e.recorded_at + tolerance, &settings),
        None
    );
    assert!(recorded_at_mismatch(&e, e.recorded_at - tolerance * 2, &settings).is_some());
}

#[test]
fn a_consent_covers_the_side_it_names_either_side_or_both() {
    let either = vec!["KNEE_MCL".to_owned()];
    let left = vec!["KNEE_MCL:left".to_owned()];
    let both = vec!["KNEE_MCL:bilateral".to_owned()];
    assert!(consent_covers(&either, "KNEE_MCL:right"));
    assert!(consent_covers(&left, "KNEE_MCL:left"));
    assert!(!consent_covers(&left, "KNEE_MCL:right"));
    assert!(consent_covers(&both, "KNEE_MCL:right"));
    assert!(!consent_covers(&either, "KNEE_LCL:right"));
    let site = prolo_schemas::Site {
        site_key: prolo_schemas::SiteKey::OTHER,
        laterality: Some(prolo_schemas::Laterality::Left),
        snomed_code: Some("1627004".into()),
        description: Some("MCL remnant".into()),
    };
    assert_eq!(site_scope(&site), "OTHER/1627004:left");
    assert!(!consent_covers(
        &["OTHER/5580002".to_owned()],
        &site_scope(&site)
    ));
}

#[test]
fn a_groups_events_are_explained_by_a_signalled_group_that_holds_them() {
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let lot = vec![ids[0], ids[1], ids[2], ids[3]];
    // The practitioner's infections are the lot's, plus one: explained.
    assert!(explained_by_signalled(
        &[ids[0], ids[1], ids[2], ids[4]],
        std::slice::from_ref(&lot),
        3
    ));
    // Nothing signalled yet: nothing is explained.
    assert!(!explained_by_signalled(&ids[..4], &[], 3));
    // Three of its own: a signal in its own right.
    let others: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    assert!(!explained_by_signalled(&others, &[lot], 3));
}

#[test]
fn an_adverse_event_naming_no_injection_is_attributed_to_the_latest_before_its_onset() {
    let day = 86_400_000;
    let entry = |at: i64, lot: &str, standing: Standing| crate::model::InjectionEntry {
        origin: crate::model::Origin {
            event_id: Uuid::now_v7(),
            seq: 1,
            occurred_at_ms: at,
            recorded_at_ms: at,
            standing,
        },
        site_key: "KNEE_MCL".into(),
        laterality: None,
        lots: vec![lot.into()],
        practitioner_id: "dr-hale".into(),
        session_number: 1,
        guidance: Guidance::Palpation,
        volume_ml: 2.0,
        groups: vec![(Dimension::Lot, lot.into())],
        plan: None,
        anaesthetic_mg: vec![],
    };
    let injections = vec![
        entry(0, "A", Standing::AsRecorded),
        entry(10 * day, "B", Standing::AsRecorded),
        entry(12 * day, "C", Standing::EnteredInError { by_seq: 9 }),
        entry(20 * day, "D", Standing::AsRecorded),
    ];
    let window = 30 * day;
    // Onset on day 15: B (C was entered in error, D came after).
    let found = attributed_injection(&injections, None, 15 * day, window).unwrap();
    assert_eq!(
        (found.injection, found.inferred),
        (injections[1].origin.event_id, true)
    );
    assert_eq!(found.groups, vec![(Dimension::Lot, "B".to_owned())]);
    // Onset 45 days after the last injection: outside the window.
    assert!(attributed_injection(&injections, None, 65 * day, window).is_none());
    // A named injection is used as it stands, not inferred.
    let named = injections[0].origin.event_id;
    assert_eq!(
        attributed_injection(&injections, Some(named), 15 * day, window)
            .map(|a| (a.injection, a.inferred)),
        Some((named, false))
    );
    // One entered in error counts for nothing.
    let voided = injections[2].origin.event_id;
    assert!(attributed_injection(&injections, Some(voided), 15 * day, window).is_none());
}

#[test]
fn agents_guidance_asepsis_and_a_negative_candidacy_each_raise_their_rule() {
    let (e, mut p) = injection();
    let at = e.occurred_at.timestamp_millis();
    let mut patient = prepared(at, &["KNEE_MCL"]);
    // Bupivacaine is not among the consented agents (dextrose, lidocaine).
    p.solution.components[1].agent = prolo_schemas::Agent::Bupivacaine;
    p.solution.components[1].concentration_pct = Some(0.25);
    // Ultrasound guidance without that credential; no aseptic preparation.
    p.guidance = Guidance::Ultrasound;
    p.aseptic_preparation = false;
    // A later candidacy decision said no.
    patient.clinical.push(entry(
        "candidacy.assessed",
        ClinicalTag::Candidacy { candidate: false },
        at - 1000,
    ));
    let drafts = judged(&e, &p, &patient, vec![&[], &[]]);
    assert_eq!(
        rules(&drafts),
        [
            Rule::AgentOutsideConsent,
            Rule::InjectionAfterNegativeCandidacy,
            Rule::GuidanceWithoutCredential,
            Rule::AsepsisNotDone,
        ]
    );
    assert!(
        drafts[0].detail.contains("bupivacaine"),
        "{}",
        drafts[0].detail
    );
    assert_eq!(
        drafts[1].evidence.len(),
        2,
        "the injection and the decision"
    );
    assert_eq!(drafts[2].practitioner.as_deref(), Some("dr-hale"));

    // With the ultrasound credential, guidance raises nothing.
    let credentials = credentialed_with(&[CredentialKind::UltrasoundGuidance]);
    let context = InjectionContext {
        patient: Some(&patient),
        credentials: &credentials,
        recalls: vec![&[], &[]],
    };
    let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
    assert!(!rules(&drafts).contains(&Rule::GuidanceWithoutCredential));
}

#[test]
fn consent_scope_rules_single_session_undisclosed_risk_and_consent_after_the_fact() {
    let (e, mut p) = injection();
    let at = e.occurred_at.timestamp_millis();
    let mut patient = prepared(at, &["LUMBAR_INTERSPINOUS_LIG"]);
    patient.consents[0].series = false;
    patient.consents[0].risks = vec!["pain_flare".into()];
    p.site = prolo_schemas::Site::listed(prolo_schemas::SiteKey::LUMBAR_INTERSPINOUS_LIG, None);
    p.guidance = Guidance::Fluoroscopy;
    p.session_number = 2;
    let credentials = credentialed_with(&[CredentialKind::FluoroscopyGuidance]);
    let context = InjectionContext {
        patient: Some(&patient),
        credentials: &credentials,
        recalls: vec![&[], &[]],
    };
    let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
    assert_eq!(
        rules(&drafts),
        [
            Rule::SeriesUnderSingleSessionConsent,
            Rule::RiskNotDisclosed
        ]
    );
    assert!(
        drafts[1].detail.contains("dural_puncture"),
        "{}",
        drafts[1].detail
    );

    // A consent given a week after an injection its back-dated period covers.
    let day = 86_400_000;
    let injection_entry = crate::model::InjectionEntry {
        origin: origin(at),
        site_key: "KNEE_MCL".into(),
        laterality: None,
        lots: vec![],
        practitioner_id: "dr-hale".into(),
        session_number: 1,
        guidance: Guidance::Palpation,
        volume_ml: 2.0,
        groups: vec![],
        plan: None,
        anaesthetic_mg: vec![],
    };
    let mut consent_event = e.clone();
    consent_event.occurred_at += chrono::Duration::days(7);
    let back_dated = ConsentEntry {
        valid_from_ms: at - day,
        ..patient.consents[0].clone()
    };
    let draft = consent_after_injection(
        &consent_event,
        &back_dated,
        std::slice::from_ref(&injection_entry),
    )
    .unwrap();
    assert_eq!(draft.rule, Rule::ConsentAfterInjection);
    assert_eq!(
        draft.evidence,
        [consent_event.event_id, injection_entry.origin.event_id]
    );
    // Given before the injection: nothing.
    let mut earlier = e.clone();
    earlier.occurred_at -= chrono::Duration::days(2);
    assert!(consent_after_injection(&earlier, &back_dated, &[injection_entry]).is_none());
}

#[test]
fn a_declared_back_fill_is_not_late_documentation() {
    let (mut e, _) = injection();
    e.recorded_at = e.occurred_at + chrono::Duration::days(90);
    let settings = FindingSettings::default();
    assert!(late_documentation(&e, &settings).is_some());
    e.source = prolo_schemas::BACKFILL_SOURCE.to_owned();
    assert!(late_documentation(&e, &settings).is_none());
}
