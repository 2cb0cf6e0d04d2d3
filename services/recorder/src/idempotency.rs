//! Idempotency keys that hold forever, not only for the broker's duplicate
//! window.
//!
//! The first request with a key claims it in the JetStream key-value bucket
//! [`BUCKET`] with a create-only write: the claim holds the event id and the
//! SHA-256 of the request as sent (canonicalised: key order and whitespace do
//! not matter; the command is part of it). A later request with the same key
//! and the same content is the same event: once the claim records where it
//! was stored, the answer is that place (`duplicate: true`) without
//! publishing; until then it is published again with the same event id and
//! the broker deduplicates it. A later request with the same key and other
//! content is refused (`idempotency_conflict`) and nothing is published.
//!
//! Why a bucket and not the stream: JetStream remembers `Nats-Msg-Id`s only
//! for its duplicate window (minutes), and cannot be asked for an event by
//! id; the bucket is stored, replicated and fsynced like the stream, and its
//! create-only write settles races between concurrent retries.
//! Keys are scoped by clinic; the bucket keeps one entry per key, forever.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind},
    stream::StorageType,
};
use prolo_bus::Recorded;
use prolo_schemas::{ClinicId, EventType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// The key-value bucket of claimed idempotency keys.
pub const BUCKET: &str = "PROLO_IDEMPOTENCY";

/// What a key is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The event the key makes.
    pub event_id: Uuid,
    /// SHA-256 (hex) of the command and the canonical request.
    pub request_sha256: String,
    /// Where the event was stored, once known.
    #[serde(default)]
    pub stored: Option<Recorded>,
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum Claimed {
    /// This request owns the key (or repeats a claim not known to be stored
    /// yet): publish `event_id`, then [`Claims::settle`] at `revision`.
    Publish {
        /// The event id to publish with.
        event_id: Uuid,
        /// The claim's revision in the bucket.
        revision: u64,
    },
    /// The same request was stored already: answer this.
    Stored(Recorded),
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The key was used for a request with other content.
    #[error(
        "idempotency_key was already used for a different request (event {event_id}); \
         use a new key for a new record"
    )]
    Conflict {
        /// The event the key is bound to.
        event_id: Uuid,
    },
    /// The bucket could not be reached: nothing was published.
    #[error("idempotency keys unavailable: {0}")]
    Unavailable(String),
}

/// A key of a batch to claim.
#[derive(Debug, Clone)]
pub struct NewClaim<'a> {
    /// The clinic the key is scoped to.
    pub clinic: &'a ClinicId,
    /// The caller's key.
    pub key: &'a str,
    /// SHA-256 (hex) of the command and the canonical request.
    pub request_sha256: &'a str,
    /// The event id the key makes.
    pub event_id: Uuid,
}

/// A claim to settle: where its event was stored.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    /// The key, as claimed.
    pub claim: NewClaim<'a>,
    /// The claim's revision.
    pub revision: u64,
    /// Where the event was stored.
    pub recorded: &'a Recorded,
}

/// The claimed keys.
#[derive(Clone)]
pub struct Claims {
    js: jetstream::Context,
    replicas: usize,
    kv: Arc<OnceCell<kv::Store>>,
    /// Whether the bucket takes atomic batches (set on first batch).
    atomic: Arc<OnceCell<bool>>,
}

impl Claims {
    /// The bucket on `js`, with `replicas` (as the stream) when it must be
    /// created. It is opened on first use, so that a bucket not available
    /// yet (a cluster still electing) refuses only keyed requests, with
    /// "not stored, retry", and never stops the service.
    pub fn new(js: jetstream::Context, replicas: usize) -> Self {
        Self {
            js,
            replicas: replicas.max(1),
            kv: Arc::new(OnceCell::new()),
            atomic: Arc::new(OnceCell::new()),
        }
    }

    /// Opens (or creates) the bucket now.
    pub async fn ready(&self) -> Result<(), ClaimError> {
        self.kv().await.map(|_| ())
    }

    async fn kv(&self) -> Result<&kv::Store, ClaimError> {
        self.kv
            .get_or_try_init(|| async {
                if let Ok(kv) = self.js.get_key_value(BUCKET).await {
                    return Ok(kv);
                }
                self.js
                    .create_key_value(kv::Config {
                        bucket: BUCKET.to_owned(),
                        description: "prolo-audit: idempotency key -> event, kept forever"
                            .to_owned(),
                        history: 1,
                        max_age: Duration::ZERO,
                        storage: StorageType::File,
                        num_replicas: self.replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| ClaimError::Unavailable(format!("creating {BUCKET}: {e}")))
            })
            .await
    }

    /// Claims `key` of `clinic` for a request whose digest is
    /// `request_sha256`, proposing `event_id`.
    pub async fn claim(
        &self,
        clinic: &ClinicId,
        key: &str,
        request_sha256: &str,
        event_id: Uuid,
    ) -> Result<Claimed, ClaimError> {
        let entry = entry_key(clinic, key);
        let claim = Claim {
            event_id,
            request_sha256: request_sha256.to_owned(),
            stored: None,
        };
        let value = serde_json::to_vec(&claim).unwrap_or_default();
        let kv = self.kv().await?;
        match kv.create(&entry, value.into()).await {
            Ok(revision) => return Ok(Claimed::Publish { event_id, revision }),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(ClaimError::Unavailable(e.to_string())),
        }
        let existing = kv
            .entry(&entry)
            .await
            .map_err(|e| ClaimError::Unavailable(e.to_string()))?
            .ok_or_else(|| ClaimError::Unavailable(format!("claim {entry} vanished")))?;
        let held: Claim = serde_json::from_slice(&existing.value)
            .map_err(|e| ClaimError::Unavailable(format!("claim {entry} unreadable: {e}")))?;
        if held.request_sha256 != request_sha256 {
            return Err(ClaimError::Conflict {
                event_id: held.event_id,
            });
        }
        Ok(match held.stored {
            Some(mut recorded) => {
                recorded.duplicate = true;
                Claimed::Stored(recorded)
            }
            None => Claimed::Publish {
                event_id: held.event_id,
                revision: existing.revision,
            },
        })
    }

    /// Records where the claimed event was stored, so that later retries
    /// are answered without publishing. A failure is only logged: the event
    /// is stored, and a retry publishes it again under the same id.
    pub async fn settle(
        &self,
        clinic: &ClinicId,
        key: &str,
        request_sha256: &str,
        revision: u64,
        recorded: &Recorded,
    ) {
        let claim = Claim {
            event_id: recorded.event_id,
            request_sha256: request_sha256.to_owned(),
            stored: Some(Recorded {
                duplicate: false,
                ..recorded.clone()
            }),
        };
        let value = serde_json::to_vec(&claim).unwrap_or_default();
        let settled = match self.kv().await {
            Ok(kv) => kv
                .update(entry_key(clinic, key), value.into(), revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = settled {
            // Another retry settled it first, or the bucket is away.
            tracing::debug!(error = %e, event_id = %recorded.event_id, "idempotency claim not settled");
        }
    }
}

impl Claims {
    /// Claims every key of `claims` in one atomic write to the bucket (one
    /// fsync for all) if none of them was claimed before: what a batch's
    /// first run is. Their revisions, in order; `None` when the write was
    /// refused whole (a key claimed already, a key twice, a bucket that
    /// cannot take atomic batches): then claim each with [`Claims::claim`].
    pub async fn claim_all_new(&self, claims: &[NewClaim<'_>]) -> Option<Vec<u64>> {
        let messages = claims
            .iter()
            .map(|c| {
                self.message(
                    c, None, 0, // a create: the key's subject has no message yet
                )
            })
            .collect::<Vec<_>>();
        let ack = self.write_atomic(&messages).await?;
        let first = ack.last_seq + 1 - ack.count;
        Some((first..=ack.last_seq).collect())
    }

    /// Settles many claims in one atomic write; each on its own with
    /// [`Claims::settle`] when that is refused.
    pub async fn settle_all(&self, settled: &[Settlement<'_>]) {
        let messages = settled
            .iter()
            .map(|s| self.message(&s.claim, Some(s.recorded), s.revision))
            .collect::<Vec<_>>();
        if self.write_atomic(&messages).await.is_some() {
            return;
        }
        futures::future::join_all(settled.iter().map(|s| {
            self.settle(
                s.claim.clinic,
                s.claim.key,
                s.claim.request_sha256,
                s.revision,
                s.recorded,
            )
        }))
        .await;
    }

    /// The bucket write of `claim` (stored at `recorded`, once known),
    /// expected to follow `revision` of its key.
    fn message(
        &self,
        claim: &NewClaim<'_>,
        recorded: Option<&Recorded>,
        revision: u64,
    ) -> prolo_bus::batch::BatchMessage {
        let value = Claim {
            event_id: claim.event_id,
            request_sha256: claim.request_sha256.to_owned(),
            stored: recorded.map(|r| Recorded {
                duplicate: false,
                ..r.clone()
            }),
        };
        prolo_bus::batch::BatchMessage {
            subject: format!("$KV.{BUCKET}.{}", entry_key(claim.clinic, claim.key)),
            payload: serde_json::to_vec(&value).unwrap_or_default().into(),
            msg_id: None,
            expect_last_subject_seq: Some(revision),
            seal: None,
        }
    }

    /// One atomic batch to the bucket's stream; `None` if not stored.
    async fn write_atomic(
        &self,
        messages: &[prolo_bus::batch::BatchMessage],
    ) -> Option<prolo_bus::batch::BatchAck> {
        if messages.is_empty() || !self.atomic_ready().await {
            return None;
        }
        match prolo_bus::batch::publish_atomic(&self.js.client(), messages).await {
            Ok(ack) => Some(ack),
            Err(e) => {
                tracing::debug!(error = %e, keys = messages.len(), "idempotency keys not written in one batch; one by one");
                None
            }
        }
    }

    /// Lets the bucket take atomic batches (once; buckets made before did not).
    async fn atomic_ready(&self) -> bool {
        *self
            .atomic
            .get_or_init(|| async {
                if self.kv().await.is_err() {
                    return false;
                }
                let stream = format!("KV_{BUCKET}");
                let allowed = async {
                    let mut info = self.js.get_stream(&stream).await.ok()?.info().await.ok()?.config.clone();
                    if !info.allow_atomic_publish {
                        info.allow_atomic_publish = true;
                        self.js.update_stream(info).await.ok()?;
                    }
                    Some(true)
                }
                .await;
                if allowed.is_none() {
                    tracing::info!(stream, "the idempotency bucket does not take atomic batches; keyed batch events are claimed one by one");
                }
                allowed.unwrap_or(false)
            })
            .await
    }
}

/// The bucket key of (clinic, key): a hash, since keys are free text.
fn entry_key(clinic: &ClinicId, key: &str) -> String {
    let digest = Sha256::digest(format!("{clinic}\n{key}").as_bytes());
    hex(&digest)
}

/// SHA-256 (hex) of the command and the request body as canonical JSON
/// (object keys sorted, no insignificant whitespace).
pub fn request_sha256(event_type: EventType, body: &[u8]) -> String {
    let mut canonical = Vec::with_capacity(body.len());
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => write_canonical(&value, &mut canonical),
        // Unreachable for a parsed request; hash the bytes as they are.
        Err(_) => canonical.extend_from_slice(body),
    }
    let mut hasher = Sha256::new();
    hasher.update(event_type.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(&canonical);
    hex(&hasher.finalize())
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_digest() {
        let a = br#"{"clinic_id":"c","payload":{"x":1,"y":[1,{"b":2,"a":1}]}}"#;
        let b = b"{ \"payload\": {\"y\": [1, {\"a\": 1, \"b\": 2}], \"x\": 1},\n \"clinic_id\": \"c\" }";
        assert_eq!(
            request_sha256(EventType::ConsentGiven, a),
            request_sha256(EventType::ConsentGiven, b)
        );
    }

    #[test]
    fn other_content_or_another_command_changes_the_digest() {
        let a = br#"{"patient_id":"P-9001"}"#;
        let b = br#"{"patient_id":"P-9002"}"#;
        assert_ne!(
            request_sha256(EventType::ConsentGiven, a),
            request_sha256(EventType::ConsentGiven, b)
        );
        assert_ne!(
            request_sha256(EventType::ConsentGiven, a),
            request_sha256(EventType::ConsentWithdrawn, a)
        );
    }

    #[test]
    fn bucket_keys_are_valid_kv_keys_scoped_by_clinic() {
        let c1: ClinicId = "riverside".parse().unwrap_or_else(|e| panic!("{e}"));
        let c2: ClinicId = "northside".parse().unwrap_or_else(|e| panic!("{e}"));
        let key = "ehr order 5531 / line 2 ✓";
        assert_ne!(entry_key(&c1, key), entry_key(&c2, key));
        assert!(entry_key(&c1, key).chars().all(|c| c.is_ascii_hexdigit()));
    }
}
