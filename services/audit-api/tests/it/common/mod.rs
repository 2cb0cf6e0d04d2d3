//! What the API's tests share: the API on its own database, started on a
//! real nats-server, with a compliance token for every clinic and a safety
//! token for riverside.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly by design

use std::time::Duration;

use prolo_audit_api::{ApiSettings, Principals};
use prolo_projector::{ProjectorSettings, Store};
use prolo_tests::NatsServer;

/// Every clinic, compliance role.
pub const COMPLIANCE: &str = "console-compliance-token-0123";
/// Riverside only, safety role.
pub const SAFETY: &str = "console-safety-token-0123456";

/// The default tokens: [`COMPLIANCE`] for every clinic, [`SAFETY`] for riverside.
pub fn tokens() -> String {
    format!(
        r#"{{"tokens":[
            {{"token":"{COMPLIANCE}","principal":"officer-lee","role":"compliance","clinics":["*"]}},
            {{"token":"{SAFETY}","principal":"reviewer-ng","role":"safety","clinics":["riverside"]}}]}}"#
    )
}

/// How a test or benchmark starts the API.
pub struct ApiOptions {
    /// The fold's durable consumer.
    pub consumer: String,
    /// The tokens file's JSON.
    pub tokens: String,
    /// sled's cache.
    pub cache_bytes: u64,
    /// The bound on requests answered at once.
    pub max_in_flight: usize,
    /// How long the fold waits on an idle stream.
    pub idle_wait: Duration,
    /// Whether `/v1/status` shows the broker's fsync policy (probed).
    pub probe_broker: bool,
    /// The recording services' key: the API seals its access events with
    /// it and its fold quarantines what it did not seal (`None`: unchecked).
    pub seal: Option<std::sync::Arc<prolo_bus::SealKey>>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            consumer: "audit-api".into(),
            tokens: tokens(),
            cache_bytes: 32 << 20,
            max_in_flight: prolo_audit_api::DEFAULT_MAX_IN_FLIGHT,
            idle_wait: Duration::from_millis(50),
            probe_broker: false,
            seal: None,
        }
    }
}

/// A running audit API on its own database.
pub struct StartedApi {
    /// `http://<addr>`.
    pub base: String,
    /// Its read models (the API folds into them).
    pub store: Store,
    /// Its database's directory.
    pub db: tempfile::TempDir,
    /// What stops it.
    pub trigger: prolo_bus::Trigger,
    /// Its task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the audit API on a fresh database against `nats`.
pub async fn start_api(nats: &NatsServer, options: ApiOptions) -> StartedApi {
    let principals = Principals::parse(&options.tokens).unwrap();
    let db = tempfile::tempdir().unwrap();
    let client = nats.client().await.unwrap();
    let broker = if options.probe_broker {
        Some(prolo_bus::durability::probe(&client, &nats.monitor_url().unwrap()).await)
    } else {
        None
    };
    let settings = ApiSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: db.path().join("api.sled"),
        cache_bytes: options.cache_bytes,
        projector: ProjectorSettings {
            consumer: options.consumer,
            idle_wait: options.idle_wait,
            findings: prolo_projector::rules::findings::FindingSettings {
                seals: options
                    .seal
                    .as_deref()
                    .map(|key| std::sync::Arc::new(prolo_bus::Keyring::of(&[key]))),
                ..Default::default()
            },
            ..ProjectorSettings::default()
        },
        broker,
        max_in_flight: options.max_in_flight,
        seal: options.seal,
    };
    let store = Store::open(&settings.db, settings.cache_bytes).unwrap();
    let (trigger, shutdown) = prolo_bus::Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let store = store.clone();
        async move {
            prolo_audit_api::run(store, client, principals, settings, shutdown, |addr| {
                let _ = tx.send(addr);
            })
            .await
            .unwrap();
        }
    });
    StartedApi {
        base: format!("http://{}", rx.await.unwrap()),
        store,
        db,
        trigger,
        task,
    }
}

/// The audit API on its own database; its address.
pub async fn api(nats: &NatsServer) -> (String, tempfile::TempDir) {
    let (base, db, trigger) = api_with(nats, "audit-api").await;
    std::mem::forget(trigger);
    (base, db)
}

/// The audit API folding with its own durable `consumer`; its address,
/// its database, and what stops it.
pub async fn api_with(
    nats: &NatsServer,
    consumer: &str,
) -> (String, tempfile::TempDir, prolo_bus::Trigger) {
    let options = ApiOptions {
        consumer: consumer.into(),
        ..ApiOptions::default()
    };
    let started = start_api(nats, options).await;
    (started.base, started.db, started.trigger)
}

/// Waits until the API at `base` is ready and has folded `seq`.
pub async fn caught_up(base: &str, seq: u64) {
    caught_up_within(base, seq, Duration::from_secs(60)).await
}

/// Waits until the API at `base` is ready and has folded `seq`; panics
/// after `within`.
pub async fn caught_up_within(base: &str, seq: u64, within: Duration) {
    let http = reqwest::Client::new();
    let give_up = std::time::Instant::now() + within;
    loop {
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200;
        let status = get_json(base, COMPLIANCE, "/v1/status").await;
        if ready && status["applied_seq"].as_u64() >= Some(seq) {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "{base} never caught up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON answer of `GET base+path` with `token`.
pub async fn get_json(base: &str, token: &str, path: &str) -> serde_json::Value {
    let text = get_text(base, token, path).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// The answer's bytes, as text, of `GET base+path` with `token`.
pub async fn get_text(base: &str, token: &str, path: &str) -> String {
    get(base, Some(token), path).await.text().await.unwrap()
}

/// The response to `GET base+path`, with `token` if any.
pub async fn get(base: &str, token: Option<&str>, path: &str) -> reqwest::Response {
    let request = reqwest::Client::new().get(format!("{base}{path}"));
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

/// Asks `GET base+path` (as compliance) until `done` says its answer is
/// what the test waits for; panics with the last answer after `within`.
pub async fn answer_when(
    base: &str,
    path: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let give_up = std::time::Instant::now() + within;
    loop {
        let answer = get_json(base, COMPLIANCE, path).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "{path} never became ready: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
