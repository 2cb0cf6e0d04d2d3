//! The metrics, scraped and parsed after real traffic: the recording
//! services, the fold and the audit API of one process count into one
//! registry, served by the API at `/metrics` (and, for a service without
//! HTTP, by `prolo_bus::metrics::serve`); every named family is there and
//! moves after the requests that should move it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{collections::BTreeMap, time::Duration};

use crate::common::{COMPLIANCE, api, get};
use prolo_schemas::EventType;
use prolo_tests::{Stack, example_request, free_port, record_refused, scenario::record_examples};

/// The samples of a text exposition: `name{labels}` → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(base: &str) -> BTreeMap<String, f64> {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    parse(&response.text().await.unwrap())
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn the_named_families_are_served_and_move_with_traffic() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let (base, _db) = api(&nats).await;
    let before = scrape(&base).await;

    record_examples(&client, &[EventType::InjectionGiven; 3]).await;
    let mut bad = example_request("injection.given");
    bad["payload"]["volume_ml"] = serde_json::json!(-1);
    record_refused(&client, EventType::InjectionGiven, &bad).await;
    // Wait for the fold, then read (recorded) and ask without a token (refused).
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let samples = scrape(&base).await;
        if value(&samples, "prolo_fold_messages_total{outcome=\"applied\"}")
            >= value(&before, "prolo_fold_messages_total{outcome=\"applied\"}") + 3.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the fold did not count"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = "/v1/clinics/riverside/patients/P-1042/history";
    assert_eq!(get(&base, Some(COMPLIANCE), history).await.status(), 200);
    assert_eq!(get(&base, None, history).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let after = scrape(&base).await;
    let moved = |series: &str, by: f64| {
        let (b, a) = (value(&before, series), value(&after, series));
        assert!(a >= b + by, "{series}: {b} → {a}\n{after:#?}");
    };
    moved(
        "prolo_recording_requests_total{command=\"injection.given\",outcome=\"recorded\"}",
        3.0,
    );
    moved(
        "prolo_recording_requests_total{command=\"injection.given\",outcome=\"invalid_request\"}",
        1.0,
    );
    moved("prolo_publish_ack_seconds_count", 3.0);
    moved("prolo_fold_messages_total{outcome=\"applied\"}", 3.0);
    moved("prolo_fold_batch_commit_seconds_count", 1.0);
    moved("prolo_access_events_total{kind=\"recorded\"}", 1.0);
    moved("prolo_access_events_total{kind=\"refused\"}", 1.0);
    moved(
        "prolo_http_requests_total{route=\"/v1/clinics/{clinic}/patients/{patient}/history\",status=\"200\"}",
        1.0,
    );
    moved(
        "prolo_http_requests_total{route=\"/v1/clinics/{clinic}/patients/{patient}/history\",status=\"401\"}",
        1.0,
    );
    moved(
        "prolo_http_request_seconds_count{route=\"/v1/clinics/{clinic}/patients/{patient}/history\"}",
        2.0,
    );
    for family in [
        "prolo_fold_lag_messages",
        "prolo_quarantined_messages",
        "prolo_idempotency_conflicts_total",
        "prolo_last_verification_ok",
        "prolo_last_verification_timestamp_seconds",
    ] {
        assert!(after.contains_key(family), "{family} missing");
    }

    // A service without HTTP serves the same registry on its own port.
    let port = free_port();
    let (trigger, shutdown) = prolo_bus::Shutdown::new();
    tokio::spawn(prolo_bus::metrics::serve(
        format!("127.0.0.1:{port}").parse().unwrap(),
        shutdown,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let own = scrape(&format!("http://127.0.0.1:{port}")).await;
    assert!(value(&own, "prolo_publish_ack_seconds_count") >= 3.0);
    trigger.fire();
    recorders.stop().await;
}
