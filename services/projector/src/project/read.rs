//! Reading a stretch of the stream in order, batch by batch, for rebuild,
//! verify and backup: received by a task of its own while the caller works
//! on the batch before.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
};
use futures::StreamExt;
use prolo_bus::STREAM_NAME;

use super::js_err;
use crate::error::ProjectorError;
use crate::fold::{StreamMessage, stream_time};

/// Reads `from_seq..=to_seq` from an ordered consumer's messages into
/// batches of `batch`, sent in order; an error ends it.
async fn read_batches(
    mut messages: pull::Ordered,
    from_seq: u64,
    to_seq: u64,
    batch: usize,
    batches: tokio::sync::mpsc::Sender<Result<Vec<StreamMessage>, ProjectorError>>,
) {
    let mut pending = Vec::with_capacity(batch);
    let mut expected = from_seq;
    loop {
        // A stream that stops short must not hang a verify or a rebuild.
        let next = match tokio::time::timeout(READ_IDLE_LIMIT, messages.next()).await {
            Ok(next) => next,
            Err(_) => {
                let _ = batches
                    .send(Err(ProjectorError::JetStream(format!(
                        "the stream delivered nothing for {READ_IDLE_LIMIT:?}, waiting for sequence {expected} of {to_seq}"
                    ))))
                    .await;
                return;
            }
        };
        let Some(message) = next else { break };
        let message = match message.map_err(js_err).and_then(|m| {
            let info = m.info().map_err(js_err)?;
            Ok(StreamMessage::stored(
                info.stream_sequence,
                m.subject.to_string(),
                m.payload.clone(),
                stream_time(info.published),
                m.headers.as_ref(),
            ))
        }) {
            Ok(message) => message,
            Err(e) => {
                let _ = batches.send(Err(e)).await;
                return;
            }
        };
        let seq = message.seq;
        expected = seq + 1;
        pending.push(message);
        if (pending.len() >= batch || seq >= to_seq)
            && batches
                .send(Ok(std::mem::replace(
                    &mut pending,
                    Vec::with_capacity(batch),
                )))
                .await
                .is_err()
        {
            return;
        }
        if seq >= to_seq {
            return;
        }
    }
    if !pending.is_empty() {
        let _ = batches.send(Ok(pending)).await;
    }
}

/// How long [`read_stream`] waits for the next message before giving up.
const READ_IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Reads the stream from `from_seq` to `to_seq` in order, in batches,
/// calling `each` with every batch. An ordered consumer: ephemeral, no acks.
pub async fn read_stream<F, Fut>(
    js: &jetstream::Context,
    from_seq: u64,
    to_seq: u64,
    batch: usize,
    mut each: F,
) -> Result<(), ProjectorError>
where
    F: FnMut(Vec<StreamMessage>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ProjectorError>>,
{
    if from_seq > to_seq {
        return Ok(());
    }
    let stream = js.get_stream(STREAM_NAME).await.map_err(js_err)?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from_seq,
            },
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let messages = consumer.messages().await.map_err(js_err)?;
    // A task of its own receives the next batch while `each` works on this one.
    let (batches, mut received) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_batches(messages, from_seq, to_seq, batch, batches));
    while let Some(next) = received.recv().await {
        if let Err(e) = each(next?).await {
            reader.abort();
            return Err(e);
        }
    }
    reader
        .await
        .map_err(|e| ProjectorError::JetStream(format!("reading the stream failed: {e}")))
}
