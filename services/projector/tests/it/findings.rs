//! Each policy rule, shown raised by a scenario that breaks it and not
//! raised by one that keeps it; findings name the right event ids; a late
//! consent resolves its finding while history keeps both; an infection
//! cluster on one lot raises a signal for that lot and no other group.
//!
//! These fold events straight into a real sled database (no broker): the
//! rules are part of the fold, and the fold is what is tested.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::fold_stored;
use chrono::{DateTime, Duration, Utc};
use prolo_projector::{
    Store,
    rules::{
        findings::{Finding, FindingSettings, Rule},
        signals::Signal,
    },
    store::Index,
};
use prolo_schemas::{AdverseEventKind, Envelope, Payload};
use serde_json::json;
use uuid::Uuid;

/// The example of `event_type` with an id of its own.
fn example(event_type: &str) -> Envelope {
    let mut e = prolo_tests::example_envelope(event_type);
    e.event_id = Uuid::now_v7();
    e
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A trail folded event by event into its own database.
struct Trail {
    store: Store,
    seq: u64,
    settings: FindingSettings,
    _dir: tempfile::TempDir,
}

impl Trail {
    fn new() -> Trail {
        let dir = tempfile::tempdir().unwrap();
        Trail {
            store: Store::open(&dir.path().join("db"), 16 << 20).unwrap(),
            seq: 0,
            settings: FindingSettings::default(),
            _dir: dir,
        }
    }

    async fn add(&mut self, e: &Envelope) -> Uuid {
        e.validate()
            .unwrap_or_else(|err| panic!("test event invalid: {err}"));
        self.add_all(std::slice::from_ref(e)).await;
        e.event_id
    }

    async fn add_all(&mut self, events: &[Envelope]) {
        self.seq = fold_stored(&self.store, &self.settings, self.seq, events, 500).await;
    }

    fn findings(&self, rule: Rule) -> Vec<Finding> {
        self.store
            .findings_all()
            .unwrap()
            .into_iter()
            .filter(|f| f.rule == rule)
            .collect()
    }

    /// The credential, examination, candidacy and consent of a patient who may be injected.
    async fn prepared(&mut self) {
        self.add(&example("practitioner.credentialed")).await;
        self.add(&example("examination.done")).await;
        self.add(&example("candidacy.assessed")).await;
        self.add(&example("consent.given")).await;
    }
}

fn injection(edit: impl FnOnce(&mut prolo_schemas::InjectionGiven)) -> Envelope {
    let mut e = example("injection.given");
    if let Payload::InjectionGiven(p) = &mut e.payload {
        edit(p);
    }
    e
}

#[tokio::test]
async fn a_prepared_injection_raises_no_finding() {
    let mut trail = Trail::new();
    trail.prepared().await;
    trail.add(&injection(|_| {})).await;
    for rule in Rule::ALL {
        assert!(trail.findings(*rule).is_empty(), "{rule:?} raised");
    }
}

#[tokio::test]
async fn no_active_consent_is_raised_and_a_late_consent_resolves_it() {
    let mut trail = Trail::new();
    trail.add(&example("practitioner.credentialed")).await;
    trail.add(&example("examination.done")).await;
    trail.add(&example("candidacy.assessed")).await;
    let injected = trail.add(&injection(|_| {})).await;
    let found = trail.findings(Rule::NoActiveConsent);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![injected]);
    assert_eq!(found[0].patient_id.as_deref(), Some("P-1042"));
    assert_eq!(found[0].resolved_by, None);

    // The consent was taken before the injection but recorded a day later.
    let mut late = example("consent.given");
    late.recorded_at = t("2026-10-02T09:00:00Z");
    let consent = trail.add(&late).await;
    let found = trail.findings(Rule::NoActiveConsent);
    assert_eq!(found.len(), 1, "the raising stays");
    assert_eq!(
        found[0].resolved_by,
        Some((consent, trail.seq)),
        "and the resolving is kept with it"
    );
    assert_eq!(found[0].status(), "resolved");
    // The patient's history keeps both the injection and the late consent.
    let seqs: Vec<u64> = trail
        .store
        .index(Index::Patient {
            clinic: "riverside",
            patient: "P-1042",
        })
        .unwrap();
    assert_eq!(seqs.len(), 4);
}

#[tokio::test]
async fn a_consent_withdrawn_before_the_injection_is_not_active() {
    let mut trail = Trail::new();
    trail.add(&example("practitioner.credentialed")).await;
    trail.add(&example("examination.done")).await;
    trail.add(&example("candidacy.assessed")).await;
    let consent = trail.add(&example("consent.given")).await;
    let mut withdrawal = example("consent.withdrawn");
    withdrawal.occurred_at = t("2026-10-01T09:40:00Z");
    withdrawal.recorded_at = t("2026-10-01T09:41:00Z");
    if let Payload::ConsentWithdrawn(p) = &mut withdrawal.payload {
        p.consent_event_id = consent;
    }
    trail.add(&withdrawal).await;
    let mut later = injection(|_| {});
    later.occurred_at = t("2026-10-01T10:00:00Z");
    later.recorded_at = t("2026-10-01T10:01:00Z");
    trail.add(&later).await;
    assert_eq!(trail.findings(Rule::NoActiveConsent).len(), 1);
}

#[tokio::test]
async fn a_site_outside_the_consent_scope_is_raised() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let shoulder = trail
        .add(&injection(|p| {
            p.site.site_key = prolo_schemas::SiteKey::SHOULDER_IA
        }))
        .await;
    let found = trail.findings(Rule::SiteOutsideConsent);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence[0], shoulder);
    assert_eq!(
        found[0].evidence.len(),
        2,
        "the injection and the consent whose scope it left"
    );
    trail
        .add(&injection(|p| {
            p.site.site_key = prolo_schemas::SiteKey::PES_ANSERINUS
        }))
        .await;
    assert_eq!(
        trail.findings(Rule::SiteOutsideConsent).len(),
        1,
        "a site in scope raises nothing"
    );
}

#[tokio::test]
async fn an_injection_without_a_valid_credential_is_raised_and_a_credential_resolves_it() {
    let mut trail = Trail::new();
    let mut lapsed = example("practitioner.credentialed");
    if let Payload::PractitionerCredentialed(p) = &mut lapsed.payload {
        p.valid_until = Some("2026-09-01".parse().unwrap());
    }
    trail.add(&lapsed).await;
    trail.add(&example("examination.done")).await;
    trail.add(&example("candidacy.assessed")).await;
    trail.add(&example("consent.given")).await;
    let injected = trail.add(&injection(|_| {})).await;
    let found = trail.findings(Rule::NoValidCredential);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].evidence[0], found[0].practitioner_id.as_deref()),
        (injected, Some("dr-hale"))
    );
    // The renewal, recorded late, covers the day of the injection.
    let renewal = trail.add(&example("practitioner.credentialed")).await;
    assert_eq!(
        trail.findings(Rule::NoValidCredential)[0]
            .resolved_by
            .map(|r| r.0),
        Some(renewal)
    );
}

#[tokio::test]
async fn an_injection_without_examination_or_positive_candidacy_is_raised() {
    let mut trail = Trail::new();
    trail.add(&example("practitioner.credentialed")).await;
    trail.add(&example("consent.given")).await;
    let mut refused = example("candidacy.assessed");
    if let Payload::CandidacyAssessed(p) = &mut refused.payload {
        p.candidate = false;
    }
    trail.add(&example("examination.done")).await;
    trail.add(&refused).await;
    trail.add(&injection(|_| {})).await;
    assert_eq!(trail.findings(Rule::NoExaminationOrCandidacy).len(), 1);
}

#[tokio::test]
async fn a_series_past_three_sessions_needs_follow_up_imaging() {
    let mut trail = Trail::new();
    trail.prepared().await;
    trail.add(&injection(|p| p.session_number = 3)).await;
    assert!(
        trail
            .findings(Rule::SeriesWithoutFollowUpImaging)
            .is_empty(),
        "session 3 is within the limit"
    );
    let fourth = trail.add(&injection(|p| p.session_number = 4)).await;
    let found = trail.findings(Rule::SeriesWithoutFollowUpImaging);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![fourth]);
    // Follow-up imaging done before the fourth session, recorded later, resolves it.
    let mut imaging = example("imaging.recorded");
    imaging.occurred_at = t("2026-09-30T09:00:00Z");
    imaging.recorded_at = t("2026-10-01T12:00:00Z");
    if let Payload::ImagingRecorded(p) = &mut imaging.payload {
        p.purpose = prolo_schemas::ImagingPurpose::FollowUp;
    }
    let imaged = trail.add(&imaging).await;
    assert_eq!(
        trail.findings(Rule::SeriesWithoutFollowUpImaging)[0]
            .resolved_by
            .map(|r| r.0),
        Some(imaged)
    );
}

#[tokio::test]
async fn an_adverse_event_must_name_an_injection_of_the_same_patient() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let own = trail.add(&injection(|_| {})).await;
    let mut other = injection(|_| {});
    other.patient_id = Some("P-2000".parse().unwrap());
    let others = trail.add(&other).await;
    for (linked, expected) in [(own, 0), (others, 1), (Uuid::now_v7(), 2)] {
        let mut ae = example("adverse_event.reported");
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = linked;
        }
        let reported = trail.add(&ae).await;
        let found = trail.findings(Rule::AdverseEventLinkInvalid);
        assert_eq!(found.len(), expected, "linked to {linked}");
        if expected > 0 {
            assert!(found.iter().any(|f| f.evidence == vec![reported, linked]));
        }
    }
}

#[tokio::test]
async fn an_infection_without_an_update_within_seven_days_is_raised_by_the_streams_clock() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let injected = trail.add(&injection(|_| {})).await;
    let mut ae = example("adverse_event.reported");
    if let Payload::AdverseEventReported(p) = &mut ae.payload {
        p.linked_injection.as_mut().unwrap().event_id = injected;
    }
    let reported = trail.add(&ae).await;
    // Six days later: not yet.
    let mut exam = example("examination.done");
    exam.occurred_at = t("2026-10-09T10:00:00Z");
    exam.recorded_at = t("2026-10-09T10:05:00Z");
    trail.add(&exam).await;
    assert!(trail.findings(Rule::NoAdverseEventUpdate).is_empty());
    // Nine days later, still no update: raised.
    exam.event_id = Uuid::now_v7();
    exam.occurred_at = t("2026-10-12T10:00:00Z");
    exam.recorded_at = t("2026-10-12T10:05:00Z");
    trail.add(&exam).await;
    let found = trail.findings(Rule::NoAdverseEventUpdate);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![reported]);
    // The follow-up, late, resolves it.
    let mut update = example("adverse_event.updated");
    update.occurred_at = t("2026-10-12T11:00:00Z");
    update.recorded_at = t("2026-10-12T11:05:00Z");
    if let Payload::AdverseEventUpdated(p) = &mut update.payload {
        p.adverse_event_id = reported;
    }
    let updated = trail.add(&update).await;
    assert_eq!(
        trail.findings(Rule::NoAdverseEventUpdate)[0]
            .resolved_by
            .map(|r| r.0),
        Some(updated)
    );
}

#[tokio::test]
async fn an_infection_updated_in_time_raises_nothing() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let injected = trail.add(&injection(|_| {})).await;
    let mut ae = example("adverse_event.reported");
    if let Payload::AdverseEventReported(p) = &mut ae.payload {
        p.linked_injection.as_mut().unwrap().event_id = injected;
    }
    let reported = trail.add(&ae).await;
    let mut update = example("adverse_event.updated");
    update.occurred_at = t("2026-10-05T09:00:00Z");
    update.recorded_at = t("2026-10-05T09:10:00Z");
    if let Payload::AdverseEventUpdated(p) = &mut update.payload {
        p.adverse_event_id = reported;
    }
    trail.add(&update).await;
    let mut exam = example("examination.done");
    exam.occurred_at = t("2026-10-20T10:00:00Z");
    exam.recorded_at = t("2026-10-20T10:05:00Z");
    trail.add(&exam).await;
    assert!(trail.findings(Rule::NoAdverseEventUpdate).is_empty());
}

#[tokio::test]
async fn documentation_recorded_days_late_is_raised() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let mut late = injection(|_| {});
    late.recorded_at = late.occurred_at + Duration::days(4);
    let injected = trail.add(&late).await;
    let found = trail.findings(Rule::LateDocumentation);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![injected]);
    assert!(found[0].detail.contains("96 hours"), "{}", found[0].detail);
}

#[tokio::test]
async fn an_expired_or_recalled_lot_is_raised_whichever_is_recorded_first() {
    let mut trail = Trail::new();
    trail.prepared().await;
    trail
        .add(&injection(|p| {
            p.solution.components[0].lot_expiry = "2026-09-01".parse().unwrap()
        }))
        .await;
    assert_eq!(
        trail.findings(Rule::ExpiredOrRecalledLot).len(),
        1,
        "expired"
    );

    // Recall recorded first, then an injection from the lot.
    let mut recall = example("lot.recalled");
    recall.occurred_at = t("2026-09-15T12:00:00Z");
    recall.recorded_at = t("2026-09-15T12:01:00Z");
    if let Payload::LotRecalled(p) = &mut recall.payload {
        p.lot = "LID1-88A".parse().unwrap();
    }
    let recalled = trail.add(&recall).await;
    let injected = trail.add(&injection(|_| {})).await;
    let found: Vec<Finding> = trail
        .findings(Rule::ExpiredOrRecalledLot)
        .into_iter()
        .filter(|f| f.evidence[0] == injected)
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![injected, recalled]);

    // An injection recorded before a recall that predates it.
    let mut trail = Trail::new();
    trail.prepared().await;
    let injected = trail.add(&injection(|_| {})).await;
    let mut recall = example("lot.recalled");
    recall.occurred_at = t("2026-09-28T12:00:00Z");
    let recalled = trail.add(&recall).await;
    let found = trail.findings(Rule::ExpiredOrRecalledLot);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![injected, recalled]);
    // The same within one batch: the injection and an earlier-dated recall
    // recorded after it, folded together.
    let mut trail = Trail::new();
    trail.prepared().await;
    let same_batch = injection(|_| {});
    let mut recall = example("lot.recalled");
    recall.occurred_at = t("2026-09-28T12:00:00Z");
    trail.add_all(&[same_batch.clone(), recall.clone()]).await;
    let found = trail.findings(Rule::ExpiredOrRecalledLot);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].evidence,
        vec![same_batch.event_id, recall.event_id]
    );
    // A recall after the injection raises nothing about it.
    let mut trail = Trail::new();
    trail.prepared().await;
    trail.add(&injection(|_| {})).await;
    trail.add(&example("lot.recalled")).await;
    assert!(trail.findings(Rule::ExpiredOrRecalledLot).is_empty());
}

#[tokio::test]
async fn an_axial_site_needs_image_guidance() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let mut consent = example("consent.given");
    if let Payload::ConsentGiven(p) = &mut consent.payload {
        p.sites.push(prolo_schemas::Site::listed(
            prolo_schemas::SiteKey::LUMBAR_INTERSPINOUS_LIG,
            None,
        ));
    }
    trail.add(&consent).await;
    let spine = |guidance| {
        injection(move |p| {
            p.site =
                serde_json::from_value(json!({"site_key": "LUMBAR_INTERSPINOUS_LIG"})).unwrap();
            p.guidance = guidance;
        })
    };
    trail
        .add(&spine(prolo_schemas::Guidance::Fluoroscopy))
        .await;
    assert!(trail.findings(Rule::AxialSiteByPalpationOnly).is_empty());
    let blind = trail.add(&spine(prolo_schemas::Guidance::Palpation)).await;
    let found = trail.findings(Rule::AxialSiteByPalpationOnly);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![blind]);
}

#[tokio::test]
async fn a_serious_event_recorded_a_day_after_onset_is_raised() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let injected = trail.add(&injection(|_| {})).await;
    let serious = |recorded: &str| {
        let mut ae = example("adverse_event.reported");
        ae.recorded_at = t(recorded);
        ae.occurred_at = t(recorded) - Duration::minutes(5);
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.serious = true;
            p.seriousness_criteria = vec![prolo_schemas::SeriousnessCriterion::Hospitalisation];
            p.grade = 3;
            p.linked_injection.as_mut().unwrap().event_id = injected;
        }
        ae
    };
    trail.add(&serious("2026-10-03T12:00:00Z")).await;
    assert!(
        trail.findings(Rule::SeriousEventReportedLate).is_empty(),
        "4 hours after onset"
    );
    let late = trail.add(&serious("2026-10-05T12:00:00Z")).await;
    let found = trail.findings(Rule::SeriousEventReportedLate);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence, vec![late]);
    // A declared back-fill is judged by when it was reported (occurred_at),
    // not by when the back-fill recorded it.
    let backfilled = |reported: &str| {
        let mut ae = serious(reported);
        ae.source = prolo_schemas::BACKFILL_SOURCE.into();
        ae.recorded_at = t("2026-11-20T12:00:00Z");
        ae
    };
    trail.add(&backfilled("2026-10-03T12:05:00Z")).await;
    assert_eq!(trail.findings(Rule::SeriousEventReportedLate).len(), 1);
    let late_then = trail.add(&backfilled("2026-10-05T12:05:00Z")).await;
    let found = trail.findings(Rule::SeriousEventReportedLate);
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|f| f.evidence == [late_then]));
}

#[tokio::test]
async fn an_infection_cluster_on_one_lot_raises_a_signal_for_that_lot_only() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let mut events = Vec::new();
    let mut injections: Vec<(String, Uuid)> = Vec::new();
    for lot in 0..10 {
        for i in 0..100 {
            let lot_name = if lot == 7 {
                "DX-BAD".to_owned()
            } else {
                format!("DX-{lot}")
            };
            let mut e = injection(|p| {
                p.solution.components.truncate(1);
                p.solution.components[0].lot = lot_name.parse().unwrap();
                // Many vials: the lot, not one vial.
                p.solution.components[0].vial = None;
            });
            e.patient_id = Some(format!("P-{lot}-{i}").parse().unwrap());
            injections.push((lot_name, e.event_id));
            events.push(e);
        }
    }
    // Ten infections after injections from DX-BAD, one after each of four other lots.
    let ae_after = |(_, id): &(String, Uuid)| {
        let mut ae = example("adverse_event.reported");
        let patient = events
            .iter()
            .find(|e| e.event_id == *id)
            .unwrap()
            .patient_id
            .clone();
        ae.patient_id = patient;
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = *id;
        }
        ae
    };
    let mut aes: Vec<Envelope> = injections
        .iter()
        .filter(|(lot, _)| lot == "DX-BAD")
        .take(10)
        .map(ae_after)
        .collect();
    for lot in ["DX-0", "DX-2", "DX-4", "DX-6"] {
        let i = injections.iter().find(|(l, _)| l == lot).unwrap();
        aes.push(ae_after(i));
    }
    events.extend(aes);
    trail.add_all(&events).await;

    let signals: Vec<Signal> = trail.store.signals_all().unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(
        (signals[0].dimension.as_str(), signals[0].group.as_str()),
        ("lot", "DX-BAD")
    );
    assert_eq!(signals[0].kind, "infection");
    assert_eq!(signals[0].table.group_injections, 100);
    assert!(signals[0].table.group_events >= 3);
    assert_eq!(
        signals[0].table.rest_injections, 900,
        "measured against the rest of the clinic"
    );
    let m = signals[0].measures;
    assert!(
        m.prr.unwrap() >= 2.0 && m.chi_square >= 4.0 && m.ic025 > 0.0,
        "{m:?}"
    );
}

/// An `adverse_event.updated` filed under `patient` for `adverse_event`.
fn update_of(adverse_event: Uuid, patient: &str) -> Envelope {
    let mut e = example("adverse_event.updated");
    e.patient_id = Some(patient.parse().unwrap());
    if let Payload::AdverseEventUpdated(p) = &mut e.payload {
        p.adverse_event_id = adverse_event;
    }
    e
}

#[tokio::test]
async fn an_update_filed_under_another_patient_changes_nothing_and_raises_a_finding() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let injection = trail.add(&example("injection.given")).await;
    let mut infection = example("adverse_event.reported");
    if let Payload::AdverseEventReported(p) = &mut infection.payload {
        p.linked_injection.as_mut().unwrap().event_id = injection;
    }
    let infection_id = trail.add(&infection).await;
    let forged = trail.add(&update_of(infection_id, "P-2000")).await;

    let state: prolo_projector::model::AdverseEventState =
        trail.store.adverse_event(&infection_id).unwrap().unwrap();
    assert_eq!(
        state.status,
        prolo_schemas::AdverseEventStatus::Open,
        "the other patient's update closed it"
    );
    assert!(state.updates.is_empty());
    let findings = trail.findings(Rule::ReferenceOutsidePatient);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].evidence, vec![forged, infection_id]);
    assert_eq!(findings[0].patient_id.as_deref(), Some("P-2000"));
    assert!(
        findings[0].detail.contains("P-1042"),
        "{}",
        findings[0].detail
    );
    // The real patient's own update still closes it.
    trail.add(&update_of(infection_id, "P-1042")).await;
    let state: prolo_projector::model::AdverseEventState =
        trail.store.adverse_event(&infection_id).unwrap().unwrap();
    assert_eq!(state.status, prolo_schemas::AdverseEventStatus::Closed);
    assert_eq!(trail.findings(Rule::ReferenceOutsidePatient).len(), 1);
}

/// A `record.entered_in_error` for `target`, declared as `declared`, filed
/// in `clinic` for `patient`.
fn void(target: Uuid, declared: prolo_schemas::EventType, clinic: &str, patient: &str) -> Envelope {
    let mut e = example("record.entered_in_error");
    e.clinic_id = clinic.parse().unwrap();
    e.patient_id = Some(patient.parse().unwrap());
    if let Payload::RecordEnteredInError(p) = &mut e.payload {
        p.target.event_id = target;
        p.target.event_type = declared;
    }
    e
}

fn marks(trail: &Trail, target: &Uuid) -> usize {
    trail.store.marks(target).unwrap().marks.len()
}

#[tokio::test]
async fn an_access_record_another_clinics_event_or_a_mistyped_target_cannot_be_voided() {
    use prolo_schemas::EventType;
    let mut trail = Trail::new();
    let read = trail.add(&example("access.recorded")).await;
    let adjunct = trail.add(&example("adjunct_therapy.recommended")).await;

    // An access record, declared as something else.
    trail
        .add(&void(
            read,
            EventType::AdjunctTherapyRecommended,
            "riverside",
            "P-1042",
        ))
        .await;
    // Another clinic's event.
    trail
        .add(&void(
            adjunct,
            EventType::AdjunctTherapyRecommended,
            "northside",
            "P-1042",
        ))
        .await;
    // Another patient's event.
    trail
        .add(&void(
            adjunct,
            EventType::AdjunctTherapyRecommended,
            "riverside",
            "P-2000",
        ))
        .await;
    // The right patient and clinic, the wrong declared type.
    trail
        .add(&void(
            adjunct,
            EventType::ImagingRecorded,
            "riverside",
            "P-1042",
        ))
        .await;
    assert_eq!(marks(&trail, &read), 0);
    assert_eq!(marks(&trail, &adjunct), 0);
    let details: Vec<String> = trail
        .findings(Rule::ReferenceOutsidePatient)
        .into_iter()
        .map(|f| f.detail)
        .collect();
    assert_eq!(details.len(), 4, "{details:#?}");
    for expected in [
        "access record",
        "clinic northside",
        "patient P-1042",
        "is a adjunct_therapy.recommended",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected}: {details:#?}"
        );
    }
    // The right target, properly declared, is marked.
    trail
        .add(&void(
            adjunct,
            EventType::AdjunctTherapyRecommended,
            "riverside",
            "P-1042",
        ))
        .await;
    assert_eq!(marks(&trail, &adjunct), 1);
    assert_eq!(trail.findings(Rule::ReferenceOutsidePatient).len(), 4);
}

/// A signal has a lifecycle: raised while its kind stands out in the group,
/// cleared (and kept, with both transitions) when it no longer does.
#[tokio::test]
async fn a_signal_is_cleared_when_its_group_no_longer_stands_out() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let mut events = Vec::new();
    let mut by_lot: Vec<(&str, Envelope)> = Vec::new();
    for (lot, count) in [("DX-A", 100), ("DX-B", 900)] {
        for i in 0..count {
            let mut e = injection(|p| {
                p.solution.components.truncate(1);
                p.solution.components[0].lot = lot.parse().unwrap();
                p.solution.components[0].vial = None;
            });
            e.patient_id = Some(format!("P-{lot}-{i}").parse().unwrap());
            by_lot.push((lot, e.clone()));
            events.push(e);
        }
    }
    trail.add_all(&events).await;
    let infection_after = |injection: &Envelope| {
        let mut ae = example("adverse_event.reported");
        ae.patient_id = injection.patient_id.clone();
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = injection.event_id;
        }
        ae
    };
    let of = |lot: &str| -> Vec<Envelope> {
        by_lot
            .iter()
            .filter(|(l, _)| *l == lot)
            .map(|(_, e)| e.clone())
            .collect()
    };
    let (a, b) = (of("DX-A"), of("DX-B"));
    // Three infections after DX-A: raised.
    let early: Vec<Envelope> = a[..3].iter().map(infection_after).collect();
    trail.add_all(&early).await;
    let signals = trail.store.signals_raised("riverside").unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert!(signals[0].active && signals[0].group == "DX-A");
    // Thirty after DX-B, then one more after DX-A: DX-A is now like the rest.
    let later: Vec<Envelope> = b[..30]
        .iter()
        .chain(&a[3..4])
        .map(infection_after)
        .collect();
    trail.add_all(&later).await;
    let signals = trail.store.signals_raised("riverside").unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    let s = &signals[0];
    assert!(!s.active, "{s:?}");
    let states: Vec<&str> = s.transitions.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(states, ["raised", "cleared"]);
    assert_eq!(s.transitions[1].reason, "no longer meets the criteria");
    assert_eq!(
        (
            s.transitions[1].table.group_events,
            s.transitions[1].table.rest_events
        ),
        (4, 30)
    );
}

/// The signal is judged over a rolling 90-day window by the stream's clock:
/// once the window has moved past its events, it clears (on the first event
/// of a new day, whatever the event); a new cluster raises it again.
#[tokio::test]
async fn a_signal_clears_when_the_window_moves_past_its_events_and_can_be_raised_again() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let given = |lot: &str, i: usize, at: &str| {
        let mut e = injection(|p| {
            p.solution.components.truncate(1);
            p.solution.components[0].lot = lot.parse().unwrap();
            p.solution.components[0].vial = None;
            p.preparation = None;
        });
        e.event_id = Uuid::now_v7();
        e.patient_id = Some(format!("P-{lot}-{i}").parse().unwrap());
        e.occurred_at = t(at);
        e.recorded_at = t(at) + Duration::minutes(5);
        e
    };
    let infection_after = |injection: &Envelope| {
        let mut ae = example("adverse_event.reported");
        ae.event_id = Uuid::now_v7();
        ae.patient_id = injection.patient_id.clone();
        ae.occurred_at = injection.occurred_at + Duration::days(2);
        ae.recorded_at = ae.occurred_at + Duration::hours(1);
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.onset_at = injection.occurred_at + Duration::days(1);
            p.aware_at = Some(ae.occurred_at);
            let link = p.linked_injection.as_mut().unwrap();
            link.event_id = injection.event_id;
            link.occurred_at = injection.occurred_at;
        }
        ae
    };
    let mut events: Vec<Envelope> = (0..900)
        .map(|i| given("DX-B", i, "2026-10-01T09:00:00Z"))
        .collect();
    let first: Vec<Envelope> = (0..100)
        .map(|i| given("DX-A", i, "2026-10-01T10:00:00Z"))
        .collect();
    events.extend(first.clone());
    events.extend(first[..3].iter().map(infection_after));
    for e in &events {
        e.validate().unwrap();
    }
    trail.add_all(&events).await;
    assert_eq!(trail.store.quarantined().unwrap(), 0);
    let signal = |trail: &Trail| trail.store.signals_raised("riverside").unwrap();
    let s = &signal(&trail)[0];
    assert!(s.active && s.group == "DX-A", "{s:?}");
    assert_eq!(s.table.group_events, 3);

    // 89 days after the injections they are still in the window.
    let mut exam = example("examination.done");
    exam.occurred_at = t("2026-12-29T09:00:00Z");
    exam.recorded_at = exam.occurred_at;
    trail.add(&exam).await;
    assert!(signal(&trail)[0].active);
    // 90 days after: the window starts on 2 October; the signal clears.
    exam.event_id = Uuid::now_v7();
    exam.occurred_at = t("2026-12-30T09:00:00Z");
    exam.recorded_at = exam.occurred_at;
    let tick = trail.add(&exam).await;
    let s = &signal(&trail)[0];
    assert!(!s.active, "{s:?}");
    let last = s.transitions.last().unwrap();
    assert_eq!(
        (last.state.as_str(), last.reason.as_str(), last.by),
        (
            "cleared",
            "no longer meets the criteria in the 90-day window",
            tick
        )
    );
    assert_eq!(
        (last.table.group_events, last.table.group_injections),
        (0, 0),
        "nothing of the lot is left in the window"
    );
    assert_eq!(
        trail.store.signal_day().unwrap(),
        Some(t("2026-12-30T00:00:00Z").timestamp() / 86_400)
    );

    // A new cluster on the same lot, in the new window: raised again.
    let second: Vec<Envelope> = (100..130)
        .map(|i| given("DX-A", i, "2027-01-04T10:00:00Z"))
        .collect();
    let mut events = second.clone();
    events.extend(second[..3].iter().map(infection_after));
    trail.add_all(&events).await;
    let s = &signal(&trail)[0];
    let states: Vec<&str> = s.transitions.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(states, ["raised", "cleared", "raised"]);
    assert!(s.active);
    // Judged over the window (30 injections of the lot) against the rest
    // of the clinic over all time (900).
    assert_eq!(
        (
            s.table.group_events,
            s.table.group_injections,
            s.table.rest_injections
        ),
        (3, 30, 900)
    );
}

/// Infections after the syringes drawn from one multi-dose vial are a
/// contamination inside the clinic: the vial is signalled, and its lot,
/// whose other vials were clean, is explained by it.
#[tokio::test]
async fn a_contaminated_multi_dose_vial_is_told_from_a_bad_lot() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let mut events = Vec::new();
    let mut from_vial = Vec::new();
    for i in 0..600 {
        let lot = if i < 300 { "DX-V" } else { "DX-W" };
        let opened = if i < 40 {
            "2026-09-28T08:00:00Z"
        } else {
            "2026-09-30T08:00:00Z"
        };
        let mut e = injection(|p| {
            p.solution.components.truncate(1);
            p.solution.components[0].lot = lot.parse().unwrap();
            p.solution.components[0].vial = Some(prolo_schemas::Vial {
                kind: prolo_schemas::VialKind::MultiDose,
                opened_at: Some(t(opened)),
            });
        });
        e.patient_id = Some(format!("P-{i}").parse().unwrap());
        if i < 40 {
            from_vial.push(e.clone());
        }
        events.push(e);
    }
    for injection in from_vial.iter().take(4) {
        let mut ae = example("adverse_event.reported");
        ae.patient_id = injection.patient_id.clone();
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = injection.event_id;
        }
        events.push(ae);
    }
    trail.add_all(&events).await;
    let active: Vec<(String, String)> = trail
        .store
        .signals_raised("riverside")
        .unwrap()
        .into_iter()
        .filter(|s| s.active)
        .map(|s| (s.dimension.as_str().to_owned(), s.group))
        .collect();
    assert_eq!(
        active,
        [("vial".to_owned(), "DX-V opened 2026-09-28".to_owned())]
    );
}

/// The signal counts follow the record: an adverse event entered in error
/// leaves them, a corrected injection moves to its corrected lot with the
/// adverse events after it, an injection entered in error leaves with
/// them, and an update that makes a flare an infection moves its kind.
#[tokio::test]
async fn signal_counts_follow_corrections_marks_and_updates() {
    let mut trail = Trail::new();
    trail.prepared().await;
    let on_lot = |lot: &str, patient: &str| {
        let mut e = injection(|p| {
            p.solution.components.truncate(1);
            p.solution.components[0].lot = lot.parse().unwrap();
            p.solution.components[0].vial = None;
        });
        e.patient_id = Some(patient.parse().unwrap());
        e
    };
    let after = |injection: &Envelope, kind: AdverseEventKind| {
        let mut ae = example("adverse_event.reported");
        ae.patient_id = injection.patient_id.clone();
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = injection.event_id;
            p.kind = kind;
            if kind != AdverseEventKind::Infection {
                p.infection = None;
            }
        }
        ae
    };
    let mark = |event: &Envelope, corrected: Option<serde_json::Value>| {
        let mut m = match corrected {
            Some(_) => example("record.corrected"),
            None => example("record.entered_in_error"),
        };
        m.patient_id = event.patient_id.clone();
        match &mut m.payload {
            Payload::RecordCorrected(c) => {
                c.target.event_id = event.event_id;
                c.target.event_type = event.event_type();
                c.corrected_payload = serde_json::from_value(corrected.unwrap()).unwrap();
            }
            Payload::RecordEnteredInError(c) => {
                c.target.event_id = event.event_id;
                c.target.event_type = event.event_type();
            }
            _ => unreachable!(),
        }
        m
    };
    let counts = |trail: &Trail, lot: &str| {
        let groups = trail.store.group_counts("riverside").unwrap();
        let g = groups
            .iter()
            .find(|g| g.dimension.as_str() == "lot" && g.group == lot)
            .map(|g| g.count.clone())
            .unwrap_or_default();
        (g.injections, g.events("infection"), g.events("pain_flare"))
    };

    let i1 = on_lot("DX-A", "P-1");
    let i2 = on_lot("DX-A", "P-2");
    let ae1 = after(&i1, AdverseEventKind::Infection);
    let ae2 = after(&i2, AdverseEventKind::PainFlare);
    for e in [&i1, &i2, &ae1, &ae2] {
        trail.add(e).await;
    }
    assert_eq!(counts(&trail, "DX-A"), (2, 1, 1));

    // The infection was entered in error: it counts no more.
    trail.add(&mark(&ae1, None)).await;
    assert_eq!(counts(&trail, "DX-A"), (2, 0, 1));

    // The flare was an infection.
    let mut update = example("adverse_event.updated");
    update.patient_id = i2.patient_id.clone();
    if let Payload::AdverseEventUpdated(p) = &mut update.payload {
        p.adverse_event_id = ae2.event_id;
        p.kind = Some(AdverseEventKind::Infection);
        p.infection = Some(prolo_schemas::Infection {
            signs: vec![prolo_schemas::InfectionSign::Swelling],
            culture_taken: true,
            depth: None,
            organism: None,
        });
    }
    trail.add(&update).await;
    assert_eq!(counts(&trail, "DX-A"), (2, 1, 0));

    // Injection 2 was from lot DX-B: it moves, with its infection.
    let Payload::InjectionGiven(p2) = &i2.payload else {
        unreachable!()
    };
    let mut corrected = serde_json::to_value(p2).unwrap();
    corrected["solution"]["components"][0]["lot"] = "DX-B".into();
    trail.add(&mark(&i2, Some(corrected))).await;
    assert_eq!(counts(&trail, "DX-A"), (1, 0, 0));
    assert_eq!(counts(&trail, "DX-B"), (1, 1, 0));

    // Injection 2 was entered in error altogether: nothing of it counts.
    trail.add(&mark(&i2, None)).await;
    assert_eq!(counts(&trail, "DX-B"), (0, 0, 0));
    let clinic = trail
        .store
        .group_counts("riverside")
        .unwrap()
        .into_iter()
        .find(|g| g.dimension.as_str() == "clinic")
        .unwrap();
    assert_eq!(
        (clinic.count.injections, clinic.count.adverse_events),
        (1, 0)
    );
}

/// A back-filled history arrives long after its deadlines: a follow-up
/// that happened in time stops the wait before the stream's clock can
/// expire it; one that happened late is still a finding (then resolved).
#[tokio::test]
async fn a_back_filled_follow_up_in_time_raises_nothing_and_a_late_one_still_does() {
    for (update_at, raised) in [
        ("2026-10-05T09:00:00Z", false),
        ("2026-10-20T09:00:00Z", true),
    ] {
        let mut trail = Trail::new();
        trail.prepared().await;
        let injected = trail.add(&injection(|_| {})).await;
        let now = chrono::Utc::now();
        let mut ae = example("adverse_event.reported");
        ae.recorded_at = now;
        ae.source = prolo_schemas::BACKFILL_SOURCE.into();
        if let Payload::AdverseEventReported(p) = &mut ae.payload {
            p.linked_injection.as_mut().unwrap().event_id = injected;
        }
        let mut update = example("adverse_event.updated");
        update.occurred_at = t(update_at);
        update.recorded_at = now;
        update.source = prolo_schemas::BACKFILL_SOURCE.into();
        if let Payload::AdverseEventUpdated(p) = &mut update.payload {
            p.adverse_event_id = ae.event_id;
        }
        trail.add_all(&[ae, update]).await;
        let found = trail.findings(Rule::NoAdverseEventUpdate);
        assert_eq!(
            !found.is_empty(),
            raised,
            "update at {update_at}: {found:?}"
        );
        assert!(found.iter().all(|f| f.resolved_by.is_some()));
    }
}

/// A patient ready to inject, with the example plan: 4 sessions every 28
/// days at the left knee's MCL and joint, dextrose and lidocaine.
async fn planned() -> (Trail, Uuid) {
    let mut trail = Trail::new();
    trail.prepared().await;
    let plan = trail.add(&example("treatment.planned")).await;
    (trail, plan)
}

/// An injection of session `session` under `plan` (`None`: naming none),
/// `days` after the example's day.
fn session(
    plan: Option<Uuid>,
    session: u8,
    days: i64,
    edit: impl FnOnce(&mut prolo_schemas::InjectionGiven),
) -> Envelope {
    let mut e = injection(|p| {
        p.session_number = session;
        p.treatment_plan_event_id = plan;
        if let Some(prep) = &mut p.preparation {
            prep.prepared_at += Duration::days(days);
        }
        edit(p);
    });
    e.event_id = Uuid::now_v7();
    e.occurred_at += Duration::days(days);
    e.recorded_at += Duration::days(days);
    e
}

#[tokio::test]
async fn an_injection_outside_its_plan_is_raised_and_one_within_it_is_not() {
    let (mut trail, plan) = planned().await;
    trail.add(&session(Some(plan), 1, 0, |_| {})).await;
    assert!(trail.findings(Rule::OutsideTreatmentPlan).is_empty());
    // The other side: outside the plan (which names the left knee).
    let right = trail
        .add(&session(Some(plan), 1, 0, |p| {
            p.site.laterality = Some(prolo_schemas::Laterality::Right)
        }))
        .await;
    // An agent the plan does not name.
    let bupivacaine = trail
        .add(&session(Some(plan), 1, 0, |p| {
            p.solution.components[1].agent = prolo_schemas::Agent::Bupivacaine;
            p.solution.components[1].concentration_pct = Some(0.25);
        }))
        .await;
    let mut found = trail.findings(Rule::OutsideTreatmentPlan);
    found.sort_by_key(|f| f.raised_seq);
    let details: Vec<(Uuid, &str)> = found
        .iter()
        .map(|f| (f.evidence[0], f.detail.as_str()))
        .collect();
    assert_eq!(
        details,
        [
            (right, "KNEE_MCL:right is not among the plan's sites"),
            (bupivacaine, "bupivacaine is not among the plan's agents")
        ]
    );
    assert!(found.iter().all(|f| f.evidence[1] == plan));
    assert_eq!(found[0].practitioner_id.as_deref(), Some("dr-hale"));
}

#[tokio::test]
async fn sessions_beyond_the_plan_and_sooner_than_its_interval_are_raised() {
    let (mut trail, plan) = planned().await;
    let first = trail.add(&session(Some(plan), 1, 0, |_| {})).await;
    // 26 days later: within the 3-day tolerance of 28.
    let second = trail.add(&session(Some(plan), 2, 26, |_| {})).await;
    assert!(trail.findings(Rule::IntervalShorterThanPlanned).is_empty());
    // 14 days after the second: too soon.
    let third = trail.add(&session(Some(plan), 3, 40, |_| {})).await;
    let found = trail.findings(Rule::IntervalShorterThanPlanned);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].evidence, [third, plan, second]);
    assert_eq!(
        found[0].detail,
        "session 3 came 14 days after session 2 (plan: every 28 days, tolerance 3)"
    );
    // A second point of the same session that day is not a new session.
    trail.add(&session(Some(plan), 3, 40, |_| {})).await;
    assert_eq!(trail.findings(Rule::IntervalShorterThanPlanned).len(), 1);
    assert!(trail.findings(Rule::SessionsBeyondPlan).is_empty());
    trail.add(&session(Some(plan), 4, 68, |_| {})).await;
    assert!(trail.findings(Rule::SessionsBeyondPlan).is_empty());
    // Naming no plan, the patient's latest plan is the one.
    let fifth = trail.add(&session(None, 5, 96, |_| {})).await;
    let found = trail.findings(Rule::SessionsBeyondPlan);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].evidence.clone(), found[0].detail.as_str()),
        (vec![fifth, plan], "session 5 of a plan for 4")
    );
    let _ = first;
}

#[tokio::test]
async fn a_plan_entered_in_error_is_not_held_against_injections() {
    let (mut trail, plan) = planned().await;
    let mut void = example("record.entered_in_error");
    if let Payload::RecordEnteredInError(p) = &mut void.payload {
        p.target.event_id = plan;
        p.target.event_type = prolo_schemas::EventType::TreatmentPlanned;
    }
    trail.add(&void).await;
    trail.add(&session(Some(plan), 5, 0, |_| {})).await;
    trail.add(&session(None, 5, 1, |_| {})).await;
    assert!(trail.findings(Rule::SessionsBeyondPlan).is_empty());
    assert!(trail.findings(Rule::OutsideTreatmentPlan).is_empty());
}

#[tokio::test]
async fn local_anaesthetic_above_the_session_maximum_is_raised_once_when_crossed() {
    let (mut trail, plan) = planned().await;
    // Lidocaine 1% × 10 mL = 100 mg a point: three points reach 300 mg,
    // the maximum, and raise nothing.
    let strong = |p: &mut prolo_schemas::InjectionGiven| {
        p.solution.components[1].concentration_pct = Some(1.0);
        p.volume_ml = 10.0;
    };
    let mut points = Vec::new();
    for _ in 0..3 {
        points.push(trail.add(&session(Some(plan), 1, 0, strong)).await);
    }
    assert!(
        trail
            .findings(Rule::LocalAnaestheticAboveMaximum)
            .is_empty()
    );
    // A fourth crosses it; a fifth adds to a session already flagged.
    let fourth = trail.add(&session(Some(plan), 1, 0, strong)).await;
    trail.add(&session(Some(plan), 1, 0, strong)).await;
    let found = trail.findings(Rule::LocalAnaestheticAboveMaximum);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].evidence[0], fourth);
    assert_eq!(found[0].evidence[1..], points[..]);
    assert_eq!(
        found[0].detail,
        "session 1: lidocaine 400 mg (maximum 300 mg): 133% of the maximum"
    );
    // The next session starts from nothing.
    trail.add(&session(Some(plan), 2, 28, strong)).await;
    assert_eq!(trail.findings(Rule::LocalAnaestheticAboveMaximum).len(), 1);
}

#[tokio::test]
async fn mixed_local_anaesthetics_add_up_to_their_maximum() {
    let (mut trail, plan) = planned().await;
    // Lidocaine 1% × 15 mL = 150 mg (half of 300), then bupivacaine 0.5%
    // × 16 mL = 80 mg (over half of 150): together above the maximum.
    trail
        .add(&session(Some(plan), 1, 0, |p| {
            p.solution.components[1].concentration_pct = Some(1.0);
            p.volume_ml = 15.0;
        }))
        .await;
    assert!(
        trail
            .findings(Rule::LocalAnaestheticAboveMaximum)
            .is_empty()
    );
    trail
        .add(&session(Some(plan), 1, 0, |p| {
            p.solution.components[1].agent = prolo_schemas::Agent::Bupivacaine;
            p.solution.components[1].concentration_pct = Some(0.5);
            p.volume_ml = 16.0;
        }))
        .await;
    let found = trail.findings(Rule::LocalAnaestheticAboveMaximum);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "session 1: bupivacaine 80 mg (maximum 150 mg), lidocaine 150 mg (maximum 300 mg): 103% of the maximum"
    );
}

#[tokio::test]
async fn a_back_fill_of_care_given_after_go_live_is_raised_and_history_before_it_is_not() {
    let mut trail = Trail::new();
    let backfilled = |occurred: &str, recorded: &str| {
        let mut e = example("examination.done");
        e.event_id = Uuid::now_v7();
        e.source = prolo_schemas::BACKFILL_SOURCE.into();
        e.occurred_at = t(occurred);
        e.recorded_at = t(recorded);
        e
    };
    // Before any live event: history, whatever its age.
    trail
        .add(&backfilled("2026-03-01T09:00:00Z", "2026-10-01T08:00:00Z"))
        .await;
    // The clinic records live from 1 October, 09:00.
    let mut live = example("examination.done");
    live.event_id = Uuid::now_v7();
    live.occurred_at = t("2026-10-01T08:50:00Z");
    live.recorded_at = t("2026-10-01T09:00:00Z");
    trail.add(&live).await;
    // More history from before go-live, back-filled later: still history.
    trail
        .add(&backfilled("2026-09-15T09:00:00Z", "2026-10-10T08:00:00Z"))
        .await;
    // Care given after go-live, back-filled ten days later: raised.
    let sneaked = trail
        .add(&backfilled("2026-10-02T09:00:00Z", "2026-10-12T09:00:00Z"))
        .await;
    // Given after go-live and back-filled within the limit: not raised.
    trail
        .add(&backfilled("2026-10-12T07:00:00Z", "2026-10-12T10:00:00Z"))
        .await;
    let found = trail.findings(Rule::BackfillAfterGoLive);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].evidence, [sneaked]);
    assert_eq!(
        found[0].detail,
        "examination.done happened after the clinic began recording live (2026-10-01T09:00:00Z) and was back-filled 240 hours later (limit 72)"
    );
    assert!(
        trail.findings(Rule::LateDocumentation).is_empty(),
        "a declared back-fill is judged by its own rule"
    );
}

/// Three infections after injections of the example's lots by dr-hale.
async fn three_infections(trail: &mut Trail) -> Vec<Uuid> {
    trail.prepared().await;
    let mut infections = Vec::new();
    for _ in 0..3 {
        let injection = trail.add(&example("injection.given")).await;
        let mut infection = example("adverse_event.reported");
        if let Payload::AdverseEventReported(p) = &mut infection.payload {
            p.linked_injection.as_mut().unwrap().event_id = injection;
        }
        infections.push(trail.add(&infection).await);
    }
    infections
}

/// A clerk's `record.entered_in_error` of `adverse_event`, stored at `at`.
fn clerk_voids(adverse_event: Uuid, at: &str) -> Envelope {
    let mut e = void(
        adverse_event,
        prolo_schemas::EventType::AdverseEventReported,
        "riverside",
        "P-1042",
    );
    e.actor = prolo_schemas::Actor {
        id: "mallory-frontdesk".into(),
        role: prolo_schemas::ActorRole::Clerk,
    };
    e.recorded_at = t(at);
    e
}

#[tokio::test]
async fn voiding_a_lots_adverse_events_together_raises_a_finding_for_the_safety_reviewer() {
    let mut trail = Trail::new();
    let infections = three_infections(&mut trail).await;
    let mut voids = Vec::new();
    for (id, at) in infections[..2]
        .iter()
        .zip(["2026-11-02T09:00:00Z", "2026-11-02T09:05:00Z"])
    {
        voids.push(trail.add(&clerk_voids(*id, at)).await);
    }
    // The same adverse event voided again counts once.
    trail
        .add(&clerk_voids(infections[1], "2026-11-02T09:06:00Z"))
        .await;
    assert!(
        trail.findings(Rule::AdverseEventsVoidedTogether).is_empty(),
        "two adverse events are below the threshold"
    );
    voids.push(
        trail
            .add(&clerk_voids(infections[2], "2026-11-02T09:10:00Z"))
            .await,
    );
    let found = trail.findings(Rule::AdverseEventsVoidedTogether);
    // One finding, naming each lot of the injections and their practitioner.
    assert_eq!(found.len(), 1, "{found:#?}");
    let finding = &found[0];
    for named in [
        "lot DX50-2026-114",
        "lot LID1-88A",
        "practitioner dr-hale",
        "mallory-frontdesk",
    ] {
        assert!(finding.detail.contains(named), "{}", finding.detail);
    }
    for id in infections.iter().chain(&voids) {
        assert!(
            finding.evidence.contains(id),
            "{id} missing from {:?}",
            finding.evidence
        );
    }
    assert_eq!(finding.practitioner_id.as_deref(), Some("dr-hale"));
    assert_eq!(
        finding.severity,
        prolo_projector::rules::findings::Severity::High
    );
    // The voids took effect: the trail keeps both, and says so.
    for id in &infections {
        assert_eq!(marks(&trail, id), 1 + usize::from(*id == infections[1]));
    }
}

#[tokio::test]
async fn voids_a_day_apart_raise_no_burst() {
    let mut trail = Trail::new();
    let infections = three_infections(&mut trail).await;
    for (id, at) in infections.iter().zip([
        "2026-11-02T09:00:00Z",
        "2026-11-03T10:00:00Z",
        "2026-11-04T11:00:00Z",
    ]) {
        trail.add(&clerk_voids(*id, at)).await;
    }
    assert!(trail.findings(Rule::AdverseEventsVoidedTogether).is_empty());
}
