//! Helpers shared by the projector's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_nats::jetstream;
use prolo_bus::Trigger;
use prolo_projector::{ProjectorSettings, Store};

/// A projector task in this process, on its own database.
pub struct Projector {
    /// Its database, shared with the task.
    pub store: Store,
    trigger: Trigger,
    task: tokio::task::JoinHandle<()>,
}

impl Projector {
    /// Starts it against `url` on the database at `db`.
    pub async fn start(url: &str, db: &std::path::Path) -> Projector {
        let store = Store::open(db, 64 * 1024 * 1024).unwrap();
        let (trigger, shutdown) = prolo_bus::Shutdown::new();
        let client = async_nats::connect(url).await.unwrap();
        let settings = ProjectorSettings {
            idle_wait: Duration::from_millis(50),
            ..ProjectorSettings::default()
        };
        let task = tokio::spawn({
            let store = store.clone();
            async move {
                prolo_projector::run(client, store, settings, shutdown)
                    .await
                    .unwrap()
            }
        });
        Projector {
            store,
            trigger,
            task,
        }
    }

    /// Waits until everything in the stream is applied.
    pub async fn caught_up(&self, js: &jetstream::Context) {
        let last = stream_last(js).await;
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.store.applied_seq().unwrap() < last {
            assert!(
                tokio::time::Instant::now() < give_up,
                "projector did not catch up to {last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it gracefully and hands back its database.
    pub async fn stop(self) -> Store {
        self.trigger.fire();
        self.task.await.unwrap();
        self.store
    }
}

/// The stream's last sequence.
pub async fn stream_last(js: &jetstream::Context) -> u64 {
    prolo_tests::stream_state(js).await.last_sequence
}

/// Folds `events` into `store`, `batch` at a time, as if JetStream had
/// stored them from sequence `after + 1` when they were recorded; the last
/// sequence.
pub async fn fold_stored(
    store: &Store,
    settings: &prolo_projector::rules::findings::FindingSettings,
    after: u64,
    events: &[prolo_schemas::Envelope],
    batch: usize,
) -> u64 {
    let messages: Vec<prolo_projector::fold::StreamMessage> = (after + 1..)
        .zip(events)
        .map(|(seq, e)| prolo_projector::fold::StreamMessage {
            seq,
            subject: e.subject().unwrap().to_string(),
            payload: e.to_json().into(),
            stored_at: e.recorded_at,
            sourced: None,
            seal: None,
        })
        .collect();
    for chunk in messages.chunks(batch) {
        prolo_projector::project::fold_batch(store, chunk, settings)
            .await
            .unwrap();
    }
    after + events.len() as u64
}

/// Rebuilds the read models from sequence 1 into a new database at `path`;
/// the report and the database.
pub async fn rebuilt(
    js: &jetstream::Context,
    path: &std::path::Path,
) -> (prolo_projector::integrity::rebuild::RebuildReport, Store) {
    let cache = 32 * 1024 * 1024;
    let report = prolo_projector::integrity::rebuild::rebuild(
        js,
        path,
        cache,
        &Default::default(),
        |_, _, _| {},
    )
    .await
    .unwrap();
    (report, Store::open(path, cache).unwrap())
}
