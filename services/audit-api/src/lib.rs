//! The audit query service: an HTTP API (axum) over the read models, for
//! compliance officers and safety reviewers.
//!
//! The service owns its read models: it runs the projector's fold on its
//! own database (with its own durable consumer) and answers from it, so
//! that no other process needs to share the sled files. Every read of
//! patient data is recorded as an `access.recorded` event before it is
//! served ([`access`]); bearer tokens map to principals and roles
//! ([`auth`]).

pub mod access;
pub mod answer;
pub mod asyncapi;
pub mod auth;
pub mod console;
pub mod error;
pub mod fhir;
pub mod openapi;
pub mod render;
pub mod routes;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use async_nats::jetstream;
use prolo_bus::{Publisher, Shutdown};
use prolo_projector::{ProjectorSettings, Store};

pub use auth::Principals;
pub use routes::{AppState, router};

/// How the read side runs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The read models' database.
    pub db: PathBuf,
    /// sled cache, bytes.
    pub cache_bytes: u64,
    /// The fold's settings (its consumer is `audit-api`).
    pub projector: ProjectorSettings,
    /// What was found of the broker's fsync policy at start (shown by `status`).
    pub broker: Option<prolo_bus::BrokerDurability>,
    /// Requests answered at once, over all routes; more wait their turn
    /// (within the request timeout). Bounds the memory and the blocking
    /// threads a burst can take.
    pub max_in_flight: usize,
    /// The key that seals the access events the API records, so that the
    /// fold can tell them from anything else on the stream.
    pub seal: Option<std::sync::Arc<prolo_bus::SealKey>>,
}

/// Sequences the read models may be behind the stream and still be ready
/// (`/readyz`): a few seconds of a busy group's recording.
pub const READY_LAG: u64 = 10_000;

/// Requests answered at once unless configured: a few per blocking thread
/// of a small machine, far above what a compliance office sends.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Why the read side stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiRunError {
    /// The database would not open.
    #[error("opening the read models: {0}")]
    Store(#[from] prolo_projector::store::StoreError),
    /// The fold failed.
    #[error("projector: {0}")]
    Projector(#[from] prolo_projector::ProjectorError),
    /// The listener failed.
    #[error("HTTP on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
    /// Published example tokens on an address others can reach.
    #[error(
        "the tokens include the public examples of deploy/tokens.example.json, and the API would \
         listen on {0}, which is not loopback: use tokens of your own (or listen on 127.0.0.1)"
    )]
    ExampleTokens(SocketAddr),
}

impl ApiSettings {
    /// Opens the read models' database ([`ApiSettings::db`]), waiting a
    /// few seconds for another process's lock.
    pub fn open_store(&self) -> Result<Store, prolo_projector::store::StoreError> {
        Store::open(&self.db, self.cache_bytes)
    }
}

/// Runs the fold and the API on `store` until `shutdown` (the caller may
/// read it too). `ready` is told the address actually bound (useful with
/// port 0).
pub async fn run(
    store: Store,
    client: async_nats::Client,
    principals: Principals,
    settings: ApiSettings,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ApiRunError> {
    if !settings.listen.ip().is_loopback() && principals.has_example_tokens() {
        return Err(ApiRunError::ExampleTokens(settings.listen));
    }
    let js = jetstream::new(client.clone());
    let state = AppState {
        store: store.clone(),
        principals,
        access: access::AccessLog::new(
            Publisher::new(js.clone(), Duration::from_secs(5)).sealed_with(settings.seal.clone()),
        ),
        js,
        broker: settings.broker.clone(),
        refusals: Default::default(),
        consumer: settings.projector.consumer.clone(),
        ready_lag: READY_LAG,
        seals: settings.projector.findings.seals.clone(),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| ApiRunError::Http(settings.listen, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ApiRunError::Http(settings.listen, e))?;
    ready(bound);
    tracing::info!(%bound, "audit API listening");
    let fold = tokio::spawn(prolo_projector::run(
        client,
        store,
        settings.projector,
        shutdown.clone(),
    ));
    let mut stop = shutdown.clone();
    let served = axum::serve(
        listener,
        router(state, settings.max_in_flight, console::routes())
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.wait().await })
    .await
    .map_err(|e| ApiRunError::Http(bound, e));
    match fold.await {
        Ok(result) => result?,
        Err(e) => tracing::error!(error = %e, "the fold task panicked"),
    }
    served
}
