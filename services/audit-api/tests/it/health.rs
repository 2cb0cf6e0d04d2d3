//! Health for operators and orchestrators: `/healthz` answers while the
//! process runs; `/readyz` is ready only with NATS connected, the fold's
//! consumer bound and the read models close to the stream, and says which
//! check failed (503) while the broker is down, ready again once it is
//! back. No token is needed, and neither answer carries data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use crate::common::api;
use prolo_tests::{NatsServer, Recorders};
use serde_json::Value;

async fn readiness(base: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Polls `/readyz` until its status is `want` (or fails after `within`).
async fn until(base: &str, want: u16, within: Duration) -> Value {
    let give_up = std::time::Instant::now() + within;
    loop {
        let (status, body) = readiness(base).await;
        if status == want {
            return body;
        }
        assert!(std::time::Instant::now() < give_up, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_follows_the_broker_and_healthz_the_process() {
    let mut nats = NatsServer::start().await.unwrap();
    let recorders = Recorders::start(&nats.url()).await.unwrap();
    let (base, _db) = api(&nats).await;
    let ready = until(&base, 200, Duration::from_secs(30)).await;
    assert_eq!(
        (
            ready["ready"].as_bool(),
            ready["nats_connected"].as_bool(),
            ready["consumer_bound"].as_bool()
        ),
        (Some(true), Some(true), Some(true)),
        "{ready}"
    );
    assert_eq!(ready["lag"], 0);

    nats.kill();
    let down = until(&base, 503, Duration::from_secs(20)).await;
    assert_eq!(down["ready"], false);
    assert_eq!(down["nats_connected"], false, "{down}");
    let alive = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(alive.status(), 200, "the process still answers");

    nats.restart().await.unwrap();
    let back = until(&base, 200, Duration::from_secs(60)).await;
    assert_eq!(back["ready"], true, "{back}");
    recorders.stop().await;
}
