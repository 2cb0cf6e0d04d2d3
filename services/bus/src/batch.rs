//! Atomic batch publish (nats-server 2.12, ADR-50): up to 1,000 events
//! stored whole or not at all, with one fsync for the batch instead of one
//! per event when the server fsyncs before it acknowledges.
//!
//! The messages are sent in order on one connection, each with the batch's
//! id and its position; the last carries the commit marker and is the only
//! one answered. The stream must allow atomic publish (ours does, see
//! [`crate::stream`]). Until the commit is acknowledged nothing of the batch
//! is stored; a batch never committed is abandoned by the server. A batch
//! holding a `Nats-Msg-Id` already stored is refused whole (2.15: error
//! 10201), so a retried batch never stores a second copy, but nor does it
//! store the rest: a caller retrying after a lost acknowledgement checks
//! which ids are stored.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;

/// The most messages a batch may hold (the server's limit).
pub const MAX_BATCH: usize = 1000;

/// One message of a batch.
#[derive(Debug, Clone)]
pub struct BatchMessage {
    /// Its subject (inside the stream's subjects).
    pub subject: String,
    /// Its bytes.
    pub payload: Bytes,
    /// A `Nats-Msg-Id` for deduplication, when wanted.
    pub msg_id: Option<String>,
    /// `Nats-Expected-Last-Subject-Sequence`: store only if the subject's
    /// last message has this sequence (0: the subject is new), else refuse
    /// the whole batch. A key-value create or compare-and-set.
    pub expect_last_subject_seq: Option<u64>,
    /// Its seal ([`crate::seal`]), for an event of the trail.
    pub seal: Option<String>,
}

/// Where a committed batch was stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchAck {
    /// The stream.
    pub stream: String,
    /// The sequence of the batch's last message; the batch occupies the
    /// `count` sequences up to it.
    #[serde(rename = "seq")]
    pub last_seq: u64,
    /// The batch id the server committed.
    #[serde(rename = "batch")]
    pub batch_id: String,
    /// How many messages it committed.
    pub count: u64,
}

/// Why a batch was not stored. Nothing of it was.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Empty, or more than [`MAX_BATCH`] messages.
    #[error("a batch holds 1 to {MAX_BATCH} messages, not {0}")]
    Size(usize),
    /// Sending failed (connection lost): nothing is stored.
    #[error("sending the batch: {0}")]
    Send(String),
    /// JetStream refused the batch (e.g. the stream does not allow atomic
    /// publish, or a message broke a stream rule).
    #[error("JetStream refused the batch: {0}")]
    Refused(String),
    /// The acknowledgement did not match the batch sent.
    #[error("unexpected batch acknowledgement: {0}")]
    BadAck(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Reply {
    Error { error: ApiError },
    Ack(BatchAck),
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// Publishes `messages` as one atomic batch and returns once JetStream has
/// committed it (with an fsync when the server is so configured).
pub async fn publish_atomic(
    client: &async_nats::Client,
    messages: &[BatchMessage],
) -> Result<BatchAck, BatchError> {
    let Some((commit, rest)) = messages.split_last() else {
        return Err(BatchError::Size(0));
    };
    if messages.len() > MAX_BATCH {
        return Err(BatchError::Size(messages.len()));
    }
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    let headers = |position: usize, message: &BatchMessage| {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Batch-Id", batch_id.as_str());
        headers.insert("Nats-Batch-Sequence", (position + 1).to_string().as_str());
        if let Some(id) = &message.msg_id {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        if let Some(seal) = &message.seal {
            headers.insert(crate::seal::SEAL_HEADER, seal.as_str());
        }
        if let Some(seq) = message.expect_last_subject_seq {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                seq.to_string().as_str(),
            );
        }
        headers
    };
    for (position, message) in rest.iter().enumerate() {
        client
            .publish_with_headers(
                message.subject.clone(),
                headers(position, message),
                message.payload.clone(),
            )
            .await
            .map_err(|e| BatchError::Send(e.to_string()))?;
    }
    let mut last = headers(rest.len(), commit);
    last.insert("Nats-Batch-Commit", "1");
    let reply = client
        .request_with_headers(commit.subject.clone(), last, commit.payload.clone())
        .await
        .map_err(|e| BatchError::Send(e.to_string()))?;
    match serde_json::from_slice::<Reply>(&reply.payload) {
        Ok(Reply::Ack(ack)) if ack.batch_id == batch_id && ack.count == messages.len() as u64 => {
            Ok(ack)
        }
        Ok(Reply::Ack(ack)) => Err(BatchError::BadAck(format!(
            "batch {} of {} sent, batch {} of {} acknowledged",
            batch_id,
            messages.len(),
            ack.batch_id,
            ack.count
        ))),
        Ok(Reply::Error { error }) => Err(BatchError::Refused(format!(
            "{} (error code {})",
            error.description, error.err_code
        ))),
        Err(e) => Err(BatchError::BadAck(format!(
            "{e}: {}",
            String::from_utf8_lossy(&reply.payload)
        ))),
    }
}
