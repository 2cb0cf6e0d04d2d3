//! The fold alone, without the broker: synthetic events already in memory
//! (the stream's bytes and subjects), folded in batches of 1,000 into a
//! fresh database, each batch committed and flushed as the projector does.
//! What the fold itself costs per event, and the loop to profile
//! (`perf record` this binary). Run: `cargo bench -p prolo-projector --bench fold_core`.
//!
//! Settings (environment): `BENCH_EVENTS` (default 300000), `BENCH_PATIENTS` (30000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::Instant;

use prolo_projector::{
    Store,
    findings::FindingSettings,
    project::{StreamMessage, fold_batch},
};

/// The allocator the service binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let n: usize = prolo_tests::env_or("BENCH_EVENTS", 300_000);
    let patients: usize = prolo_tests::env_or("BENCH_PATIENTS", 30_000);
    let messages: Vec<StreamMessage> = prolo_tests::synthetic_events(n, patients)
        .enumerate()
        .map(|(i, e)| StreamMessage {
            seq: i as u64 + 1,
            subject: e.subject().unwrap().to_string(),
            payload: e.to_json().into(),
            stored_at: e.recorded_at,
        })
        .collect();
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("fold.sled"), 256 << 20).unwrap();
    let settings = FindingSettings::default();
    let start = Instant::now();
    let batch_size: usize = prolo_tests::env_or("BENCH_BATCH", 1000);
    for batch in messages.chunks(batch_size) {
        fold_batch(&store, batch, &settings).await.unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(store.applied_seq().unwrap(), n as u64);
    println!(
        "fold alone: {n} events over {patients} patients in {seconds:.1} s: {:.0} events/s; {:.0} bytes per event in the stream's payloads, {:.0} on disk",
        n as f64 / seconds,
        bytes as f64 / n as f64,
        store.size_on_disk().unwrap() as f64 / n as f64,
    );
}
