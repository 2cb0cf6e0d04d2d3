//! The test harness: a real `nats-server` with JetStream per test (or test
//! group), on a free loopback port with its own temporary store directory.
//!
//! Tests never touch a broker they did not start: each [`NatsServer`] is its
//! own process, stopped on drop, and can be killed with SIGKILL and
//! restarted on the same port and store to test crashes. Every server runs
//! the pinned nats-server with fsync before acknowledgement
//! (`sync_interval: always`) unless a test asks for the lazy default to
//! measure or show what that costs.

use std::{
    path::{Path, PathBuf},
    sync::Once,
    time::{Duration, Instant},
};

pub mod browser;
pub mod edge;
pub mod link;

use prolo_bus::local_server::LocalNatsServer;
pub use prolo_bus::local_server::LocalServerError as HarnessError;
pub use prolo_bus::local_server::ServerOptions;
pub use prolo_bus::local_server::{FsyncPolicy, free_port};

/// How often a start is retried on fresh ports when the server exits at
/// once (its port was taken between choosing and binding it).
const START_ATTEMPTS: usize = 5;

/// Prints, once per test binary, which nats-server the tests run against.
/// Written to stderr directly: the test runner's capture would hide it.
fn print_server_version_once() {
    use std::io::Write;
    static PRINTED: Once = Once::new();
    PRINTED.call_once(|| {
        let line = match prolo_bus::local_server::checked_nats_server() {
            Ok((bin, version)) => format!(
                "test harness: nats-server {version} ({}), JetStream fsync before ack",
                bin.display()
            ),
            Err(e) => format!("test harness: {e}"),
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

/// A running nats-server with JetStream, owned by one test.
pub struct NatsServer {
    process: Option<LocalNatsServer>,
    port: u16,
    store: tempfile::TempDir,
    options: ServerOptions,
    probe_auth: Option<String>,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store and waits until
    /// JetStream answers.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with(ServerOptions::default(), None).await
    }

    /// Like [`NatsServer::start`] with the given fsync policy.
    pub async fn start_with_fsync(fsync: FsyncPolicy) -> Result<Self, HarnessError> {
        Self::start_with(
            ServerOptions {
                fsync,
                ..ServerOptions::default()
            },
            None,
        )
        .await
    }

    /// Like [`NatsServer::start`] with `config` included in the server's
    /// configuration (e.g. users and permissions): readiness is probed as
    /// `user:password` when given.
    pub async fn start_with_config(
        config: &Path,
        probe_auth: Option<&str>,
    ) -> Result<Self, HarnessError> {
        Self::start_with(
            ServerOptions {
                include: Some(config.to_path_buf()),
                ..ServerOptions::default()
            },
            probe_auth,
        )
        .await
    }

    /// Like [`NatsServer::start`] with `options` (an include, a JetStream
    /// domain, …): readiness is probed as `user:password` when given.
    pub async fn start_with(
        options: ServerOptions,
        probe_auth: Option<&str>,
    ) -> Result<Self, HarnessError> {
        print_server_version_once();
        let mut server = Self {
            process: None,
            port: free_port(),
            store: temp_store()?,
            options,
            probe_auth: probe_auth.map(str::to_owned),
        };
        let mut attempt = 1;
        loop {
            match server.spawn().await {
                Err(HarnessError::ExitedAtStart { .. }) if attempt < START_ATTEMPTS => {
                    attempt += 1;
                    server.port = free_port();
                }
                other => return other.map(|()| server),
            }
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The monitoring endpoint (`/varz`), while it runs.
    pub fn monitor_url(&self) -> Option<String> {
        self.process.as_ref().map(LocalNatsServer::monitor_url)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(LocalNatsServer::pid)
    }

    /// A plain client connection.
    pub async fn client(&self) -> Result<async_nats::Client, HarnessError> {
        async_nats::connect(self.url())
            .await
            .map_err(|e| HarnessError::Failed(format!("connect {}: {e}", self.url())))
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on the same port and store (killing it first if it runs).
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill();
        self.spawn().await
    }

    /// Restarts it on the same port and store with another fsync policy
    /// (benchmarks load a store quickly, then measure under `always`).
    pub async fn restart_with_fsync(&mut self, fsync: FsyncPolicy) -> Result<(), HarnessError> {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(10));
        }
        self.options.fsync = fsync;
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let mut process = LocalNatsServer::spawn(self.port, self.store.path(), &self.options)?;
        if let Some(auth) = &self.probe_auth {
            process = process.with_probe_auth(auth);
        }
        process.wait_ready(Duration::from_secs(20)).await?;
        self.process = Some(process);
        Ok(())
    }
}

fn temp_store() -> Result<tempfile::TempDir, HarnessError> {
    tempfile::Builder::new()
        .prefix("prolo-nats-")
        .tempdir()
        .map_err(|e| HarnessError::Failed(format!("temp dir: {e}")))
}

/// What a server's `/varz` says of its JetStream fsync policy.
pub async fn fsync_of(monitor_url: &str) -> prolo_bus::Fsync {
    prolo_bus::durability::varz_fsync(monitor_url)
        .await
        .unwrap_or_else(|reason| prolo_bus::Fsync::Unknown { reason })
}

/// A JetStream cluster of nats-server nodes on loopback ports, each with its
/// own store, any of which can be killed and restarted.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    process: Option<LocalNatsServer>,
    port: u16,
    options: ServerOptions,
    store: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until each
    /// answers; on a port taken meanwhile, the whole cluster is started
    /// again on fresh ports.
    pub async fn start(size: usize) -> Result<Self, HarnessError> {
        print_server_version_once();
        let mut attempt = 1;
        loop {
            match Self::try_start(size).await {
                Err(HarnessError::ExitedAtStart { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn try_start(size: usize) -> Result<Self, HarnessError> {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let routes: Vec<String> = cluster_ports
                .iter()
                .filter(|p| *p != cluster_port)
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            let args = vec![
                "--server_name".into(),
                format!("prolo-node-{i}"),
                "--cluster_name".into(),
                "prolo".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".into(),
                routes.join(","),
            ];
            nodes.push(ClusterNode {
                process: None,
                port: free_port(),
                options: ServerOptions {
                    args,
                    ..ServerOptions::default()
                },
                store: temp_store()?,
            });
        }
        // All nodes first: none can elect a JetStream leader alone.
        for node in &mut nodes {
            node.process = Some(LocalNatsServer::spawn(
                node.port,
                node.store.path(),
                &node.options,
            )?);
        }
        for node in &mut nodes {
            if let Some(process) = node.process.as_mut() {
                process.wait_ready(Duration::from_secs(30)).await?;
            }
        }
        Ok(Self { nodes })
    }

    /// Every node's URL, comma-separated (what a client is given).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect();
        urls.join(",")
    }

    /// Every running node's monitoring endpoint.
    pub fn monitor_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.as_ref().map(LocalNatsServer::monitor_url))
            .collect()
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Starts node `i` again on its port and store.
    pub async fn restart(&mut self, i: usize) -> Result<(), HarnessError> {
        self.kill(i);
        let node = &mut self.nodes[i];
        let mut process = LocalNatsServer::spawn(node.port, node.store.path(), &node.options)?;
        process.wait_ready(Duration::from_secs(30)).await?;
        node.process = Some(process);
        Ok(())
    }
}

/// The Python of the tests' environment (the subscriber example, the FHIR
/// validation): `PROLO_EXAMPLE_PYTHON`, else `.tools/py-example`; made by
/// `deploy/install-python-example.sh`, which `tests/run.sh` runs.
pub fn example_python() -> PathBuf {
    let python = std::env::var("PROLO_EXAMPLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".tools/py-example/bin/python"));
    assert!(
        python.exists(),
        "no Python environment at {}: run ./deploy/install-python-example.sh (tests/run.sh does)",
        python.display()
    );
    python
}

/// The repository's root (for `deploy/` files in tests).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The recording services (the batch one too) running in this process, as `up` runs them.
pub struct Recorders {
    trigger: prolo_bus::Trigger,
    tasks: tokio::task::JoinSet<()>,
}

impl Recorders {
    /// Starts every recording service against `url` and waits until each
    /// answers `$SRV.PING`.
    pub async fn start(url: &str) -> Result<Self, HarnessError> {
        Recorders::start_with(url, prolo_recorder::ServeSettings::default()).await
    }

    /// [`Recorders::start`] with `settings` (e.g. an identity provider to
    /// trust).
    pub async fn start_with(
        url: &str,
        settings: prolo_recorder::ServeSettings,
    ) -> Result<Self, HarnessError> {
        let (trigger, shutdown) = prolo_bus::Shutdown::new();
        let mut tasks = tokio::task::JoinSet::new();
        for spec in prolo_recorder::ALL_SERVICES {
            let client = prolo_bus::connect(url, spec.name)
                .await
                .map_err(|e| HarnessError::Failed(format!("connect: {e}")))?;
            let shutdown = shutdown.clone();
            let settings = settings.clone();
            tasks.spawn(async move {
                if let Err(e) = prolo_recorder::serve(client, spec, settings, shutdown).await {
                    panic!("{} service failed: {e}", spec.name);
                }
            });
        }
        let client = prolo_bus::connect(url, "harness-ping")
            .await
            .map_err(|e| HarnessError::Failed(format!("connect: {e}")))?;
        for spec in prolo_recorder::ALL_SERVICES {
            let subject = format!("$SRV.PING.{}", spec.name);
            let give_up = Instant::now() + Duration::from_secs(10);
            while client.request(subject.clone(), "".into()).await.is_err() {
                if Instant::now() > give_up {
                    return Err(HarnessError::Failed(format!(
                        "{} did not answer PING",
                        spec.name
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(Self { trigger, tasks })
    }

    /// Stops them gracefully and waits until each has finished its in-flight requests.
    pub async fn stop(mut self) {
        self.trigger.fire();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The valid example of `event_type` from `schemas/examples/`, as recorded
/// (checked against the contract).
pub fn example_envelope(event_type: &str) -> prolo_schemas::Envelope {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../schemas/examples/{event_type}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    prolo_schemas::Envelope::from_json(&bytes).unwrap_or_else(|e| panic!("{event_type}: {e}"))
}

/// The valid example of `event_type` from `schemas/examples/`, turned into
/// a recording request: the fields the service stamps are removed.
pub fn example_request(event_type: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../schemas/examples/{event_type}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(object) = value.as_object_mut() {
        for stamped in [
            "event_id",
            "event_type",
            "schema_version",
            "recorded_at",
            "source",
        ] {
            object.remove(stamped);
        }
    }
    value
}

/// Records `request` through its recording service; panics with the
/// service's message when it is refused (tests only).
pub async fn record_ok(
    client: &async_nats::Client,
    event_type: prolo_schemas::EventType,
    request: &serde_json::Value,
) -> prolo_bus::Recorded {
    match record_with_token(client, event_type, request, None).await {
        Ok(recorded) => recorded,
        Err(refused) => panic!("{event_type} refused: {refused:?}"),
    }
}

/// Sends `request` to the service that records `event_type`, with `token`
/// as its `Authorization: Bearer` header when given; what was stored, or
/// the refusal (tests only).
pub async fn record_with_token(
    client: &async_nats::Client,
    event_type: prolo_schemas::EventType,
    request: &serde_json::Value,
    token: Option<&str>,
) -> Result<prolo_bus::Recorded, prolo_recorder::reply::ErrorReply> {
    let Some((_, command)) = prolo_recorder::command_for(event_type) else {
        panic!("no command records {event_type}");
    };
    let body = serde_json::to_vec(request).unwrap_or_default();
    let clinic = request["clinic_id"].as_str().unwrap_or_default();
    let headers = prolo_recorder::identity::bearer_headers(token);
    let sent = client
        .request_with_headers(command.subject(clinic), headers, body.into())
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) => panic!("{event_type}: request failed: {e}"),
    };
    let payload = String::from_utf8_lossy(&reply.payload).into_owned();
    if reply.headers.is_none() {
        return match serde_json::from_str(&payload) {
            Ok(recorded) => Ok(recorded),
            Err(e) => panic!("{event_type}: not a recording: {e}: {payload}"),
        };
    }
    match serde_json::from_str(&payload) {
        Ok(refused) => Err(refused),
        Err(e) => panic!("{event_type}: not an error reply: {e}: {payload}"),
    }
}

/// Records the schema's example of `event_type` through its recording
/// service (tests only).
pub async fn record_example(
    client: &async_nats::Client,
    event_type: prolo_schemas::EventType,
) -> prolo_bus::Recorded {
    let request = example_request_stored(client, event_type).await;
    record_ok(client, event_type, &request).await
}

/// [`example_request`] of `event_type`, as the recording service accepts
/// it on this stream: the example signature signs the example patient's
/// latest injection as stored (tests only; record one first).
pub async fn example_request_stored(
    client: &async_nats::Client,
    event_type: prolo_schemas::EventType,
) -> serde_json::Value {
    if event_type != prolo_schemas::EventType::RecordSigned {
        return example_request(event_type.as_str());
    }
    let injection = example_envelope("injection.given");
    let subject = match injection.subject() {
        Ok(subject) => subject.to_string(),
        Err(e) => panic!("the example injection has no subject: {e}"),
    };
    let js = async_nats::jetstream::new(client.clone());
    let last = match js.get_stream(prolo_bus::STREAM_NAME).await {
        Ok(stream) => stream.get_last_raw_message_by_subject(&subject).await,
        Err(e) => panic!("no stream: {e}"),
    };
    let Ok(last) = last else {
        panic!("record an example injection before its signature");
    };
    let stored = match prolo_schemas::Envelope::from_json(&last.payload) {
        Ok(stored) => stored,
        Err(e) => panic!("the stored injection does not decode: {e}"),
    };
    let recorded = prolo_bus::Recorded {
        event_id: stored.event_id,
        stream_seq: last.sequence,
        subject,
        duplicate: false,
    };
    signature_of(client, &recorded, prolo_schemas::EventType::InjectionGiven).await
}

/// The example signature (`record.signed`) of the event stored as
/// `recorded`, of type `event_type`, naming the SHA-256 of its bytes as
/// stored: what the recording service accepts (tests only).
pub async fn signature_of(
    client: &async_nats::Client,
    recorded: &prolo_bus::Recorded,
    event_type: prolo_schemas::EventType,
) -> serde_json::Value {
    let js = async_nats::jetstream::new(client.clone());
    let stored = match js.get_stream(prolo_bus::STREAM_NAME).await {
        Ok(stream) => stream.get_raw_message(recorded.stream_seq).await,
        Err(e) => panic!("no stream: {e}"),
    };
    let payload = match stored {
        Ok(message) => message.payload,
        Err(e) => panic!("sequence {} not stored: {e}", recorded.stream_seq),
    };
    let mut signature = example_request("record.signed");
    signature["payload"]["target"] = serde_json::json!({
        "event_id": recorded.event_id, "event_type": event_type.as_str()
    });
    signature["payload"]["signed_event_sha256"] =
        prolo_schemas::RecordSigned::sha256_of(&payload).into();
    signature
}

/// Sends `request` to the service that records `event_type` and expects a
/// refusal; the refusal's body (tests only).
pub async fn record_refused(
    client: &async_nats::Client,
    event_type: prolo_schemas::EventType,
    request: &serde_json::Value,
) -> String {
    match record_with_token(client, event_type, request, None).await {
        Ok(recorded) => panic!("{event_type} was recorded: {recorded:?}"),
        Err(refused) => serde_json::to_string(&refused).unwrap_or_default(),
    }
}

/// What most tests start with: a nats-server of their own, every
/// recording service on it, and a client to send commands with.
pub struct Stack {
    /// The server.
    pub nats: NatsServer,
    /// The recording services.
    pub recorders: Recorders,
    /// A client of the server.
    pub client: async_nats::Client,
}

impl Stack {
    /// Starts the server and the recording services; panics when they do
    /// not start (tests only).
    pub async fn start() -> Stack {
        let nats = match NatsServer::start().await {
            Ok(nats) => nats,
            Err(e) => panic!("nats-server did not start: {e}"),
        };
        let recorders = match Recorders::start(&nats.url()).await {
            Ok(recorders) => recorders,
            Err(e) => panic!("the recording services did not start: {e}"),
        };
        let client = match nats.client().await {
            Ok(client) => client,
            Err(e) => panic!("no client of the test's nats-server: {e}"),
        };
        Stack {
            nats,
            recorders,
            client,
        }
    }

    /// The server, the recording services and the client, apart.
    pub fn parts(self) -> (NatsServer, Recorders, async_nats::Client) {
        (self.nats, self.recorders, self.client)
    }
}

/// Scenario builders: a clinic's record as tests need it, made of the
/// schema's examples (patient P-1042 of riverside), recorded through the
/// recording services.
pub mod scenario {
    use prolo_schemas::EventType;
    use serde_json::json;
    use uuid::Uuid;

    use super::{example_request, record_example, record_ok};

    /// Records the example of each event type in `event_types`, in order.
    pub async fn record_examples(client: &async_nats::Client, event_types: &[EventType]) {
        for &event_type in event_types {
            record_example(client, event_type).await;
        }
    }

    /// Records the example injection, then a correction of its volume to
    /// 1.5 mL; the injection's and the correction's event ids.
    pub async fn corrected_injection(client: &async_nats::Client) -> (Uuid, Uuid) {
        let injection = record_example(client, EventType::InjectionGiven)
            .await
            .event_id;
        let mut correction = example_request("record.corrected");
        correction["payload"]["target"]["event_id"] = json!(injection);
        correction["payload"]["corrected_payload"]["volume_ml"] = json!(1.5);
        let corrected = record_ok(client, EventType::RecordCorrected, &correction)
            .await
            .event_id;
        (injection, corrected)
    }
}

/// A benchmark setting from the environment, `default` when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` valid events cycling through every event type's example, spread
/// over `patients` patients, each with a fresh UUIDv7 and recorded now:
/// load for crash tests and benchmarks.
pub fn synthetic_events(
    n: usize,
    patients: usize,
) -> impl Iterator<Item = prolo_schemas::Envelope> {
    let examples: Vec<prolo_schemas::Envelope> = prolo_schemas::EventType::ALL
        .iter()
        .map(|t| example_envelope(t.as_str()))
        .collect();
    let patient_ids: Vec<prolo_schemas::PatientId> = (0..patients.max(1))
        .map(|i| {
            format!("P-{i:06}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    // Within one patient's round of examples, references (the injection an
    // adverse event follows, the event a correction targets, …) point at
    // that round's own events, as in a real record.
    let mut fresh_ids = std::collections::HashMap::new();
    (0..n).map(move |i| {
        let mut event = examples[i % examples.len()].clone();
        if i % examples.len() == 0 {
            fresh_ids.clear();
        }
        let fresh = uuid::Uuid::now_v7();
        fresh_ids.insert(event.event_id, fresh);
        event.event_id = fresh;
        let remap = |id: &mut uuid::Uuid| {
            if let Some(fresh) = fresh_ids.get(id) {
                *id = *fresh;
            }
        };
        remap_references(&mut event, remap);
        // Recorded now, as a recording service stamps it (so the stream's
        // time agrees and no `recorded_at_mismatch` is raised), and it
        // happened as long before as in the example (documentation delays
        // as the examples have them).
        let now = chrono::Utc::now();
        event.occurred_at = now - (event.recorded_at - event.occurred_at);
        event.recorded_at = now;
        if event.patient_id.is_some() {
            event.patient_id = Some(patient_ids[(i / examples.len()) % patient_ids.len()].clone());
        }
        // Spread lots over 500 batches, so a lot has a few hundred injections.
        if let prolo_schemas::Payload::InjectionGiven(p) = &mut event.payload {
            let batch = (i / examples.len()) % 500;
            p.practitioner_id = format!("dr-{:04}", (i / examples.len()) % 40)
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            for (c, component) in p.solution.components.iter_mut().enumerate() {
                component.lot = format!("L{c}-{batch:03}")
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        // Spread credentials over many practitioners, a handful each, as in a group of clinics.
        if let prolo_schemas::Payload::PractitionerCredentialed(p) = &mut event.payload {
            let id = format!("dr-{:04}", (i / examples.len()) % 5000);
            p.practitioner_id = id.parse().unwrap_or_else(|e| panic!("{e}"));
        }
        event
    })
}

/// Applies `remap` to every event id an event refers to.
fn remap_references(event: &mut prolo_schemas::Envelope, mut remap: impl FnMut(&mut uuid::Uuid)) {
    use prolo_schemas::Payload;
    if let Some(causation) = &mut event.causation_id {
        remap(causation);
    }
    match &mut event.payload {
        Payload::ConsentWithdrawn(p) => remap(&mut p.consent_event_id),
        Payload::InjectionGiven(p) => {
            if let Some(plan) = &mut p.treatment_plan_event_id {
                remap(plan);
            }
        }
        Payload::AdverseEventReported(p) => {
            if let Some(linked) = &mut p.linked_injection {
                remap(&mut linked.event_id);
            }
        }
        Payload::AdverseEventUpdated(p) => remap(&mut p.adverse_event_id),
        Payload::RecordCorrected(p) => remap(&mut p.target.event_id),
        Payload::RecordEnteredInError(p) => remap(&mut p.target.event_id),
        _ => {}
    }
}

/// Publishes `events` with up to `in_flight` acknowledgements outstanding;
/// returns how many were stored. With more than one in flight the stream
/// may store them in another order than given: events that must follow
/// others (an adverse event after its injection) go with `in_flight` 1.
pub async fn publish_all(
    js: &async_nats::jetstream::Context,
    events: impl Iterator<Item = prolo_schemas::Envelope>,
    in_flight: usize,
) -> u64 {
    use futures::StreamExt;
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut stored = 0;
    for event in events {
        if pending.len() >= in_flight
            && let Some(ack) = pending.next().await
        {
            stored += u64::from(matches!(ack, Ok(Ok(_))));
        }
        let subject = event.subject().map(|s| s.to_string()).unwrap_or_default();
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(event.to_json().into())
            .message_id(event.event_id.to_string());
        let js = js.clone();
        pending.push(async move {
            match js.send_publish(subject, message).await {
                Ok(ack) => Ok(ack.await),
                Err(e) => Err(e),
            }
        });
    }
    while let Some(ack) = pending.next().await {
        stored += u64::from(matches!(ack, Ok(Ok(_))));
    }
    stored
}

/// A nats-server of the test's own with the clinic stream on it and no
/// recording services: for tests that publish onto the stream themselves.
/// Panics when it does not start (tests only).
pub async fn stream_only() -> (
    NatsServer,
    async_nats::Client,
    async_nats::jetstream::Context,
) {
    let nats = match NatsServer::start().await {
        Ok(nats) => nats,
        Err(e) => panic!("nats-server did not start: {e}"),
    };
    let client = match nats.client().await {
        Ok(client) => client,
        Err(e) => panic!("no client of the test's nats-server: {e}"),
    };
    let js = async_nats::jetstream::new(client.clone());
    if let Err(e) = prolo_bus::ensure_stream(&js, &prolo_bus::StreamSettings::default()).await {
        panic!("the clinic stream: {e}");
    }
    (nats, client, js)
}

/// [`stream_only`] holding `events` synthetic events over `patients`
/// patients ([`synthetic_events`]), published 256 at a time.
pub async fn stream_of(
    events: usize,
    patients: usize,
) -> (
    NatsServer,
    async_nats::Client,
    async_nats::jetstream::Context,
) {
    let (nats, client, js) = stream_only().await;
    let stored = publish_all(&js, synthetic_events(events, patients), 256).await;
    assert_eq!(stored, events as u64, "every synthetic event stored");
    (nats, client, js)
}

/// The state of `CLINIC_EVENTS` (messages, bytes, last sequence).
pub async fn stream_state(
    js: &async_nats::jetstream::Context,
) -> async_nats::jetstream::stream::State {
    let mut stream = match js.get_stream(prolo_bus::STREAM_NAME).await {
        Ok(stream) => stream,
        Err(e) => panic!("stream {}: {e}", prolo_bus::STREAM_NAME),
    };
    match stream.info().await {
        Ok(info) => info.state.clone(),
        Err(e) => panic!("stream info: {e}"),
    }
}

/// How many messages `CLINIC_EVENTS` holds.
pub async fn stream_messages(js: &async_nats::jetstream::Context) -> u64 {
    stream_state(js).await.messages
}

/// Property-test inputs a careless or hostile caller sends.
pub mod hostile {
    use proptest::prelude::*;

    /// What text is made of: valid ids, separators and traversal, bidi,
    /// zero-width and control characters, odd Unicode, huge numbers, dates
    /// out of range, formula and markup injection, the API's own words.
    pub const PIECES: &[&str] = &[
        "riverside",
        "P-1042",
        "dr-hale",
        "DX50-2026-114",
        "01a214df-8186-740a-88a3-bcc69fc39d08",
        "..",
        "/",
        "%2F",
        "%00",
        "%",
        "?",
        "&",
        "=",
        "#",
        "\u{202E}",
        "\u{200B}",
        "é",
        "𝔘",
        " ",
        "*",
        ">",
        ".",
        "-1",
        "0",
        "18446744073709551616",
        "1000000000000",
        "1e400",
        "NaN",
        "2026-10-01T00:00:00Z",
        "+275760-09-13T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "csv",
        "jsonl",
        "json",
        "injection.given",
        "open",
        "no_active_consent",
        "'",
        "\"",
        "<script>",
        "\u{2066}",
        "\u{FEFF}",
        "\u{200D}",
        "\u{0000}",
        "\n",
        "=HYPERLINK(\"x\")",
        "a.b",
        "\u{061C}",
        "ﷺ",
        "-",
        "_",
    ];

    /// Text made of [`PIECES`] (up to `most` of them, concatenated), any
    /// text `any` matches (a regex, e.g. `.{0,30}`), or one character
    /// repeated up to `longest` times.
    pub fn text_of(
        most: usize,
        any: &'static str,
        longest: usize,
    ) -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(PIECES), 0..most).prop_map(|p| p.concat()),
            any,
            (1..longest).prop_map(|n| "x".repeat(n)),
        ]
    }
}
