//! `prolo-audit`: record events through the recording services and follow
//! the trail live.

mod record;
mod tail;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// prolo-audit: an event-sourced audit trail for reconstructive-therapy clinics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// NATS server URL.
    #[arg(long, global = true, env = "NATS_URL", default_value = prolo_bus::connect::DEFAULT_NATS_URL)]
    nats_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record one event through its recording service and print where it was stored.
    Record(record::RecordArgs),
    /// Follow events as they are recorded, filtered by clinic, patient and type.
    Tail(tail::TailArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    prolo_bus::init_tracing();
    match cli.command {
        Command::Record(args) => record::run(&cli.nats_url, args).await,
        Command::Tail(args) => tail::run(&cli.nats_url, args).await,
    }
}
