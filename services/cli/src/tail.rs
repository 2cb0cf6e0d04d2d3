//! `prolo-audit tail`: follow events live.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use clap::Args;
use futures::StreamExt;
use prolo_bus::STREAM_NAME;
use prolo_schemas::{ClinicId, Envelope, EventType, PatientId, subject};

/// Arguments of `tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this clinic.
    #[arg(long)]
    clinic: Option<ClinicId>,
    /// Only this patient.
    #[arg(long)]
    patient: Option<PatientId>,
    /// Only this event type, e.g. `adverse_event.reported`.
    #[arg(long = "type")]
    event_type: Option<EventType>,
    /// Start from the first event instead of new ones.
    #[arg(long)]
    from_start: bool,
    /// Print each event's JSON instead of a summary line.
    #[arg(long)]
    json: bool,
}

/// Follows the stream with an ordered consumer until ctrl-c.
pub async fn run(nats_url: &str, args: TailArgs) -> Result<()> {
    let client = prolo_bus::connect(nats_url, "prolo-audit-tail")
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let js = jetstream::new(client);
    let stream = js.get_stream(STREAM_NAME).await.with_context(|| {
        format!("stream {STREAM_NAME} not found: start a recording service first")
    })?;
    let filter = subject::filter(args.clinic.as_ref(), args.patient.as_ref(), args.event_type);
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: if args.from_start {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            ..Default::default()
        })
        .await
        .context("creating an ordered consumer")?;
    eprintln!("following {filter} (ctrl-c to stop)");
    let mut messages = consumer.messages().await.context("consuming")?;
    loop {
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = messages.next() => next,
        };
        let Some(message) = next else { return Ok(()) };
        let message = message.context("reading the stream")?;
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        if args.json {
            println!("{}", String::from_utf8_lossy(&message.payload));
            continue;
        }
        match Envelope::decode(&message.payload) {
            Ok(e) => println!(
                "{seq:>8}  {}  {:<28} {}  occurred {}  by {}",
                e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                e.event_type(),
                message.subject,
                e.occurred_at.format("%Y-%m-%dT%H:%M:%SZ"),
                e.actor.id,
            ),
            Err(err) => println!("{seq:>8}  UNREADABLE on {}: {err}", message.subject),
        }
    }
}
