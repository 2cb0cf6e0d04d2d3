//! The projector killed with SIGKILL at 5 random points during 20,000
//! events, and restarted each time, ends with a database equal to a clean
//! rebuild from the stream: no gap, no double count.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime},
};

use crate::common::rebuilt;
use async_nats::jetstream::{self, consumer::pull};
use prolo_bus::STREAM_NAME;
use prolo_projector::{Store, project::CONSUMER};
use prolo_tests::{publish_all, stream_only, synthetic_events};

const EVENTS: usize = 20_000;

fn spawn_projector(url: &str, db: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_prolo-projector"))
        .args(["--db"])
        .arg(db)
        .args(["--cache-mb", "32", "run", "--batch-size", "500"])
        .env("NATS_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// A pseudo-random delay: nanoseconds of the clock are random enough to
/// place a kill, and need no extra crate.
fn random_delay(min_ms: u64, max_ms: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(min_ms + nanos % (max_ms - min_ms))
}

async fn ack_floor(js: &jetstream::Context) -> u64 {
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    match stream.get_consumer::<pull::Config>(CONSUMER).await {
        Ok(mut consumer) => consumer
            .info()
            .await
            .map(|i| i.ack_floor.stream_sequence)
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn sigkill_at_five_random_points_gives_the_same_database_as_a_rebuild() {
    let (nats, _, js) = stream_only().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projector.sled");

    // Events arrive over several seconds while the projector folds them.
    let publisher = tokio::spawn({
        let js = js.clone();
        async move {
            let mut events = synthetic_events(EVENTS, 500);
            let mut stored = 0;
            loop {
                let chunk: Vec<_> = events.by_ref().take(250).collect();
                if chunk.is_empty() {
                    break stored;
                }
                stored += publish_all(&js, chunk.into_iter(), 128).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        }
    });

    let mut projector = spawn_projector(&nats.url(), &db);
    let mut kills = Vec::new();
    for _ in 0..5 {
        // Kill only once this run of the projector has acknowledged
        // something new (a slow start on a busy machine would otherwise
        // make a kill fall before any work), then at a random point.
        let before = kills.last().copied().unwrap_or(0);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        while ack_floor(&js).await <= before && tokio::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(random_delay(100, 700)).await;
        projector.kill().unwrap();
        projector.wait().unwrap();
        kills.push(ack_floor(&js).await);
        projector = spawn_projector(&nats.url(), &db);
    }
    assert_eq!(publisher.await.unwrap(), EVENTS as u64);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    while ack_floor(&js).await < EVENTS as u64 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "projector did not finish; killed at {kills:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &projector.id().to_string()])
        .status()
        .unwrap();
    assert!(
        projector.wait().unwrap().success(),
        "SIGTERM ends the projector cleanly"
    );
    eprintln!("killed with acknowledged sequences at {kills:?}");
    assert!(
        kills
            .iter()
            .filter(|k| **k > 0 && **k < EVENTS as u64)
            .count()
            >= 3,
        "kills fell mid-run: {kills:?}"
    );

    let crashed = Store::open(&db, 32 * 1024 * 1024).unwrap();
    assert_eq!(crashed.applied_seq().unwrap(), EVENTS as u64);
    let events = crashed.record_count().unwrap();
    assert_eq!(events, EVENTS as u64, "every sequence applied once");
    for seq in 1..=EVENTS as u64 {
        assert_eq!(crashed.event(seq).unwrap().map(|r| r.seq), Some(seq));
    }
    let crashed_digest = crashed.digest().unwrap();
    drop(crashed);

    let clean = dir.path().join("clean.sled");
    let (report, clean) = rebuilt(&js, &clean).await;
    assert_eq!(report.events, EVENTS as u64);
    assert_eq!(clean.applied_seq().unwrap(), EVENTS as u64);
    assert_eq!(
        clean.digest().unwrap(),
        crashed_digest,
        "the crashed-and-resumed database equals a clean rebuild"
    );
}
