//! `prolo-audit-api`: the audit query service (fold + HTTP API on one database).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use prolo_audit_api::{ApiSettings, Principals};
use prolo_bus::{Shutdown, init_tracing};
use prolo_projector::ProjectorSettings;

/// glibc malloc contends between threads; mimalloc measured faster here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The audit query service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = prolo_bus::connect::DEFAULT_NATS_URL)]
    nats_url: String,
    /// The NATS server's monitoring endpoint, to check it fsyncs before it
    /// acknowledges (default: port 8222 on the NATS host).
    #[arg(long, env = "NATS_MONITOR_URL")]
    nats_monitor_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "PROLO_API_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer tokens file (see deploy/tokens.example.json).
    #[arg(
        long,
        env = "PROLO_API_TOKENS",
        default_value = "deploy/tokens.example.json"
    )]
    tokens: PathBuf,
    /// The API's own read-model database.
    #[arg(long, env = "PROLO_API_DB", default_value = "data/audit-api.sled")]
    db: PathBuf,
    /// Publish findings, signals and chain checkpoints from this fold (only
    /// when no `prolo-projector` runs: exactly one fold may publish them).
    #[arg(long, env = "PROLO_PUBLISH_DERIVED", default_value_t = false)]
    publish_derived: bool,
    /// Requests answered at once; more wait their turn (within the 30 s
    /// request timeout, after which they get 503).
    #[arg(long, env = "PROLO_API_MAX_IN_FLIGHT", default_value_t = prolo_audit_api::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// sled cache, MiB.
    /// The fold's durable consumer: a second instance rebuilding beside the
    /// live one (an upgrade) takes another name.
    #[arg(long, env = "PROLO_API_CONSUMER", default_value = "audit-api")]
    consumer: String,
    #[arg(long, env = "PROLO_CACHE_MB", default_value_t = 256)]
    cache_mb: u64,
    /// The key that seals the access events this service records (base64
    /// Ed25519 PKCS#8, mode 0600); its public half goes in every fold's keyring.
    #[arg(long, env = "PROLO_SEAL_KEY")]
    seal_key: Option<PathBuf>,
    #[command(flatten)]
    seals: prolo_projector::seals::SealArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing("info");
    let principals = Principals::load(&args.tokens).map_err(anyhow::Error::msg)?;
    let client = prolo_bus::connect(&args.nats_url, "audit-api")
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let broker =
        prolo_bus::durability::check(&client, &args.nats_url, args.nats_monitor_url.as_deref())
            .await;
    let settings = ApiSettings {
        listen: args.listen,
        db: args.db,
        cache_bytes: args.cache_mb * 1024 * 1024,
        projector: ProjectorSettings {
            consumer: args.consumer,
            // By default `prolo-projector` publishes findings, signals and
            // checkpoints; exactly one fold of a deployment may.
            publish_derived: args.publish_derived,
            findings: prolo_projector::rules::findings::FindingSettings {
                seals: args.seals.keyring().context("reading the seal keyring")?,
                ..Default::default()
            },
            ..ProjectorSettings::default()
        },
        seal: args
            .seal_key
            .as_deref()
            .map(prolo_bus::SealKey::load)
            .transpose()
            .context("reading the seal key")?
            .map(std::sync::Arc::new),
        broker: Some(broker),
        max_in_flight: args.max_in_flight,
    };
    let store = settings.open_store().context("opening the read models")?;
    prolo_audit_api::run(
        store,
        client,
        principals,
        settings,
        Shutdown::on_signals(),
        |_| {},
    )
    .await?;
    Ok(())
}
