//! Decoding a message against the contract and its subject, on every core.

use prolo_schemas::Envelope;

use prolo_bus::edge::SourcedFrom;

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
}

/// The source of a message with `headers`, when it was stored by sourcing.
pub fn sourced_from(headers: Option<&async_nats::HeaderMap>) -> Option<SourcedFrom> {
    headers?
        .get(prolo_bus::edge::SOURCE_HEADER)
        .and_then(|v| SourcedFrom::parse(v.as_str()))
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

/// The fewest messages worth a thread of their own.
const DECODE_PER_THREAD: usize = 64;

/// [`decode`] of each `(subject, payload)`, in order, split over the
/// machine's cores: decoding and validating is a sixth of the fold's work
/// and needs nothing of the store, so it need not wait for the one thread
/// that folds and commits.
pub fn decode_all(messages: &[(&str, &[u8])]) -> Vec<Result<Envelope, String>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let parts = cores.min(messages.len() / DECODE_PER_THREAD).max(1);
    if parts == 1 {
        return messages.iter().map(|(s, raw)| decode(s, raw)).collect();
    }
    let chunk = messages.len().div_ceil(parts);
    std::thread::scope(|scope| {
        let mut chunks = messages.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|c| {
                scope.spawn(move || c.iter().map(|(s, raw)| decode(s, raw)).collect::<Vec<_>>())
            })
            .collect();
        let mut decoded: Vec<_> = first.iter().map(|(s, raw)| decode(s, raw)).collect();
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

/// [`crate::fold::decode`] of every message of a batch, in order, on every
/// core. It needs nothing of the store, so the projector decodes the next
/// batch while the fold works on this one.
pub fn decode_batch(messages: &[StreamMessage]) -> Vec<Result<Envelope, String>> {
    let texts: Vec<(&str, &[u8])> = messages
        .iter()
        .map(|m| (m.subject.as_str(), m.payload.as_ref()))
        .collect();
    crate::fold::decode_all(&texts)
}

/// A batch of the stream and its messages decoded ([`decode_batch`]).
pub type Decoded = (Vec<StreamMessage>, Vec<Result<Envelope, String>>);

/// [`decode_batch`] on a blocking thread, so that the async runtime (and
/// the fold on it) goes on meanwhile; the batch comes back with it.
pub fn decode_off_runtime(messages: Vec<StreamMessage>) -> tokio::task::JoinHandle<Decoded> {
    tokio::task::spawn_blocking(move || {
        let decoded = decode_batch(&messages);
        (messages, decoded)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn decoding_on_every_core_gives_each_message_its_own_answer_in_order() {
        let events: Vec<Envelope> = prolo_tests::synthetic_events(400, 40).collect();
        let mut texts: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| (e.subject().unwrap().to_string(), e.to_json()))
            .collect();
        // Garbage, and an event on another event's subject, among them.
        texts[7].1 = b"{not json".to_vec();
        texts[301].0 = texts[300].0.clone();
        let borrowed: Vec<(&str, &[u8])> = texts
            .iter()
            .map(|(s, raw)| (s.as_str(), raw.as_slice()))
            .collect();
        let decoded = decode_all(&borrowed);
        assert_eq!(decoded.len(), 400);
        for (i, (one, (subject, raw))) in decoded.iter().zip(&borrowed).enumerate() {
            assert_eq!(one, &decode(subject, raw), "message {i}");
        }
        assert!(decoded[7].as_ref().unwrap_err().contains("contract"));
        if texts[301].0 != events[301].subject().unwrap().to_string() {
            assert!(decoded[301].as_ref().unwrap_err().contains("belongs on"));
        }
        assert_eq!(
            decoded[100].as_ref().unwrap().event_id,
            events[100].event_id
        );
        assert_eq!(decode_all(&borrowed[..3]).len(), 3);
        assert!(decode_all(&[]).is_empty());
    }
}
