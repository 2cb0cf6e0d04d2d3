//! A recording request made into an event, ready to claim its
//! idempotency key and to publish: what the single and the batch command
//! share.

use prolo_bus::{PublishError, Publisher, Recorded};
use prolo_schemas::{Envelope, EventType};

use crate::{
    idempotency::{ClaimError, Claimed, Claims, NewClaim, request_sha256},
    identity::Proven,
    reply::ErrorReply,
    request,
};

/// A request made into an event: what is left is claiming its key (if
/// any) and publishing it. The single and the batch command share it.
pub(crate) struct Prepared {
    pub(crate) event_type: EventType,
    pub(crate) envelope: Envelope,
    /// The idempotency key and the SHA-256 of the request it was sent with.
    key: Option<(String, String)>,
}

/// Where a prepared event stands once its key is claimed.
pub(crate) enum AfterClaim {
    /// Publish it; settle the claim at this revision afterwards (keyed only).
    Publish(Option<u64>),
    /// The same request was stored already: this is the answer.
    Stored(Recorded),
}

impl Prepared {
    /// Parses `body` as a request for `event_type` sent on `subject`, and
    /// stamps it (event id, recorded_at, source). When the service verifies
    /// identities, `proven` is who the request's token proved: the actor
    /// recorded is theirs (or, for a delegate, the one the body names),
    /// with its proof.
    pub(crate) fn new(
        source: &str,
        event_type: EventType,
        body: &[u8],
        subject: &str,
        proven: Option<&Proven>,
    ) -> Result<Self, ErrorReply> {
        let mut parsed = request::parse(event_type, body).map_err(ErrorReply::invalid)?;
        request::check_clinic(event_type, &parsed, subject).map_err(ErrorReply::invalid)?;
        let proof = match proven {
            Some(proven) => {
                let (actor, proof) = proven
                    .attest(&parsed.actor)
                    .map_err(|m| ErrorReply::not_the_actor(event_type.as_str(), &m))?;
                parsed.actor = actor;
                Some(proof)
            }
            None => None,
        };
        let key = parsed
            .idempotency_key
            .clone()
            .map(|key| (key, request_sha256(event_type, body)));
        let mut envelope = request::stamp(event_type, source, parsed, chrono::Utc::now())
            .map_err(ErrorReply::invalid)?;
        envelope.actor_proof = proof;
        // A signature is its signer's own act, freshly authenticated. A
        // back-fill may bring signatures made in another system as
        // history: delegated, so the trail shows their signer as unproven.
        if let (Some(proven), prolo_schemas::Payload::RecordSigned(signed)) =
            (proven, &envelope.payload)
            && !(proven.delegate && source == prolo_schemas::BACKFILL_SOURCE)
        {
            proven
                .may_sign(&signed.signer_id, envelope.recorded_at)
                .map_err(|e| ErrorReply::not_the_signer(event_type.as_str(), &e))?;
        }
        if let Some(why) = crate::policy::refusal(envelope.actor.role, &envelope.payload) {
            return Err(ErrorReply::not_permitted(event_type.as_str(), why));
        }
        Ok(Self {
            event_type,
            envelope,
            key,
        })
    }

    /// The span of everything done for this event.
    pub(crate) fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "record",
            event_type = %self.event_type,
            event_id = %self.envelope.event_id,
            correlation_id = %self.envelope.correlation_id,
        )
    }

    /// Claims the idempotency key: a retry of a stored request is answered
    /// from the claim; a key bound to other content is refused. The event
    /// id becomes the one the key is bound to.
    pub(crate) async fn claim(&mut self, claims: &Claims) -> Result<AfterClaim, ErrorReply> {
        let Some((key, digest)) = &self.key else {
            return Ok(AfterClaim::Publish(None));
        };
        let event_type = self.event_type.as_str();
        let claimed = claims
            .claim(
                &self.envelope.clinic_id,
                key,
                digest,
                self.envelope.event_id,
            )
            .await
            .map_err(|err| match err {
                ClaimError::Conflict { event_id } => {
                    ErrorReply::idempotency_conflict(event_type, event_id, err.to_string())
                }
                ClaimError::Unavailable(message) => ErrorReply::not_stored(event_type, message),
            })?;
        Ok(match claimed {
            Claimed::Stored(recorded) => AfterClaim::Stored(recorded),
            Claimed::Publish { event_id, revision } => {
                self.envelope.event_id = event_id;
                AfterClaim::Publish(Some(revision))
            }
        })
    }

    /// Its idempotency key as a claim to make, if it has one.
    pub(crate) fn new_claim(&self) -> Option<NewClaim<'_>> {
        self.key.as_ref().map(|(key, digest)| NewClaim {
            clinic: &self.envelope.clinic_id,
            key,
            request_sha256: digest,
            event_id: self.envelope.event_id,
        })
    }

    /// Records in the claim where the event was stored, so that later
    /// retries are answered without publishing.
    pub(crate) async fn settle(&self, claims: &Claims, revision: Option<u64>, recorded: &Recorded) {
        if let (Some((key, digest)), Some(revision)) = (&self.key, revision) {
            claims
                .settle(&self.envelope.clinic_id, key, digest, revision, recorded)
                .await;
        }
    }
}

/// Publishes and waits for the acknowledgement; the reply on failure.
pub(crate) async fn publish(
    publisher: &Publisher,
    prepared: &Prepared,
) -> Result<Recorded, ErrorReply> {
    let started = std::time::Instant::now();
    let published = publisher.publish(&prepared.envelope).await;
    if let Some(metrics) = prolo_bus::metrics::active() {
        metrics
            .publish_ack_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    published.map_err(|err| match err {
        PublishError::Invalid(err) => ErrorReply::invalid(err),
        PublishError::NotStored(message) => {
            ErrorReply::not_stored(prepared.event_type.as_str(), message)
        }
    })
}
