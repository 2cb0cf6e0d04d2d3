//! Nothing is silently skipped, and nothing altered goes unnoticed:
//! garbage lands in quarantine while the fold goes on, and `verify` names
//! the first sequence whose stored event or chain link was changed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::Projector;
use async_nats::jetstream;
use prolo_bus::{StreamSettings, ensure_stream};
use prolo_projector::{
    model::{EventRecord, PatientSummary},
    store::Index,
};
use prolo_schemas::EventType;
use prolo_tests::{
    Recorders, Stack, example_request, record_example, record_ok, scenario::record_examples,
    stream_only,
};

#[tokio::test]
async fn garbage_on_a_clinic_subject_is_quarantined_and_the_fold_goes_on() {
    let (nats, client, js) = stream_only().await;
    let recorders = Recorders::start(&nats.url()).await.unwrap();
    let db = tempfile::tempdir().unwrap();
    let projector = Projector::start(&nats.url(), db.path()).await;

    // A misbehaving system publishes straight onto clinic subjects.
    let subject = "clinic.riverside.patient.P-1042.injection.given";
    js.publish(subject, "not json at all".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut valid = prolo_schemas::Envelope::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/examples/consent.given.json"
        ))
        .unwrap(),
    )
    .unwrap();
    valid.event_id = uuid::Uuid::now_v7();
    js.publish(
        "clinic.riverside.patient.SOMEONE-ELSE.consent.given",
        valid.to_json().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Then the clinic goes on recording.
    let good = record_example(&client, EventType::InjectionGiven).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;

    assert_eq!(store.applied_seq().unwrap(), 3);
    let q1 = store.event(1).unwrap().unwrap();
    assert_eq!(q1.raw, b"not json at all");
    assert_eq!(q1.subject, subject);
    let reason = q1.quarantine.unwrap();
    assert!(reason.contains("expected a JSON object"), "{reason}");
    let q2 = store.event(2).unwrap().unwrap();
    let reason = q2.quarantine.unwrap();
    assert!(
        reason.contains("belongs on clinic.riverside.patient.P-1042.consent.given"),
        "{reason}"
    );
    assert_eq!(store.quarantined().unwrap(), 2);
    let listed: Vec<u64> = store.index(Index::Quarantined).unwrap();
    assert_eq!(listed, vec![1, 2]);
    // The good event was folded, and the quarantined ones were not.
    let stored = store.event(good.stream_seq).unwrap().unwrap();
    assert_eq!((stored.seq, stored.quarantine), (3, None));
    let summary: PatientSummary = store
        .patient_summary("riverside", "P-1042")
        .unwrap()
        .unwrap();
    assert_eq!(summary.event_count, 1);
    // The chain covers every sequence, quarantined or not.
    let report = prolo_projector::verify(&js, &store).await.unwrap();
    assert_eq!(report.checked, 3);
    assert_eq!(report.first_difference, None);
    recorders.stop().await;
}

#[tokio::test]
async fn verify_names_the_sequence_of_an_altered_event_or_chain_link() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    record_examples(&client, &[EventType::InjectionGiven; 5]).await;
    let db = tempfile::tempdir().unwrap();
    let projector = Projector::start(&nats.url(), db.path()).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;
    assert_eq!(
        prolo_projector::verify(&js, &store)
            .await
            .unwrap()
            .first_difference,
        None
    );

    // Someone edits the volume of the event at sequence 2 in the database.
    let original: EventRecord = store.event(2).unwrap().unwrap();
    let mut altered = original.clone();
    altered.raw = String::from_utf8(altered.raw)
        .unwrap()
        .replace("\"volume_ml\":2.5", "\"volume_ml\":1.5")
        .into_bytes();
    assert_ne!(altered.raw, original.raw);
    assert!(store.tamper_event(&altered).unwrap());
    let report = prolo_projector::verify(&js, &store).await.unwrap();
    let (seq, what) = report.first_difference.unwrap();
    assert_eq!(seq, 2);
    assert!(what.contains("stored event"), "{what}");
    assert!(store.tamper_event(&original).unwrap());

    // Someone rewrites the chain link at sequence 4.
    let mut relinked: EventRecord = store.event(4).unwrap().unwrap();
    relinked.chain = [7u8; 32];
    assert!(store.tamper_event(&relinked).unwrap());
    let report = prolo_projector::verify(&js, &store).await.unwrap();
    let (seq, what) = report.first_difference.clone().unwrap();
    assert_eq!(seq, 4);
    assert!(what.contains("chain link"), "{what}");
    assert_eq!(
        store
            .status_get::<prolo_projector::VerifyReport>("last_verify")
            .unwrap()
            .unwrap(),
        report
    );
    recorders.stop().await;
}

#[tokio::test]
async fn an_update_filed_under_another_patient_leaves_the_infection_open() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let db = tempfile::tempdir().unwrap();
    let projector = Projector::start(&nats.url(), db.path()).await;

    let injection = record_example(&client, EventType::InjectionGiven).await;
    let mut report = example_request("adverse_event.reported");
    report["payload"]["linked_injection"]["event_id"] = injection.event_id.to_string().into();
    let infection = record_ok(&client, EventType::AdverseEventReported, &report).await;
    // Recorded through the safety service for patient P-2000, naming P-1042's infection.
    let mut forged = example_request("adverse_event.updated");
    forged["patient_id"] = "P-2000".into();
    forged["payload"]["adverse_event_id"] = infection.event_id.to_string().into();
    let update = record_ok(&client, EventType::AdverseEventUpdated, &forged).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;

    let state: prolo_projector::model::AdverseEventState =
        store.adverse_event(&infection.event_id).unwrap().unwrap();
    assert_eq!(state.status, prolo_schemas::AdverseEventStatus::Open);
    assert!(state.updates.is_empty());
    let findings: Vec<prolo_projector::rules::findings::Finding> = store
        .findings_all()
        .unwrap()
        .into_iter()
        .filter(|f: &prolo_projector::rules::findings::Finding| {
            f.rule == prolo_projector::rules::findings::Rule::ReferenceOutsidePatient
        })
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].evidence,
        vec![update.event_id, infection.event_id]
    );
    // The update is kept in the trail, in the filer's history.
    let p2000: Vec<u64> = store
        .index(Index::Patient {
            clinic: "riverside",
            patient: "P-2000",
        })
        .unwrap();
    assert_eq!(p2000, vec![update.stream_seq]);
    recorders.stop().await;
}

#[tokio::test]
async fn a_recreated_or_shorter_stream_is_diverged_and_verify_fails_at_once() {
    use prolo_projector::integrity::consistency::{Consistency, IDENTITY, StreamIdentity, check};
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let db = tempfile::tempdir().unwrap();
    let projector = Projector::start(&nats.url(), db.path()).await;
    record_examples(&client, &[EventType::ExaminationDone; 5]).await;
    projector.caught_up(&js).await;
    let store = projector.stop().await;
    assert_eq!(check(&js, &store).await.unwrap(), Consistency::Consistent);
    assert_eq!(
        prolo_projector::verify(&js, &store)
            .await
            .unwrap()
            .first_difference,
        None
    );

    // An operator deletes the stream and it is created again, shorter.
    js.delete_stream(prolo_bus::STREAM_NAME).await.unwrap();
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    record_examples(&client, &[EventType::ExaminationDone; 2]).await;
    match check(&js, &store).await.unwrap() {
        Consistency::Diverged {
            reason,
            first_missing_seq,
        } => {
            assert!(reason.contains("recreated"), "{reason}");
            assert_eq!(first_missing_seq, 1);
        }
        other => panic!("{other:?}"),
    }
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        prolo_projector::verify(&js, &store),
    )
    .await
    .expect("verify answers within seconds")
    .unwrap();
    let (seq, reason) = report.first_difference.unwrap();
    assert_eq!(seq, 1);
    assert!(reason.contains("recreated"), "{reason}");

    // A database that knows no better (made before identities were kept,
    // say) is still told the stream is shorter than what it applied.
    let created = js
        .get_stream(prolo_bus::STREAM_NAME)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .created
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    store
        .status_put(IDENTITY, &StreamIdentity { created })
        .unwrap();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        prolo_projector::verify(&js, &store),
    )
    .await
    .expect("verify answers within seconds")
    .unwrap();
    let (seq, reason) = report.first_difference.unwrap();
    assert_eq!(seq, 3);
    assert!(
        reason.contains("ends at sequence 2, but the database applied up to 5"),
        "{reason}"
    );
    recorders.stop().await;
}
