//! A signature is of the record as stored (21 CFR 11.70: linked to its
//! record). Before a `record.signed` is stored, the service reads the
//! signed event from the stream and refuses (409 `signature_not_of_record`)
//! a signature whose `signed_event_sha256` is not the SHA-256 of its bytes
//! as stored, or of an event the stream does not hold there.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt;
use prolo_schemas::{Envelope, RecordSigned};

use crate::reply::ErrorReply;

const SIGNED: &str = "record.signed";

/// How long reading the signed event's subject may take.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// Checks `signed`, the payload of `envelope`, against the stream.
pub async fn check_stored(
    js: &jetstream::Context,
    envelope: &Envelope,
    signed: &RecordSigned,
) -> Result<(), ErrorReply> {
    let found = tokio::time::timeout(READ_LIMIT, stored_sha256(js, envelope, signed))
        .await
        .map_err(|_| {
            ErrorReply::not_stored(
                SIGNED,
                format!(
                    "the signed event {} could not be read within {READ_LIMIT:?}",
                    signed.target.event_id
                ),
            )
        })??;
    match found {
        Some(sha256) if sha256 == signed.signed_event_sha256 => Ok(()),
        Some(sha256) => Err(ErrorReply::signature_not_of_record(format!(
            "signed_event_sha256 {} is not of event {} as stored (its SHA-256 is {sha256}): a signature is of the record as stored",
            signed.signed_event_sha256, signed.target.event_id
        ))),
        None => Err(ErrorReply::signature_not_of_record(format!(
            "no {} event {} is stored under this record: a signature is of a stored record",
            signed.target.event_type, signed.target.event_id
        ))),
    }
}

/// The SHA-256 of the signed event's bytes as stored, read from its subject
/// (the signature's own subject with the target's type); `None` when no
/// such event is there.
async fn stored_sha256(
    js: &jetstream::Context,
    envelope: &Envelope,
    signed: &RecordSigned,
) -> Result<Option<String>, ErrorReply> {
    let subject = envelope.subject().map_err(ErrorReply::invalid)?.to_string();
    let Some(entity) = subject.strip_suffix(prolo_schemas::EventType::RecordSigned.as_str()) else {
        return Ok(None);
    };
    let target_subject = format!("{entity}{}", signed.target.event_type.as_str());
    let unavailable =
        |e: String| ErrorReply::not_stored(SIGNED, format!("reading the signed event: {e}"));
    let stream = js
        .get_stream(prolo_bus::STREAM_NAME)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    // The last event on the subject: often the one signed, and where to stop.
    let last = match stream
        .get_last_raw_message_by_subject(&target_subject)
        .await
    {
        Ok(last) => last,
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            return Ok(None);
        }
        Err(e) => return Err(unavailable(e.to_string())),
    };
    if is_target(&last.payload, signed) {
        return Ok(Some(RecordSigned::sha256_of(&last.payload)));
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: target_subject,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| unavailable(e.to_string()))?;
        if is_target(&message.payload, signed) {
            return Ok(Some(RecordSigned::sha256_of(&message.payload)));
        }
        if message
            .info()
            .map_or(true, |i| i.stream_sequence >= last.sequence)
        {
            break;
        }
    }
    Ok(None)
}

/// Whether `stored` is the event `signed` names.
fn is_target(stored: &[u8], signed: &RecordSigned) -> bool {
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: uuid::Uuid,
    }
    serde_json::from_slice::<Id>(stored).is_ok_and(|id| id.event_id == signed.target.event_id)
}
