//! The recording services against a real nats-server: every event type is
//! stored exactly once on its subject, retries are deduplicated, malformed
//! requests are refused field by field, and a broker crash loses nothing
//! that was acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream;
use futures::StreamExt;
use prolo_bus::{Recorded, STREAM_NAME};
use prolo_recorder::{command_for, reply::ErrorReply};
use prolo_schemas::{Envelope, EventType};
use prolo_tests::{NatsServer, Recorders, Stack, example_request, stream_messages};
use serde_json::{Value, json};

/// Sends a request; Ok(stored) or Err(error reply).
async fn record(
    client: &async_nats::Client,
    event_type: EventType,
    body: Vec<u8>,
) -> Result<Recorded, ErrorReply> {
    let (_, command) = command_for(event_type).unwrap();
    // The clinic the body names (riverside when it names none usable, as
    // malformed ones may: the service then refuses the body's clinic first).
    let clinic = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["clinic_id"].as_str().map(str::to_owned))
        .filter(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        })
        .unwrap_or_else(|| "riverside".into());
    let reply = client
        .request(command.subject(&clinic), body.into())
        .await
        .unwrap();
    let is_error = reply.headers.as_ref().is_some_and(|h| {
        h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
            .is_some()
    });
    if is_error {
        let headers = reply.headers.as_ref().unwrap();
        let error: ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(
            headers
                .get(async_nats::service::NATS_SERVICE_ERROR_CODE)
                .unwrap()
                .as_str(),
            error.error.status.to_string()
        );
        assert!(
            headers
                .get(async_nats::service::NATS_SERVICE_ERROR)
                .is_some()
        );
        Err(error)
    } else {
        Ok(serde_json::from_slice(&reply.payload).unwrap())
    }
}

#[tokio::test]
async fn each_event_type_lands_once_on_its_subject_with_the_dedup_header() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());

    let clinical: Vec<EventType> = EventType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_clinical())
        .collect();
    for event_type in &clinical {
        let request = prolo_tests::example_request_stored(&client, *event_type).await;
        let stored = record(&client, *event_type, serde_json::to_vec(&request).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{event_type}: {}", e.error.message));
        assert!(!stored.duplicate);
        let message = js
            .get_stream(STREAM_NAME)
            .await
            .unwrap()
            .get_raw_message(stored.stream_seq)
            .await
            .unwrap();
        assert_eq!(message.subject.as_str(), stored.subject, "{event_type}");
        assert_eq!(
            message.headers.get("Nats-Msg-Id").unwrap().as_str(),
            stored.event_id.to_string()
        );
        let event = Envelope::from_json(&message.payload).unwrap();
        assert_eq!(event.event_type(), *event_type);
        assert_eq!(event.event_id, stored.event_id);
        assert_eq!(event.subject().unwrap().to_string(), stored.subject);
        let (service, _) = command_for(*event_type).unwrap();
        assert_eq!(event.source, service.name);
        // The payload is what was asked for, field for field.
        let stored_json: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(stored_json["payload"], request["payload"], "{event_type}");
        assert_eq!(stored_json["occurred_at"], request["occurred_at"]);
    }
    assert_eq!(stream_messages(&js).await, clinical.len() as u64);
    recorders.stop().await;
}

#[tokio::test]
async fn a_request_retried_with_the_same_idempotency_key_is_stored_once() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let mut request = example_request("injection.given");
    request["idempotency_key"] = "ehr-order-5531-line-2".into();
    let body = serde_json::to_vec(&request).unwrap();

    let first = record(&client, EventType::InjectionGiven, body.clone())
        .await
        .unwrap();
    for _ in 0..3 {
        let again = record(&client, EventType::InjectionGiven, body.clone())
            .await
            .unwrap();
        assert_eq!(again.event_id, first.event_id);
        assert_eq!(again.stream_seq, first.stream_seq);
        assert!(again.duplicate);
    }
    assert_eq!(stream_messages(&jetstream::new(client)).await, 1);
    recorders.stop().await;
}

#[tokio::test]
async fn a_reused_key_with_other_content_is_refused_and_the_first_record_stays() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let mut first = example_request("consent.given");
    first["patient_id"] = "P-9001".into();
    first["idempotency_key"] = "consent-form-77".into();
    let mut second = first.clone();
    second["patient_id"] = "P-9002".into();

    let stored = record(
        &client,
        EventType::ConsentGiven,
        serde_json::to_vec(&first).unwrap(),
    )
    .await
    .unwrap();
    assert!(!stored.duplicate);
    assert_eq!(
        stored.subject,
        "clinic.riverside.patient.P-9001.consent.given"
    );
    let refused = record(
        &client,
        EventType::ConsentGiven,
        serde_json::to_vec(&second).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.error.code, "idempotency_conflict");
    assert_eq!(refused.error.status, 409);
    assert!(
        refused.error.message.contains(&stored.event_id.to_string()),
        "{}",
        refused.error.message
    );
    assert_eq!(refused.error.problems[0].path, "idempotency_key");
    // The same key on another command is another request too.
    let mut withdrawal = example_request("consent.withdrawn");
    withdrawal["idempotency_key"] = "consent-form-77".into();
    let refused = record(
        &client,
        EventType::ConsentWithdrawn,
        serde_json::to_vec(&withdrawal).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.error.code, "idempotency_conflict");

    // Nothing was published; the first record is as it was.
    assert_eq!(stream_messages(&js).await, 1);
    let message = js
        .get_stream(STREAM_NAME)
        .await
        .unwrap()
        .get_raw_message(stored.stream_seq)
        .await
        .unwrap();
    let event = Envelope::from_json(&message.payload).unwrap();
    assert_eq!(event.event_id, stored.event_id);
    assert_eq!(event.patient_id.unwrap().to_string(), "P-9001");
    recorders.stop().await;
}

#[tokio::test]
async fn the_same_request_after_the_duplicate_window_is_still_the_same_event() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let mut request = example_request("injection.given");
    request["idempotency_key"] = "ehr-order-9911-line-1".into();
    let first = record(
        &client,
        EventType::InjectionGiven,
        serde_json::to_vec(&request).unwrap(),
    )
    .await
    .unwrap();

    // Shorten the broker's duplicate window and let it pass.
    let mut config = js
        .get_stream(STREAM_NAME)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    config.duplicate_window = Duration::from_millis(100);
    js.update_stream(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The retry, formatted differently, is still the same event.
    let again = record(
        &client,
        EventType::InjectionGiven,
        serde_json::to_vec_pretty(&request).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.stream_seq, first.stream_seq);
    assert_eq!(again.subject, first.subject);
    assert!(again.duplicate);
    assert_eq!(stream_messages(&js).await, 1);

    // The broker alone would have stored it again: its window had passed.
    let ack = js
        .send_publish(
            first.subject.clone(),
            async_nats::jetstream::message::PublishMessage::build()
                .payload("probe".into())
                .message_id(first.event_id.to_string()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!ack.duplicate, "the broker's window had not passed");
    recorders.stop().await;
}

#[tokio::test]
async fn a_request_naming_another_clinic_than_its_subject_is_refused() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let (_, command) = command_for(EventType::InjectionGiven).unwrap();
    let mut request = example_request("injection.given");
    request["clinic_id"] = "northside".into();
    let reply = client
        .request(
            command.subject("riverside"),
            serde_json::to_vec(&request).unwrap().into(),
        )
        .await
        .unwrap();
    let error: ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error.error.code, "invalid_request");
    assert_eq!(error.error.problems[0].path, "clinic_id");
    assert!(
        error
            .error
            .message
            .contains("prolo.cmd.riverside.injection.give"),
        "{}",
        error.error.message
    );
    assert_eq!(stream_messages(&jetstream::new(client)).await, 0);
    recorders.stop().await;
}

#[tokio::test]
async fn an_injection_without_consent_is_still_recorded() {
    // A fact is never refused for breaking policy; findings come later.
    let (_nats, recorders, client) = Stack::start().await.parts();
    let mut request = example_request("injection.given");
    request["patient_id"] = "P-never-consented".into();
    request["payload"]["solution"]["components"][0]["lot_expiry"] = "2020-01-01".into();
    let stored = record(
        &client,
        EventType::InjectionGiven,
        serde_json::to_vec(&request).unwrap(),
    )
    .await
    .unwrap();
    assert!(stored.subject.contains("P-never-consented"));
    recorders.stop().await;
}

/// (what is wrong, event type, body, expected code, a path that must be named)
fn malformed_requests() -> Vec<(&'static str, EventType, Vec<u8>, &'static str, &'static str)> {
    let inj = || example_request("injection.given");
    let with = |mut v: Value, f: &dyn Fn(&mut Value)| {
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    use EventType::*;
    vec![
        (
            "not JSON",
            InjectionGiven,
            b"{volume: 2".to_vec(),
            "invalid_request",
            "$",
        ),
        (
            "JSON but not an object",
            InjectionGiven,
            b"[1,2]".to_vec(),
            "invalid_request",
            "$",
        ),
        (
            "empty body",
            InjectionGiven,
            Vec::new(),
            "invalid_request",
            "$",
        ),
        (
            "missing payload",
            InjectionGiven,
            with(inj(), &|v| {
                v.as_object_mut().unwrap().remove("payload");
            }),
            "invalid_request",
            "payload",
        ),
        (
            "missing clinic",
            InjectionGiven,
            with(inj(), &|v| {
                v.as_object_mut().unwrap().remove("clinic_id");
            }),
            "invalid_request",
            "clinic_id",
        ),
        (
            "missing volume",
            InjectionGiven,
            with(inj(), &|v| {
                v["payload"].as_object_mut().unwrap().remove("volume_ml");
            }),
            "invalid_request",
            "payload.volume_ml",
        ),
        (
            "volume as text",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["volume_ml"] = "2 mL".into()),
            "invalid_request",
            "payload.volume_ml",
        ),
        (
            "volume 80 mL",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["volume_ml"] = 80.into()),
            "invalid_request",
            "payload.volume_ml",
        ),
        (
            "negative volume",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["volume_ml"] = (-1).into()),
            "invalid_request",
            "payload.volume_ml",
        ),
        (
            "gauge 40",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["needle"]["gauge"] = 40.into()),
            "invalid_request",
            "payload.needle.gauge",
        ),
        (
            "gauge beyond u8",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["needle"]["gauge"] = 300.into()),
            "invalid_request",
            "payload.needle.gauge",
        ),
        (
            "session 31",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["session_number"] = 31.into()),
            "invalid_request",
            "payload.session_number",
        ),
        (
            "unknown site",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["site"]["site_key"] = "NOSE".into()),
            "invalid_request",
            "payload.site.site_key",
        ),
        (
            "sided site without side",
            InjectionGiven,
            with(inj(), &|v| {
                v["payload"]["site"]
                    .as_object_mut()
                    .unwrap()
                    .remove("laterality");
            }),
            "invalid_request",
            "payload.site.laterality",
        ),
        (
            "unsafe patient id",
            InjectionGiven,
            with(inj(), &|v| v["patient_id"] = "P.1".into()),
            "invalid_request",
            "patient_id",
        ),
        (
            "wildcard clinic id",
            InjectionGiven,
            with(inj(), &|v| v["clinic_id"] = ">".into()),
            "invalid_request",
            "clinic_id",
        ),
        (
            "whitespace in lot",
            InjectionGiven,
            with(inj(), &|v| {
                v["payload"]["solution"]["components"][0]["lot"] = "A 1".into()
            }),
            "invalid_request",
            "payload.solution.components[0].lot",
        ),
        (
            "empty practitioner",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["practitioner_id"] = "".into()),
            "invalid_request",
            "payload.practitioner_id",
        ),
        (
            "unknown request field",
            InjectionGiven,
            with(inj(), &|v| v["event_type"] = "injection.given".into()),
            "invalid_request",
            "event_type",
        ),
        (
            "unknown payload field",
            InjectionGiven,
            with(inj(), &|v| v["payload"]["dose_mg"] = 5.into()),
            "invalid_request",
            "payload.dose_mg",
        ),
        (
            "bad timestamp",
            InjectionGiven,
            with(inj(), &|v| v["occurred_at"] = "yesterday".into()),
            "invalid_request",
            "occurred_at",
        ),
        (
            "occurred in the future",
            InjectionGiven,
            with(inj(), &|v| v["occurred_at"] = "2099-01-01T00:00:00Z".into()),
            "invalid_request",
            "occurred_at",
        ),
        (
            "unknown actor role",
            InjectionGiven,
            with(inj(), &|v| v["actor"]["role"] = "visitor".into()),
            "invalid_request",
            "actor.role",
        ),
        (
            "patient event without patient",
            InjectionGiven,
            with(inj(), &|v| {
                v.as_object_mut().unwrap().remove("patient_id");
            }),
            "invalid_request",
            "patient_id",
        ),
        (
            "empty idempotency key",
            InjectionGiven,
            with(inj(), &|v| v["idempotency_key"] = " ".into()),
            "invalid_request",
            "idempotency_key",
        ),
        (
            "oversized body",
            InjectionGiven,
            with(inj(), &|v| v["correlation_id"] = "x".repeat(70_000).into()),
            "request_too_large",
            "$",
        ),
        (
            "grade 5 not fatal",
            AdverseEventReported,
            with(example_request("adverse_event.reported"), &|v| {
                v["payload"]["grade"] = 5.into()
            }),
            "invalid_request",
            "payload.outcome",
        ),
        (
            "onset before the injection",
            AdverseEventReported,
            with(example_request("adverse_event.reported"), &|v| {
                v["payload"]["onset_at"] = "2026-09-01T00:00:00Z".into()
            }),
            "invalid_request",
            "payload.onset_at",
        ),
        (
            "practitioner event with a patient",
            PractitionerCredentialed,
            with(example_request("practitioner.credentialed"), &|v| {
                v["patient_id"] = "P-1".into()
            }),
            "invalid_request",
            "patient_id",
        ),
        (
            "consent without risks",
            ConsentGiven,
            with(example_request("consent.given"), &|v| {
                v["payload"]["risks_disclosed"] = json!([])
            }),
            "invalid_request",
            "payload.risks_disclosed",
        ),
    ]
}

#[tokio::test]
async fn malformed_requests_get_structured_errors_and_nothing_is_published() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let cases = malformed_requests();
    assert!(cases.len() >= 20);
    for (what, event_type, body, code, path) in cases {
        let err = record(&client, event_type, body)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: was accepted"));
        assert_eq!(err.error.code, code, "{what}: {}", err.error.message);
        assert!(
            err.error.problems.iter().any(|p| p.path == path),
            "{what}: expected a problem at {path}, got {:?}",
            err.error.problems
        );
        assert!(!err.error.message.is_empty());
    }
    let js = jetstream::new(client.clone());
    assert_eq!(
        stream_messages(&js).await,
        0,
        "nothing malformed was published"
    );
    // The service is still up and records a good request.
    let body = serde_json::to_vec(&example_request("injection.given")).unwrap();
    record(&client, EventType::InjectionGiven, body)
        .await
        .unwrap();
    assert_eq!(stream_messages(&js).await, 1);
    recorders.stop().await;
}

#[tokio::test]
async fn a_broker_sigkill_during_1000_requests_loses_and_duplicates_nothing_acknowledged() {
    const REQUESTS: usize = 1000;
    const CLIENTS: usize = 16;
    let mut nats = NatsServer::start().await.unwrap();
    let recorders = Recorders::start(&nats.url()).await.unwrap();
    let client = prolo_bus::connect(&nats.url(), "test-clients")
        .await
        .unwrap();
    let succeeded = Arc::new(std::sync::Mutex::new(Vec::<Recorded>::new()));
    let (_, command) = command_for(EventType::InjectionGiven).unwrap();

    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let succeeded = succeeded.clone();
        let subject = command.subject("riverside");
        clients.spawn(async move {
            for i in (c..REQUESTS).step_by(CLIENTS) {
                let mut request = example_request("injection.given");
                request["idempotency_key"] = format!("run-{i}").into();
                let body = bytes::Bytes::from(serde_json::to_vec(&request).unwrap());
                // A careful client: retry with the same key until stored.
                let give_up = tokio::time::Instant::now() + Duration::from_secs(90);
                loop {
                    assert!(
                        tokio::time::Instant::now() < give_up,
                        "request {i} never stored"
                    );
                    let reply = tokio::time::timeout(
                        Duration::from_secs(3),
                        client.request(subject.clone(), body.clone()),
                    )
                    .await;
                    if let Ok(Ok(reply)) = reply {
                        let failed = reply.headers.as_ref().is_some_and(|h| {
                            h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
                                .is_some()
                        });
                        if !failed {
                            succeeded
                                .lock()
                                .unwrap()
                                .push(serde_json::from_slice(&reply.payload).unwrap());
                            break;
                        }
                        let err: ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
                        assert_eq!(err.error.code, "not_stored_retry", "{}", err.error.message);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    // Kill the broker once a third of the requests are stored.
    while succeeded.lock().unwrap().len() < REQUESTS / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().await.unwrap();
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }

    let succeeded = succeeded.lock().unwrap().clone();
    assert_eq!(succeeded.len(), REQUESTS);
    // Read the whole stream back and count each event id.
    let js = jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let total = stream_messages(&js).await;
    let mut messages = consumer.messages().await.unwrap().take(total as usize);
    let mut seen: HashMap<uuid::Uuid, usize> = HashMap::new();
    while let Some(message) = messages.next().await {
        let event = Envelope::from_json(&message.unwrap().payload).unwrap();
        *seen.entry(event.event_id).or_default() += 1;
    }
    for recorded in &succeeded {
        assert_eq!(
            seen.get(&recorded.event_id),
            Some(&1),
            "event {} not stored exactly once",
            recorded.event_id
        );
    }
    assert_eq!(total, REQUESTS as u64, "no extra events in the stream");
    recorders.stop().await;
}
