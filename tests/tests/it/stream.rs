//! The broker enforces the audit rules: against a real nats-server, the
//! stream refuses deletes and purges, deduplicates by `Nats-Msg-Id`, keeps
//! what it acknowledged across a SIGKILL, and an unsafe stream is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{path::PathBuf, time::Duration};

use async_nats::jetstream::{self, stream::Config};
use prolo_bus::{Publisher, STREAM_NAME, StreamError, StreamSettings, ensure_stream, stream};
use prolo_schemas::Envelope;
use prolo_tests::{NatsServer, stream_only};

fn example_event() -> Envelope {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/injection.given.json");
    let mut envelope = Envelope::from_json(&std::fs::read(path).unwrap()).unwrap();
    envelope.event_id = uuid::Uuid::now_v7();
    envelope
}

#[tokio::test]
async fn ensure_stream_creates_the_audit_stream_and_accepts_it_again() {
    let nats = NatsServer::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let mut created = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let config = created.info().await.unwrap().config.clone();
    assert_eq!(config.name, STREAM_NAME);
    assert_eq!(config.subjects, vec!["clinic.>".to_owned()]);
    assert!(config.deny_delete && config.deny_purge);
    assert_eq!(config.storage, jetstream::stream::StorageType::File);
    assert!(config.max_age.is_zero());
    assert!(config.duplicate_window >= Duration::from_secs(120));
    assert_eq!(config.num_replicas, 1);
    // A second service starting up finds it and accepts it.
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_stream_refuses_deleting_a_message_and_purging() {
    let nats = NatsServer::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let stream = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
    let recorded = publisher.publish(&example_event()).await.unwrap();

    let delete = stream.delete_message(recorded.stream_seq).await;
    assert!(delete.is_err(), "delete was allowed: {delete:?}");
    let purge = stream.purge().await;
    assert!(purge.is_err(), "purge was allowed: {purge:?}");

    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "the event is still there"
    );
}

#[tokio::test]
async fn a_publish_repeated_with_the_same_msg_id_is_stored_once() {
    let (_nats, _, js) = stream_only().await;
    let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
    let event = example_event();

    let first = publisher.publish(&event).await.unwrap();
    let second = publisher.publish(&event).await.unwrap();
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "the retry must be recognised as a duplicate"
    );
    assert_eq!(first.stream_seq, second.stream_seq);
    assert_eq!(
        first.subject,
        "clinic.riverside.patient.P-1042.injection.given"
    );

    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let stored = stream.get_raw_message(first.stream_seq).await.unwrap();
    let msg_id = stored.headers.get("Nats-Msg-Id").unwrap();
    assert_eq!(msg_id.as_str(), event.event_id.to_string());
    assert_eq!(Envelope::from_json(&stored.payload).unwrap(), event);
}

#[tokio::test]
async fn an_existing_stream_that_allows_delete_or_purge_is_refused() {
    let nats = NatsServer::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let careless = Config {
        deny_delete: false,
        deny_purge: false,
        ..stream::config(&StreamSettings::default())
    };
    js.create_stream(careless).await.unwrap();
    let err = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap_err();
    let StreamError::Unsafe(problems) = &err else {
        panic!("expected Unsafe, got {err}")
    };
    assert!(problems.iter().any(|p| p.contains("deleting")), "{err}");
    assert!(problems.iter().any(|p| p.contains("purging")), "{err}");
}

#[tokio::test]
async fn acknowledged_events_survive_a_sigkill_of_the_broker() {
    let mut nats = NatsServer::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let publisher = Publisher::new(js, Duration::from_secs(5));
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored.push(publisher.publish(&example_event()).await.unwrap());
    }
    let pid = nats.pid();
    nats.restart().await.unwrap();
    assert_ne!(pid, nats.pid(), "a new process");

    let js = jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    for recorded in &stored {
        let message = stream.get_raw_message(recorded.stream_seq).await.unwrap();
        assert_eq!(message.subject.as_str(), recorded.subject);
    }
}

/// `n` example injections as batch messages, each with its own `Nats-Msg-Id`.
fn injections(n: usize) -> Vec<prolo_bus::batch::BatchMessage> {
    prolo_tests::synthetic_events(n * prolo_schemas::EventType::ALL.len(), 10)
        .filter(|e| e.event_type() == prolo_schemas::EventType::InjectionGiven)
        .take(n)
        .map(|e| prolo_bus::batch::BatchMessage {
            subject: e.subject().unwrap().to_string(),
            payload: e.to_json().into(),
            msg_id: Some(e.event_id.to_string()),
            expect_last_subject_seq: None,
            seal: None,
        })
        .collect()
}

#[tokio::test]
async fn an_atomic_batch_is_stored_whole_in_order_or_not_at_all() {
    let (_nats, client, js) = stream_only().await;

    let batch = injections(100);
    let ack = prolo_bus::batch::publish_atomic(&client, &batch)
        .await
        .unwrap();
    assert_eq!((ack.last_seq, ack.count), (100, 100));
    assert_eq!(prolo_tests::stream_messages(&js).await, 100);
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    for (i, sent) in batch.iter().enumerate() {
        let stored = stream.get_raw_message(i as u64 + 1).await.unwrap();
        assert_eq!(stored.payload, sent.payload, "seq {}", i + 1);
    }

    // A batch with one message outside the stream is refused whole.
    let mut bad = injections(10);
    bad[5].subject = "not.in.the.stream".into();
    let refused = prolo_bus::batch::publish_atomic(&client, &bad).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(prolo_tests::stream_messages(&js).await, 100);

    // Empty and oversized batches are refused before anything is sent.
    assert!(matches!(
        prolo_bus::batch::publish_atomic(&client, &[]).await,
        Err(prolo_bus::batch::BatchError::Size(0))
    ));
    assert!(matches!(
        prolo_bus::batch::publish_atomic(&client, &injections(1001)).await,
        Err(prolo_bus::batch::BatchError::Size(1001))
    ));
    assert_eq!(prolo_tests::stream_messages(&js).await, 100);
}

#[tokio::test]
async fn a_batch_repeating_a_stored_msg_id_is_not_stored_twice() {
    let (_nats, client, js) = stream_only().await;
    let batch = injections(20);
    prolo_bus::batch::publish_atomic(&client, &batch)
        .await
        .unwrap();
    // The server refuses the whole batch (nats-server 2.15: "atomic publish
    // batch contains duplicate message id", 10201): a retried batch never
    // stores a second copy.
    let again = prolo_bus::batch::publish_atomic(&client, &batch).await;
    match again {
        Err(prolo_bus::batch::BatchError::Refused(why)) => {
            assert!(why.contains("duplicate"), "{why}")
        }
        other => panic!("a repeated batch was not refused: {other:?}"),
    }
    assert_eq!(prolo_tests::stream_messages(&js).await, 20);
}
