//! Whether the broker writes an event to disk before it acknowledges it.
//!
//! Every recording reply says "stored". That is only true across a power cut
//! when JetStream fsyncs before its acknowledgement (`sync_interval: always`);
//! by default it flushes every two minutes, and Jepsen (NATS 2.12.1,
//! 2025-12-08) lost acknowledged writes that way. Servers we start are
//! configured so; a server someone else runs is probed here through its
//! monitoring endpoint (`/varz`), and the services say loudly when it is lazy
//! or cannot be checked. In a cluster the probe sees the node it reaches.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

/// A nats-server version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(pub u32, pub u32, pub u32);

impl ServerVersion {
    /// Reads `2.15.1`, `v2.15.1` or `2.12.0-RC.1` (the suffix is ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(Self(parts.next()??, parts.next()??, parts.next()??))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first version that can fsync before acknowledging at all.
const FIRST_WITH_SYNC_SETTING: ServerVersion = ServerVersion(2, 10, 0);

/// The server's flush interval when none is configured.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(120);

/// When the broker's JetStream writes reach the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "fsync", rename_all = "snake_case")]
pub enum Fsync {
    /// Before every acknowledgement: an acknowledged event survives a power cut.
    Always,
    /// Every `every_ms`: events acknowledged in the last interval can be lost
    /// on a power cut or OS crash.
    Interval {
        /// The flush interval in milliseconds.
        every_ms: u64,
    },
    /// It could not be told (no monitoring endpoint reachable, …).
    Unknown {
        /// Why not.
        reason: String,
    },
}

/// What is known of the broker's durability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrokerDurability {
    /// The version the server announced.
    pub server_version: String,
    /// Where it was asked.
    pub monitor_url: String,
    /// Its fsync policy.
    #[serde(flatten)]
    pub fsync: Fsync,
}

impl BrokerDurability {
    /// Whether an acknowledged event is on disk.
    pub fn durable(&self) -> bool {
        self.fsync == Fsync::Always
    }

    /// What an operator must be told, when the broker is not known to be durable.
    pub fn warning(&self) -> Option<String> {
        let server = format!("the NATS server ({}", self.server_version);
        match &self.fsync {
            Fsync::Always => None,
            Fsync::Interval { every_ms } => Some(format!(
                "{server}, {}) acknowledges events before they are on disk: it fsyncs every {} s, so \
                 events acknowledged in the last {} s are lost on a power cut or OS crash. Set \
                 `jetstream {{ sync_interval: always }}` in its configuration (see deploy/nats/single-node.conf)",
                self.monitor_url,
                every_ms / 1000,
                every_ms / 1000
            )),
            Fsync::Unknown { reason } => Some(format!(
                "{server}) could not be checked for fsync before acknowledgement ({reason}). Unless its \
                 configuration has `jetstream {{ sync_interval: always }}`, acknowledged events can be lost \
                 on a power cut. Give its monitoring endpoint with NATS_MONITOR_URL to check"
            )),
        }
    }

    /// Logs the result: a warning, also on standard error, when not durable.
    pub fn report(&self) {
        match self.warning() {
            None => tracing::info!(
                server_version = %self.server_version,
                monitor = %self.monitor_url,
                "the NATS server fsyncs before it acknowledges (sync_interval: always)"
            ),
            Some(warning) => {
                tracing::warn!(server_version = %self.server_version, "{warning}");
                eprintln!("\n*** WARNING: {warning} ***\n");
            }
        }
    }
}

/// The monitoring endpoint to ask: `monitor_url` when given, else port 8222
/// on the host of the first server in `nats_url`.
pub fn monitor_url_for(nats_url: &str, monitor_url: Option<&str>) -> String {
    if let Some(url) = monitor_url.filter(|u| !u.trim().is_empty()) {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let first = nats_url.split(',').next().unwrap_or(nats_url).trim();
    let host = first
        .parse::<async_nats::ServerAddr>()
        .map(|addr| addr.host().to_owned())
        .unwrap_or_else(|_| "127.0.0.1".to_owned());
    format!("http://{host}:8222")
}

/// Asks the server `client` is connected to how it fsyncs: the version it
/// announced, then `/varz` at `monitor_url`.
pub async fn probe(client: &async_nats::Client, monitor_url: &str) -> BrokerDurability {
    let server_version = client.server_info().version;
    let fsync = match ServerVersion::parse(&server_version) {
        Some(version) if version < FIRST_WITH_SYNC_SETTING => Fsync::Interval {
            every_ms: DEFAULT_SYNC_INTERVAL.as_millis() as u64,
        },
        _ => match varz_fsync(monitor_url).await {
            Ok(fsync) => fsync,
            Err(reason) => Fsync::Unknown { reason },
        },
    };
    BrokerDurability {
        server_version,
        monitor_url: monitor_url.to_owned(),
        fsync,
    }
}

/// [`probe`] at [`monitor_url_for`] and [`BrokerDurability::report`]: what
/// every service does once connected.
pub async fn check(
    client: &async_nats::Client,
    nats_url: &str,
    monitor_url: Option<&str>,
) -> BrokerDurability {
    let durability = probe(client, &monitor_url_for(nats_url, monitor_url)).await;
    durability.report();
    durability
}

/// The part of `/varz` that says how JetStream syncs.
#[derive(Debug, Deserialize)]
struct Varz {
    jetstream: Option<VarzJetStream>,
}

#[derive(Debug, Deserialize)]
struct VarzJetStream {
    config: Option<VarzJetStreamConfig>,
}

#[derive(Debug, Deserialize)]
struct VarzJetStreamConfig {
    /// Nanoseconds; absent or 0 means the default.
    #[serde(default)]
    sync_interval: u64,
    #[serde(default)]
    sync_always: bool,
}

/// Reads the fsync policy from a server's `/varz`.
pub async fn varz_fsync(monitor_url: &str) -> Result<Fsync, String> {
    let url = format!("{}/varz", monitor_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let varz: Varz = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: not a varz answer: {e}"))?;
    let config = varz
        .jetstream
        .and_then(|js| js.config)
        .ok_or_else(|| format!("{url}: JetStream is not enabled"))?;
    Ok(fsync_of(&config))
}

fn fsync_of(config: &VarzJetStreamConfig) -> Fsync {
    if config.sync_always {
        Fsync::Always
    } else {
        let every = match config.sync_interval {
            0 => DEFAULT_SYNC_INTERVAL,
            ns => Duration::from_nanos(ns),
        };
        Fsync::Interval {
            every_ms: every.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            ServerVersion::parse("v2.15.1"),
            Some(ServerVersion(2, 15, 1))
        );
        assert_eq!(
            ServerVersion::parse("2.12.0-RC.3"),
            Some(ServerVersion(2, 12, 0))
        );
        assert_eq!(ServerVersion::parse("2.9"), None);
        assert!(ServerVersion(2, 9, 10) < ServerVersion(2, 12, 0));
        assert!(ServerVersion(2, 15, 1) > ServerVersion(2, 12, 0));
    }

    #[test]
    fn varz_says_always_or_an_interval() {
        let parse = |json: &str| {
            let varz: Varz = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
            fsync_of(
                &varz
                    .jetstream
                    .and_then(|j| j.config)
                    .unwrap_or_else(|| panic!("config")),
            )
        };
        assert_eq!(
            parse(r#"{"jetstream":{"config":{"sync_interval":120000000000,"sync_always":true}}}"#),
            Fsync::Always
        );
        assert_eq!(
            parse(r#"{"jetstream":{"config":{"sync_interval":120000000000}}}"#),
            Fsync::Interval { every_ms: 120_000 }
        );
        assert_eq!(
            parse(r#"{"jetstream":{"config":{}}}"#),
            Fsync::Interval { every_ms: 120_000 }
        );
    }

    #[test]
    fn the_monitor_url_defaults_to_the_nats_host() {
        assert_eq!(
            monitor_url_for("nats://u:p@10.0.0.5:4222,nats://10.0.0.6:4222", None),
            "http://10.0.0.5:8222"
        );
        assert_eq!(
            monitor_url_for("nats://127.0.0.1:4222", Some("http://127.0.0.1:9000/")),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn only_always_is_durable_and_the_rest_warns() {
        let mut report = BrokerDurability {
            server_version: "2.9.10".into(),
            monitor_url: "http://127.0.0.1:8222".into(),
            fsync: Fsync::Interval { every_ms: 120_000 },
        };
        assert!(!report.durable());
        assert!(report.warning().unwrap_or_default().contains("every 120 s"));
        report.fsync = Fsync::Always;
        assert!(report.durable());
        assert_eq!(report.warning(), None);
    }
}
