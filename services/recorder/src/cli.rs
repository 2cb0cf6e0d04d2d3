//! The configuration every recording service binary shares.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use prolo_bus::{Shutdown, StreamSettings, connect, init_tracing};

use crate::{
    ServeSettings, ServiceSpec,
    identity::{DEFAULT_LEEWAY, IdentitySettings, Verifier},
    serve,
};

/// Settings of a recording service, from flags or the environment.
#[derive(Debug, Clone, Parser)]
pub struct RecorderArgs {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = prolo_bus::connect::DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// The NATS server's monitoring endpoint, to check it fsyncs before it
    /// acknowledges (default: port 8222 on the NATS host).
    #[arg(long, env = "NATS_MONITOR_URL")]
    pub nats_monitor_url: Option<String>,
    /// Milliseconds a request may wait for the JetStream acknowledgement
    /// before it is answered "not stored, retry".
    #[arg(long, env = "PROLO_PUBLISH_DEADLINE_MS", default_value_t = 5000)]
    pub publish_deadline_ms: u64,
    /// Requests handled concurrently.
    #[arg(long, env = "PROLO_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Stream replicas when the stream is created (1 single node, 3 cluster).
    #[arg(long, env = "PROLO_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// The identity provider's issuer (`iss` of its tokens). With
    /// `--identity-jwks`, every command must carry a token of a person (or a
    /// delegate) that proves its `actor` (see docs/identity.md).
    #[arg(long, env = "PROLO_IDENTITY_ISSUER", requires = "identity_jwks")]
    pub identity_issuer: Option<String>,
    /// The audience tokens must be for.
    #[arg(long, env = "PROLO_IDENTITY_AUDIENCE", default_value = "prolo-audit")]
    pub identity_audience: String,
    /// The provider's public keys: a JWKS document (file).
    #[arg(long, env = "PROLO_IDENTITY_JWKS", requires = "identity_issuer")]
    pub identity_jwks: Option<std::path::PathBuf>,
    /// Identities that may record on behalf of others (comma-separated):
    /// integrations such as the EHR or a back-fill.
    #[arg(long, env = "PROLO_IDENTITY_DELEGATES", value_delimiter = ',')]
    pub identity_delegates: Vec<String>,
    /// Seconds since a signer's sign-in (`auth_time`) within which a
    /// `record.signed` is accepted.
    #[arg(long, env = "PROLO_SIGNATURE_FRESHNESS_SECS", default_value_t = 300)]
    pub signature_freshness_secs: u64,
    /// The key that seals every stored event (base64 Ed25519 PKCS#8, mode
    /// 0600; `prolo-audit seal-key new` makes one). Folds trust its public
    /// half (`PROLO_SEAL_KEYRING`) and quarantine what it did not seal.
    #[arg(long, env = "PROLO_SEAL_KEY")]
    pub seal_key: Option<std::path::PathBuf>,
}

impl RecorderArgs {
    /// The serve settings these arguments describe.
    pub fn serve_settings(&self) -> anyhow::Result<ServeSettings> {
        let identity = match (&self.identity_issuer, &self.identity_jwks) {
            (Some(issuer), Some(jwks)) => {
                let text = std::fs::read_to_string(jwks).with_context(|| {
                    format!("reading the identity provider's keys {}", jwks.display())
                })?;
                let settings = IdentitySettings {
                    issuer: issuer.clone(),
                    audience: self.identity_audience.clone(),
                    jwks: Verifier::key_set(&text)?,
                    delegates: self.identity_delegates.clone(),
                    leeway: DEFAULT_LEEWAY,
                    signature_freshness: Duration::from_secs(self.signature_freshness_secs),
                };
                Some(Arc::new(Verifier::new(&settings)?))
            }
            _ => None,
        };
        let seal = match &self.seal_key {
            Some(path) => Some(Arc::new(
                prolo_bus::SealKey::load(path)
                    .with_context(|| format!("reading the seal key {}", path.display()))?,
            )),
            None => None,
        };
        Ok(ServeSettings {
            publish_deadline: Duration::from_millis(self.publish_deadline_ms),
            max_in_flight: self.max_in_flight,
            stream: StreamSettings {
                replicas: self.stream_replicas,
                ..StreamSettings::default()
            },
            identity,
            seal,
        })
    }
}

/// The whole `main` of a recording service binary: read settings, set up
/// tracing, connect, serve until SIGTERM / ctrl-c, exit 0.
pub async fn main_for(spec: &'static ServiceSpec) -> anyhow::Result<()> {
    let args = RecorderArgs::parse();
    init_tracing("info");
    let settings = args.serve_settings()?;
    let client = connect(&args.nats_url, spec.name)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    prolo_bus::durability::check(&client, &args.nats_url, args.nats_monitor_url.as_deref()).await;
    let shutdown = Shutdown::on_signals();
    prolo_bus::metrics::serve_from_env(shutdown.clone());
    serve(client, spec, settings, shutdown)
        .await
        .with_context(|| format!("running the {} service", spec.name))?;
    Ok(())
}
