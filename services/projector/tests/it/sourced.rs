//! What the hub's fold does with a message its stream sourced from a
//! clinic's edge (`Nats-Stream-Source`): the recorded time is the edge's,
//! the arrival is kept beside it, the edge's chain is recomputed, and an
//! event of another clinic than the edge's is quarantined.
//!
//! Folded straight into a real sled database (no broker); the servers'
//! side is in `tests/tests/it/edge.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, Duration, Utc};
use prolo_bus::edge::SourcedFrom;
use prolo_projector::{
    Store, fold::StreamMessage, integrity::chain, project::fold_batch,
    rules::findings::FindingSettings,
};
use prolo_schemas::Envelope;

fn event(clinic: &str, recorded_at: DateTime<Utc>) -> Envelope {
    let path = format!(
        "{}/../../schemas/examples/consent.given.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut e = Envelope::from_json(&std::fs::read(path).unwrap()).unwrap();
    e.event_id = uuid::Uuid::now_v7();
    e.clinic_id = clinic.parse().unwrap();
    e.recorded_at = recorded_at;
    e
}

fn from_edge(clinic: &str, edge_seq: u64) -> SourcedFrom {
    SourcedFrom::parse(&format!(
        "CLINIC_EVENTS:h4sh {edge_seq} clinic.{clinic}.> > x"
    ))
    .unwrap()
}

fn message(seq: u64, e: &Envelope, arrived: DateTime<Utc>, from: SourcedFrom) -> StreamMessage {
    StreamMessage {
        seq,
        subject: e.subject().unwrap().to_string(),
        payload: e.to_json().into(),
        stored_at: arrived,
        sourced: Some(from),
        seal: None,
    }
}

#[tokio::test]
async fn an_event_recorded_offline_keeps_the_edge_time_and_the_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 16 << 20).unwrap();
    let settings = FindingSettings::default();
    let arrived: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let offline = event("north", arrived - Duration::hours(30));
    let impossible = event("north", arrived + Duration::minutes(10));
    let other_clinic = event("south", arrived - Duration::hours(1));
    let messages = [
        message(1, &offline, arrived, from_edge("north", 1)),
        message(2, &impossible, arrived, from_edge("north", 2)),
        message(3, &other_clinic, arrived, from_edge("north", 3)),
    ];
    let report = fold_batch(&store, &messages, &settings).await.unwrap();
    assert_eq!((report.applied, report.quarantined), (2, 1));

    // Recorded 30 hours before it reached the hub: the edge's time counts,
    // and no recorded_at_mismatch is raised.
    let first = store.event(1).unwrap().unwrap();
    assert_eq!(first.stored_at_ms, offline.recorded_at.timestamp_millis());
    let sourced = store.sourced(1).unwrap().unwrap();
    assert_eq!(sourced.arrived_at_ms, arrived.timestamp_millis());
    assert_eq!(sourced.edge_seq, 1);

    // "Recorded" after it arrived cannot be: the hub's time counts, flagged.
    let second = store.event(2).unwrap().unwrap();
    assert_eq!(second.stored_at_ms, arrived.timestamp_millis());
    let counts = store.finding_counts("north").unwrap();
    let mismatches: Vec<_> = counts
        .iter()
        .filter(|(rule, _)| rule == "recorded_at_mismatch")
        .collect();
    assert_eq!(mismatches.len(), 1, "{counts:?}");
    assert_eq!(
        mismatches[0].1.raised, 1,
        "only the impossible one: {counts:?}"
    );

    // North's edge cannot bring south's events into the hub's read models.
    let third = store.event(3).unwrap().unwrap();
    let reason = third.quarantine.unwrap();
    assert!(
        reason.contains("clinic north's edge") && reason.contains("clinic south"),
        "{reason}"
    );

    // The edge's chain over edge sequences 1..3, as the edge computes it.
    let mut head = chain::GENESIS;
    for (i, m) in messages.iter().enumerate() {
        head = chain::link(&head, i as u64 + 1, &m.payload);
    }
    let chains = store.edge_chains().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(
        (chains[0].clinic.as_str(), chains[0].through, chains[0].gaps),
        ("north", 3, 0)
    );
    assert_eq!(chain::hex(&chains[0].head), chain::hex(&head));
}

#[tokio::test]
async fn a_gap_in_the_edge_sequences_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 16 << 20).unwrap();
    let arrived: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let a = event("north", arrived);
    let b = event("north", arrived);
    let messages = [
        message(1, &a, arrived, from_edge("north", 1)),
        message(2, &b, arrived, from_edge("north", 5)),
    ];
    fold_batch(&store, &messages, &FindingSettings::default())
        .await
        .unwrap();
    let chains = store.edge_chains().unwrap();
    assert_eq!((chains[0].through, chains[0].gaps), (5, 1));
}
