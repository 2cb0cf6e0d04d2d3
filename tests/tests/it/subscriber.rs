//! The outside subscriber example (`examples/subscriber/subscribe.py`,
//! Python with nats-py) against a real stack: it follows a clinic's events
//! from the stream and validates each against the committed JSON Schemas,
//! and a malformed message published straight to the stream is reported
//! invalid (exit 1). Its Python environment comes from
//! `deploy/install-python-example.sh` (`tests/run.sh` runs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use prolo_schemas::EventType;
use prolo_tests::{Stack, record_ok, repo_root};
use serde_json::Value;

#[tokio::test]
async fn an_outside_python_subscriber_follows_a_clinic_and_validates_every_event() {
    let python = prolo_tests::example_python();
    let (nats, recorders, client) = Stack::start().await.parts();
    let mut recorded = Vec::new();
    for t in EventType::ALL {
        if prolo_recorder::command_for(*t).is_none() {
            continue; // access events are written by the audit API only
        }
        let request = prolo_tests::example_request_stored(&client, *t).await;
        recorded.push((record_ok(&client, *t, &request).await, t.as_str()));
    }
    // A hostile or broken publisher writes straight to the stream.
    let js = async_nats::jetstream::new(client.clone());
    js.publish(
        "clinic.riverside.patient.P-1042.injection.given",
        r#"{"event_type":"injection.given","payload":{"volume_ml":-1}}"#.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(repo_root().join("examples/subscriber/subscribe.py"))
        .args([
            "--url",
            &nats.url(),
            "--clinic",
            "riverside",
            "--timeout",
            "20",
        ])
        .arg("--count")
        .arg((recorded.len() + 1).to_string())
        .output()
        .await
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(lines.len(), recorded.len() + 1, "{stderr}");
    for ((event, event_type), line) in recorded.iter().zip(&lines) {
        assert_eq!(line["seq"], event.stream_seq, "{line}");
        assert_eq!(line["event_type"], *event_type);
        assert_eq!(line["valid"], true, "{line}");
    }
    let broken = lines.last().unwrap();
    assert_eq!(broken["valid"], false, "{broken}");
    assert!(
        broken["errors"].as_array().unwrap().len() >= 2,
        "the missing envelope fields are named: {broken}"
    );
    assert_eq!(out.status.code(), Some(1), "an invalid event makes exit 1");
    assert!(
        stderr.contains(&format!("{} events, 1 invalid", recorded.len() + 1)),
        "{stderr}"
    );
    recorders.stop().await;
}
