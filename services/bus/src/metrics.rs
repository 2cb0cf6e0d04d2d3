//! Prometheus metrics of every part, in one registry per process (so `up`,
//! which runs every service, serves them all at once): recording requests
//! and refusals, publish-to-acknowledgement latency, idempotency
//! conflicts, the fold's rate, lag, batch commit time and quarantine,
//! access events, HTTP requests by route and status, and the last
//! verification. The audit API serves them at `/metrics`; a service
//! without HTTP serves them at `PROLO_METRICS_LISTEN` ([`serve`]).

use std::sync::OnceLock;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A recording request's command and outcome (`recorded` or the error code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The event type (or `batch`).
    pub command: String,
    /// `recorded`, or the stable error code.
    pub outcome: String,
}

/// What became of a folded message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FoldLabels {
    /// `applied` or `quarantined`.
    pub outcome: String,
}

/// An access event's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccessLabels {
    /// `recorded` or `refused`.
    pub kind: String,
}

/// An HTTP answer's route (its template) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template, e.g. `/v1/clinics/{clinic}/findings`.
    pub route: String,
    /// The status code.
    pub status: u16,
}

/// An HTTP route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
}

fn seconds() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 15,
    ))
}

/// Every metric.
pub struct Metrics {
    /// Recording requests by command and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Publish to JetStream acknowledgement, seconds.
    pub publish_ack_seconds: Histogram,
    /// Requests refused because their idempotency key was used for another request.
    pub idempotency_conflicts: Counter,
    /// Messages folded, by outcome.
    pub folded: Family<FoldLabels, Counter>,
    /// Messages the fold has not reached yet.
    pub lag: Gauge,
    /// Committing a folded batch (one flushed sled batch), seconds.
    pub batch_commit_seconds: Histogram,
    /// Messages in quarantine.
    pub quarantined: Gauge,
    /// Access events written by the audit API, by kind.
    pub access_events: Family<AccessLabels, Counter>,
    /// HTTP answers by route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP answer time by route, seconds.
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// When the chain was last verified (Unix seconds).
    pub last_verification_timestamp: Gauge,
    /// 1 when the last verification found no difference, 0 when it did.
    pub last_verification_ok: Gauge,
    registry: Registry,
}

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns counting on or off (on by default; the benchmarks compare both).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The metrics to count into, unless counting is off.
pub fn active() -> Option<&'static Metrics> {
    ENABLED
        .load(std::sync::atomic::Ordering::Relaxed)
        .then(metrics)
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("prolo");
        let m = Metrics {
            requests: Family::default(),
            publish_ack_seconds: seconds(),
            idempotency_conflicts: Counter::default(),
            folded: Family::default(),
            lag: Gauge::default(),
            batch_commit_seconds: seconds(),
            quarantined: Gauge::default(),
            access_events: Family::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(seconds),
            last_verification_timestamp: Gauge::default(),
            last_verification_ok: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "recording_requests",
            "Recording requests by command and outcome",
            m.requests.clone(),
        );
        registry.register(
            "publish_ack_seconds",
            "Publish to JetStream acknowledgement",
            m.publish_ack_seconds.clone(),
        );
        registry.register(
            "idempotency_conflicts",
            "Requests refused: their idempotency key named another request",
            m.idempotency_conflicts.clone(),
        );
        registry.register(
            "fold_messages",
            "Messages folded, by outcome",
            m.folded.clone(),
        );
        registry.register(
            "fold_lag_messages",
            "Messages the fold has not reached yet",
            m.lag.clone(),
        );
        registry.register(
            "fold_batch_commit_seconds",
            "Committing a folded batch",
            m.batch_commit_seconds.clone(),
        );
        registry.register(
            "quarantined_messages",
            "Messages in quarantine",
            m.quarantined.clone(),
        );
        registry.register(
            "access_events",
            "Access events written, by kind",
            m.access_events.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP answers by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP answer time by route",
            m.http_seconds.clone(),
        );
        registry.register(
            "last_verification_timestamp_seconds",
            "When the chain was last verified",
            m.last_verification_timestamp.clone(),
        );
        registry.register(
            "last_verification_ok",
            "1 when the last verification found no difference",
            m.last_verification_ok.clone(),
        );
        Metrics { registry, ..m }
    })
}

/// The metrics in the text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    if encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}

/// The media type of [`render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listen` until `shutdown` (for the services
/// that have no HTTP of their own).
pub async fn serve(
    listen: std::net::SocketAddr,
    mut shutdown: crate::Shutdown,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "metrics at /metrics");
    loop {
        let (mut socket, _) = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let asked = String::from_utf8_lossy(&request[..n]);
            let (status, body) = if asked.starts_with("GET /metrics ") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "only /metrics here\n".to_owned())
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        });
    }
}

/// Serves the metrics at `PROLO_METRICS_LISTEN` (e.g. `127.0.0.1:9464`)
/// when it is set, until `shutdown`.
pub fn serve_from_env(shutdown: crate::Shutdown) {
    let Ok(listen) = std::env::var("PROLO_METRICS_LISTEN") else {
        return;
    };
    match listen.parse() {
        Ok(addr) => {
            tokio::spawn(async move {
                if let Err(e) = serve(addr, shutdown).await {
                    tracing::error!(error = %e, %addr, "metrics not served");
                }
            });
        }
        Err(e) => tracing::error!(%listen, error = %e, "PROLO_METRICS_LISTEN is not an address"),
    }
}
