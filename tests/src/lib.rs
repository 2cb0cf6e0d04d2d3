//! The test harness: a real `nats-server` with JetStream per test (or test
//! group), on a free loopback port with its own temporary store directory.
//!
//! Tests never touch a broker they did not start: each [`NatsServer`] is its
//! own process, stopped on drop, and can be killed with SIGKILL and
//! restarted on the same port and store to test crashes.

use std::{
    net::TcpListener,
    path::Path,
    time::{Duration, Instant},
};

use prolo_bus::local_server::LocalNatsServer;
pub use prolo_bus::local_server::LocalServerError as HarnessError;

/// A free TCP port on 127.0.0.1 (free when asked; taken by the server soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A running nats-server with JetStream, owned by one test.
pub struct NatsServer {
    process: Option<LocalNatsServer>,
    port: u16,
    store: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store and waits until
    /// JetStream answers.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with_args(Vec::new()).await
    }

    /// Like [`NatsServer::start`] with extra command-line arguments (e.g. `-c file`).
    pub async fn start_with_args(extra_args: Vec<String>) -> Result<Self, HarnessError> {
        let store = tempfile::Builder::new()
            .prefix("prolo-nats-")
            .tempdir()
            .map_err(|e| HarnessError::Failed(format!("temp dir: {e}")))?;
        let mut server = Self {
            process: None,
            port: free_port(),
            store,
            extra_args,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
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

    /// SIGKILL: the server dies at once, as in a crash or power loss.
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

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let process =
            LocalNatsServer::start(self.port, self.store.path(), &self.extra_args, None).await?;
        self.process = Some(process);
        Ok(())
    }
}

/// The six recording services running in this process, as `up` runs them.
pub struct Recorders {
    trigger: prolo_bus::Trigger,
    tasks: tokio::task::JoinSet<()>,
}

impl Recorders {
    /// Starts every recording service against `url` and waits until each
    /// answers `$SRV.PING`.
    pub async fn start(url: &str) -> Result<Self, HarnessError> {
        let (trigger, shutdown) = prolo_bus::Shutdown::new();
        let mut tasks = tokio::task::JoinSet::new();
        for spec in prolo_recorder::ALL_SERVICES {
            let client = prolo_bus::connect(url, spec.name)
                .await
                .map_err(|e| HarnessError::Failed(format!("connect: {e}")))?;
            let shutdown = shutdown.clone();
            let settings = prolo_recorder::ServeSettings::default();
            tasks.spawn(async move {
                if let Err(e) = prolo_recorder::serve(client, spec, settings, shutdown).await {
                    panic!("{} service failed: {e}", spec.name);
                }
            });
        }
        let client = async_nats::connect(url)
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
