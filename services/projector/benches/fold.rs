//! Fold throughput over a large stream, next to the raw limits measured in
//! the same run: JetStream pull consumption (AckAll every 1,000th) and sled
//! batch inserts. The consume and fold rows are measured twice on the same
//! store: with the server's default fsync (every two minutes) and with
//! `sync_interval: always` (what the project runs; consumer acks are
//! written too); then a rebuild of the same stream into a fresh database,
//! whose digest must equal the fold's. Run:
//! `cargo bench -p prolo-projector --bench fold`.
//!
//! Settings (environment): `BENCH_EVENTS` (default 1000000), `BENCH_PATIENTS` (100000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, pull},
};
use futures::StreamExt;
use prolo_bus::{STREAM_NAME, Shutdown, StreamSettings, ensure_stream};
use prolo_projector::{ProjectorSettings, Store};
use prolo_tests::{FsyncPolicy, NatsServer, publish_all, synthetic_events};

/// The allocator the service binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Durable pull consumer, fetching 1,000 at a time and acking the last (AckAll).
async fn raw_consume(js: &jetstream::Context, n: u64, durable: &str) -> f64 {
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.into()),
            ack_policy: AckPolicy::All,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let start = Instant::now();
    let mut seen = 0u64;
    while seen < n {
        let mut batch = consumer
            .batch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        let mut last = None;
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            seen += 1;
            last = Some(message);
        }
        if let Some(last) = last {
            last.ack().await.unwrap();
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// sled `apply_batch` of 1,000 values of `size` bytes into one tree (no flush;
/// `flushed`: flush after each batch, as the projector's commit does).
fn raw_sled(dir: &std::path::Path, n: u64, size: usize, flushed: bool) -> f64 {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(256 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let tree = db.open_tree("t").unwrap();
    let value = vec![7u8; size];
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < n {
        let mut batch = sled::Batch::default();
        for _ in 0..1000 {
            seq += 1;
            batch.insert(&seq.to_be_bytes(), value.as_slice());
        }
        tree.apply_batch(batch).unwrap();
        if flushed {
            tree.flush().unwrap();
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Folds the whole stream into a fresh database with its own consumer;
/// returns events/s, the database's size on disk and its digest.
async fn fold(
    client: &async_nats::Client,
    dir: &std::path::Path,
    n: u64,
    consumer: &str,
) -> (f64, u64, [u8; 32]) {
    let store = Store::open(dir, 256 * 1024 * 1024).unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let start = Instant::now();
    let task = tokio::spawn({
        let store = store.clone();
        let client = client.clone();
        let settings = ProjectorSettings {
            consumer: consumer.into(),
            ..ProjectorSettings::default()
        };
        async move {
            prolo_projector::run(client, store, settings, shutdown)
                .await
                .unwrap()
        }
    });
    let mut last_report = Instant::now();
    while store.applied_seq().unwrap() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("  folded {} of {n}", store.applied_seq().unwrap());
            last_report = Instant::now();
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    trigger.fire();
    task.await.unwrap();
    (rate, store.size_on_disk().unwrap(), store.digest().unwrap())
}

/// `prolo-projector rebuild` of the whole stream into a fresh database:
/// events/s and the rebuilt database's digest.
async fn rebuild(js: &jetstream::Context, path: &std::path::Path) -> (f64, [u8; 32]) {
    let report = prolo_projector::integrity::rebuild::rebuild(
        js,
        path,
        256 * 1024 * 1024,
        &prolo_projector::rules::findings::FindingSettings::default(),
        |_, _, _| {},
    )
    .await
    .unwrap();
    let store = Store::open(path, 64 * 1024 * 1024).unwrap();
    (
        report.events as f64 / report.seconds,
        store.digest().unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let n: u64 = prolo_tests::env_or("BENCH_EVENTS", 1_000_000);
    let patients: usize = prolo_tests::env_or("BENCH_PATIENTS", 100_000);
    // The store is loaded with the lazy default (fast), then each setting is
    // measured on it.
    let mut nats = NatsServer::start_with_fsync(FsyncPolicy::ServerDefault)
        .await
        .unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();

    eprintln!("publishing {n} events over {patients} patients…");
    let start = Instant::now();
    let stored = publish_all(&js, synthetic_events(n as usize, patients), 512).await;
    assert_eq!(stored, n);
    let publish_rate = n as f64 / start.elapsed().as_secs_f64();
    let stream_bytes = prolo_tests::stream_state(&js).await.bytes;

    let scratch = tempfile::tempdir().unwrap();
    let event_size = (stream_bytes / n) as usize;
    eprintln!("raw sled…");
    let sled_rate = raw_sled(&scratch.path().join("raw"), n, event_size, false);
    let sled_flushed = raw_sled(
        &scratch.path().join("raw-flushed"),
        n.min(200_000),
        event_size,
        true,
    );

    let mut measured = Vec::new();
    let mut disk = 0;
    let mut digest = [0u8; 32];
    for (fsync, label) in [
        (FsyncPolicy::ServerDefault, "default"),
        (FsyncPolicy::Always, "always"),
    ] {
        if fsync != FsyncPolicy::ServerDefault {
            nats.restart_with_fsync(fsync).await.unwrap();
        }
        let client = nats.client().await.unwrap();
        let js = jetstream::new(client.clone());
        eprintln!("{label}: raw consume…");
        let consume = raw_consume(&js, n, &format!("bench-raw-{label}")).await;
        eprintln!("{label}: folding…");
        let (rate, size, fold_digest) = fold(
            &client,
            &scratch.path().join(format!("projector-{label}.sled")),
            n,
            &format!("bench-fold-{label}"),
        )
        .await;
        disk = size;
        digest = fold_digest;
        measured.push((consume, rate));
    }
    eprintln!("rebuild…");
    let (rebuild_rate, rebuilt_digest) = rebuild(
        &jetstream::new(nats.client().await.unwrap()),
        &scratch.path().join("rebuilt.sled"),
    )
    .await;
    let [(consume_lazy, fold_lazy), (consume_always, fold_always)] = measured[..] else {
        unreachable!("two settings measured")
    };
    let version = prolo_bus::local_server::checked_nats_server()
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();

    let slower_lazy = consume_lazy.min(sled_rate);
    let slower_always = consume_always.min(sled_rate);
    println!(
        "fold benchmark: {n} events, {patients} patients, mean event {event_size} bytes in the stream, nats-server {version}"
    );
    println!();
    println!(
        "| path | default fsync (2 min), events/s | vs slower raw limit | sync_interval: always, events/s | vs slower raw limit (always) |"
    );
    println!("|---|---|---|---|---|");
    println!("| publish (setup, 512 acks in flight, Nats-Msg-Id) | {publish_rate:.0} | | | |");
    println!(
        "| raw JetStream pull consume, AckAll per 1,000 | {consume_lazy:.0} | {:.2} | {consume_always:.0} | {:.2} |",
        consume_lazy / slower_lazy,
        consume_always / slower_always
    );
    println!(
        "| raw sled apply_batch of 1,000 ({event_size} B values) | {sled_rate:.0} | {:.2} | (same) | {:.2} |",
        sled_rate / slower_lazy,
        sled_rate / slower_always
    );
    println!(
        "| raw sled apply_batch of 1,000 + flush each batch | {sled_flushed:.0} | {:.2} | (same) | {:.2} |",
        sled_flushed / slower_lazy,
        sled_flushed / slower_always
    );
    println!(
        "| projector fold (decode, validate, chain, indexes, summaries, findings, commit+flush, ack) | {fold_lazy:.0} | {:.2} | {fold_always:.0} | {:.2} |",
        fold_lazy / slower_lazy,
        fold_always / slower_always
    );
    println!(
        "| rebuild (`prolo-projector rebuild`: ordered consumer, no acks, fresh database) | (same stream) | | {rebuild_rate:.0} | {:.2} |",
        rebuild_rate / slower_always
    );
    println!();
    println!(
        "rebuilt read models identical to the folded ones (digest): {}",
        if rebuilt_digest == digest {
            "yes"
        } else {
            "NO"
        }
    );
    println!(
        "bytes on disk per event: sled {:.0} (total {:.1} MiB), stream {:.0}",
        disk as f64 / n as f64,
        disk as f64 / 1048576.0,
        stream_bytes as f64 / n as f64
    );
}
