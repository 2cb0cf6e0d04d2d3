//! The batch command: up to 1,000 events of any types in one request, for
//! an EHR's back-fill and for migrations.
//!
//! `prolo.cmd.<clinic>.batch` takes
//! `{"events": [{"command": "injection.give", "request": {…}}, …]}`, where
//! each `request` is what the single command takes. Each event is
//! validated, keyed and answered on its own, as its single command would
//! answer it: a bad event is refused with its problems and the others are
//! recorded; the reply lists one result per event, in order.
//!
//! The valid events are stored in one atomic JetStream batch: one fsync for
//! all of them instead of one per event. When the server refuses the batch
//! (one of its events was stored already: a retried batch) or does not
//! answer, each event is published on its own with its `Nats-Msg-Id`, so
//! the stream still holds each event exactly once.

use std::collections::HashMap;

use async_nats::Client;
use futures::future::join_all;
use prolo_bus::{
    Publisher, Recorded,
    batch::{BatchMessage, MAX_BATCH, publish_atomic},
};
use prolo_schemas::{ContractError, ProblemCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    commands::{ALL_SERVICES, command_by_verb},
    idempotency::{Claims, NewClaim, Settlement},
    identity::Proven,
    prepared::{AfterClaim, Prepared, publish},
    reply::{ErrorBody, ErrorReply},
};

/// Largest batch request: NATS's default largest message.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The answer to a batch: one result per event sent, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReply {
    /// Events stored, by this request or (a retry) by an earlier one.
    pub recorded: usize,
    /// Events refused: nothing of them was stored.
    pub refused: usize,
    /// One per event, in the order sent.
    pub results: Vec<ItemResult>,
}

/// What became of one event of a batch: `recorded` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Its position in `events` (from 0).
    pub index: usize,
    /// Where it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
    /// Why it was refused; the same body its single command would answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Events and requests are borrowed from the request's bytes, not copied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    command: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    request: &'a RawValue,
}

/// A request that is refused whole (not JSON, no events, too many).
fn refused_whole(path: &str, code: ProblemCode, message: String) -> ErrorReply {
    ErrorReply::invalid(ContractError::single(None, path, code, message))
}

/// Reads `body` with serde, naming the field of a problem.
fn read<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ContractError> {
    prolo_schemas::require_json_object(body).map_err(|problem| ContractError {
        event_type: None,
        problems: vec![problem],
    })?;
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        ContractError {
            event_type: None,
            problems: vec![prolo_schemas::problem_from_serde(&path, &err.into_inner())],
        }
    })
}

/// The events of a batch request, or why it is refused whole.
fn events(body: &[u8]) -> Result<Vec<&RawValue>, ErrorReply> {
    if let Some(message) = crate::request::too_large(body, MAX_BATCH_BYTES) {
        return Err(refused_whole("$", ProblemCode::BadText, message));
    }
    let request: BatchRequest = read(body).map_err(ErrorReply::invalid)?;
    if request.events.is_empty() || request.events.len() > MAX_BATCH {
        return Err(refused_whole(
            "events",
            ProblemCode::OutOfRange,
            format!(
                "a batch holds 1 to {MAX_BATCH} events, not {}",
                request.events.len()
            ),
        ));
    }
    Ok(request.events)
}

/// One event of the batch made into an event, or why it is refused.
/// Problems in its request are named `request.<field>`.
fn prepare(
    source: &str,
    raw: &RawValue,
    subject: &str,
    proven: Option<&Proven>,
) -> Result<Ready, ErrorReply> {
    let item: Item = read(raw.get().as_bytes()).map_err(ErrorReply::invalid)?;
    let Some(command) = command_by_verb(&item.command) else {
        let known: Vec<&str> = ALL_SERVICES
            .iter()
            .flat_map(|s| s.commands)
            .map(|c| c.verb)
            .collect();
        return Err(refused_whole(
            "command",
            ProblemCode::UnknownValue,
            format!(
                "unknown command {:?}; known: {}",
                item.command,
                known.join(", ")
            ),
        ));
    };
    let prefixed = |mut reply: ErrorReply| {
        for problem in &mut reply.error.problems {
            problem.path = match problem.path.as_str() {
                "$" | "" => "request".to_owned(),
                path => format!("request.{path}"),
            };
        }
        reply
    };
    let event = Prepared::new(
        source,
        command.event_type,
        item.request.get().as_bytes(),
        subject,
        proven,
    )
    .map_err(prefixed)?;
    // Checked here, not at publishing, so that one bad event is refused alone.
    event
        .envelope
        .validate()
        .map_err(|err| prefixed(ErrorReply::invalid(err)))?;
    Ready::encode(event).map_err(|err| prefixed(ErrorReply::invalid(err)))
}

/// A checked event of a batch with its wire form, made before any key is
/// claimed so that the encoding runs with the checks, off the runtime.
struct Ready {
    event: Prepared,
    subject: String,
    /// Shared with the message built from it, not copied.
    wire: bytes::Bytes,
    /// The event id `wire` holds: a claim may bind the event to another.
    encoded_id: Uuid,
}

impl Ready {
    fn encode(event: Prepared) -> Result<Self, ContractError> {
        let subject = event.envelope.subject()?.to_string();
        Ok(Ready {
            subject,
            wire: event.envelope.to_json().into(),
            encoded_id: event.envelope.event_id,
            event,
        })
    }

    /// The message to publish, encoded again if a claim changed the id.
    fn message(&self, publisher: &Publisher) -> BatchMessage {
        let envelope = &self.event.envelope;
        let payload = if envelope.event_id == self.encoded_id {
            self.wire.clone()
        } else {
            envelope.to_json().into()
        };
        BatchMessage {
            seal: publisher.seal_of(&self.subject, &payload),
            subject: self.subject.clone(),
            payload,
            msg_id: Some(envelope.event_id.to_string()),
            expect_last_subject_seq: None,
        }
    }
}

/// From this many events on, a batch is checked on two threads.
const TWO_THREADS_FROM: usize = 64;

/// Checks and encodes every event of the request (or refuses it whole):
/// most of a batch's own cost (parsing, validating, encoding ~1 KB of JSON
/// per event), split over two threads so that a request of 1,000 does not
/// hold the broker's pipeline up on one core.
fn check_all(
    source: &str,
    body: &[u8],
    subject: &str,
    proven: Option<&Proven>,
) -> Result<Vec<Result<Ready, ErrorReply>>, ErrorReply> {
    let events = events(body)?;
    let check = |raw: &&RawValue| prepare(source, raw, subject, proven);
    Ok(on_two_threads(&events, check, |_| {
        Err(ErrorReply::internal(
            "checking this event failed unexpectedly",
        ))
    }))
}

/// `work` of each item, in order: split over two threads from
/// [`TWO_THREADS_FROM`] items. `failed` answers for each item of a half
/// whose thread panicked (when no second thread starts, this one does it all).
fn on_two_threads<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T) -> R,
) -> Vec<R> {
    if items.len() < TWO_THREADS_FROM {
        return items.iter().map(&work).collect();
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("batch-work".into())
            .spawn_scoped(scope, || second.iter().map(&work).collect::<Vec<_>>());
        let mut done: Vec<_> = first.iter().map(&work).collect();
        match other.map(|thread| thread.join()) {
            Ok(Ok(rest)) => done.extend(rest),
            Err(_) => done.extend(second.iter().map(&work)),
            Ok(Err(_)) => done.extend(second.iter().map(failed)),
        }
        done
    })
}

/// Records a batch sent on `subject` (`prolo.cmd.<clinic>.batch`).
pub async fn record(
    source: &str,
    client: &Client,
    publisher: &Publisher,
    claims: &Claims,
    subject: &str,
    body: bytes::Bytes,
    proven: Option<Proven>,
) -> Result<BatchReply, ErrorReply> {
    // Validate, stamp and encode each event off the runtime; then claim
    // the keys of keyed ones together.
    let checked = {
        let (source, subject) = (source.to_owned(), subject.to_owned());
        tokio::task::spawn_blocking(move || check_all(&source, &body, &subject, proven.as_ref()))
            .await
            .map_err(|_| ErrorReply::internal("checking the batch failed unexpectedly"))??
    };
    let span = tracing::info_span!("batch", events = checked.len(), subject);
    let mut results: Vec<Option<Result<Recorded, ErrorBody>>> = vec![None; checked.len()];
    let mut prepared: Vec<(usize, Ready)> = Vec::with_capacity(checked.len());
    for (index, outcome) in checked.into_iter().enumerate() {
        match outcome {
            Ok(event) => prepared.push((index, event)),
            Err(reply) => results[index] = Some(Err(reply.error)),
        }
    }
    let claimed = claim_keys(claims, &mut prepared)
        .instrument(span.clone())
        .await;

    // What is left to publish; an event id sent twice in the batch (the
    // same key and content twice) is published once and answered twice.
    let mut to_publish: Vec<(usize, Ready, Option<u64>)> = Vec::new();
    let mut first_of: HashMap<Uuid, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for ((index, event), claim) in prepared.into_iter().zip(claimed) {
        match claim {
            Err(reply) => results[index] = Some(Err(reply.error)),
            Ok(AfterClaim::Stored(recorded)) => results[index] = Some(Ok(recorded)),
            Ok(AfterClaim::Publish(revision)) => {
                if let Some(&first) = first_of.get(&event.event.envelope.event_id) {
                    repeats.push((index, first));
                    continue;
                }
                first_of.insert(event.event.envelope.event_id, index);
                to_publish.push((index, event, revision));
            }
        }
    }

    let stored = store(client, publisher, &to_publish)
        .instrument(span.clone())
        .await;
    let settlements: Vec<Settlement> = to_publish
        .iter()
        .zip(&stored)
        .filter_map(|((_, event, revision), outcome)| {
            Some(Settlement {
                claim: event.event.new_claim()?,
                revision: (*revision)?,
                recorded: outcome.as_ref().ok()?,
            })
        })
        .collect();
    claims
        .settle_all(&settlements)
        .instrument(span.clone())
        .await;
    for ((index, _, _), outcome) in to_publish.iter().zip(stored) {
        results[*index] = Some(outcome.map_err(|reply| reply.error));
    }
    for (index, first) in repeats {
        results[index] = results[first].clone().map(|outcome| {
            outcome.map(|recorded| Recorded {
                duplicate: true,
                ..recorded
            })
        });
    }

    let results: Vec<ItemResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Some(Ok(recorded)) => ItemResult {
                index,
                recorded: Some(recorded),
                error: None,
            },
            Some(Err(error)) => ItemResult {
                index,
                recorded: None,
                error: Some(error),
            },
            // Every event got an outcome above; say so rather than panic.
            None => ItemResult {
                index,
                recorded: None,
                error: Some(ErrorReply::internal("no outcome was reached").error),
            },
        })
        .collect();
    let recorded = results.iter().filter(|r| r.recorded.is_some()).count();
    let reply = BatchReply {
        recorded,
        refused: results.len() - recorded,
        results,
    };
    span.in_scope(|| {
        tracing::info!(
            recorded = reply.recorded,
            refused = reply.refused,
            "batch answered"
        )
    });
    Ok(reply)
}

/// Claims the keys of the keyed events: all in one atomic write when none
/// was used before (a back-fill's first run), else each on its own.
async fn claim_keys(
    claims: &Claims,
    prepared: &mut [(usize, Ready)],
) -> Vec<Result<AfterClaim, ErrorReply>> {
    let new: Vec<NewClaim> = prepared
        .iter()
        .filter_map(|(_, ready)| ready.event.new_claim())
        .collect();
    if !new.is_empty()
        && let Some(revisions) = claims.claim_all_new(&new).await
    {
        let mut revisions = revisions.into_iter();
        return prepared
            .iter()
            .map(|(_, ready)| {
                let revision = ready.event.new_claim().and_then(|_| revisions.next());
                Ok(AfterClaim::Publish(revision))
            })
            .collect();
    }
    join_all(prepared.iter_mut().map(|(_, ready)| {
        let span = ready.event.span();
        ready.event.claim(claims).instrument(span)
    }))
    .await
}

/// Stores the events in one atomic batch; when that is refused or
/// unanswered, each on its own (deduplicated by event id).
async fn store(
    client: &Client,
    publisher: &Publisher,
    events: &[(usize, Ready, Option<u64>)],
) -> Vec<Result<Recorded, ErrorReply>> {
    if events.is_empty() {
        return Vec::new();
    }
    // Sealing is an Ed25519 signature per event: on two threads, as the checks.
    let message = |(_, ready, _): &(usize, Ready, Option<u64>)| ready.message(publisher);
    let messages: Vec<BatchMessage> = on_two_threads(events, message, message);
    let atomic = tokio::time::timeout(publisher.deadline(), publish_atomic(client, &messages));
    match atomic.await {
        Ok(Ok(ack)) => {
            // A committed batch occupies consecutive sequences ending at the ack's.
            let first = ack.last_seq + 1 - ack.count;
            events
                .iter()
                .zip(messages)
                .enumerate()
                .map(|(position, ((_, ready, _), message))| {
                    Ok(Recorded {
                        event_id: ready.event.envelope.event_id,
                        stream_seq: first + position as u64,
                        subject: message.subject,
                        duplicate: false,
                    })
                })
                .collect()
        }
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no acknowledgement within {:?}", publisher.deadline()),
            };
            tracing::info!(%reason, events = events.len(), "atomic batch not stored; publishing each event on its own");
            join_all(events.iter().map(|(_, ready, _)| {
                let span = ready.event.span();
                publish(publisher, &ready.event).instrument(span)
            }))
            .await
        }
    }
}
