//! Seal keys: `prolo-audit seal-key new`, and the one `up` keeps.
//!
//! Every recording service seals what it stores with its own Ed25519 key;
//! every fold trusts the public halves listed in a keyring file and
//! quarantines the rest (docs/identity.md, "Only the recorder writes the
//! trail").

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use prolo_bus::{Keyring, SealKey};

use crate::private::{create_private_dir, write_private};

/// The seal key of a data directory and the keyring that trusts it.
pub struct LocalSeal {
    /// The recording services' key (`<data>/seal/recorder-key`, mode 0600).
    pub key: Arc<SealKey>,
    /// Its public half, as the folds' keyring (`<data>/seal/keyring`).
    pub keyring: Arc<Keyring>,
    /// Where the keyring is.
    pub keyring_file: PathBuf,
}

/// The seal key `up` uses under `data_dir`, made the first time.
pub fn load_or_create(data_dir: &Path) -> Result<LocalSeal> {
    let dir = data_dir.join("seal");
    let file = dir.join("recorder-key");
    let key = if file.exists() {
        SealKey::load(&file)?
    } else {
        create_private_dir(&dir)?;
        let (key, document) = SealKey::generate()?;
        write_private(&file, &document)?;
        key
    };
    let keyring_file = dir.join("keyring");
    write_private(&keyring_file, &keyring_text(&key, "prolo-audit up"))?;
    Ok(LocalSeal {
        keyring: Arc::new(Keyring::of(&[&key])),
        key: Arc::new(key),
        keyring_file,
    })
}

/// A keyring line for `key`, with a comment naming it.
fn keyring_text(key: &SealKey, who: &str) -> String {
    format!("# {who}, key {}\n{}\n", key.id(), key.public_key())
}

/// Arguments of `seal-key`.
#[derive(Debug, Args)]
pub struct SealKeyArgs {
    #[command(subcommand)]
    command: SealKeyCommand,
}

#[derive(Debug, Subcommand)]
enum SealKeyCommand {
    /// Make a recording service's seal key (mode 0600) and print the line
    /// to add to every fold's keyring (PROLO_SEAL_KEYRING).
    New {
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Who holds it, for the keyring comment (e.g. `recorder riverside-1`).
        #[arg(long, default_value = "a recording service")]
        name: String,
    },
    /// Print the keyring line of an existing key.
    Public {
        /// The private key file.
        #[arg(long)]
        key: PathBuf,
    },
}

/// Runs `seal-key`.
pub fn run(args: SealKeyArgs) -> Result<()> {
    match args.command {
        SealKeyCommand::New { out, name } => {
            if out.exists() {
                bail!(
                    "{} exists: a seal key is never overwritten (events sealed with it must stay verifiable)",
                    out.display()
                );
            }
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent)?;
            }
            let (key, document) = SealKey::generate()?;
            write_private(&out, &document).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote seal key {} to {} (mode 0600); add this to every fold's keyring:",
                key.id(),
                out.display()
            );
            print!("{}", keyring_text(&key, &name));
        }
        SealKeyCommand::Public { key } => {
            let key = SealKey::load(&key)?;
            print!("{}", keyring_text(&key, "a recording service"));
        }
    }
    Ok(())
}
