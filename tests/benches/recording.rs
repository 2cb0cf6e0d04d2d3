//! Recording throughput: the service path (request → validate → stamp →
//! publish → ack → reply) next to the raw JetStream publish rate measured in
//! the same run on the same broker. Run: `cargo bench -p prolo-tests --bench recording`.
//!
//! Settings (environment): `BENCH_EVENTS` (default 50000), `BENCH_CLIENTS`
//! (default "1,16,64"), `BENCH_INFLIGHT` raw publish window (default 512).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use futures::{StreamExt, stream::FuturesUnordered};
use prolo_bus::{STREAM_NAME, StreamSettings, ensure_stream};
use prolo_recorder::command_for;
use prolo_schemas::{Envelope, EventType};
use prolo_tests::{NatsServer, Recorders, example_request};

/// The allocator the service binaries use (glibc malloc contends between threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Publishes `n` events straight to JetStream with `inflight` acks outstanding.
async fn raw_publish(js: &jetstream::Context, n: usize, inflight: usize, with_msg_id: bool) -> f64 {
    let template = Envelope::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/injection.given.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let subject = template.subject().unwrap().to_string();
    let payload = bytes::Bytes::from(template.to_json());
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

/// `clients` callers each sending requests one after another until `n` are stored.
async fn service_path(client: &async_nats::Client, n: usize, clients: usize) -> (f64, Duration) {
    let (_, command) = command_for(EventType::InjectionGiven).unwrap();
    let body = bytes::Bytes::from(serde_json::to_vec(&example_request("injection.given")).unwrap());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = client.clone();
        let body = body.clone();
        let subject = command.subject();
        let share = n / clients + usize::from(c < n % clients);
        tasks.spawn(async move {
            let mut worst = Duration::ZERO;
            for _ in 0..share {
                let sent = Instant::now();
                let reply = client.request(subject.clone(), body.clone()).await.unwrap();
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

#[tokio::main]
async fn main() {
    let n: usize = env_or("BENCH_EVENTS", 50_000);
    let inflight: usize = env_or("BENCH_INFLIGHT", 512);
    let clients: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();

    let nats = NatsServer::start().await.unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let instances: usize = env_or("BENCH_INSTANCES", 1);
    let mut recorders = Vec::new();
    for _ in 0..instances {
        recorders.push(Recorders::start(&nats.url()).await.unwrap());
    }

    // Warm up both paths.
    raw_publish(&js, 2_000, inflight, true).await;
    service_path(&client, 2_000, 16).await;

    let raw_plain = raw_publish(&js, n, inflight, false).await;
    let raw_dedup = raw_publish(&js, n, inflight, true).await;
    println!("recording benchmark: {n} events per row, nats-server and services on this machine");
    println!();
    println!("| path | concurrency | events/s | vs raw (Nats-Msg-Id) | slowest request |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw JetStream publish, no msg id | {inflight} acks in flight | {raw_plain:.0} | {:.2} | |",
        raw_plain / raw_dedup
    );
    println!(
        "| raw JetStream publish, Nats-Msg-Id | {inflight} acks in flight | {raw_dedup:.0} | 1.00 | |"
    );
    for k in clients {
        let (rate, worst) = service_path(&client, n, k).await;
        println!(
            "| service path (request/reply) | {k} clients | {rate:.0} | {:.2} | {:.1} ms |",
            rate / raw_dedup,
            worst.as_secs_f64() * 1e3
        );
    }
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    println!();
    println!(
        "stream now holds {} events",
        stream.info().await.unwrap().state.messages
    );
    for r in recorders {
        r.stop().await;
    }
}
