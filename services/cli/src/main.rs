//! `prolo-audit`: record events through the recording services and follow
//! the trail live.

mod backfill;
mod backup;
mod demo;
mod edge;
mod identity;
mod local_users;
mod private;
mod query;
mod record;
mod seal;
mod table;
mod tail;
mod up;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// prolo-audit: an event-sourced audit trail for reconstructive-therapy clinics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// NATS server URL.
    #[arg(long, global = true, env = "NATS_URL", default_value = prolo_bus::connect::DEFAULT_NATS_URL)]
    nats_url: String,
    #[command(flatten)]
    api: query::ApiArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record one event through its recording service and print where it was stored.
    Record(record::RecordArgs),
    /// Load a clinic's history from JSON lines through the batch command, 1,000 events per request.
    Backfill(backfill::BackfillArgs),
    /// Back up the stream (JetStream's snapshot, a manifest with the chain head) into a new directory.
    Backup(backup::BackupArgs),
    /// Restore a backup into a server without the stream, then check its hash chain.
    Restore(backup::RestoreArgs),
    /// Follow events as they are recorded, filtered by clinic, patient and type.
    Tail(tail::TailArgs),
    /// Run the whole system in one process, starting a local nats-server if none is reachable (`--edge`: a clinic's edge).
    Up(up::UpArgs),
    /// Tokens of the development identity provider `up` runs (`token mint --person dr-hale`).
    Token(identity::TokenArgs),
    /// Seal keys of the recording services (`seal-key new --out F`) and their keyring lines.
    SealKey(seal::SealKeyArgs),
    /// At the hub: source a clinic's edge, print its leaf user, show how far behind each edge the hub is.
    Edge(edge::EdgeArgs),
    /// Seed a realistic demo clinic through the recording services, then print queries to try.
    Demo(demo::DemoArgs),
    /// Ask the audit API (history, summary, investigate, lot-trace, practitioner, access-log, event, status).
    #[command(flatten)]
    Ask(query::Ask),
}

/// glibc malloc contends between threads; mimalloc measured ~15% faster here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `up` talks to a person on stdout while its services log: it sends
    // their log to a file under its data directory once its arguments are
    // checked (`up::run`).
    if !matches!(cli.command, Command::Up(_)) {
        prolo_bus::init_tracing("warn");
    }
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Record(args) => record::run(&cli.nats_url, args).await,
        Command::Backfill(args) => backfill::run(&cli.nats_url, args).await,
        Command::Tail(args) => tail::run(&cli.nats_url, args).await,
        Command::Backup(args) => backup::backup(&cli.nats_url, args).await,
        Command::Restore(args) => backup::restore(&cli.nats_url, args).await,
        Command::Up(args) => up::run(&cli.nats_url, args).await,
        Command::Edge(args) => edge::run(&cli.nats_url, args).await,
        Command::Token(args) => identity::run(args),
        Command::SealKey(args) => seal::run(args),
        Command::Demo(args) => {
            let client = prolo_bus::connect(&cli.nats_url, "prolo-audit-demo").await?;
            // The stream, to sign what was stored, when this user may read it.
            let stream = async_nats::jetstream::new(client.clone())
                .get_stream(prolo_bus::STREAM_NAME)
                .await
                .ok();
            let seeded = demo::seed(&client, &args, args.token.as_deref(), None, stream).await?;
            demo::print_examples(
                &seeded,
                args.clinic(),
                &std::env::var("PROLO_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
                "<your compliance token>",
            );
            Ok(())
        }
        Command::Ask(ask) => query::run(&cli.api, ask).await,
    }
}
