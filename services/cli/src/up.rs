//! `prolo-audit up`: the whole system in one process, for one machine.
//!
//! Each part runs as its own task with the same code its separate binary
//! uses. When no NATS server is reachable at the URL, a local `nats-server`
//! with JetStream is started with its store under the data directory, and
//! stopped on exit; it fsyncs before it acknowledges, listens on loopback
//! only, and answers only to users `up` generates under the data directory
//! (mode 0600): each of its parts connects as its own least-privilege user
//! ([`crate::local_users`]), and what it hands out cannot publish on the
//! stream. A server found at the URL
//! is checked for fsync before ack, and a loud warning printed when it does
//! not. One older than [`MIN_VERSION`] (Debian's 2.9.10, say) cannot store
//! an atomic batch or fsync before it acknowledges: `up` says so and starts
//! its own server on a free port instead.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;
use prolo_audit_api::{ApiSettings, Principals};
use prolo_bus::{
    Shutdown,
    local_server::{
        LocalNatsServer, MIN_VERSION, ServerOptions, free_port, is_reachable, server_version,
    },
};
use prolo_projector::ProjectorSettings;
use prolo_recorder::{ALL_SERVICES, ServeSettings, serve};
use tokio::task::JoinSet;

use crate::{
    local_users::{self, LocalUsers},
    private::{create_private_dir, random_hex, write_private},
};

/// Arguments of `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where a locally started nats-server keeps its store and log, and the
    /// audit API its read models.
    #[arg(long, env = "PROLO_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Where the audit API listens.
    #[arg(long, env = "PROLO_API_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The audit API's bearer tokens. When not given, `up` generates a
    /// tokens file under the data directory (random tokens, mode 0600).
    #[arg(long, env = "PROLO_API_TOKENS")]
    tokens: Option<PathBuf>,
    /// The monitoring endpoint of a NATS server found at NATS_URL, to check
    /// that it fsyncs before it acknowledges (default: port 8222 on its host).
    #[arg(long, env = "NATS_MONITOR_URL")]
    nats_monitor_url: Option<String>,
    /// Seed the demo clinic once everything is up (skipped when the stream already holds events).
    #[arg(long)]
    demo: bool,
    /// Run a clinic's edge: a local nats-server that is a leaf node of the
    /// hub (`--hub`) with its own JetStream domain and a stream of this
    /// clinic's events only; recording works while the line to the hub is
    /// down, and the hub sources what was recorded when it returns.
    #[arg(long, requires = "hub")]
    edge: bool,
    /// The hub's leaf node URL with this clinic's leaf credentials,
    /// `nats-leaf://edge-<clinic>:<password>@hub.example:7422` (with --edge).
    #[arg(long, env = "PROLO_HUB_LEAF_URL", requires = "edge")]
    hub: Option<String>,
    /// The edge's JetStream domain, as the hub's source names it (default `clinic-<clinic>`).
    #[arg(long, requires = "edge")]
    domain: Option<String>,
    #[command(flatten)]
    demo_args: crate::demo::DemoArgs,
}

impl UpArgs {
    /// Where the services' log goes: `prolo-audit.log` under the data directory.
    fn log_file(&self) -> PathBuf {
        self.data_dir.join("prolo-audit.log")
    }

    /// Sends the services' log to [`Self::log_file`] and only warnings to
    /// stderr, so that `up`'s own lines on stdout stay readable.
    fn init_logging(&self) -> Result<()> {
        create_private_dir(&self.data_dir)?;
        let log = self.log_file();
        prolo_bus::telemetry::init_tracing_to_file(&log)
            .with_context(|| format!("opening the log {}", log.display()))
    }
}

/// Runs every service until SIGTERM / ctrl-c.
pub async fn run(nats_url: &str, args: UpArgs) -> Result<()> {
    let edge = Edge::from_args(&args)?;
    args.init_logging()?;
    let mut local = None;
    // How the CLI reads the trail of a server `up` started (as its reader).
    let mut tail_prefix = String::new();
    let reachable = is_reachable(nats_url).await;
    if let Some(edge) = &edge
        && reachable
    {
        bail!(
            "an edge runs its own nats-server (a leaf node of the hub), but {nats_url} is taken; \
             give it a free port with NATS_URL=nats://127.0.0.1:<port> (clinic {})",
            edge.clinic
        );
    }
    let too_old = if reachable && edge.is_none() {
        server_version(nats_url).await.filter(|v| *v < MIN_VERSION)
    } else {
        None
    };
    if edge.is_none() && reachable && too_old.is_none() {
        println!("using the NATS server at {nats_url}");
    } else {
        let port = match too_old {
            Some(found) => {
                println!(
                    "the NATS server at {nats_url} is nats-server {found}, older than {MIN_VERSION}: \
                     it cannot fsync before it acknowledges nor store an atomic batch; \
                     starting the pinned nats-server on a free port instead \
                     (set NATS_URL to a server {MIN_VERSION} or later to use one)"
                );
                free_port()
            }
            None => port_of(nats_url)?,
        };
        let store = args.data_dir.join("nats");
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let log = args.data_dir.join("nats-server.log");
        let users = LocalUsers::load_or_create(&args.data_dir)?;
        let include = match &edge {
            Some(edge) => edge.write_conf(&args.data_dir, &users)?,
            None => users.auth_conf.clone(),
        };
        let options = ServerOptions {
            log: Some(log.clone()),
            include: Some(include),
            jetstream_domain: edge.as_ref().map(|e| e.domain.clone()),
            ..ServerOptions::default()
        };
        let mut server = LocalNatsServer::spawn(port, &store, &options)
            .context("no NATS server is reachable, and starting a local one failed")?
            .with_probe_auth(&users.admin_auth());
        server
            .wait_ready(Duration::from_secs(20))
            .await
            .context("no NATS server is reachable, and starting a local one failed")?;
        let urls = users.write_urls(&args.data_dir, port)?;
        println!(
            "started a local nats-server {} on {} (store {}, log {}, monitoring {})",
            server.version(),
            server.url(),
            store.display(),
            log.display(),
            server.monitor_url()
        );
        println!(
            "it answers only to the users in {} (mode 0600), none of them anonymous; for the CLI: export NATS_URL=$(cat {}) (commands only; reading: {}; the operator's: {})",
            users.auth_conf.display(),
            urls.clinic.display(),
            urls.reader.display(),
            urls.admin.display()
        );
        tail_prefix = format!("NATS_URL=$(cat {}) ", urls.reader.display());
        local = Some((server, users));
    }
    // Each part connects as its own user of a server `up` started.
    let url_of = |user: &str| {
        local.as_ref().map_or_else(
            || nats_url.to_owned(),
            |(server, users)| users.url(user, server.port()),
        )
    };
    let monitor_url = local
        .as_ref()
        .map(|(server, _)| server.monitor_url())
        .or(args.nats_monitor_url.clone());

    let stream_settings = prolo_bus::StreamSettings {
        clinic: edge.as_ref().map(|e| e.clinic.clone()),
        ..prolo_bus::StreamSettings::default()
    };
    if let Some(edge) = &edge {
        // Before the services: they would otherwise create the hub's stream.
        let client = prolo_bus::connect(&url_of(local_users::ADMIN), "prolo-audit-edge").await?;
        prolo_bus::ensure_stream(&async_nats::jetstream::new(client), &stream_settings)
            .await
            .context("creating the edge's stream")?;
        println!(
            "clinic edge:        clinic {} records here, offline too; JetStream domain {}; the hub sources it (prolo-audit edge attach --clinic {} --domain {} at the hub)",
            edge.clinic, edge.domain, edge.clinic, edge.domain
        );
    }
    // Every command must carry the token of who acted: here the local
    // development provider's (a deployment names its own, docs/identity.md).
    let identity = crate::identity::load_or_create(&args.data_dir)?;
    let trusted = identity
        .provider
        .settings(&[crate::identity::DEMO_DELEGATE])?;
    let verifier = std::sync::Arc::new(prolo_recorder::identity::Verifier::new(&trusted)?);
    // Every stored event is sealed, and the fold quarantines what is not.
    let seal = crate::seal::load_or_create(&args.data_dir)?;
    let shutdown = Shutdown::on_signals();
    let mut tasks = JoinSet::new();
    for spec in ALL_SERVICES {
        let client = prolo_bus::connect(&url_of(spec.name), spec.name)
            .await
            .with_context(|| format!("connecting the {} service", spec.name))?;
        let shutdown = shutdown.clone();
        let settings = ServeSettings {
            stream: stream_settings.clone(),
            identity: Some(verifier.clone()),
            seal: Some(seal.key.clone()),
            ..ServeSettings::default()
        };
        tasks.spawn(async move {
            serve(client, spec, settings, shutdown)
                .await
                .with_context(|| format!("the {} service", spec.name))
        });
    }
    let (tokens, token_hint) = match &args.tokens {
        Some(path) => (
            path.clone(),
            "<a compliance token from that file>".to_owned(),
        ),
        None => generated_tokens(&args.data_dir)?,
    };
    let principals = Principals::load(&tokens).map_err(anyhow::Error::msg)?;
    let api_url = url_of(local_users::AUDIT_API);
    let api_client = prolo_bus::connect(&api_url, "audit-api")
        .await
        .context("connecting the audit API")?;
    let broker = prolo_bus::durability::check(&api_client, &api_url, monitor_url.as_deref()).await;
    match broker.warning() {
        None => println!(
            "durability:         nats-server {} fsyncs before it acknowledges (sync_interval: always)",
            broker.server_version
        ),
        Some(warning) => println!("WARNING:            {warning}"),
    }
    let api_settings = ApiSettings {
        listen: args.listen,
        db: args.data_dir.join("audit-api.sled"),
        cache_bytes: 256 << 20,
        projector: ProjectorSettings {
            consumer: "audit-api".into(),
            // The only fold `up` runs: it publishes findings, signals and checkpoints.
            publish_derived: true,
            findings: prolo_projector::rules::findings::FindingSettings {
                seals: Some(seal.keyring.clone()),
                ..Default::default()
            },
            ..ProjectorSettings::default()
        },
        broker: Some(broker),
        max_in_flight: prolo_audit_api::DEFAULT_MAX_IN_FLIGHT,
        seal: Some(seal.key.clone()),
    };
    let api_shutdown = shutdown.clone();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let store = api_settings
        .open_store()
        .context("opening the audit API's read models")?;
    tasks.spawn(async move {
        let ready = |addr| {
            let _ = bound_tx.send(addr);
        };
        prolo_audit_api::run(
            store,
            api_client,
            principals,
            api_settings,
            api_shutdown,
            ready,
        )
        .await
        .context("the audit API")
    });
    let bound = bound_rx.await.context("the audit API did not start")?;
    let names: Vec<&str> = ALL_SERVICES.iter().map(|s| s.name).collect();
    println!("recording services: {}", names.join(", "));
    println!(
        "audit API:          http://{bound} (tokens in {}; OpenAPI at /openapi.json)",
        tokens.display()
    );
    println!("web console:        http://{bound}/ (sign in with a token from that file)");
    println!(
        "logs:               {} (warnings also on stderr; RUST_LOG=info for more)",
        args.log_file().display()
    );
    println!(
        "identity:           commands carry the actor's token; development provider keys in {}",
        identity.jwks.display()
    );
    println!(
        "seals:              every event sealed with key {}; the fold quarantines what it did not seal (keyring {})",
        seal.key.id(),
        seal.keyring_file.display()
    );
    println!(
        "record an event:    PROLO_TOKEN=$(prolo-audit token mint --person dr-hale) prolo-audit record injection.given --file request.json"
    );
    println!("follow the trail:   {tail_prefix}prolo-audit tail --from-start");
    println!("ask:                PROLO_API_TOKEN=… prolo-audit history --clinic C --patient P");
    println!("stop:               ctrl-c");
    if args.demo {
        let client =
            prolo_bus::connect(&url_of(local_users::CLINIC_SYSTEMS), "prolo-audit-demo").await?;
        // It reads the stream as a reader: how much it holds, and the bytes
        // of what it signs.
        let reader = prolo_bus::connect(&url_of(local_users::READER), "prolo-audit-demo").await?;
        let mut stream = async_nats::jetstream::new(reader)
            .get_stream(prolo_bus::STREAM_NAME)
            .await
            .ok();
        let held = match &mut stream {
            Some(stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            None => 0,
        };
        if held > 0 {
            println!("the stream already holds {held} events: not seeding the demo again");
        } else {
            println!(
                "seeding the demo clinic ({} patients)…",
                args.demo_args.patients
            );
            // The demo clinic's EHR integration records for its clinicians.
            let token = identity.provider.mint(
                crate::identity::DEMO_DELEGATE,
                prolo_schemas::ActorRole::Service,
                Duration::from_secs(3600),
            )?;
            let seeded = crate::demo::seed(
                &client,
                &args.demo_args,
                Some(&token),
                Some(&identity.provider),
                stream,
            )
            .await?;
            crate::demo::print_examples(
                &seeded,
                args.demo_args.clinic(),
                &format!("http://{bound}"),
                &token_hint,
            );
        }
    }

    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::anyhow!("a service task panicked: {e}"))),
        }
    }
    if let Some((mut server, _)) = local {
        println!("stopping the local nats-server");
        server.stop(Duration::from_secs(10));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The audit API tokens `up` generates when none are given: a compliance,
/// a safety and a service token for every clinic, in `api-tokens.json`
/// under the data directory (kept across runs), plus the compliance token
/// alone in `api-token-compliance`, both mode 0600. Returns the file and
/// how to read the compliance token in a shell.
fn generated_tokens(data_dir: &std::path::Path) -> Result<(PathBuf, String)> {
    create_private_dir(data_dir)?;
    let file = data_dir.join("api-tokens.json");
    let compliance_file = data_dir.join("api-token-compliance");
    if !file.exists() || !compliance_file.exists() {
        let compliance = random_hex(24)?;
        let tokens = serde_json::json!({"tokens": [
            {"token": compliance, "principal": "local-compliance", "role": "compliance", "clinics": ["*"]},
            {"token": random_hex(24)?, "principal": "local-safety", "role": "safety", "clinics": ["*"]},
            {"token": random_hex(24)?, "principal": "local-service", "role": "service", "clinics": ["*"]},
        ]});
        write_private(&file, &serde_json::to_string_pretty(&tokens)?)?;
        write_private(&compliance_file, &compliance)?;
        println!(
            "generated API tokens in {} (mode 0600; the compliance token alone in {})",
            file.display(),
            compliance_file.display()
        );
    }
    let hint = format!("$(cat {})", compliance_file.display());
    Ok((file, hint))
}

/// What `up --edge` runs as: one clinic, a leaf node of the hub.
struct Edge {
    clinic: String,
    domain: String,
    hub: String,
}

impl Edge {
    fn from_args(args: &UpArgs) -> Result<Option<Self>> {
        if !args.edge {
            return Ok(None);
        }
        let (Some(clinic), Some(hub)) = (&args.demo_args.clinic, &args.hub) else {
            bail!("--edge needs --clinic (the clinic this edge records for) and --hub");
        };
        prolo_schemas::check_token("--clinic", clinic)?;
        let domain = args
            .domain
            .clone()
            .unwrap_or_else(|| prolo_bus::edge::edge_domain(clinic));
        prolo_schemas::check_token("--domain", &domain)?;
        Ok(Some(Self {
            clinic: clinic.clone(),
            domain,
            hub: hub.clone(),
        }))
    }

    /// The edge server's own configuration: the local user and the leaf
    /// remote with the hub's credentials (mode 0600: it holds a password).
    fn write_conf(&self, data_dir: &std::path::Path, users: &LocalUsers) -> Result<PathBuf> {
        let path = data_dir.join("nats-edge.conf");
        let auth = users
            .auth_conf
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_private(
            &path,
            &format!(
                "# Written by prolo-audit up --edge: clinic {}'s server, a leaf node of the hub.\n\
                 include {}\n{}\n",
                self.clinic,
                serde_json::to_string(&auth)?,
                prolo_bus::edge::leaf_remote(&self.hub)
            ),
        )?;
        Ok(path.canonicalize().unwrap_or(path))
    }
}

/// The port of a `nats://host:port` URL (4222 when absent).
fn port_of(url: &str) -> Result<u16> {
    let rest = url.rsplit("://").next().unwrap_or(url);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    match host_port.rsplit_once(':') {
        Some((_, port)) => port
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("port of {url}")),
        None if !host_port.is_empty() => Ok(4222),
        None => bail!("cannot read a host from {url}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_a_url() {
        assert_eq!(port_of("nats://127.0.0.1:4333").unwrap(), 4333);
        assert_eq!(port_of("nats://localhost").unwrap(), 4222);
        assert_eq!(port_of("nats://u:p@host:5000").unwrap(), 5000);
    }
}
