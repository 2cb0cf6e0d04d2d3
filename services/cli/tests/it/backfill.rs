//! `prolo-audit backfill` against real recording services: a JSON-lines
//! file loaded in batches, progress on stderr, refused lines on stdout, and
//! a re-run with keys storing nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::io::Write;

use std::ffi::OsStr;

use crate::common::prolo_audit;

use prolo_tests::{NatsServer, Recorders, example_request, stream_messages};
use serde_json::{Value, json};

/// Runs the binary without blocking the runtime the services run on.
async fn backfill(url: &str, file: &std::path::Path, batch_size: usize) -> std::process::Output {
    let batch_size = batch_size.to_string();
    let args = [
        "backfill",
        "--clinic",
        "riverside",
        "--batch-size",
        &batch_size,
    ];
    let args = args
        .iter()
        .map(OsStr::new)
        .chain([OsStr::new("--file"), file.as_os_str()]);
    prolo_audit(&args.collect::<Vec<_>>(), &[("NATS_URL", url)]).await
}

#[tokio::test]
async fn a_file_is_loaded_in_batches_and_refused_lines_are_listed_with_their_numbers() {
    let nats = NatsServer::start().await.unwrap();
    let recorders = Recorders::start(&nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut bad = example_request("injection.given");
    bad["payload"]["volume_ml"] = json!(-1);
    for line in 1..=25 {
        let (command, mut request) = match line {
            7 => ("injection.give", bad.clone()),
            n if n % 2 == 0 => ("consent.give", example_request("consent.given")),
            _ => ("injection.give", example_request("injection.given")),
        };
        request["idempotency_key"] = json!(format!("line-{line}"));
        writeln!(file, "{}", json!({"command": command, "request": request})).unwrap();
        if line == 12 {
            writeln!(file, "not json").unwrap();
        }
    }
    drop(file);

    let first = backfill(&nats.url(), &path, 10).await;

    assert!(
        !first.status.success(),
        "refusals make a failed run: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let refused: Vec<Value> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = refused
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![7, 13],
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        refused[0]["error"]["problems"][0]["path"],
        "request.payload.volume_ml"
    );
    let progress = String::from_utf8_lossy(&first.stderr);
    assert!(
        progress.contains("done: 24 recorded, 2 refused"),
        "{progress}"
    );
    assert_eq!(
        progress.matches(" recorded, ").count(),
        4,
        "3 batches and the summary: {progress}"
    );
    assert_eq!(stream_messages(&js).await, 24);

    // Run again: every keyed event is answered from its key, nothing new is stored.
    let again = backfill(&nats.url(), &path, 1000).await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("done: 24 recorded, 2 refused"));
    assert_eq!(stream_messages(&js).await, 24);
    recorders.stop().await;
}
