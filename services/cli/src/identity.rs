//! The development identity provider `up` runs, and `prolo-audit token`.
//!
//! `up` makes an Ed25519 signing key once, under `<data>/identity/`
//! (owner-only), publishes its public key as a JWKS document beside it, and
//! has every recording service trust it: each command must then carry a
//! token of the person who acted. `prolo-audit token mint` signs one with
//! that key for people trying the system. A deployment points the services
//! at its own provider instead (docs/identity.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use prolo_recorder::identity::dev::Provider;
use prolo_schemas::ActorRole;

use crate::private::{create_private_dir, write_private};

/// The identity the demo records with: the demo clinic's EHR integration,
/// which `up` allows to record on behalf of the clinicians it names.
pub const DEMO_DELEGATE: &str = "demo-ehr";

/// The development provider of a data directory.
pub struct DevIdentity {
    /// Its key.
    pub provider: Provider,
    /// Its public keys, as a JWKS document.
    pub jwks: PathBuf,
}

fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("identity").join("dev-signing-key")
}

/// The development provider under `data_dir`, made the first time.
pub fn load_or_create(data_dir: &Path) -> Result<DevIdentity> {
    let file = key_file(data_dir);
    let provider = if file.exists() {
        load(data_dir)?
    } else {
        create_private_dir(&data_dir.join("identity"))?;
        let provider = Provider::generate()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(provider.pkcs8());
        write_private(&file, &encoded)?;
        provider
    };
    let jwks = data_dir.join("identity").join("jwks.json");
    write_private(&jwks, &serde_json::to_string_pretty(&provider.jwks()?)?)?;
    Ok(DevIdentity { provider, jwks })
}

/// The development provider `up` made under `data_dir`.
fn load(data_dir: &Path) -> Result<Provider> {
    let file = key_file(data_dir);
    let encoded = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no development identity provider at {} (run `prolo-audit up` with this data directory first)",
            file.display()
        )
    })?;
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .with_context(|| format!("{} is not a saved key", file.display()))?;
    Ok(Provider::from_pkcs8(&pkcs8)?)
}

/// Arguments of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Sign a token for a person with the development provider `up` runs
    /// (for trying the system; a clinic's own provider issues real ones).
    Mint {
        /// Who (the `actor.id` their requests name), e.g. `dr-hale`.
        #[arg(long)]
        person: String,
        /// In what capacity: practitioner, nurse, clerk, service, compliance, safety.
        #[arg(long, default_value = "practitioner")]
        role: String,
        /// Hours the token is valid.
        #[arg(long, default_value_t = 8)]
        hours: u64,
        /// The data directory `up` runs with.
        #[arg(long, env = "PROLO_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

/// Prints the token asked for.
pub fn run(args: TokenArgs) -> Result<()> {
    let TokenCommand::Mint {
        person,
        role,
        hours,
        data_dir,
    } = args.command;
    let role: ActorRole = serde_json::from_value(serde_json::Value::String(role.clone()))
        .map_err(|_| {
            anyhow::anyhow!(
                "unknown role {role:?}; roles: practitioner, nurse, clerk, service, compliance, safety"
            )
        })?;
    if person.trim().is_empty() {
        bail!("--person names who the token is for");
    }
    let valid_for = std::time::Duration::from_secs(hours.clamp(1, 24 * 30) * 3600);
    println!("{}", load(&data_dir)?.mint(&person, role, valid_for)?);
    Ok(())
}
