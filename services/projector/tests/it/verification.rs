//! The scheduled verification, beside a running fold on a real nats-server:
//! it checks only the new sequences between full passes, keeps each
//! result (as `status` shows), and when someone edits a stored event the
//! next full pass names the sequence, publishes the failure and raises the
//! finding `chain_verification_failed` about that event's patient.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use futures::StreamExt;
use prolo_projector::{
    ProjectorSettings, Store, VerifyReport,
    integrity::verification::FAILED_SUBJECT,
    model::EventRecord,
    project::VerifySchedule,
    rules::findings::{Finding, Rule},
};
use prolo_schemas::EventType;
use prolo_tests::{Stack, scenario::record_examples};

async fn report_where(store: &Store, what: impl Fn(&VerifyReport) -> bool) -> VerifyReport {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(report) = store.status_get::<VerifyReport>("last_verify").unwrap()
            && what(&report)
        {
            return report;
        }
        assert!(std::time::Instant::now() < give_up, "no such verification");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_schedule_verifies_new_sequences_and_a_full_pass_finds_an_edit() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let mut failures = client.subscribe(FAILED_SUBJECT).await.unwrap();
    record_examples(&client, &[EventType::InjectionGiven; 5]).await;
    let db = tempfile::tempdir().unwrap();
    let store = Store::open(&db.path().join("db"), 16 << 20).unwrap();
    let (trigger, shutdown) = prolo_bus::Shutdown::new();
    let settings = ProjectorSettings {
        idle_wait: Duration::from_millis(50),
        verify: Some(VerifySchedule {
            every: Duration::from_millis(300),
            full_every: 4,
        }),
        ..ProjectorSettings::default()
    };
    let fold = tokio::spawn(prolo_projector::run(
        client.clone(),
        store.clone(),
        settings,
        shutdown,
    ));

    let first = report_where(&store, |r| r.through == 5).await;
    assert_eq!(first.first_difference, None);
    assert!(first.at.is_some());
    // Two more events: the next run checks only those.
    record_examples(&client, &[EventType::InjectionGiven; 2]).await;
    let next = report_where(&store, |r| r.through == 7).await;
    assert_eq!(
        (next.checked, next.full, next.first_difference.clone()),
        (2, false, None),
        "{next:?}"
    );

    // Someone edits the event at sequence 2 in the database.
    let mut altered: EventRecord = store.event(2).unwrap().unwrap();
    altered.raw = String::from_utf8(altered.raw)
        .unwrap()
        .replace("\"volume_ml\":2.5", "\"volume_ml\":1.5")
        .into_bytes();
    assert!(store.tamper_event(&altered).unwrap());
    let failed = report_where(&store, |r| r.first_difference.is_some()).await;
    assert!(
        failed.full,
        "an incremental pass does not look back: {failed:?}"
    );
    assert_eq!(failed.first_difference.as_ref().unwrap().0, 2);
    let published = tokio::time::timeout(Duration::from_secs(10), failures.next())
        .await
        .unwrap()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&published.payload).unwrap();
    assert_eq!(body["first_difference"][0], 2);
    let findings: Vec<Finding> = store
        .findings_all()
        .unwrap()
        .into_iter()
        .filter(|f| f.rule == Rule::ChainVerificationFailed)
        .collect();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (
            findings[0].clinic_id.as_str(),
            findings[0].patient_id.as_deref()
        ),
        ("riverside", Some("P-1042"))
    );
    assert!(
        findings[0].detail.starts_with("sequence 2:"),
        "{}",
        findings[0].detail
    );
    trigger.fire();
    fold.await.unwrap().unwrap();
    recorders.stop().await;
}
