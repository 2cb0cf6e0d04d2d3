//! Running the fold against the stream: the durable consumer, batches
//! committed before they are acknowledged, checkpoints; reading the stream
//! for rebuild, verify and backup ([`read`]).

mod read;

pub use read::read_stream;

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use futures::StreamExt;
use prolo_bus::{STREAM_NAME, Shutdown};
use prolo_schemas::Envelope;

use crate::{
    error::ProjectorError,
    fold::{
        Folder, Notification, Outcome, Rejected, StreamMessage, decode_batch, decode_off_runtime,
        stream_time,
    },
    integrity::chain::{self, CHECKPOINT_SUBJECT, Checkpoint},
    rules::findings::FindingSettings,
    store::{Store, StoreError},
};

/// When the projector verifies on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifySchedule {
    /// Between two runs.
    pub every: Duration,
    /// Every this many runs is a full pass from sequence 1.
    pub full_every: u32,
}

impl Default for VerifySchedule {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(24 * 3600),
            full_every: 7,
        }
    }
}

/// The durable consumer's default name. Each read side that keeps its own
/// database (the projector binary, the audit API) has its own consumer.
pub const CONSUMER: &str = "projector";

fn js_err(e: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::JetStream(e.to_string())
}

/// Messages folded per committed batch, unless configured otherwise. Every
/// batch rewrites the read models many events share (postings by type and
/// day, signal counts, lot and practitioner lists): at 4,000 rather than
/// 1,000 the fold writes a third less to disk at the same speed
/// (`fold_core`, 200k events: 1,137 -> 771 bytes per event), and a batch is
/// still committed within a fraction of a second.
pub const FOLD_BATCH: usize = 4000;

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// Messages folded per committed batch.
    pub batch_size: usize,
    /// How long a fetch waits for messages when the stream is idle.
    pub idle_wait: Duration,
    /// Publish a chain checkpoint every this many sequences (0: never).
    pub checkpoint_every: u64,
    /// Durable consumer name.
    pub consumer: String,
    /// Thresholds of the findings and signals.
    pub findings: FindingSettings,
    /// Whether this fold publishes findings, signals and chain checkpoints.
    /// Exactly one fold of a deployment does (the projector); every other
    /// fold (the audit API's) keeps them in its read models only, so that
    /// subscribers get each once.
    pub publish_derived: bool,
    /// When to verify the chain beside the fold (`None`: only on demand).
    pub verify: Option<VerifySchedule>,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            batch_size: FOLD_BATCH,
            idle_wait: Duration::from_millis(200),
            checkpoint_every: 10_000,
            consumer: CONSUMER.to_owned(),
            findings: FindingSettings::default(),
            publish_derived: true,
            verify: Some(VerifySchedule::default()),
        }
    }
}

/// What one committed batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    /// Messages folded.
    pub applied: u64,
    /// Messages quarantined.
    pub quarantined: u64,
    /// Messages skipped because they were applied before (redelivery).
    pub skipped: u64,
    /// Applied sequence after the batch.
    pub applied_seq: u64,
    /// Findings raised or resolved and signals raised, to publish.
    pub notifications: Vec<Notification>,
}

/// Folds `messages` (in stream order) and commits them with the new applied
/// sequence in one atomic, flushed batch. Sequences at or below the applied
/// sequence are skipped: that is what makes redelivery harmless.
pub async fn fold_batch(
    store: &Store,
    messages: &[StreamMessage],
    settings: &FindingSettings,
) -> Result<BatchReport, StoreError> {
    let decoded = decode_batch(messages, settings.seals.as_deref());
    fold_decoded(store, messages, decoded, settings).await
}

/// [`fold_batch`] of messages already decoded ([`decode_batch`]).
pub async fn fold_decoded(
    store: &Store,
    messages: &[StreamMessage],
    decoded: Vec<Result<Envelope, Rejected>>,
    settings: &FindingSettings,
) -> Result<BatchReport, StoreError> {
    let mut applied_seq = store.applied_seq()?;
    let mut report = BatchReport::default();
    let mut folder = Folder::new(store, settings)?;
    for (message, decoded) in messages.iter().zip(decoded) {
        // Applied before (redelivery), or repeated within the batch.
        if message.seq <= applied_seq {
            report.skipped += 1;
            continue;
        }
        match folder.apply(
            message.seq,
            &message.subject,
            &message.payload,
            message.stored_at,
            message.sourced.as_ref(),
            decoded,
        )? {
            Outcome::Applied => report.applied += 1,
            Outcome::Quarantined(_) => report.quarantined += 1,
        }
        applied_seq = message.seq;
    }
    if report.applied + report.quarantined > 0 {
        let (pending, notifications) = folder.into_pending()?;
        let started = std::time::Instant::now();
        store.commit(pending, applied_seq).await?;
        if let Some(metrics) = prolo_bus::metrics::active() {
            metrics
                .batch_commit_seconds
                .observe(started.elapsed().as_secs_f64());
            let count = |outcome: &str, n: u64| {
                metrics
                    .folded
                    .get_or_create(&prolo_bus::metrics::FoldLabels {
                        outcome: outcome.to_owned(),
                    })
                    .inc_by(n);
            };
            count("applied", report.applied);
            count("quarantined", report.quarantined);
            metrics
                .quarantined
                .set(i64::try_from(store.quarantined()?).unwrap_or(i64::MAX));
        }
        report.notifications = notifications;
    }
    report.applied_seq = applied_seq;
    Ok(report)
}

/// The durable consumer, positioned just after what the store has applied.
///
/// If the consumer acknowledged beyond the store (the database was replaced
/// or lost its last batch), it is recreated from the store's position so
/// that nothing is skipped.
async fn consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
    applied: u64,
) -> Result<PullConsumer, ProjectorError> {
    if let Ok(mut existing) = stream.get_consumer::<pull::Config>(name).await {
        let info = existing.info().await.map_err(js_err)?;
        if info.ack_floor.stream_sequence <= applied {
            return Ok(existing);
        }
        tracing::warn!(
            ack_floor = info.ack_floor.stream_sequence,
            applied,
            "consumer is ahead of the database; recreating it from the database's position"
        );
        stream.delete_consumer(name).await.map_err(js_err)?;
    }
    let deliver_policy = if applied == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        }
    };
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            description: Some(
                "prolo-audit projector: folds every event into the read models".into(),
            ),
            ack_policy: AckPolicy::All,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: 100_000,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(js_err)
}

/// Waits until the stream exists (a recording service creates it).
async fn stream(
    js: &jetstream::Context,
    shutdown: &mut Shutdown,
) -> Result<Option<jetstream::stream::Stream>, ProjectorError> {
    loop {
        match js.get_stream(STREAM_NAME).await {
            Ok(stream) => return Ok(Some(stream)),
            Err(e) => tracing::info!(error = %e, "waiting for the {STREAM_NAME} stream"),
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Follows the stream until `shutdown`, committing each batch before
/// acknowledging it.
pub async fn run(
    client: async_nats::Client,
    store: Store,
    settings: ProjectorSettings,
    mut shutdown: Shutdown,
) -> Result<(), ProjectorError> {
    let js = jetstream::new(client.clone());
    let Some(stream) = stream(&js, &mut shutdown).await? else {
        return Ok(());
    };

    if store.applied_seq()? == 0 {
        crate::integrity::consistency::remember(&js, &store).await?;
    }
    // Never fold another history into these read models: wait, loudly,
    // until an operator rebuilds (or restores the stream).
    loop {
        match crate::integrity::consistency::check(&js, &store).await {
            Ok(crate::integrity::consistency::Consistency::Diverged { reason, .. }) => {
                tracing::error!(%reason, "the database does not match the stream; not folding (rebuild it: prolo-projector rebuild)");
            }
            Ok(crate::integrity::consistency::Consistency::Consistent) => break,
            Err(e) => tracing::warn!(error = %e, "stream consistency not checked; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
    // A cluster that just formed, or a leader election, can refuse the
    // consumer for a moment: keep trying, as for the stream.
    let mut consumer = loop {
        match consumer(&stream, &settings.consumer, store.applied_seq()?).await {
            Ok(consumer) => break consumer,
            Err(e) => tracing::warn!(error = %e, "consumer not ready; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    tracing::info!(
        applied = store.applied_seq()?,
        "projector following {STREAM_NAME}"
    );
    let mut last_log = Instant::now();
    let mut since_log = 0u64;
    // The next batch is asked for as soon as this one has arrived, and
    // received and decoded by a task of its own, so that it travels and is
    // decoded (on the other core) while this one is folded and committed.
    let mut prefetched: Option<tokio::task::JoinHandle<Received>> = None;
    loop {
        let received = match prefetched.take() {
            Some(task) => match task.await {
                Ok(received) => received,
                Err(e) => {
                    // Its messages come back after the ack wait; the gap
                    // check below reads them from the stream meanwhile.
                    tracing::warn!(error = %e, "receiving a batch failed");
                    continue;
                }
            },
            None => {
                let fetch = consumer
                    .batch()
                    .max_messages(settings.batch_size)
                    .expires(settings.idle_wait)
                    .messages();
                tokio::select! {
                    _ = shutdown.wait() => break,
                    batch = fetch => match batch {
                        Ok(batch) => receive(batch, settings.findings.seals.clone()).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "fetch failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    },
                }
            }
        };
        let Received {
            mut messages,
            mut decoded,
            last,
        } = received;
        let Some(last) = last else { continue };
        if !shutdown.is_fired() {
            prefetched = consumer
                .batch()
                .max_messages(settings.batch_size)
                .expires(settings.idle_wait)
                .messages()
                .await
                .ok()
                .map(|batch| tokio::spawn(receive(batch, settings.findings.seals.clone())));
        }
        let before = store.applied_seq()?;
        if let Some(first) = messages.iter().find(|m| m.seq > before).map(|m| m.seq)
            && first != before + 1
        {
            // A gap: messages delivered to a process that died before acking
            // them come back only after the ack wait. Never fold past a gap:
            // read the missing sequences straight from the stream first.
            tracing::info!(
                from = before + 1,
                to = first - 1,
                "filling a delivery gap from the stream"
            );
            match fill_gap(&stream, before + 1, first).await {
                Ok(mut missing) => {
                    missing.extend(messages.into_iter().filter(|m| m.seq > before));
                    messages = missing;
                    decoded = decode_batch(&messages, settings.findings.seals.as_deref());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gap not filled; repositioning the consumer");
                    if let Some(task) = prefetched.take() {
                        task.abort();
                    }
                    let _ = stream.delete_consumer(&settings.consumer).await;
                    consumer = self::consumer(&stream, &settings.consumer, before).await?;
                    continue;
                }
            }
        }
        let report = fold_decoded(&store, &messages, decoded, &settings.findings).await?;
        if let (Ok(info), Some(metrics)) = (last.info(), prolo_bus::metrics::active()) {
            metrics
                .lag
                .set(i64::try_from(info.pending).unwrap_or(i64::MAX));
        }
        // Committed and flushed: now acknowledge (AckAll covers the batch).
        if let Err(e) = last.ack().await {
            tracing::warn!(error = %e, "ack failed; the batch will be redelivered and skipped");
        }
        // Findings and signals go out once their batch is committed; they are
        // derived, so a lost notification is still in the read models.
        let notifications = if settings.publish_derived {
            &report.notifications[..]
        } else {
            &[]
        };
        for notification in notifications {
            if let Err(e) = client
                .publish(
                    notification.subject.clone(),
                    notification.payload.clone().into(),
                )
                .await
            {
                tracing::warn!(error = %e, subject = %notification.subject, "notification not published");
            }
        }
        if settings.checkpoint_every > 0
            && report.applied_seq / settings.checkpoint_every > before / settings.checkpoint_every
        {
            publish_checkpoint(
                settings.publish_derived.then_some(&client),
                &store,
                report.applied_seq / settings.checkpoint_every * settings.checkpoint_every,
            )
            .await?;
        }
        since_log += report.applied + report.quarantined;
        if last_log.elapsed() >= Duration::from_secs(10) && since_log > 0 {
            tracing::info!(
                applied_seq = report.applied_seq,
                rate = (since_log as f64 / last_log.elapsed().as_secs_f64()) as u64,
                "folding"
            );
            last_log = Instant::now();
            since_log = 0;
        }
    }
    tracing::info!(applied = store.applied_seq()?, "projector stopped");
    Ok(())
}

/// A batch as received from the consumer, decoded.
struct Received {
    messages: Vec<StreamMessage>,
    decoded: Vec<Result<Envelope, Rejected>>,
    /// The last message, acknowledged (AckAll) once the batch is committed.
    last: Option<jetstream::Message>,
}

/// Receives every message of a fetched batch and decodes them off the
/// async runtime.
async fn receive(
    mut batch: pull::Batch,
    seals: Option<std::sync::Arc<prolo_bus::Keyring>>,
) -> Received {
    let mut messages = Vec::new();
    let mut last = None;
    while let Some(message) = batch.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "batch ended early");
                break;
            }
        };
        let Ok(info) = message.info() else { continue };
        messages.push(StreamMessage::stored(
            info.stream_sequence,
            message.subject.to_string(),
            message.payload.clone(),
            stream_time(info.published),
            message.headers.as_ref(),
        ));
        last = Some(message);
    }
    let (messages, decoded) = match decode_off_runtime(messages, seals).await {
        Ok(done) => done,
        // The runtime is stopping: nothing is acknowledged, so the batch
        // comes back to the next run.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => (Vec::new(), Vec::new()),
        },
    };
    let last = last.filter(|_| !messages.is_empty());
    Received {
        messages,
        decoded,
        last,
    }
}

/// Reads sequences `from..to` straight from the stream.
async fn fill_gap(
    stream: &jetstream::stream::Stream,
    from: u64,
    to: u64,
) -> Result<Vec<StreamMessage>, ProjectorError> {
    let mut out = Vec::with_capacity((to - from) as usize);
    for seq in from..to {
        let message = stream.get_raw_message(seq).await.map_err(js_err)?;
        out.push(StreamMessage::stored(
            seq,
            message.subject.to_string(),
            message.payload,
            stream_time(message.time),
            Some(&message.headers),
        ));
    }
    Ok(out)
}

/// Keeps the chain head at `seq` as the last checkpoint, and publishes it on
/// [`CHECKPOINT_SUBJECT`] when given a client.
async fn publish_checkpoint(
    client: Option<&async_nats::Client>,
    store: &Store,
    seq: u64,
) -> Result<(), ProjectorError> {
    let Some(hash) = store.event(seq)?.map(|e| e.chain) else {
        return Ok(());
    };
    let checkpoint = Checkpoint {
        seq,
        hash: chain::hex(&hash),
    };
    let body = serde_json::to_vec(&checkpoint).unwrap_or_default();
    if let Some(client) = client
        && let Err(e) = client.publish(CHECKPOINT_SUBJECT, body.into()).await
    {
        tracing::warn!(error = %e, seq, "checkpoint not published");
    }
    store.status_put("last_checkpoint", &(checkpoint.seq, checkpoint.hash))?;
    Ok(())
}
