//! The batch command against a real nats-server: many events of any types
//! in one request, each validated and answered on its own, each stored
//! exactly once (also when the batch is retried or repeats itself).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use async_nats::jetstream;
use prolo_bus::STREAM_NAME;
use prolo_recorder::{
    batch::BatchReply, command_for, commands::batch_subject, reply::ErrorReply,
    request::derived_event_id,
};
use prolo_schemas::{EventType, ProblemCode};
use prolo_tests::{Stack, example_request, stream_messages};
use serde_json::{Value, json};

/// One event of a batch: the single command's verb and its request.
fn item(event_type: &str, request: Value) -> Value {
    let parsed: EventType = event_type.parse().unwrap();
    let (_, command) = command_for(parsed).unwrap();
    json!({"command": command.verb, "request": request})
}

/// Sends a batch to riverside; Ok(per-event results) or Err(refused whole).
async fn send(client: &async_nats::Client, body: Vec<u8>) -> Result<BatchReply, ErrorReply> {
    let reply = client
        .request(batch_subject("riverside"), body.into())
        .await
        .unwrap();
    let failed = reply.headers.as_ref().is_some_and(|h| {
        h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
            .is_some()
    });
    if failed {
        Err(serde_json::from_slice(&reply.payload).unwrap())
    } else {
        Ok(serde_json::from_slice(&reply.payload).unwrap())
    }
}

async fn batch(client: &async_nats::Client, events: Vec<Value>) -> BatchReply {
    send(
        client,
        serde_json::to_vec(&json!({ "events": events })).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("batch refused whole: {}", e.error.message))
}

#[tokio::test]
async fn a_batch_of_every_type_is_stored_in_order_each_once_on_its_subject() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let types: Vec<EventType> = EventType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_clinical())
        .collect();
    let events: Vec<Value> = types
        .iter()
        .map(|t| item(t.as_str(), example_request(t.as_str())))
        .collect();

    let reply = batch(&client, events).await;

    assert_eq!((reply.recorded, reply.refused), (types.len(), 0));
    assert_eq!(stream_messages(&js).await, types.len() as u64);
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    for (result, event_type) in reply.results.iter().zip(&types) {
        let recorded = result.recorded.as_ref().unwrap();
        assert!(!recorded.duplicate);
        let stored = stream.get_raw_message(recorded.stream_seq).await.unwrap();
        assert_eq!(stored.subject.as_str(), recorded.subject);
        let envelope = prolo_schemas::Envelope::from_json(&stored.payload).unwrap();
        assert_eq!(envelope.event_id, recorded.event_id);
        assert_eq!(
            envelope.event_type(),
            *event_type,
            "stored in the order sent"
        );
        assert_eq!(envelope.source, "batch");
        assert_eq!(
            stored.headers.get("Nats-Msg-Id").unwrap().as_str(),
            recorded.event_id.to_string(),
            "deduplicated by event id like a single command"
        );
    }
    recorders.stop().await;
}

#[tokio::test]
async fn bad_events_are_refused_with_their_problems_and_the_others_are_stored() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let mut bad_volume = example_request("injection.given");
    bad_volume["payload"]["volume_ml"] = json!(-3);
    let mut other_clinic = example_request("consent.given");
    other_clinic["clinic_id"] = json!("northside");
    let events = vec![
        item("consent.given", example_request("consent.given")),
        item("injection.given", bad_volume),
        json!({"command": "injection.delete", "request": example_request("injection.given")}),
        item("consent.given", other_clinic),
        json!({"command": "consent.give"}),
        json!(["not", "an", "object"]),
        item("examination.done", example_request("examination.done")),
    ];

    let reply = batch(&client, events).await;

    assert_eq!((reply.recorded, reply.refused), (2, 5));
    let error = |i: usize| reply.results[i].error.clone().unwrap();
    assert!(reply.results[0].recorded.is_some());
    assert!(reply.results[6].recorded.is_some());
    assert_eq!(error(1).code, "invalid_request");
    assert_eq!(error(1).event_type.as_deref(), Some("injection.given"));
    assert!(
        error(1)
            .problems
            .iter()
            .any(|p| p.path == "request.payload.volume_ml" && p.code == ProblemCode::OutOfRange),
        "{:?}",
        error(1).problems
    );
    assert_eq!(error(2).problems[0].path, "command");
    assert_eq!(error(2).problems[0].code, ProblemCode::UnknownValue);
    assert!(
        error(2).message.contains("injection.give"),
        "names the known commands"
    );
    assert_eq!(error(3).problems[0].path, "request.clinic_id");
    assert_eq!(error(3).problems[0].code, ProblemCode::Inconsistent);
    assert_eq!(error(4).problems[0].path, "request");
    assert_eq!(error(4).problems[0].code, ProblemCode::MissingField);
    assert_eq!(error(5).problems[0].code, ProblemCode::MalformedJson);
    for (i, result) in reply.results.iter().enumerate() {
        assert_eq!(result.index, i);
    }
    assert_eq!(stream_messages(&js).await, 2, "only the valid events");
    // …stored together as one atomic batch, not one by one.
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let mut batch_ids = Vec::new();
    for i in [0, 6] {
        let seq = reply.results[i].recorded.as_ref().unwrap().stream_seq;
        let stored = stream.get_raw_message(seq).await.unwrap();
        batch_ids.push(stored.headers.get("Nats-Batch-Id").map(|v| v.to_string()));
    }
    assert!(batch_ids[0].is_some(), "{batch_ids:?}");
    assert_eq!(batch_ids[0], batch_ids[1]);
    recorders.stop().await;
}

#[tokio::test]
async fn a_large_batch_checked_on_two_threads_answers_and_stores_each_event_in_its_place() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    // Enough events to be checked in two halves; a bad one in each half.
    let bad = [7, 480];
    let events: Vec<Value> = (0..600)
        .map(|i| {
            let mut request = example_request("consent.given");
            request["patient_id"] = json!(format!("P-{i:04}"));
            if bad.contains(&i) {
                request["patient_id"] = json!("");
            }
            item("consent.given", request)
        })
        .collect();

    let reply = batch(&client, events).await;

    assert_eq!((reply.recorded, reply.refused), (598, 2));
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let mut last_seq = 0;
    for (i, result) in reply.results.iter().enumerate() {
        assert_eq!(result.index, i);
        if bad.contains(&i) {
            let error = result.error.as_ref().unwrap();
            assert_eq!(error.problems[0].path, "request.patient_id", "{error:?}");
            continue;
        }
        // Stored in the order sent, each under the patient it names.
        let seq = result.recorded.as_ref().unwrap().stream_seq;
        assert!(
            seq > last_seq,
            "event {i} stored at {seq}, after {last_seq}"
        );
        last_seq = seq;
        if i % 50 == 1 {
            let stored = stream.get_raw_message(seq).await.unwrap();
            let event: Value = serde_json::from_slice(&stored.payload).unwrap();
            assert_eq!(event["patient_id"], json!(format!("P-{i:04}")));
        }
    }
    assert_eq!(stream_messages(&js).await, 598);
    recorders.stop().await;
}

#[tokio::test]
async fn a_retried_keyed_batch_is_stored_once_and_answered_with_the_same_places() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let events: Vec<Value> = (0..50)
        .map(|i| {
            let mut request = example_request("injection.given");
            request["idempotency_key"] = json!(format!("ehr-line-{i}"));
            item("injection.given", request)
        })
        .collect();

    let first = batch(&client, events.clone()).await;
    let again = batch(&client, events).await;

    assert_eq!(first.recorded, 50);
    assert_eq!(stream_messages(&js).await, 50);
    for (a, b) in first.results.iter().zip(&again.results) {
        let (a, b) = (a.recorded.as_ref().unwrap(), b.recorded.as_ref().unwrap());
        assert!(!a.duplicate && b.duplicate);
        assert_eq!((a.event_id, a.stream_seq), (b.event_id, b.stream_seq));
    }
    // The first run claimed its 50 new keys (bucket sequences 1–50, since
    // replaced) and settled them (51–100) each in one atomic write: two
    // fsyncs, not a hundred; the retry wrote nothing.
    let mut bucket = js.get_stream("KV_PROLO_IDEMPOTENCY").await.unwrap();
    assert_eq!(bucket.info().await.unwrap().state.last_sequence, 100);
    let batch_of = |seq| {
        let bucket = bucket.clone();
        async move {
            let message = bucket.get_raw_message(seq).await.unwrap();
            message
                .headers
                .get("Nats-Batch-Id")
                .map(|id| id.to_string())
        }
    };
    let settled = batch_of(51).await;
    assert!(settled.is_some());
    assert_eq!(batch_of(100).await, settled);
    recorders.stop().await;
}

/// The reply to a batch was lost after the stream stored one of its events
/// but before its key recorded that: the retried batch holds an id the
/// stream has, the server refuses the atomic batch whole, and each event is
/// then published on its own: the stored one is answered as a duplicate,
/// the others are stored, none twice.
#[tokio::test]
async fn a_batch_holding_an_event_already_stored_stores_the_rest_and_nothing_twice() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let keyed = |key: &str| {
        let mut request = example_request("consent.given");
        request["idempotency_key"] = json!(key);
        request
    };
    // What the service would have published for key "k-2", straight to the stream.
    let request = keyed("k-2");
    let event_id = derived_event_id(
        &"riverside".parse().unwrap(),
        EventType::ConsentGiven,
        "k-2",
        request["occurred_at"].as_str().unwrap().parse().unwrap(),
    );
    let mut envelope = request.clone();
    let object = envelope.as_object_mut().unwrap();
    object.remove("idempotency_key");
    object.insert("event_id".into(), json!(event_id));
    object.insert("event_type".into(), json!("consent.given"));
    object.insert(
        "schema_version".into(),
        json!(EventType::ConsentGiven.current_version()),
    );
    object.insert("recorded_at".into(), json!("2026-10-01T10:00:00Z"));
    object.insert("source".into(), json!("consent"));
    let envelope = prolo_schemas::Envelope::from_json(&serde_json::to_vec(&envelope).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let ack = js
        .send_publish(
            envelope.subject().unwrap().to_string(),
            jetstream::message::PublishMessage::build()
                .payload(envelope.to_json().into())
                .message_id(event_id.to_string()),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let reply = batch(
        &client,
        ["k-1", "k-2", "k-3"]
            .iter()
            .map(|k| item("consent.given", keyed(k)))
            .collect(),
    )
    .await;

    assert_eq!(reply.recorded, 3);
    let stored_before = reply.results[1].recorded.as_ref().unwrap();
    assert_eq!(stored_before.event_id, event_id);
    assert_eq!(stored_before.stream_seq, ack.sequence);
    assert!(stored_before.duplicate);
    assert!(!reply.results[0].recorded.as_ref().unwrap().duplicate);
    assert_eq!(
        stream_messages(&js).await,
        3,
        "k-2 once, k-1 and k-3 once each"
    );
    recorders.stop().await;
}

#[tokio::test]
async fn one_key_twice_in_a_batch_is_one_event_and_a_key_with_other_content_is_refused() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let mut request = example_request("consent.given");
    request["idempotency_key"] = json!("same");
    let mut other = request.clone();
    other["payload"]["sites"] = json!([{"site_key": "KNEE_MCL", "laterality": "right"}]);
    other["idempotency_key"] = json!("reused");
    let mut first_use = request.clone();
    first_use["idempotency_key"] = json!("reused");

    let reply = batch(
        &client,
        vec![
            item("consent.given", request.clone()),
            item("consent.given", request),
            item("consent.given", first_use),
            item("consent.given", other),
        ],
    )
    .await;

    let (a, b) = (
        reply.results[0].recorded.as_ref().unwrap(),
        reply.results[1].recorded.as_ref().unwrap(),
    );
    assert_eq!((a.event_id, a.stream_seq), (b.event_id, b.stream_seq));
    assert!(
        a.duplicate != b.duplicate,
        "one stored, one answered as its duplicate"
    );
    // "reused": whichever claimed first is stored; the other is a conflict.
    let outcomes: Vec<_> = reply.results[2..]
        .iter()
        .map(|r| r.error.as_ref().map(|e| e.code.as_str()))
        .collect();
    assert!(
        outcomes == [None, Some("idempotency_conflict")]
            || outcomes == [Some("idempotency_conflict"), None],
        "{outcomes:?}"
    );
    assert_eq!(stream_messages(&js).await, 2);
    recorders.stop().await;
}

#[tokio::test]
async fn a_batch_that_is_not_one_is_refused_whole_and_nothing_is_stored() {
    let (_nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let one = item("consent.given", example_request("consent.given"));
    let too_many: Vec<Value> = (0..1001).map(|_| one.clone()).collect();
    let cases: Vec<(Vec<u8>, &str, ProblemCode)> = vec![
        (b"not json".to_vec(), "$", ProblemCode::MalformedJson),
        (b"{}".to_vec(), "events", ProblemCode::MissingField),
        (
            br#"{"events": []}"#.to_vec(),
            "events",
            ProblemCode::OutOfRange,
        ),
        (
            serde_json::to_vec(&json!({"events": too_many})).unwrap(),
            "events",
            ProblemCode::OutOfRange,
        ),
        (
            serde_json::to_vec(&json!({"events": [one], "extra": 1})).unwrap(),
            "extra",
            ProblemCode::UnknownField,
        ),
    ];
    for (body, path, code) in cases {
        let refused = send(&client, body).await.unwrap_err();
        assert_eq!(refused.error.code, "invalid_request");
        assert_eq!(
            (
                refused.error.problems[0].path.as_str(),
                refused.error.problems[0].code
            ),
            (path, code)
        );
    }
    assert_eq!(stream_messages(&js).await, 0);
    recorders.stop().await;
}
