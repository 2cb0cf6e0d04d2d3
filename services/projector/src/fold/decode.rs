//! Checking a message's seal and decoding it against the contract and its
//! subject, on every core.

use prolo_bus::{
    Keyring,
    edge::SourcedFrom,
    seal::{SEAL_HEADER, Unsealed},
};
use prolo_schemas::Envelope;

/// One message as the fold sees it.
pub struct StreamMessage {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Payload.
    pub payload: bytes::Bytes,
    /// When JetStream stored it: the recorded time the fold and `as_of`
    /// use, since no publisher can forge it.
    pub stored_at: chrono::DateTime<chrono::Utc>,
    /// Where it came from when the hub's stream sourced it from a clinic's
    /// edge (`Nats-Stream-Source`); `None` for a message published here.
    pub sourced: Option<SourcedFrom>,
    /// Its seal ([`prolo_bus::seal`]), as the recording service stored it.
    pub seal: Option<String>,
}

impl StreamMessage {
    /// The message stored at `seq` with `headers`: where it was sourced
    /// from and its seal are read from them.
    pub fn stored(
        seq: u64,
        subject: String,
        payload: bytes::Bytes,
        stored_at: chrono::DateTime<chrono::Utc>,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Self {
        let header = |name: &str| headers?.get(name).map(|v| v.as_str().to_owned());
        Self {
            seq,
            subject,
            payload,
            stored_at,
            sourced: header(prolo_bus::edge::SOURCE_HEADER).and_then(|v| SourcedFrom::parse(&v)),
            seal: header(SEAL_HEADER),
        }
    }
}

/// Why a message is quarantined rather than applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No recording service sealed it: it was published around them.
    #[error("{0}")]
    Unsealed(Unsealed),
    /// Not an event of the contract, or not one that can be applied here.
    #[error("{0}")]
    Invalid(String),
}

/// A JetStream timestamp as the fold's time.
pub fn stream_time(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// Decodes and validates a message against the contract and its subject;
/// the reason when it cannot be applied. Pure: no store, no order.
pub fn decode(subject: &str, raw: &[u8]) -> Result<Envelope, String> {
    let envelope =
        Envelope::from_json(raw).map_err(|e| format!("does not satisfy the contract: {e}"))?;
    match envelope.subject() {
        Ok(expected) if expected.to_string() == subject => Ok(envelope),
        Ok(expected) => Err(format!(
            "published on {subject}, but the event belongs on {expected}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// [`decode`] of `message`, once its seal is proven against `seals` (not
/// checked when `None`). An unsealed message is rejected whatever it holds:
/// a well-formed forgery is the dangerous kind.
pub fn check(message: &StreamMessage, seals: Option<&Keyring>) -> Result<Envelope, Rejected> {
    if let Some(keyring) = seals {
        keyring
            .verify(
                message.seq,
                &message.subject,
                &message.payload,
                message.seal.as_deref(),
            )
            .map_err(Rejected::Unsealed)?;
    }
    decode(&message.subject, &message.payload).map_err(Rejected::Invalid)
}

/// The fewest messages worth a thread of their own.
const DECODE_PER_THREAD: usize = 64;

/// [`check`] of each message, in order, split over the machine's cores:
/// verifying and decoding is much of the fold's work and needs nothing of
/// the store, so it need not wait for the one thread that folds and
/// commits; the projector decodes the next batch while the fold works on
/// this one.
pub fn decode_batch(
    messages: &[StreamMessage],
    seals: Option<&Keyring>,
) -> Vec<Result<Envelope, Rejected>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let parts = cores.min(messages.len() / DECODE_PER_THREAD).max(1);
    let check_all =
        |chunk: &[StreamMessage]| -> Vec<_> { chunk.iter().map(|m| check(m, seals)).collect() };
    if parts == 1 {
        return check_all(messages);
    }
    let chunk = messages.len().div_ceil(parts);
    std::thread::scope(|scope| {
        let mut chunks = messages.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || check_all(c))).collect();
        let mut decoded = check_all(first);
        for other in others {
            decoded.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        decoded
    })
}

/// A batch of the stream and its messages decoded ([`decode_batch`]).
pub type Decoded = (Vec<StreamMessage>, Vec<Result<Envelope, Rejected>>);

/// [`decode_batch`] on a blocking thread, so that the async runtime (and
/// the fold on it) goes on meanwhile; the batch comes back with it.
pub fn decode_off_runtime(
    messages: Vec<StreamMessage>,
    seals: Option<std::sync::Arc<Keyring>>,
) -> tokio::task::JoinHandle<Decoded> {
    tokio::task::spawn_blocking(move || {
        let decoded = decode_batch(&messages, seals.as_deref());
        (messages, decoded)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn stored(e: &Envelope, seq: u64) -> StreamMessage {
        StreamMessage::stored(
            seq,
            e.subject().unwrap().to_string(),
            e.to_json().into(),
            e.recorded_at,
            None,
        )
    }

    #[test]
    fn decoding_on_every_core_gives_each_message_its_own_answer_in_order() {
        let events: Vec<Envelope> = prolo_tests::synthetic_events(400, 40).collect();
        let mut messages: Vec<StreamMessage> =
            (1..).zip(&events).map(|(seq, e)| stored(e, seq)).collect();
        // Garbage, and an event on another event's subject, among them.
        messages[7].payload = bytes::Bytes::from_static(b"{not json");
        messages[301].subject = messages[300].subject.clone();
        let decoded = decode_batch(&messages, None);
        assert_eq!(decoded.len(), 400);
        for (i, (one, message)) in decoded.iter().zip(&messages).enumerate() {
            assert_eq!(one, &check(message, None), "message {i}");
        }
        assert!(
            decoded[7]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("contract")
        );
        if messages[301].subject != events[301].subject().unwrap().to_string() {
            assert!(
                decoded[301]
                    .as_ref()
                    .unwrap_err()
                    .to_string()
                    .contains("belongs on")
            );
        }
        assert_eq!(
            decoded[100].as_ref().unwrap().event_id,
            events[100].event_id
        );
        assert_eq!(decode_batch(&messages[..3], None).len(), 3);
        assert!(decode_batch(&[], None).is_empty());
    }

    #[test]
    fn with_a_keyring_only_messages_sealed_by_a_trusted_key_decode() {
        let (recorder, _) = prolo_bus::SealKey::generate().unwrap();
        let (stranger, _) = prolo_bus::SealKey::generate().unwrap();
        let keyring = Keyring::of(&[&recorder]);
        let events: Vec<Envelope> = prolo_tests::synthetic_events(200, 20).collect();
        let mut messages: Vec<StreamMessage> =
            (1..).zip(&events).map(|(seq, e)| stored(e, seq)).collect();
        for m in &mut messages {
            m.seal = Some(recorder.seal(&m.subject, &m.payload));
        }
        messages[3].seal = None;
        messages[90].seal = Some(stranger.seal(&messages[90].subject, &messages[90].payload));
        messages[150].payload = messages[151].payload.clone();
        let decoded = decode_batch(&messages, Some(&keyring));
        let rejected: Vec<(usize, &Rejected)> = decoded
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().err().map(|r| (i, r)))
            .collect();
        assert_eq!(rejected.len(), 3, "{rejected:?}");
        assert_eq!(rejected[0], (3, &Rejected::Unsealed(Unsealed::Missing)));
        assert!(matches!(
            rejected[1],
            (90, Rejected::Unsealed(Unsealed::UnknownKey(_)))
        ));
        assert!(matches!(
            rejected[2],
            (150, Rejected::Unsealed(Unsealed::Mismatch(_)))
        ));
        // Without a keyring nothing is checked: the same messages decode.
        assert!(
            decode_batch(&messages, None)
                .iter()
                .filter(|d| d.is_err())
                .count()
                <= 1
        );
    }
}
