//! An upgrade without a pause: a new audit API rebuilds its read models
//! from the stream beside the live one (its own database and durable
//! consumer) while the live one keeps answering; once the new one is ready
//! (`/readyz`) it answers the same history byte for byte, the traffic moves
//! to it and the old one stops. Not one request fails on the way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::common::{COMPLIANCE, api_with, caught_up, get};
use prolo_tests::stream_of;

const HISTORY: &str = "/v1/clinics/riverside/patients/P-000003/history?limit=1000";

async fn history(base: &str) -> (u16, String) {
    let response = get(base, Some(COMPLIANCE), HISTORY).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_new_version_rebuilds_beside_the_live_one_and_takes_over_without_a_failed_request() {
    let (nats, _, js) = stream_of(3000, 60).await;

    let (live, _live_db, stop_live) = api_with(&nats, "audit-api").await;
    caught_up(&live, 3000).await;
    let (_, before) = history(&live).await;

    // Traffic all along, to whichever API is current.
    let current = Arc::new(Mutex::new(live.clone()));
    let (answered, failed, running) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(true)),
    );
    let traffic = {
        let (current, answered, failed, running) = (
            current.clone(),
            answered.clone(),
            failed.clone(),
            running.clone(),
        );
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let base = current.lock().unwrap().clone();
                let (status, _) = history(&base).await;
                if status == 200 {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The new version: its own database, its own consumer, from sequence 1.
    let (next, _next_db, stop_next) = api_with(&nats, "audit-api-next").await;
    caught_up(&next, 3000).await;
    let (status, after) = history(&next).await;
    assert_eq!(status, 200);
    assert_eq!(
        before, after,
        "the rebuilt read models answer the same, byte for byte"
    );
    let during = answered.load(Ordering::Relaxed);

    // The swap: traffic to the new one, then the old one stops.
    *current.lock().unwrap() = next.clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_live.fire();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a request failed during the upgrade"
    );
    assert!(
        during > 0 && answered.load(Ordering::Relaxed) > during,
        "answered all along"
    );
    // The old consumer can go once its API is gone.
    js.get_stream(prolo_bus::STREAM_NAME)
        .await
        .unwrap()
        .delete_consumer("audit-api")
        .await
        .unwrap();
    assert_eq!(history(&next).await.0, 200);
    stop_next.fire();
}
