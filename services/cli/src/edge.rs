//! `prolo-audit edge`: the hub's side of a clinic edge (see `up --edge`).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Arguments of `edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    #[command(subcommand)]
    command: EdgeCommand,
}

#[derive(Debug, Subcommand)]
enum EdgeCommand {
    /// At the hub (NATS_URL): source the clinic's edge stream into CLINIC_EVENTS (idempotent).
    Attach(ClinicArgs),
    /// Print the hub's nats-server user for the clinic's leaf connection, to add to its authorization.
    LeafUser {
        #[command(flatten)]
        clinic: ClinicArgs,
        /// The password as the hub's configuration writes it: an environment
        /// variable (`$PROLO_EDGE_<CLINIC>_PASSWORD`, the default) or a bcrypted hash in quotes.
        #[arg(long)]
        password: Option<String>,
    },
    /// At the hub (NATS_URL): how far behind each clinic edge it is.
    Lag,
}

#[derive(Debug, Args)]
struct ClinicArgs {
    /// The clinic.
    #[arg(long)]
    clinic: String,
    /// The edge's JetStream domain (default `clinic-<clinic>`).
    #[arg(long)]
    domain: Option<String>,
}

impl ClinicArgs {
    fn domain(&self) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| prolo_bus::edge::edge_domain(&self.clinic))
    }
}

/// Runs an `edge` subcommand.
pub async fn run(nats_url: &str, args: EdgeArgs) -> Result<()> {
    match args.command {
        EdgeCommand::Attach(clinic) => {
            let client = prolo_bus::connect(nats_url, "prolo-audit-edge").await?;
            let js = async_nats::jetstream::new(client);
            let domain = clinic.domain();
            let attached = prolo_bus::edge::attach(&js, &clinic.clinic, &domain)
                .await
                .with_context(|| format!("attaching clinic {}'s edge", clinic.clinic))?;
            match attached {
                prolo_bus::edge::Attached::Added => println!(
                    "the hub's stream now sources clinic {}'s edge (domain {domain}, clinic.{}.>)",
                    clinic.clinic, clinic.clinic
                ),
                prolo_bus::edge::Attached::AlreadyAttached => println!(
                    "the hub's stream already sources clinic {}'s edge (domain {domain})",
                    clinic.clinic
                ),
            }
            Ok(())
        }
        EdgeCommand::LeafUser { clinic, password } => {
            let env = format!(
                "$PROLO_EDGE_{}_PASSWORD",
                clinic.clinic.to_uppercase().replace('-', "_")
            );
            println!(
                "{}",
                prolo_bus::edge::hub_leaf_user(
                    &clinic.clinic,
                    &clinic.domain(),
                    &format!("edge-{}", clinic.clinic),
                    password.as_deref().unwrap_or(&env),
                )
            );
            Ok(())
        }
        EdgeCommand::Lag => {
            let client = prolo_bus::connect(nats_url, "prolo-audit-edge").await?;
            let js = async_nats::jetstream::new(client);
            let lags = prolo_bus::edge::source_lags(&js).await?;
            if lags.is_empty() {
                println!("the hub's stream sources no clinic edge");
            }
            for lag in lags {
                println!(
                    "clinic {:<20} behind by {:>8} messages, last heard from {}",
                    lag.clinic,
                    lag.lag,
                    crate::table::last_heard(lag.active_ms)
                );
            }
            Ok(())
        }
    }
}
