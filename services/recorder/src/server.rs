//! Serving one recording service over the NATS services API.
//!
//! Each request is handled in its own task (up to a limit), because a
//! request waits for a JetStream acknowledgement and the broker's throughput
//! comes from many publishes in flight, never one at a time.

use std::{sync::Arc, time::Duration};

use async_nats::{HeaderMap, jetstream, service::ServiceExt};
use bytes::Bytes;
use futures::StreamExt;
use prolo_bus::{Publisher, Recorded, Shutdown, StreamSettings, ensure_stream};
use prolo_schemas::EventType;
use tokio::{sync::Semaphore, task::JoinSet};
use tracing::Instrument;

use crate::{
    batch,
    commands::{BATCH_VERB, COMMAND_PREFIX, ServiceSpec},
    idempotency::Claims,
    identity::{Proven, Verifier},
    prepared::{AfterClaim, Prepared, publish},
    reply::ErrorReply,
};

/// How a recording service runs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// How long a request may wait for JetStream before "not stored, retry".
    pub publish_deadline: Duration,
    /// Requests handled at once; more wait in the subscription.
    pub max_in_flight: usize,
    /// The stream to check or create at start.
    pub stream: StreamSettings,
    /// Whose tokens prove who acts; without it the body's `actor` is
    /// recorded as claimed, with no proof (development only).
    pub identity: Option<Arc<Verifier>>,
    /// The key that seals every stored event, so that the fold can tell
    /// the recorder's events from anything else on the stream; without
    /// it events are stored unsealed (development only).
    pub seal: Option<Arc<prolo_bus::SealKey>>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            publish_deadline: Duration::from_secs(5),
            max_in_flight: 1024,
            stream: StreamSettings::default(),
            identity: None,
            seal: None,
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The stream is missing and cannot be made, or is unsafe.
    #[error(transparent)]
    Stream(#[from] prolo_bus::StreamError),
    /// The services API refused to register.
    #[error("registering the {0} service: {1}")]
    Register(&'static str, String),
}

/// Runs `spec` until `shutdown`: answers its commands, then stops taking
/// requests and finishes those in flight.
pub async fn serve(
    client: async_nats::Client,
    spec: &'static ServiceSpec,
    settings: ServeSettings,
    mut shutdown: Shutdown,
) -> Result<(), ServeError> {
    let js = jetstream::new(client.clone());
    // The bucket gets as many replicas as the stream has (as found, not as asked).
    let replicas = ensure_stream(&js, &settings.stream)
        .await?
        .cached_info()
        .config
        .num_replicas;
    let claims = Claims::new(js.clone(), replicas);
    // Opened in the background: a bucket not ready yet (a cluster still
    // electing) must not keep the service from answering unkeyed requests.
    tokio::spawn({
        let claims = claims.clone();
        async move {
            if let Err(e) = claims.ready().await {
                tracing::warn!(error = %e, "idempotency keys not available yet; keyed requests are answered \"not stored, retry\" until they are");
            }
        }
    });
    let publisher =
        Publisher::new(js.clone(), settings.publish_deadline).sealed_with(settings.seal.clone());
    // Reads the stream: the event a signature signs.
    let reader = js;
    match &settings.seal {
        Some(key) => tracing::info!(
            service = spec.name,
            key = key.id(),
            "sealing every stored event"
        ),
        None => tracing::warn!(
            service = spec.name,
            "events are stored unsealed: a fold that checks seals quarantines them"
        ),
    }
    if settings.identity.is_none() {
        tracing::warn!(
            service = spec.name,
            "identities are not verified: every event's actor is recorded as the request claims it, without proof"
        );
    }

    let service = client
        .service_builder()
        .description(spec.description)
        .start(spec.name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| ServeError::Register(spec.name, e.to_string()))?;
    let group = service.group(COMMAND_PREFIX);
    let mut endpoints = Vec::new();
    let register = |name: String, subject: String, endpoint: Endpoint| {
        let group = &group;
        async move {
            group
                .endpoint_builder()
                .name(name)
                .add(subject)
                .await
                .map(|added| added.map(move |request| (endpoint, request)))
                .map_err(|e| ServeError::Register(spec.name, e.to_string()))
        }
    };
    for command in spec.commands {
        endpoints.push(
            register(
                command.endpoint_name(),
                command.endpoint_subject(),
                Endpoint::One(command.event_type),
            )
            .await?,
        );
    }
    if spec.batch {
        endpoints.push(
            register(
                BATCH_VERB.to_owned(),
                format!("*.{BATCH_VERB}"),
                Endpoint::Batch,
            )
            .await?,
        );
    }
    let mut requests = futures::stream::select_all(endpoints);
    tracing::info!(
        service = spec.name,
        commands = spec.commands.len(),
        "recording service ready"
    );

    let refusals = Arc::new(crate::refusals::Refusals::new(publisher.clone(), spec.name));
    let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let mut in_flight = JoinSet::new();
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            next = requests.next() => next,
        };
        let Some((endpoint, request)) = next else {
            break;
        };
        // Bounded concurrency: wait here (not in the task) so that excess
        // requests queue in NATS rather than in memory.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let publisher = publisher.clone();
        let claims = claims.clone();
        let client = client.clone();
        let identity = settings.identity.clone();
        let refusals = refusals.clone();
        let reader = reader.clone();
        in_flight.spawn(async move {
            let subject = request.message.subject.to_string();
            match endpoint {
                Endpoint::One(event_type) => {
                    let proven = prove(identity.as_deref(), &request, Some(event_type));
                    let outcome = match &proven {
                        Ok(proven) => {
                            record_one(spec.name, (&publisher, &reader), &claims, event_type, &request, proven.as_ref())
                                .await
                                .map(|recorded| {
                                    tracing::debug!(event_id = %recorded.event_id, seq = recorded.stream_seq, "recorded");
                                    serde_json::to_vec(&recorded).unwrap_or_default()
                                })
                        }
                        Err(refused) => Err(refused.clone()),
                    };
                    if let Err(reply) = &outcome {
                        let proven = proven.as_ref().ok().and_then(Option::as_ref);
                        refusals.record(&subject, proven, reply).await;
                    }
                    respond(request, Some(event_type), outcome).await;
                }
                Endpoint::Batch => {
                    let proven = prove(identity.as_deref(), &request, None);
                    let outcome = match proven.clone() {
                        Ok(proven) => batch::record(
                            spec.name,
                            &client,
                            &publisher,
                            &claims,
                            &request.message.subject,
                            request.message.payload.clone(),
                            proven,
                        )
                        .await,
                        Err(refused) => Err(refused),
                    };
                    let proven = proven.as_ref().ok().and_then(Option::as_ref);
                    match &outcome {
                        Err(reply) => refusals.record(&subject, proven, reply).await,
                        // Each refused event of the batch, as its own command would be.
                        Ok(reply) => {
                            for (index, error) in reply.results.iter().filter_map(|r| Some((r.index, r.error.as_ref()?))) {
                                let mut refused = crate::reply::ErrorReply { error: error.clone() };
                                refused.error.message = format!("event {index}: {}", refused.error.message);
                                refusals.record(&subject, proven, &refused).await;
                            }
                        }
                    }
                    let outcome = outcome.map(|reply| serde_json::to_vec(&reply).unwrap_or_default());
                    respond(request, None, outcome).await;
                }
            }
            drop(permit);
        });
        // Reap finished tasks so the set does not grow without bound.
        while in_flight.try_join_next().is_some() {}
    }
    // Stop taking requests: unsubscribe every endpoint, then finish what
    // was taken.
    drop(requests);
    let _ = service.stop().await;
    tracing::info!(
        service = spec.name,
        in_flight = in_flight.len(),
        "stopping; finishing in-flight requests"
    );
    while in_flight.join_next().await.is_some() {}
    Ok(())
}

/// What an endpoint records.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// One event of this type per request.
    One(EventType),
    /// Up to 1,000 events of any types per request.
    Batch,
}

/// Who the request's token proves, when the service verifies identities
/// (`None` when it does not); 401 when it proves no one.
fn prove(
    identity: Option<&Verifier>,
    request: &async_nats::service::Request,
    event_type: Option<EventType>,
) -> Result<Option<Proven>, ErrorReply> {
    let Some(verifier) = identity else {
        return Ok(None);
    };
    verifier
        .verify_headers(request.message.headers.as_ref())
        .map(Some)
        .map_err(|refused| ErrorReply::unauthenticated(event_type.map(|t| t.as_str()), &refused))
}

/// One event: parse, stamp, claim its idempotency key (if any), publish,
/// settle the claim.
async fn record_one(
    source: &str,
    (publisher, reader): (&Publisher, &jetstream::Context),
    claims: &Claims,
    event_type: EventType,
    request: &async_nats::service::Request,
    proven: Option<&Proven>,
) -> Result<Recorded, ErrorReply> {
    let mut prepared = Prepared::new(
        source,
        event_type,
        &request.message.payload,
        &request.message.subject,
        proven,
    )?;
    let span = prepared.span();
    if let prolo_schemas::Payload::RecordSigned(signed) = &prepared.envelope.payload {
        crate::signed::check_stored(reader, &prepared.envelope, signed)
            .instrument(span.clone())
            .await?;
    }
    let revision = match prepared.claim(claims).instrument(span.clone()).await? {
        AfterClaim::Stored(recorded) => return Ok(recorded),
        AfterClaim::Publish(revision) => revision,
    };
    let recorded = publish(publisher, &prepared)
        .instrument(span.clone())
        .await?;
    prepared
        .settle(claims, revision, &recorded)
        .instrument(span)
        .await;
    Ok(recorded)
}

/// Sends the answer: the body on success; on failure the services API's
/// error headers and the error body.
async fn respond(
    request: async_nats::service::Request,
    event_type: Option<EventType>,
    outcome: Result<Vec<u8>, ErrorReply>,
) {
    if let Some(metrics) = prolo_bus::metrics::active() {
        let result = match &outcome {
            Ok(_) => "recorded".to_owned(),
            Err(reply) => reply.error.code.clone(),
        };
        if result == "idempotency_conflict" {
            metrics.idempotency_conflicts.inc();
        }
        metrics
            .requests
            .get_or_create(&prolo_bus::metrics::RequestLabels {
                command: event_type.map_or("batch", |t| t.as_str()).to_owned(),
                outcome: result,
            })
            .inc();
    }
    let sent = match outcome {
        Ok(body) => request.respond(Ok(Bytes::from(body))).await,
        Err(reply) => {
            tracing::info!(event_type = event_type.map(|t| t.as_str()), code = %reply.error.code, message = %reply.error.message, "request refused");
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::service::NATS_SERVICE_ERROR,
                first_line(&reply.error.message),
            );
            headers.insert(
                async_nats::service::NATS_SERVICE_ERROR_CODE,
                reply.error.status.to_string().as_str(),
            );
            let body = serde_json::to_vec(&reply).unwrap_or_default();
            request
                .respond_with_headers(Ok(Bytes::from(body)), headers)
                .await
        }
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not send the reply (the caller may have gone)");
    }
}

/// Header values cannot hold line breaks.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
