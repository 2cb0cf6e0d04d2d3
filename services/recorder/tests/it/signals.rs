//! A service binary stops cleanly on SIGTERM: it stops taking requests,
//! finishes those in flight and exits 0; what it acknowledged is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use prolo_schemas::EventType;
use prolo_tests::{NatsServer, example_request};

#[tokio::test]
async fn the_consent_binary_exits_0_on_sigterm_after_answering() {
    let nats = NatsServer::start().await.unwrap();
    let mut service = Command::new(env!("CARGO_BIN_EXE_consent"))
        .env("NATS_URL", nats.url())
        // Its own server's monitoring, not whatever answers on port 8222.
        .env("NATS_MONITOR_URL", nats.monitor_url().unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = nats.client().await.unwrap();
    let (_, command) = prolo_recorder::command_for(EventType::ConsentGiven).unwrap();
    let body = serde_json::to_vec(&example_request("consent.given")).unwrap();
    let subject = command.subject("riverside");
    // Wait until it answers, then record one consent.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    let reply = loop {
        if let Ok(reply) = client.request(subject.clone(), body.clone().into()).await {
            break reply;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the consent service never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        reply.headers.is_none(),
        "{}",
        String::from_utf8_lossy(&reply.payload)
    );

    Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || service.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // It no longer takes requests.
    let after = client.request(subject, body.into()).await;
    assert!(after.is_err(), "a stopped service answered");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(prolo_bus::STREAM_NAME).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}
