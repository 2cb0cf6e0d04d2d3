//! Only the recording services write the trail: with a seal keyring, a
//! message they did not seal (published with the stream's own admin
//! credentials, sealed with a stranger's key, or a sealed event's bytes
//! altered) is quarantined, never applied, raises `unproven_publisher`, and
//! is listed with its reason at the quarantine endpoint and in the console;
//! sealed events, the API's own access events among them, fold as before.
//! Real nats-server, real Ed25519 keys made by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{sync::Arc, time::Duration};

use prolo_bus::{SealKey, seal::SEAL_HEADER};
use prolo_recorder::ServeSettings;
use prolo_schemas::EventType;
use prolo_tests::{NatsServer, Recorders, example_envelope, record_example};

use crate::common::{
    ApiOptions, COMPLIANCE, SAFETY, answer_when, caught_up, get, get_json, get_text, start_api,
};

/// Publishes `payload` on `subject` straight onto the stream, with `seal`
/// if given, as whoever holds the stream's admin credentials can; the
/// stream sequence it got.
async fn publish_around(
    client: &async_nats::Client,
    subject: &str,
    payload: Vec<u8>,
    seal: Option<String>,
) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    if let Some(seal) = seal {
        headers.insert(SEAL_HEADER, seal.as_str());
    }
    js.publish_with_headers(subject.to_owned(), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn messages_no_recording_service_sealed_are_quarantined_raise_a_finding_and_are_listed() {
    let nats = NatsServer::start().await.unwrap();
    let (key, _) = SealKey::generate().unwrap();
    let key = Arc::new(key);
    let settings = ServeSettings {
        seal: Some(key.clone()),
        ..ServeSettings::default()
    };
    let recorders = Recorders::start_with(&nats.url(), settings).await.unwrap();
    let api = start_api(
        &nats,
        ApiOptions {
            seal: Some(key.clone()),
            ..ApiOptions::default()
        },
    )
    .await;
    let client = nats.client().await.unwrap();

    // A genuine injection, through its recording service.
    let genuine = record_example(&client, EventType::InjectionGiven).await;

    // 1. A well-formed injection published around the recorder: no seal.
    let mut forged = example_envelope("injection.given");
    forged.event_id = uuid::Uuid::now_v7();
    let subject = forged.subject().unwrap().to_string();
    let unsealed = publish_around(&client, &subject, forged.to_json(), None).await;
    // 2. Sealed, but with a key no fold trusts.
    let (stranger, _) = SealKey::generate().unwrap();
    forged.event_id = uuid::Uuid::now_v7();
    let payload = forged.to_json();
    let foreign = publish_around(
        &client,
        &subject,
        payload.clone(),
        Some(stranger.seal(&subject, &payload)),
    )
    .await;
    // 3. The genuine event's seal copied onto altered bytes.
    let js = async_nats::jetstream::new(client.clone());
    let stored = js
        .get_stream(prolo_bus::STREAM_NAME)
        .await
        .unwrap()
        .get_raw_message(genuine.stream_seq)
        .await
        .unwrap();
    let genuine_seal = stored.headers.get(SEAL_HEADER).unwrap().to_string();
    let mut altered = forged.clone();
    altered.event_id = uuid::Uuid::now_v7();
    let copied = publish_around(&client, &subject, altered.to_json(), Some(genuine_seal)).await;

    // The API's own access event (sealed by it) comes after all of them.
    caught_up(&api.base, copied).await;
    let patient = forged.patient_id.clone().unwrap();
    let history = get_json(
        &api.base,
        COMPLIANCE,
        &format!("/v1/clinics/riverside/patients/{patient}/history"),
    )
    .await;
    let ids: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![genuine.event_id.to_string()],
        "only the sealed event is in the history: {history}"
    );

    let quarantine = get_json(&api.base, COMPLIANCE, "/v1/clinics/riverside/quarantine").await;
    let items = quarantine["items"].as_array().unwrap();
    let seqs: Vec<u64> = items.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![unsealed, foreign, copied], "{quarantine}");
    let reasons: Vec<&str> = items
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("no Prolo-Seal header"), "{reasons:?}");
    assert!(
        reasons[1].contains(&format!("key {}", stranger.id()))
            && reasons[1].contains("not in the trusted keyring"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("does not match its subject and bytes"),
        "{reasons:?}"
    );
    assert_eq!(items[0]["subject"], subject);

    let findings = get_json(
        &api.base,
        COMPLIANCE,
        "/v1/clinics/riverside/findings?rule=unproven_publisher",
    )
    .await;
    let raised: Vec<u64> = findings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["severity"], "high");
            assert_eq!(f["patient_id"], patient.to_string());
            f["raised_seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(raised, vec![unsealed, foreign, copied], "{findings}");

    // The listing is a read of those patients' data: on their access log.
    let log = answer_when(
        &api.base,
        &format!("/v1/clinics/riverside/patients/{patient}/access-log"),
        Duration::from_secs(10),
        |log| {
            log["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["payload"]["query"] == "quarantine"))
        },
    )
    .await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["standing"] != "quarantined"),
        "the API's access events are sealed and applied: {log}"
    );

    // The status says seals are checked, and with which key.
    let status = get_json(&api.base, COMPLIANCE, "/v1/status").await;
    assert_eq!(status["seals"]["checked"], true, "{status}");
    assert_eq!(status["seals"]["keys"][0], key.id());
    assert_eq!(status["quarantined"], 3);

    // The console lists them too, for a reviewer of the clinic.
    let page = get_text(&api.base, SAFETY, "/console/riverside/quarantine").await;
    assert!(page.contains("not in the trusted keyring"), "{page}");
    assert!(page.contains(&unsealed.to_string()));

    // Another clinic's principal may not list riverside's quarantine.
    let other = get(&api.base, Some(SAFETY), "/v1/clinics/northside/quarantine").await;
    assert_eq!(other.status(), 403);
    recorders.stop().await;
}

#[tokio::test]
async fn without_a_keyring_the_status_says_seals_are_not_checked() {
    let nats = NatsServer::start().await.unwrap();
    let api = start_api(&nats, ApiOptions::default()).await;
    let status = get_json(&api.base, COMPLIANCE, "/v1/status").await;
    assert_eq!(status["seals"]["checked"], false, "{status}");
    assert_eq!(status["seals"]["keys"], serde_json::json!([]));
}
