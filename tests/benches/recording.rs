//! Recording throughput: the service path (request → validate → stamp →
//! publish → ack → reply) and atomic batches next to the raw JetStream
//! publish rate measured in the same run on the same broker, once with the
//! server's default fsync (every two minutes) and once with fsync before
//! every acknowledgement (`sync_interval: always`, what the project runs);
//! then the single and the batch path again with the services verifying a
//! token on every request (identities proven), and verifying it and
//! sealing every event they store, against the same paths with neither, in
//! alternating rounds; and one token's verification, one seal and one seal
//! check alone.
//! Run: `cargo bench -p prolo-tests --bench recording`.
//!
//! Settings (environment): `BENCH_EVENTS` per row (default 20000),
//! `BENCH_CLIENTS` (default "1,16,64"), `BENCH_INFLIGHT` raw publish window
//! (default 512), `BENCH_BATCHES` batch sizes (default "100,1000"),
//! `BENCH_BATCHES_IN_FLIGHT` concurrent batches (default 4), `BENCH_ROUNDS`
//! rounds of the batch rows (default 5; see [`measure`]).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use futures::{StreamExt, stream::FuturesUnordered};
use prolo_bus::batch::{BatchMessage, publish_atomic};
use prolo_bus::{STREAM_NAME, StreamSettings, ensure_stream};
use prolo_recorder::{
    ServeSettings,
    batch::BatchReply,
    command_for,
    commands::batch_subject,
    identity::{Verifier, dev::Provider},
};
use prolo_schemas::{ActorRole, Envelope, EventType};
use prolo_tests::{FsyncPolicy, NatsServer, Recorders, example_request};

/// The allocator the service binaries use (glibc malloc contends between threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example injection's subject and bytes, what the raw rows publish.
fn injection_message() -> (String, bytes::Bytes) {
    let template = Envelope::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/injection.given.json"
        ))
        .unwrap(),
    )
    .unwrap();
    (
        template.subject().unwrap().to_string(),
        bytes::Bytes::from(template.to_json()),
    )
}

/// Publishes `n` events straight to JetStream with `inflight` acks outstanding.
async fn raw_publish(js: &jetstream::Context, n: usize, inflight: usize, with_msg_id: bool) -> f64 {
    let (subject, payload) = injection_message();
    let start = Instant::now();
    let mut pending: FuturesUnordered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesUnordered::new();
    for _ in 0..n {
        if pending.len() >= inflight {
            pending.next().await.unwrap().unwrap();
        }
        let mut message = PublishMessage::build().payload(payload.clone());
        if with_msg_id {
            message = message.message_id(uuid::Uuid::now_v7().to_string());
        }
        let ack = js.send_publish(subject.clone(), message).await.unwrap();
        pending.push(ack.into_future());
    }
    while let Some(ack) = pending.next().await {
        ack.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `clients` callers each sending requests one after another until `n` are
/// stored; with `keyed`, each request carries its own idempotency key.
async fn service_path(
    client: &async_nats::Client,
    n: usize,
    clients: usize,
    keyed: bool,
    token: Option<&str>,
) -> (f64, Duration) {
    let headers = prolo_recorder::identity::bearer_headers(token);
    let (_, command) = command_for(EventType::InjectionGiven).unwrap();
    let text = serde_json::to_string(&example_request("injection.given")).unwrap();
    let body = bytes::Bytes::from(text.clone());
    // The same request with `,"idempotency_key":"…"` before its closing brace.
    let open = std::sync::Arc::new(text[..text.len() - 1].to_owned());
    let run = uuid::Uuid::now_v7();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = client.clone();
        let body = body.clone();
        let open = open.clone();
        let headers = headers.clone();
        let subject = command.subject("riverside");
        let share = n / clients + usize::from(c < n % clients);
        tasks.spawn(async move {
            let mut worst = Duration::ZERO;
            for i in 0..share {
                let body = if keyed {
                    bytes::Bytes::from(format!(
                        "{open},\"idempotency_key\":\"bench-{run}-{c}-{i}\"}}"
                    ))
                } else {
                    body.clone()
                };
                let sent = Instant::now();
                let reply = client
                    .request_with_headers(subject.clone(), headers.clone(), body)
                    .await
                    .unwrap();
                assert!(
                    reply.headers.is_none(),
                    "refused: {}",
                    String::from_utf8_lossy(&reply.payload)
                );
                worst = worst.max(sent.elapsed());
            }
            worst
        });
    }
    let mut worst = Duration::ZERO;
    while let Some(w) = tasks.join_next().await {
        worst = worst.max(w.unwrap());
    }
    (n as f64 / start.elapsed().as_secs_f64(), worst)
}

/// Publishes `n` events in atomic batches of `size`, `in_flight` batches at a
/// time, each event with its own `Nats-Msg-Id`.
async fn batch_publish(
    client: &async_nats::Client,
    n: usize,
    size: usize,
    in_flight: usize,
) -> f64 {
    let (subject, payload) = injection_message();
    let batches = n.div_ceil(size);
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for _ in 0..batches {
        if pending.len() >= in_flight {
            pending.next().await;
        }
        let messages: Vec<BatchMessage> = (0..size)
            .map(|_| BatchMessage {
                subject: subject.clone(),
                payload: payload.clone(),
                msg_id: Some(uuid::Uuid::now_v7().to_string()),
                expect_last_subject_seq: None,
                seal: None,
            })
            .collect();
        let client = client.clone();
        pending.push(async move { publish_atomic(&client, &messages).await.unwrap() });
    }
    while pending.next().await.is_some() {}
    (batches * size) as f64 / start.elapsed().as_secs_f64()
}

/// Sends `n` injections through the batch command, `size` per request and
/// `in_flight` requests at a time; with `keyed`, each event has its own key.
async fn batch_command(
    client: &async_nats::Client,
    n: usize,
    size: usize,
    in_flight: usize,
    keyed: bool,
    token: Option<&str>,
) -> f64 {
    let headers = prolo_recorder::identity::bearer_headers(token);
    let (_, command) = command_for(EventType::InjectionGiven).unwrap();
    let request = example_request("injection.given");
    // Keys short enough that 1,000 keyed injections (~1 KB each) stay
    // within the 1 MiB request: the last 12 hex digits of a fresh UUIDv7, which are random.
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let batches = n.div_ceil(size);
    // The requests are made before the clock starts: what is measured is
    // the service and the broker, not this client's JSON.
    let bodies: Vec<bytes::Bytes> = (0..batches)
        .map(|b| {
            let events: Vec<serde_json::Value> = (0..size)
                .map(|i| {
                    let mut request = request.clone();
                    if keyed {
                        request["idempotency_key"] = format!("{run}-{b}-{i}").into();
                    }
                    serde_json::json!({"command": command.verb, "request": request})
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({ "events": events }))
                .unwrap()
                .into()
        })
        .collect();
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for body in bodies {
        if pending.len() >= in_flight {
            pending.next().await;
        }
        let client = client.clone();
        let headers = headers.clone();
        pending.push(async move {
            let reply = client
                .request_with_headers(batch_subject("riverside"), headers, body)
                .await
                .unwrap();
            let answer: BatchReply = serde_json::from_slice(&reply.payload)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&reply.payload)));
            assert_eq!(answer.recorded, size, "{:?}", answer.results.first());
        });
    }
    while pending.next().await.is_some() {}
    (batches * size) as f64 / start.elapsed().as_secs_f64()
}

/// One measured row.
struct Row {
    path: String,
    concurrency: String,
    rate: f64,
    slowest: Option<Duration>,
    /// Against the raw atomic batch measured in the same rounds: the median
    /// of each round's ratio, and the lowest and highest.
    vs_raw_batch: Option<(f64, f64, f64)>,
}

impl Row {
    /// A row measured in rounds: the median rate, and with `raw` (the raw
    /// atomic batch of the same rounds) the per-round ratios.
    fn rounds(path: String, concurrency: String, rates: &[f64], raw: Option<&[f64]>) -> Self {
        let vs_raw_batch = raw.map(|raw| {
            let ratios: Vec<f64> = rates.iter().zip(raw).map(|(r, raw)| r / raw).collect();
            let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = ratios.iter().copied().fold(0.0, f64::max);
            (median(&ratios), lowest, highest)
        });
        Row {
            path,
            concurrency,
            rate: median(rates),
            slowest: None,
            vs_raw_batch,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Every path on a fresh server with `fsync`; the raw Nats-Msg-Id publish
/// rate is the second row.
/// The batch sizes measured (`BENCH_BATCHES`, default 100 and 1,000).
fn batch_sizes_of() -> Vec<usize> {
    std::env::var("BENCH_BATCHES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect()
}

async fn measure(fsync: FsyncPolicy, n: usize, inflight: usize, clients: &[usize]) -> Vec<Row> {
    let batch_sizes = batch_sizes_of();
    let batches_in_flight: usize = prolo_tests::env_or("BENCH_BATCHES_IN_FLIGHT", 4);
    let rounds: usize = prolo_tests::env_or("BENCH_ROUNDS", 5).max(1);
    let nats = NatsServer::start_with_fsync(fsync).await.unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let recorders = Recorders::start(&nats.url()).await.unwrap();

    // Warm up both paths.
    raw_publish(&js, 1_000, inflight, true).await;
    service_path(&client, 1_000, 16, false, None).await;

    let mut rows = vec![
        Row {
            path: "raw JetStream publish, no msg id".into(),
            concurrency: format!("{inflight} acks in flight"),
            rate: raw_publish(&js, n, inflight, false).await,
            slowest: None,
            vs_raw_batch: None,
        },
        Row {
            path: "raw JetStream publish, Nats-Msg-Id".into(),
            concurrency: format!("{inflight} acks in flight"),
            rate: raw_publish(&js, n, inflight, true).await,
            slowest: None,
            vs_raw_batch: None,
        },
    ];
    // The raw atomic batch and the batch command alternate, `rounds` times,
    // so that the machine's drift (this 2-core machine's rates move by a
    // third between runs) falls on both alike; each row is the median.
    for &size in &batch_sizes {
        let mut raw = Vec::new();
        let mut command = Vec::new();
        let mut keyed = Vec::new();
        for _ in 0..rounds {
            raw.push(batch_publish(&client, n, size, batches_in_flight).await);
            command.push(batch_command(&client, n, size, batches_in_flight, false, None).await);
            keyed.push(batch_command(&client, n, size, batches_in_flight, true, None).await);
        }
        rows.push(Row::rounds(
            format!("atomic batch of {size}, Nats-Msg-Id"),
            format!("{batches_in_flight} batches in flight"),
            &raw,
            None,
        ));
        rows.push(Row::rounds(
            format!("batch command of {size} (request/reply)"),
            format!("{batches_in_flight} requests in flight"),
            &command,
            Some(&raw),
        ));
        rows.push(Row::rounds(
            format!("batch command of {size}, each event with its own idempotency key"),
            format!("{batches_in_flight} requests in flight"),
            &keyed,
            Some(&raw),
        ));
    }
    for &k in clients {
        let (rate, worst) = service_path(&client, n, k, false, None).await;
        rows.push(Row {
            path: "service path (request/reply)".into(),
            concurrency: format!("{k} clients"),
            rate,
            slowest: Some(worst),
            vs_raw_batch: None,
        });
    }
    if let Some(&k) = clients.iter().max() {
        // What the metrics cost: the same path with counting off, then on.
        prolo_bus::metrics::set_enabled(false);
        let (off, _) = service_path(&client, n, k, false, None).await;
        prolo_bus::metrics::set_enabled(true);
        let (on, worst) = service_path(&client, n, k, false, None).await;
        rows.push(Row {
            path: "service path, metrics off".into(),
            concurrency: format!("{k} clients"),
            rate: off,
            slowest: None,
            vs_raw_batch: None,
        });
        rows.push(Row {
            path: format!("service path, metrics on (on/off {:.3})", on / off),
            concurrency: format!("{k} clients"),
            rate: on,
            slowest: Some(worst),
            vs_raw_batch: None,
        });
        let (rate, worst) = service_path(&client, n, k, true, None).await;
        rows.push(Row {
            path: "service path, each request with its own idempotency key".into(),
            concurrency: format!("{k} clients"),
            rate,
            slowest: Some(worst),
            vs_raw_batch: None,
        });
    }
    recorders.stop().await;

    // The same paths with identities verified (the services trust a
    // provider, every request carries the example actor's token) against
    // them without, alternating in rounds so that the machine's drift falls
    // on both alike: the services restarted with and without a verifier.
    let provider = Provider::generate().unwrap();
    let token = example_actors_token(&provider);
    let (k, size) = (
        clients.iter().copied().max().unwrap_or(64),
        batch_sizes.iter().copied().max().unwrap_or(1000),
    );
    // Three configurations: before #32 (nothing verified, nothing sealed),
    // tokens verified, and tokens verified with every event sealed.
    const CONFIGURATIONS: [&str; 3] = [
        "identities not verified",
        "token verified",
        "token verified, every event sealed",
    ];
    let (seal, _) = prolo_bus::SealKey::generate().unwrap();
    let seal = std::sync::Arc::new(seal);
    let mut single: [Vec<f64>; 3] = Default::default();
    let mut batch: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        for (i, _) in CONFIGURATIONS.iter().enumerate() {
            let identity = (i >= 1).then(|| {
                let settings = provider.settings(&[]).unwrap();
                std::sync::Arc::new(Verifier::new(&settings).unwrap())
            });
            let settings = ServeSettings {
                identity,
                seal: (i == 2).then(|| seal.clone()),
                ..ServeSettings::default()
            };
            let recorders = Recorders::start_with(&nats.url(), settings).await.unwrap();
            let token = (i >= 1).then_some(token.as_str());
            service_path(&client, 1_000, 16, false, token).await;
            single[i].push(service_path(&client, n, k, false, token).await.0);
            batch[i].push(batch_command(&client, n, size, batches_in_flight, false, token).await);
            recorders.stop().await;
        }
    }
    // Each round's ratio to the first configuration's rate of the same round.
    for (path, concurrency, rates) in [
        ("service path".to_owned(), format!("{k} clients"), &single),
        (
            format!("batch command of {size}"),
            format!("{batches_in_flight} requests in flight"),
            &batch,
        ),
    ] {
        for (configuration, measured) in CONFIGURATIONS.iter().zip(rates) {
            rows.push(Row::rounds(
                format!("{path}, {configuration}"),
                concurrency.clone(),
                measured,
                Some(&rates[0]),
            ));
        }
    }
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    eprintln!(
        "{fsync:?}: the stream holds {} events",
        stream.info().await.unwrap().state.messages
    );
    rows
}

/// An hour's token of the examples' actor (dr-hale, practitioner).
fn example_actors_token(provider: &Provider) -> String {
    let hour = Duration::from_secs(3600);
    provider
        .mint("dr-hale", ActorRole::Practitioner, hour)
        .unwrap()
}

/// What verifying one token costs, alone: microseconds per token.
fn verify_cost(tokens: usize) -> f64 {
    let provider = Provider::generate().unwrap();
    let verifier = Verifier::new(&provider.settings(&[]).unwrap()).unwrap();
    let token = example_actors_token(&provider);
    let start = Instant::now();
    for _ in 0..tokens {
        verifier.verify(&token).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / tokens as f64
}

/// What sealing one example injection costs, and checking its seal:
/// microseconds each.
fn seal_cost(events: usize) -> (f64, f64) {
    let (key, _) = prolo_bus::SealKey::generate().unwrap();
    let keyring = prolo_bus::Keyring::of(&[&key]);
    let (subject, payload) = injection_message();
    let start = Instant::now();
    let mut seal = String::new();
    for _ in 0..events {
        seal = key.seal(&subject, &payload);
    }
    let made = start.elapsed().as_secs_f64() * 1e6 / events as f64;
    let start = Instant::now();
    for _ in 0..events {
        keyring.verify(1, &subject, &payload, Some(&seal)).unwrap();
    }
    (made, start.elapsed().as_secs_f64() * 1e6 / events as f64)
}

#[tokio::main]
async fn main() {
    let n: usize = prolo_tests::env_or("BENCH_EVENTS", 20_000);
    let inflight: usize = prolo_tests::env_or("BENCH_INFLIGHT", 512);
    let clients: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let rounds: usize = prolo_tests::env_or("BENCH_ROUNDS", 5).max(1);
    let version = prolo_bus::local_server::checked_nats_server()
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();

    eprintln!("measuring with the server's default fsync…");
    let lazy = measure(FsyncPolicy::ServerDefault, n, inflight, &clients).await;
    eprintln!("measuring with sync_interval: always…");
    let always = measure(FsyncPolicy::Always, n, inflight, &clients).await;

    println!(
        "recording benchmark: {n} events per row, nats-server {version} and the services on this machine"
    );
    println!();
    println!(
        "| path | concurrency | default fsync (2 min), events/s | vs raw | sync_interval: always, events/s | vs raw (always) | always / default | slowest request (always) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (raw_lazy, raw_always) = (lazy[1].rate, always[1].rate);
    for (l, a) in lazy.iter().zip(&always) {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} | {} |",
            l.path,
            l.concurrency,
            l.rate,
            l.rate / raw_lazy,
            a.rate,
            a.rate / raw_always,
            a.rate / l.rate,
            a.slowest
                .map(|w| format!("{:.1} ms", w.as_secs_f64() * 1e3))
                .unwrap_or_default()
        );
    }
    println!();
    for (name, rows) in [("default fsync", &lazy), ("sync_interval: always", &always)] {
        for row in rows
            .iter()
            .filter(|r| r.path.ends_with("token verified") || r.path.ends_with("sealed"))
        {
            if let Some((median, lo, hi)) = row.vs_raw_batch {
                println!(
                    "{}, {name}: {:.0} events/s, {median:.2} of the same path with nothing verified or sealed in the same rounds ({lo:.2}–{hi:.2}): {:.1} µs more per event",
                    row.path,
                    row.rate,
                    (1.0 - median) / row.rate * 1e6
                );
            }
        }
    }
    println!(
        "one token verified alone (Ed25519 JWT, this machine): {:.1} µs",
        verify_cost(10_000)
    );
    let (made, checked) = seal_cost(10_000);
    println!(
        "one event sealed alone (Ed25519 over subject and bytes): {made:.1} µs; one seal checked alone: {checked:.1} µs"
    );
    println!();
    println!(
        "batch command against the raw atomic batch of the same size (target ≥ 0.8): the median of {rounds} rounds' ratios, each round measuring both one after the other (lowest–highest):"
    );
    println!();
    println!(
        "| path | default fsync, vs raw atomic batch | sync_interval: always, vs raw atomic batch |"
    );
    println!("|---|---|---|");
    let ratio = |r: &Row| {
        r.vs_raw_batch
            .map(|(m, lo, hi)| format!("{m:.2} ({lo:.2}–{hi:.2})"))
            .unwrap_or_default()
    };
    for (l, a) in lazy.iter().zip(&always) {
        if l.vs_raw_batch.is_some() && !l.path.contains("verif") {
            println!("| {} | {} | {} |", l.path, ratio(l), ratio(a));
        }
    }
}
