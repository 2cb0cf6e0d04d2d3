//! Backup and restore of the stream: 2,000 events backed up through
//! JetStream's snapshot, restored into a fresh nats-server; the restored
//! stream has the same sequences, timestamps, subjects, headers and
//! payloads, the same chain head as the manifest, and the audit API on it
//! answers a patient's history byte for byte as on the original. A backup
//! goes into a new directory only, and a restore never overwrites a stream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::{COMPLIANCE, api, caught_up, get_text};
use prolo_bus::STREAM_NAME;
use prolo_projector::integrity::backup::{MANIFEST_FILE, backup, restore};
use prolo_tests::{NatsServer, stream_of};

/// Waits until the API at `base` has folded `seq`, then reads a history.
async fn history_when_folded(base: &str, seq: u64, path: &str) -> String {
    caught_up(base, seq).await;
    get_text(base, COMPLIANCE, path).await
}

#[tokio::test]
async fn a_stream_backed_up_and_restored_elsewhere_is_the_same_stream() {
    let (original, client, js) = stream_of(2000, 40).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let manifest = backup(&client, &out, |_| {}).await.unwrap();
    assert_eq!(
        (manifest.first_seq, manifest.last_seq, manifest.messages),
        (1, 2000, 2000)
    );
    assert!(out.join(MANIFEST_FILE).exists());
    // Never into a directory that holds something.
    let again = backup(&client, &out, |_| {}).await.unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");

    let fresh = NatsServer::start().await.unwrap();
    let fresh_client = fresh.client().await.unwrap();
    let restored = restore(&fresh_client, &out, |_| {}).await.unwrap();
    assert!(restored.verified(), "{restored:?}");
    assert_eq!(restored.chain_head, manifest.chain_head);
    // A restore never overwrites a stream.
    let twice = restore(&fresh_client, &out, |_| {}).await.unwrap_err();
    assert!(twice.to_string().contains("never overwrites"), "{twice}");

    // Message by message: sequence, time, subject, headers, payload.
    let a = js.get_stream(STREAM_NAME).await.unwrap();
    let b = async_nats::jetstream::new(fresh_client.clone())
        .get_stream(STREAM_NAME)
        .await
        .unwrap();
    for seq in 1..=2000 {
        let (x, y) = (
            a.get_raw_message(seq).await.unwrap(),
            b.get_raw_message(seq).await.unwrap(),
        );
        assert_eq!(
            (x.sequence, x.time, &x.subject, &x.headers, &x.payload),
            (y.sequence, y.time, &y.subject, &y.headers, &y.payload),
            "sequence {seq}"
        );
    }

    // The audit API on each answers the same history, byte for byte.
    let (api_a, _db_a) = api(&original).await;
    let (api_b, _db_b) = api(&fresh).await;
    let path = "/v1/clinics/riverside/patients/P-000007/history?limit=1000";
    let before = history_when_folded(&api_a, 2000, path).await;
    let after = history_when_folded(&api_b, 2000, path).await;
    assert!(
        before.contains("P-000007") && before.len() > 1000,
        "{before}"
    );
    assert_eq!(before, after);
    // Corrupt the snapshot: the restore refuses it before touching a server.
    let snapshot = out.join(prolo_projector::integrity::backup::SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let third = NatsServer::start().await.unwrap();
    let refused = restore(&third.client().await.unwrap(), &out, |_| {})
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("SHA-256"), "{refused}");
}
