//! `prolo-audit record <event-type> --file request.json`

use std::{io::Read, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;
use prolo_recorder::{command_for, reply::ErrorReply};
use prolo_schemas::EventType;

/// Arguments of `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Event type, e.g. `injection.given` (see the README's catalogue).
    event_type: String,
    /// The request as JSON (see the README); `-` or absent reads stdin.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Print the service's JSON reply instead of a sentence.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The token of who acted (their identity provider's; with `up`:
    /// `prolo-audit token mint --person <id>`), sent as `Authorization: Bearer`.
    #[arg(long, env = "PROLO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Sends the request and prints the stored event id and sequence.
pub async fn run(nats_url: &str, args: RecordArgs) -> Result<()> {
    let event_type: EventType = args.event_type.parse().map_err(|_| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        anyhow::anyhow!(
            "unknown event type {:?}; known: {}",
            args.event_type,
            known.join(", ")
        )
    })?;
    let Some((service, command)) = command_for(event_type) else {
        bail!("no recording service records {event_type}");
    };
    let body = match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the request from stdin")?;
            body
        }
    };
    let client = prolo_bus::connect(nats_url, "prolo-audit-cli")
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let clinic = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|request| request["clinic_id"].as_str().map(str::to_owned))
        .context("the request names no clinic_id (it goes to that clinic's command subject)")?;
    let subject = command.subject(&clinic);
    let headers = prolo_recorder::identity::bearer_headers(args.token.as_deref());
    let request = client.request_with_headers(subject.clone(), headers, body.into());
    let reply = tokio::time::timeout(Duration::from_secs(args.timeout), request)
        .await
        .with_context(|| {
            format!(
                "no reply from the {} service within {} s",
                service.name, args.timeout
            )
        })?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => anyhow::anyhow!(
                "no {} service is answering {}: is it running?",
                service.name,
                subject
            ),
            _ => anyhow::anyhow!("request to {subject} failed: {e}"),
        })?;
    let failed = reply.headers.as_ref().is_some_and(|h| {
        h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
            .is_some()
    });
    if args.json || failed {
        println!("{}", String::from_utf8_lossy(&reply.payload));
    }
    if failed {
        let message = serde_json::from_slice::<ErrorReply>(&reply.payload)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| "the service refused the request".into());
        bail!("{message}");
    }
    if !args.json {
        let recorded: prolo_bus::Recorded =
            serde_json::from_slice(&reply.payload).context("reading the service's reply")?;
        let again = if recorded.duplicate {
            " (already stored: a retry)"
        } else {
            ""
        };
        println!(
            "recorded {} at stream sequence {} on {}{again}",
            recorded.event_id, recorded.stream_seq, recorded.subject
        );
    }
    Ok(())
}
