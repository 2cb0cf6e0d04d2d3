//! `prolo-audit backup` and `restore`: the stream (the only copy of the
//! truth) to a directory and back, through JetStream's own snapshot and
//! restore, checked by the hash chain (see `prolo_projector::integrity::backup`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use prolo_projector::integrity::backup as archive;

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) directory for the snapshot and its manifest.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `backup` wrote.
    #[arg(long)]
    from: PathBuf,
}

fn progress(what: &'static str) -> impl FnMut(u64) {
    let mut shown = 0u64;
    move |bytes| {
        if bytes >= shown + (8 << 20) {
            shown = bytes;
            eprintln!("  {what} {} MiB", bytes >> 20);
        }
    }
}

/// Takes a backup of the stream into `args.out`.
pub async fn backup(nats_url: &str, args: BackupArgs) -> Result<()> {
    let client = prolo_bus::connect(nats_url, "prolo-audit-backup").await?;
    let received = progress("received");
    let manifest = archive::backup(&client, &args.out, received)
        .await
        .context("backup")?;
    println!(
        "backed up {} messages (sequences {} to {}, {} bytes) to {}; chain head {}",
        manifest.messages,
        manifest.first_seq,
        manifest.last_seq,
        manifest.snapshot_bytes,
        args.out.display(),
        manifest.chain_head
    );
    Ok(())
}

/// Restores `args.from` into a server without the stream, then checks it.
pub async fn restore(nats_url: &str, args: RestoreArgs) -> Result<()> {
    let client = prolo_bus::connect(nats_url, "prolo-audit-restore").await?;
    let sent = progress("sent");
    let restored = archive::restore(&client, &args.from, sent)
        .await
        .context("restore")?;
    if !restored.verified() {
        bail!(
            "the restored stream does not match its backup: last sequence {} (backup {}), chain head {} (backup {})",
            restored.last_seq,
            restored.manifest.last_seq,
            restored.chain_head,
            restored.manifest.chain_head
        );
    }
    println!(
        "restored {} messages up to sequence {}; chain head {} matches the backup",
        restored.manifest.messages, restored.last_seq, restored.chain_head
    );
    Ok(())
}
