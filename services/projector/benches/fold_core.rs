//! The fold alone, without the broker: synthetic events already in memory
//! (the stream's bytes and subjects), folded in batches of the projector's
//! size (`BENCH_BATCH`, default [`prolo_projector::project::FOLD_BATCH`]) into a
//! fresh database, each batch committed and flushed as the projector does,
//! the next batch decoded on another thread meanwhile.
//! What the fold itself costs per event, and the loop to profile
//! (`perf record` this binary). Run: `cargo bench -p prolo-projector --bench fold_core`.
//!
//! Settings (environment): `BENCH_EVENTS` (default 300000), `BENCH_PATIENTS`
//! (30000), `BENCH_BATCH`, `BENCH_HISTOGRAM` (print the bytes per key space).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::Instant;

use prolo_projector::{
    Store, fold::StreamMessage, fold::decode_batch, project::fold_decoded,
    rules::findings::FindingSettings,
};

/// The allocator the service binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Folds every message into a fresh database: events per second, bytes on disk.
async fn fold_all(
    messages: &[StreamMessage],
    settings: &FindingSettings,
    batch_size: usize,
) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("fold.sled"), 256 << 20).unwrap();
    let start = Instant::now();
    // As the projector does: the next batch is decoded (on the other core)
    // while this one is folded and committed.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let mut batches = messages.chunks(batch_size);
            let seals = settings.seals.as_deref();
            let mut next = batches.next().map(|b| (b, decode_batch(b, seals)));
            while let Some((batch, decoded)) = next.take() {
                let decoding = batches
                    .next()
                    .map(|b| scope.spawn(move || (b, decode_batch(b, seals))));
                runtime
                    .block_on(fold_decoded(&store, batch, decoded, settings))
                    .unwrap();
                next = decoding.map(|d| d.join().unwrap());
            }
        })
    });
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(store.applied_seq().unwrap(), messages.len() as u64);
    if std::env::var("BENCH_HISTOGRAM").is_ok() {
        histogram(&store);
    }
    (
        messages.len() as f64 / seconds,
        store.size_on_disk().unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let n: usize = prolo_tests::env_or("BENCH_EVENTS", 300_000);
    let patients: usize = prolo_tests::env_or("BENCH_PATIENTS", 30_000);
    // Every message sealed as the recording services seal them.
    let (key, _) = prolo_bus::SealKey::generate().unwrap();
    let messages: Vec<StreamMessage> = prolo_tests::synthetic_events(n, patients)
        .enumerate()
        .map(|(i, e)| {
            let subject = e.subject().unwrap().to_string();
            let payload = e.to_json();
            StreamMessage {
                seq: i as u64 + 1,
                seal: Some(key.seal(&subject, &payload)),
                subject,
                payload: payload.into(),
                stored_at: e.recorded_at,
                sourced: None,
            }
        })
        .collect();
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    let unchecked = FindingSettings::default();
    let checked = FindingSettings {
        seals: Some(std::sync::Arc::new(prolo_bus::Keyring::of(&[&key]))),
        ..FindingSettings::default()
    };
    let batch_size: usize =
        prolo_tests::env_or("BENCH_BATCH", prolo_projector::project::FOLD_BATCH);
    // What checking seals costs: off and on, twice each, alternating.
    let mut rates = [Vec::new(), Vec::new()];
    let mut disk = 0;
    for round in 0..4 {
        let on = round % 2 == 1;
        let settings = if on { &checked } else { &unchecked };
        let (rate, size) = fold_all(&messages, settings, batch_size).await;
        rates[usize::from(on)].push(rate);
        disk = size;
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let (off, on) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "fold alone: {n} events over {patients} patients: {on:.0} events/s checking every seal, {off:.0} not checking (on/off {:.3}); {:.0} bytes per event in the stream's payloads, {:.0} on disk",
        on / off,
        bytes as f64 / n as f64,
        disk as f64 / n as f64,
    );
}

/// With `BENCH_HISTOGRAM` set: keys and live bytes per key space (what
/// the read models hold, before sled's own overhead).
fn histogram(store: &Store) {
    let mut by: std::collections::BTreeMap<Vec<u8>, (u64, u64)> = Default::default();
    for entry in store.model().iter() {
        let (k, v) = entry.unwrap();
        let prefix: Vec<u8> = k.iter().take_while(|b| **b != 0).copied().collect();
        let e = by.entry(prefix).or_default();
        e.0 += 1;
        e.1 += (k.len() + v.len()) as u64;
    }
    for (p, (n, b)) in by {
        eprintln!(
            "{:>8} {:>8} keys {:>12} bytes",
            String::from_utf8_lossy(&p),
            n,
            b
        );
    }
}
