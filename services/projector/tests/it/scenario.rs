//! A realistic clinic scenario recorded through the services gives read
//! models holding exactly what it implies, field by field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::{Projector, rebuilt};
use async_nats::jetstream;
use prolo_projector::{
    model::{AdverseEventState, PatientSummary, PractitionerSummary, Standing},
    store::Index,
};
use prolo_schemas::EventType::*;
use prolo_tests::{Stack, example_request, record_example, record_ok};
use serde_json::{Value, json};

fn at(mut request: Value, occurred: &str) -> Value {
    request["occurred_at"] = occurred.into();
    request
}

#[tokio::test]
async fn a_clinic_scenario_gives_exactly_the_read_models_it_implies() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let db = tempfile::tempdir().unwrap();

    // dr-hale is credentialed; P-1042 goes through the whole process.
    record_example(&client, PractitionerCredentialed).await;
    let exam = record_example(&client, ExaminationDone).await;
    record_example(&client, ImagingRecorded).await;
    let mut candidacy = example_request("candidacy.assessed");
    candidacy["payload"]["examination_event_id"] = exam.event_id.to_string().into();
    record_ok(&client, CandidacyAssessed, &candidacy).await;
    let consent = record_ok(
        &client,
        ConsentGiven,
        &at(example_request("consent.given"), "2026-09-20T15:30:00Z"),
    )
    .await;
    record_example(&client, TreatmentPlanned).await;
    let first = record_example(&client, InjectionGiven).await;
    let mut second = at(example_request("injection.given"), "2026-10-29T09:30:00Z");
    second["payload"]["site"] = json!({"site_key": "KNEE_IA", "laterality": "left"});
    second["payload"]["volume_ml"] = 8.into();
    second["payload"]["session_number"] = 2.into();
    let second_id = record_ok(&client, InjectionGiven, &second).await.event_id;
    let mut ae = example_request("adverse_event.reported");
    ae["payload"]["linked_injection"]["event_id"] = first.event_id.to_string().into();
    let ae = record_ok(&client, AdverseEventReported, &ae).await;
    let mut update = example_request("adverse_event.updated");
    update["payload"]["adverse_event_id"] = ae.event_id.to_string().into();
    record_ok(&client, AdverseEventUpdated, &update).await;
    let adjunct = record_example(&client, AdjunctTherapyRecommended).await;
    // The second injection's volume was 6 mL, not 8.
    let mut correction = at(example_request("record.corrected"), "2026-10-29T09:30:00Z");
    correction["payload"]["target"]["event_id"] = second_id.to_string().into();
    correction["payload"]["corrected_payload"] = second["payload"].clone();
    correction["payload"]["corrected_payload"]["volume_ml"] = 6.into();
    let correction = record_ok(&client, RecordCorrected, &correction).await;
    let mut error = example_request("record.entered_in_error");
    error["payload"]["target"]["event_id"] = adjunct.event_id.to_string().into();
    let error = record_ok(&client, RecordEnteredInError, &error).await;
    // P-2000 consents, withdraws, and gets one injection from the same lot.
    let mut other = example_request("consent.given");
    other["patient_id"] = "P-2000".into();
    let other_consent = record_ok(&client, ConsentGiven, &other).await;
    let mut withdrawal = example_request("consent.withdrawn");
    withdrawal["patient_id"] = "P-2000".into();
    withdrawal["payload"]["consent_event_id"] = other_consent.event_id.to_string().into();
    let withdrawal = record_ok(&client, ConsentWithdrawn, &withdrawal).await;
    let mut other_injection = example_request("injection.given");
    other_injection["patient_id"] = "P-2000".into();
    record_ok(&client, InjectionGiven, &other_injection).await;
    let recall = record_example(&client, LotRecalled).await;

    let projector = Projector::start(&nats.url(), db.path()).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;
    assert_eq!(store.applied_seq().unwrap(), 17);

    // P-1042's summary.
    let p: PatientSummary = store
        .patient_summary("riverside", "P-1042")
        .unwrap()
        .unwrap();
    assert_eq!(
        p.event_count, 12,
        "exam, imaging, candidacy, consent, plan, 2 injections, AE, update, adjunct, 2 corrections"
    );
    assert_eq!(p.consents.len(), 1);
    assert_eq!(p.consents[0].origin.event_id, consent.event_id);
    assert_eq!(
        p.consents[0].sites,
        vec!["KNEE_MCL:left", "KNEE_IA:left", "PES_ANSERINUS:left"]
    );
    assert_eq!(p.consents[0].solutions, vec!["dextrose", "lidocaine"]);
    assert_eq!(p.consents[0].withdrawn, None);
    let clinical: Vec<(&str, &str)> = p
        .clinical
        .iter()
        .map(|c| (c.event_type.as_str(), c.summary.as_str()))
        .collect();
    assert_eq!(
        clinical,
        vec![
            (
                "examination.done",
                "knee_region examination, cause ligament_laxity"
            ),
            ("imaging.recorded", "ultrasound baseline of knee_region"),
            ("candidacy.assessed", "candidate"),
            ("treatment.planned", "4 sessions every 28 days"),
            (
                "adjunct_therapy.recommended",
                "physical_therapy, strength_programme"
            ),
        ]
    );
    assert_eq!(
        p.clinical[4].origin.standing,
        Standing::EnteredInError {
            by_seq: error.stream_seq
        }
    );
    assert_eq!(p.injections.len(), 2);
    let (i1, i2) = (&p.injections[0], &p.injections[1]);
    assert_eq!(
        (i1.site_key.as_str(), i1.laterality),
        ("KNEE_MCL", Some(prolo_schemas::Laterality::Left))
    );
    assert_eq!(i1.lots, vec!["DX50-2026-114", "LID1-88A"]);
    assert_eq!(
        (i1.practitioner_id.as_str(), i1.session_number, i1.guidance),
        ("dr-hale", 1, prolo_schemas::Guidance::Palpation)
    );
    assert_eq!(i1.volume_ml, 2.5);
    assert_eq!(i1.origin.standing, Standing::AsRecorded);
    assert_eq!((i2.site_key.as_str(), i2.session_number), ("KNEE_IA", 2));
    assert_eq!(
        i2.volume_ml, 6.0,
        "the current view shows the corrected volume"
    );
    assert_eq!(
        i2.origin.standing,
        Standing::Corrected {
            by_seq: correction.stream_seq
        }
    );
    assert_eq!(
        i2.origin.event_id, second_id,
        "the entry keeps the original event's identity"
    );
    assert_eq!(p.adverse_events, vec![ae.event_id]);
    let corrections: Vec<(&str, uuid::Uuid)> = p
        .corrections
        .iter()
        .map(|c| (c.kind.as_str(), c.target_event_id))
        .collect();
    assert_eq!(
        corrections,
        vec![
            ("record.corrected", second_id),
            ("record.entered_in_error", adjunct.event_id)
        ]
    );
    // History keeps both: the original injection event is still stored as recorded.
    let patient_seqs: Vec<u64> = store
        .index(Index::Patient {
            clinic: "riverside",
            patient: "P-1042",
        })
        .unwrap();
    assert_eq!(patient_seqs.len(), 12);
    let original = store.event(patient_seqs[6]).unwrap().unwrap();
    let original: Value = serde_json::from_slice(&original.raw).unwrap();
    assert_eq!(original["payload"]["volume_ml"], 8.0);

    // The adverse event and what it follows.
    let state: AdverseEventState = store.adverse_event(&ae.event_id).unwrap().unwrap();
    assert_eq!(
        (state.kind, state.grade, state.serious),
        (prolo_schemas::AdverseEventKind::Infection, 2, false)
    );
    assert_eq!(state.linked_injection, Some(first.event_id));
    assert_eq!(state.injection_seq, Some(first.stream_seq));
    assert_eq!(state.injection_practitioner.as_deref(), Some("dr-hale"));
    assert_eq!(state.injection_lots, vec!["DX50-2026-114", "LID1-88A"]);
    assert_eq!(state.injection_site.as_deref(), Some("KNEE_MCL"));
    assert_eq!(state.updates.len(), 1);
    assert_eq!(
        state.updates[0].causality,
        Some(prolo_schemas::Causality::Probable)
    );
    assert_eq!(
        (state.status, state.outcome),
        (
            prolo_schemas::AdverseEventStatus::Closed,
            Some(prolo_schemas::Outcome::Resolved)
        )
    );

    // dr-hale's summary: one credential, three injections, one adverse event after them.
    let dr: PractitionerSummary = store
        .practitioner_summary("riverside", "dr-hale")
        .unwrap()
        .unwrap();
    assert_eq!(dr.credentials.len(), 1);
    assert_eq!(
        dr.credentials[0].credential,
        prolo_schemas::CredentialKind::ReconstructiveTherapy
    );
    assert_eq!(
        dr.credentials[0].valid_until,
        chrono::NaiveDate::from_ymd_opt(2027, 2, 28)
    );
    assert_eq!((dr.injection_count, dr.adverse_event_count), (3, 1));
    let dr_seqs: Vec<u64> = store
        .index(Index::Practitioner {
            clinic: "riverside",
            practitioner: "dr-hale",
        })
        .unwrap();
    assert_eq!(
        dr_seqs.len(),
        5,
        "credential, three injections, the adverse event"
    );
    assert!(dr_seqs.contains(&ae.stream_seq));

    // The lot: three injections, the adverse event after one of them, the recall.
    let lot: Vec<u64> = store.index(Index::Lot("DX50-2026-114")).unwrap();
    assert_eq!(lot.len(), 5, "{lot:?}");
    assert_eq!(*lot.last().unwrap(), recall.stream_seq);
    let lidocaine: Vec<u64> = store.index(Index::Lot("LID1-88A")).unwrap();
    assert_eq!(lidocaine.len(), 4);

    // P-2000's consent is withdrawn, by the withdrawal's sequence.
    let p2: PatientSummary = store
        .patient_summary("riverside", "P-2000")
        .unwrap()
        .unwrap();
    assert_eq!(
        p2.consents[0].withdrawn.map(|(_, seq)| seq),
        Some(withdrawal.stream_seq)
    );
    assert_eq!(p2.event_count, 3);

    // By type: two consents given.
    let consents: Vec<u64> = store
        .index(Index::Type(prolo_schemas::EventType::ConsentGiven))
        .unwrap();
    assert_eq!(consents, vec![consent.stream_seq, other_consent.stream_seq]);

    // A rebuild from sequence 1 gives the same read models, byte for byte.
    let (_, rebuilt) = rebuilt(&js, &db.path().join("rebuilt.sled")).await;
    assert_eq!(rebuilt.digest().unwrap(), store.digest().unwrap());
    recorders.stop().await;
}

/// A whole clinic day of the second contract: screening, time-out,
/// injection, observation, outcome, the end of the series and a signature
/// are folded into the patient's record, each with its one-line summary.
#[tokio::test]
async fn a_clinic_day_is_folded_into_the_patients_record() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let db = tempfile::tempdir().unwrap();
    let mut injection = None;
    for event_type in [
        ScreeningDone,
        ProcedureTimeOut,
        InjectionGiven,
        ObservationCompleted,
        OutcomeReported,
        SeriesCompleted,
    ] {
        let recorded = record_ok(&client, event_type, &example_request(event_type.as_str())).await;
        if event_type == InjectionGiven {
            injection = Some(recorded);
        }
    }
    let injection = injection.unwrap();
    let signature = prolo_tests::signature_of(&client, &injection, InjectionGiven).await;
    let signed = record_ok(&client, RecordSigned, &signature).await;

    let projector = Projector::start(&nats.url(), db.path()).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;
    let p: PatientSummary = store
        .patient_summary("riverside", "P-1042")
        .unwrap()
        .unwrap();
    assert_eq!(p.event_count, 7);
    let tags: Vec<String> = p.clinical.iter().map(|c| c.tag.name()).collect();
    let clinical: Vec<(&str, &str, &str)> = p
        .clinical
        .iter()
        .zip(&tags)
        .map(|(c, tag)| (c.event_type.as_str(), c.summary.as_str(), tag.as_str()))
        .collect();
    assert_eq!(
        clinical,
        [
            (
                "screening.done",
                "screening: proceed; 1 allergies, 0 contraindications; aspirin continued",
                "proceed"
            ),
            (
                "procedure.time_out",
                "time-out: identity verified, site marked, time-out performed, 2 participants",
                ""
            ),
            (
                "observation.completed",
                "observed 20 min, discharged well",
                ""
            ),
            ("outcome.reported", "koos 61.5 at week 4", "koos"),
            (
                "series.completed",
                "series ended after 4 sessions: goals_met",
                "goals_met"
            ),
        ]
    );
    assert_eq!(p.injections.len(), 1);
    assert_eq!(
        store.signatures(&injection.event_id).unwrap(),
        vec![signed.stream_seq]
    );
    recorders.stop().await;
}
