//! Recording an event in the stream exactly once.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use prolo_schemas::{ContractError, Envelope};

use crate::seal::{SEAL_HEADER, SealKey};
use tokio::time::Instant;
use uuid::Uuid;

/// Where an event was stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    /// The event id (also its `Nats-Msg-Id`).
    pub event_id: Uuid,
    /// Its sequence in `CLINIC_EVENTS`.
    pub stream_seq: u64,
    /// The subject it was published on.
    pub subject: String,
    /// True when JetStream had it already (a retry of a stored event).
    pub duplicate: bool,
}

/// Why an event was not stored. Only [`Recorded`] means stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event breaks the contract; nothing was published.
    #[error("invalid event: {0}")]
    Invalid(#[from] ContractError),
    /// JetStream did not acknowledge the event before the deadline. It may
    /// or may not be stored: retrying with the same event id is safe.
    #[error("not stored, retry: {0}")]
    NotStored(String),
}

/// Publishes events with the dedup header, retrying with the same id, and
/// sealed when it holds the recording service's key.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    deadline: Duration,
    seal: Option<Arc<SealKey>>,
}

impl Publisher {
    /// A publisher that gives up after `deadline` without an acknowledgement.
    pub fn new(js: jetstream::Context, deadline: Duration) -> Self {
        Self {
            js,
            deadline,
            seal: None,
        }
    }

    /// Seals every event it publishes with `key` ([`crate::seal`]).
    pub fn sealed_with(self, key: Option<Arc<SealKey>>) -> Self {
        Self { seal: key, ..self }
    }

    /// The seal of `payload` on `subject`, when this publisher seals.
    pub fn seal_of(&self, subject: &str, payload: &[u8]) -> Option<String> {
        self.seal.as_ref().map(|key| key.seal(subject, payload))
    }

    /// How long a publish may wait for its acknowledgement.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Validates and publishes `envelope`, and returns only once JetStream has
    /// acknowledged it. Retries after a timeout or a broken connection carry
    /// the same `Nats-Msg-Id`, so the stream stores the event once.
    pub async fn publish(&self, envelope: &Envelope) -> Result<Recorded, PublishError> {
        envelope.validate()?;
        let subject = envelope.subject()?.to_string();
        let payload = bytes::Bytes::from(envelope.to_json());
        let event_id = envelope.event_id;
        let seal = self.seal_of(&subject, &payload);
        let give_up = Instant::now() + self.deadline;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(event_id.to_string());
            if let Some(seal) = &seal {
                message = message.header(SEAL_HEADER, seal.as_str());
            }
            let attempt = async {
                let ack = self.js.send_publish(subject.clone(), message).await?;
                ack.await
            };
            let error = match tokio::time::timeout_at(give_up, attempt).await {
                Ok(Ok(ack)) => {
                    return Ok(Recorded {
                        event_id,
                        stream_seq: ack.sequence,
                        subject,
                        duplicate: ack.duplicate,
                    });
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(PublishError::NotStored(format!(
                        "no acknowledgement within {:?}",
                        self.deadline
                    )));
                }
            };
            match error.kind() {
                // Transient: the broker is away, restarting or slow.
                PublishErrorKind::TimedOut
                | PublishErrorKind::BrokenPipe
                | PublishErrorKind::Other
                | PublishErrorKind::StreamNotFound => {
                    tracing::warn!(%event_id, error = %error, "publish not acknowledged; retrying with the same id");
                }
                // Permanent for this event.
                _ => return Err(PublishError::NotStored(error.to_string())),
            }
            if Instant::now() + backoff >= give_up {
                return Err(PublishError::NotStored(error.to_string()));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
