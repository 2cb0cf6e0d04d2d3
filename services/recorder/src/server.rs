//! Serving one recording service over the NATS services API.
//!
//! Each request is handled in its own task (up to a limit), because a
//! request waits for a JetStream acknowledgement and the broker's throughput
//! comes from many publishes in flight, never one at a time.

use std::{sync::Arc, time::Duration};

use async_nats::{HeaderMap, jetstream, service::ServiceExt};
use bytes::Bytes;
use futures::StreamExt;
use prolo_bus::{PublishError, Publisher, Shutdown, StreamSettings, ensure_stream};
use prolo_schemas::EventType;
use tokio::{sync::Semaphore, task::JoinSet};
use tracing::Instrument;

use crate::{
    commands::{COMMAND_PREFIX, ServiceSpec},
    idempotency::{ClaimError, Claimed, Claims, request_sha256},
    reply::ErrorReply,
    request,
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
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            publish_deadline: Duration::from_secs(5),
            max_in_flight: 1024,
            stream: StreamSettings::default(),
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
    let publisher = Publisher::new(js, settings.publish_deadline);

    let service = client
        .service_builder()
        .description(spec.description)
        .start(spec.name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| ServeError::Register(spec.name, e.to_string()))?;
    let group = service.group(COMMAND_PREFIX);
    let mut endpoints = Vec::new();
    for command in spec.commands {
        let endpoint = group
            .endpoint_builder()
            .name(command.endpoint_name())
            .add(command.endpoint_subject())
            .await
            .map_err(|e| ServeError::Register(spec.name, e.to_string()))?;
        endpoints.push(endpoint.map(move |request| (command.event_type, request)));
    }
    let mut requests = futures::stream::select_all(endpoints);
    tracing::info!(
        service = spec.name,
        commands = spec.commands.len(),
        "recording service ready"
    );

    let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let mut in_flight = JoinSet::new();
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            next = requests.next() => next,
        };
        let Some((event_type, request)) = next else {
            break;
        };
        // Bounded concurrency: wait here (not in the task) so that excess
        // requests queue in NATS rather than in memory.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let publisher = publisher.clone();
        let claims = claims.clone();
        in_flight.spawn(async move {
            handle(spec.name, &publisher, &claims, event_type, request).await;
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

/// Handles one request: parse, stamp, claim its idempotency key (if any),
/// publish, reply.
async fn handle(
    source: &str,
    publisher: &Publisher,
    claims: &Claims,
    event_type: EventType,
    request: async_nats::service::Request,
) {
    let outcome = async {
        let body = &request.message.payload;
        let parsed = request::parse(event_type, body).map_err(ErrorReply::invalid)?;
        request::check_clinic(event_type, &parsed, &request.message.subject)
            .map_err(ErrorReply::invalid)?;
        let key = parsed.idempotency_key.clone();
        let mut envelope = request::stamp(event_type, source, parsed, chrono::Utc::now())
            .map_err(ErrorReply::invalid)?;
        let span = tracing::info_span!(
            "record",
            event_type = %event_type,
            event_id = %envelope.event_id,
            correlation_id = %envelope.correlation_id,
        );
        let Some(key) = key else {
            return publish(publisher, event_type, &envelope)
                .instrument(span)
                .await;
        };
        let digest = request_sha256(event_type, body);
        let claimed = claims
            .claim(&envelope.clinic_id, &key, &digest, envelope.event_id)
            .instrument(span.clone())
            .await
            .map_err(|err| match err {
                ClaimError::Conflict { event_id } => {
                    ErrorReply::idempotency_conflict(event_type.as_str(), event_id, err.to_string())
                }
                ClaimError::Unavailable(message) => {
                    ErrorReply::not_stored(event_type.as_str(), message)
                }
            })?;
        match claimed {
            Claimed::Stored(recorded) => Ok(recorded),
            Claimed::Publish { event_id, revision } => {
                envelope.event_id = event_id;
                let recorded = publish(publisher, event_type, &envelope)
                    .instrument(span.clone())
                    .await?;
                claims
                    .settle(&envelope.clinic_id, &key, &digest, revision, &recorded)
                    .instrument(span)
                    .await;
                Ok(recorded)
            }
        }
    }
    .await;
    let sent = match outcome {
        Ok(recorded) => {
            tracing::debug!(event_id = %recorded.event_id, seq = recorded.stream_seq, "recorded");
            let body = serde_json::to_vec(&recorded).unwrap_or_default();
            request.respond(Ok(Bytes::from(body))).await
        }
        Err(reply) => {
            tracing::info!(event_type = %event_type, code = %reply.error.code, message = %reply.error.message, "request refused");
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

/// Publishes and waits for the acknowledgement; the reply on failure.
async fn publish(
    publisher: &Publisher,
    event_type: EventType,
    envelope: &prolo_schemas::Envelope,
) -> Result<prolo_bus::Recorded, ErrorReply> {
    publisher.publish(envelope).await.map_err(|err| match err {
        PublishError::Invalid(err) => ErrorReply::invalid(err),
        PublishError::NotStored(message) => ErrorReply::not_stored(event_type.as_str(), message),
    })
}

/// Header values cannot hold line breaks.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
