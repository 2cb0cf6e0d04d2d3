//! `prolo-projector`: run the fold, or verify, rebuild and inspect its database.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use async_nats::jetstream;
use clap::{Parser, Subcommand};
use prolo_bus::{STREAM_NAME, Shutdown, init_tracing};
use prolo_projector::{
    ProjectorSettings, Store,
    integrity::{chain, rebuild::rebuild},
    rules::findings::FindingSettings,
};

/// glibc malloc contends between threads; mimalloc measured faster here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Folds the CLINIC_EVENTS stream into sled read models.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// NATS server URL.
    #[arg(long, global = true, env = "NATS_URL", default_value = prolo_bus::connect::DEFAULT_NATS_URL)]
    nats_url: String,
    /// The sled database directory.
    #[arg(
        long,
        global = true,
        env = "PROLO_DB",
        default_value = "data/projector.sled"
    )]
    db: PathBuf,
    /// sled page cache, MiB: memory stays bounded by it.
    #[arg(long, global = true, env = "PROLO_CACHE_MB", default_value_t = 256)]
    cache_mb: u64,
    #[command(flatten)]
    seals: prolo_projector::seals::SealArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow the stream and fold it (the default).
    Run {
        /// Events per committed batch.
        #[arg(long, default_value_t = prolo_projector::project::FOLD_BATCH)]
        batch_size: usize,
        /// Publish a chain checkpoint every N sequences.
        #[arg(long, env = "PROLO_CHECKPOINT_EVERY", default_value_t = 10_000)]
        checkpoint_every: u64,
        /// The durable consumer: a new version rebuilding beside the live
        /// one (an upgrade) takes another name.
        #[arg(long, env = "PROLO_PROJECTOR_CONSUMER", default_value = prolo_projector::project::CONSUMER)]
        consumer: String,
    },
    /// Recompute the hash chain from the stream and compare; exit 1 on a difference.
    Verify,
    /// Fold the whole stream again into a fresh database and swap it in (stop the projector first).
    Rebuild,
    /// Applied sequence, stream position, lag, quarantine count, chain head.
    Status,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(
        if matches!(args.command, None | Some(Command::Run { .. })) {
            "info"
        } else {
            "warn"
        },
    );
    match dispatch(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: Args) -> Result<ExitCode> {
    let cache = args.cache_mb * 1024 * 1024;
    let client = prolo_bus::connect(&args.nats_url, "projector")
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let js = jetstream::new(client.clone());
    let findings = FindingSettings {
        seals: args.seals.keyring().context("reading the seal keyring")?,
        ..FindingSettings::default()
    };
    match args.command.unwrap_or(Command::Run {
        batch_size: prolo_projector::project::FOLD_BATCH,
        checkpoint_every: 10_000,
        consumer: std::env::var("PROLO_PROJECTOR_CONSUMER")
            .unwrap_or_else(|_| prolo_projector::project::CONSUMER.to_owned()),
    }) {
        Command::Run {
            batch_size,
            checkpoint_every,
            consumer,
        } => {
            let store = open(&args.db, cache)?;
            let settings = ProjectorSettings {
                batch_size,
                checkpoint_every,
                consumer,
                findings,
                ..ProjectorSettings::default()
            };
            let shutdown = Shutdown::on_signals();
            prolo_bus::metrics::serve_from_env(shutdown.clone());
            prolo_projector::run(client.clone(), store, settings, shutdown).await?;
        }
        Command::Verify => {
            let store = open(&args.db, cache)?;
            let report = prolo_projector::verify(&js, &store).await?;
            match report.first_difference {
                None => println!(
                    "OK: {} sequences verified, chain head {}",
                    report.checked, report.head
                ),
                Some((seq, what)) => {
                    println!(
                        "MISMATCH at sequence {seq}: {what} ({} sequences checked)",
                        report.checked
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Rebuild => {
            let report = rebuild(&js, &args.db, cache, &findings, |done, total, rate| {
                let eta = if rate > 0.0 {
                    (total.saturating_sub(done)) as f64 / rate
                } else {
                    0.0
                };
                eprint!(
                    "\rrebuilding: {done}/{total} events, {rate:.0} events/s, ETA {eta:.0} s   "
                );
                let _ = std::io::stderr().flush();
            })
            .await?;
            eprintln!();
            println!(
                "rebuilt {} events in {:.1} s into {}",
                report.events,
                report.seconds,
                args.db.display()
            );
            if let Some(previous) = report.previous {
                println!("the previous database was moved to {}", previous.display());
            }
        }
        Command::Status => {
            let store = open(&args.db, cache)?;
            let applied = store.applied_seq()?;
            let last = js
                .get_stream(STREAM_NAME)
                .await
                .context("reading the stream")?
                .info()
                .await
                .context("reading the stream")?
                .state
                .last_sequence;
            let quarantined = store.quarantined()?;
            let head = chain::hex(&store.chain_head()?);
            let consistency = prolo_projector::integrity::consistency::check(&js, &store).await?;
            println!("applied sequence  {applied}");
            println!("stream last       {last}");
            println!("lag               {}", last.saturating_sub(applied));
            println!("quarantined       {quarantined}");
            println!("chain head        {head}");
            match &consistency {
                prolo_projector::integrity::consistency::Consistency::Consistent => {
                    println!("stream            consistent")
                }
                prolo_projector::integrity::consistency::Consistency::Diverged {
                    reason, ..
                } => {
                    println!("stream            DIVERGED: {reason}")
                }
            }
            let verified: Option<prolo_projector::VerifyReport> =
                store.status_get("last_verify")?;
            match verified {
                Some(v) => println!(
                    "last verify       {} sequences, {}",
                    v.checked,
                    v.first_difference
                        .map_or("OK".into(), |(seq, what)| format!(
                            "MISMATCH at {seq}: {what}"
                        ))
                ),
                None => println!("last verify       never"),
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Ok(ExitCode::SUCCESS)
}

fn open(path: &std::path::Path, cache: u64) -> Result<Store> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Store::open(path, cache).with_context(|| format!("opening the database {}", path.display()))
}
