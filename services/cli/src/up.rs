//! `prolo-audit up`: the whole system in one process, for one machine.
//!
//! Each part runs as its own task with the same code its separate binary
//! uses. When no NATS server is reachable at the URL, a local `nats-server`
//! with JetStream is started with its store under the data directory, and
//! stopped on exit; it fsyncs before it acknowledges. A server found at the
//! URL is checked for that, and a loud warning printed when it does not.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;
use prolo_audit_api::{ApiSettings, Principals};
use prolo_bus::{
    Shutdown,
    local_server::{LocalNatsServer, ServerOptions, is_reachable},
};
use prolo_projector::ProjectorSettings;
use prolo_recorder::{ALL_SERVICES, ServeSettings, serve};
use tokio::task::JoinSet;

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
    /// The audit API's bearer tokens.
    #[arg(
        long,
        env = "PROLO_API_TOKENS",
        default_value = "deploy/tokens.example.json"
    )]
    tokens: PathBuf,
    /// The monitoring endpoint of a NATS server found at NATS_URL, to check
    /// that it fsyncs before it acknowledges (default: port 8222 on its host).
    #[arg(long, env = "NATS_MONITOR_URL")]
    nats_monitor_url: Option<String>,
    /// Seed the demo clinic once everything is up (skipped when the stream already holds events).
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    demo_args: crate::demo::DemoArgs,
}

/// Runs every service until SIGTERM / ctrl-c.
pub async fn run(nats_url: &str, args: UpArgs) -> Result<()> {
    let mut local = None;
    if is_reachable(nats_url).await {
        println!("using the NATS server at {nats_url}");
    } else {
        let port = port_of(nats_url)?;
        let store = args.data_dir.join("nats");
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let log = args.data_dir.join("nats-server.log");
        let options = ServerOptions {
            log: Some(log.clone()),
            ..ServerOptions::default()
        };
        let server = LocalNatsServer::start(port, &store, &options)
            .await
            .context("no NATS server is reachable, and starting a local one failed")?;
        println!(
            "started a local nats-server {} on {} (store {}, log {}, monitoring {})",
            server.version(),
            server.url(),
            store.display(),
            log.display(),
            server.monitor_url()
        );
        local = Some(server);
    }
    let url = local
        .as_ref()
        .map_or_else(|| nats_url.to_owned(), LocalNatsServer::url);
    let monitor_url = local
        .as_ref()
        .map(LocalNatsServer::monitor_url)
        .or(args.nats_monitor_url.clone());

    let shutdown = Shutdown::on_signals();
    let mut tasks = JoinSet::new();
    for spec in ALL_SERVICES {
        let client = prolo_bus::connect(&url, spec.name)
            .await
            .with_context(|| format!("connecting the {} service to {url}", spec.name))?;
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            serve(client, spec, ServeSettings::default(), shutdown)
                .await
                .with_context(|| format!("the {} service", spec.name))
        });
    }
    let principals = Principals::load(&args.tokens).map_err(anyhow::Error::msg)?;
    let api_client = prolo_bus::connect(&url, "audit-api")
        .await
        .with_context(|| format!("connecting the audit API to {url}"))?;
    let broker = prolo_bus::durability::check(&api_client, &url, monitor_url.as_deref()).await;
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
            ..ProjectorSettings::default()
        },
        broker: Some(broker),
    };
    let api_shutdown = shutdown.clone();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    tasks.spawn(async move {
        prolo_audit_api::run(api_client, principals, api_settings, api_shutdown, |addr| {
            let _ = bound_tx.send(addr);
        })
        .await
        .context("the audit API")
    });
    let bound = bound_rx.await.context("the audit API did not start")?;
    let names: Vec<&str> = ALL_SERVICES.iter().map(|s| s.name).collect();
    println!("recording services: {}", names.join(", "));
    println!(
        "audit API:          http://{bound} (tokens in {}; OpenAPI at /openapi.json)",
        args.tokens.display()
    );
    println!("record an event:    prolo-audit record injection.given --file request.json");
    println!("follow the trail:   prolo-audit tail --from-start");
    println!("ask:                PROLO_API_TOKEN=… prolo-audit history --clinic C --patient P");
    println!("stop:               ctrl-c");
    if args.demo {
        let client = prolo_bus::connect(&url, "prolo-audit-demo").await?;
        let js = async_nats::jetstream::new(client.clone());
        let held = match js.get_stream(prolo_bus::STREAM_NAME).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if held > 0 {
            println!("the stream already holds {held} events: not seeding the demo again");
        } else {
            println!("seeding the demo clinic…");
            let seeded = crate::demo::seed(&client, &args.demo_args).await?;
            crate::demo::print_examples(
                &seeded,
                args.demo_args.clinic(),
                &format!("http://{bound}"),
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
    if let Some(mut server) = local {
        println!("stopping the local nats-server");
        server.stop(Duration::from_secs(10));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
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
