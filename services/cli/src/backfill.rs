//! `prolo-audit backfill --clinic riverside --file events.jsonl`: loads a
//! clinic's history through the batch command, 1,000 events per request.
//!
//! Each line is one event, `{"command": "injection.give", "request": {…}}`.
//! Progress goes to stderr; every refused line goes to stdout as JSON
//! (`{"line": 12, "error": {…}}`), so that a run can be fixed and re-run:
//! with an `idempotency_key` on each request, a re-run stores only what is
//! missing.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;
use prolo_bus::batch::MAX_BATCH;
use prolo_recorder::{
    batch::{BatchReply, MAX_BATCH_BYTES},
    commands::batch_subject,
    reply::ErrorReply,
};
use serde_json::value::RawValue;

/// Arguments of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The clinic the events are for (every request must name it).
    #[arg(long)]
    clinic: String,
    /// JSON lines, one `{"command", "request"}` per line; `-` reads stdin.
    #[arg(long, short)]
    file: PathBuf,
    /// Events per request (1 to 1,000).
    #[arg(long, default_value_t = MAX_BATCH)]
    batch_size: usize,
    /// Seconds to wait for each batch's reply.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The token of the system back-filling (an integration the recording
    /// services allow to record for others), sent as `Authorization: Bearer`.
    #[arg(long, env = "PROLO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Sends the file in batches and prints what was refused.
pub async fn run(nats_url: &str, args: BackfillArgs) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&args.batch_size) {
        bail!("--batch-size must be 1 to {MAX_BATCH}");
    }
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::new(file))
    };
    let client = prolo_bus::connect(nats_url, "prolo-audit-backfill")
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let mut run = Run {
        client,
        headers: prolo_recorder::identity::bearer_headers(args.token.as_deref()),
        subject: batch_subject(&args.clinic),
        timeout: Duration::from_secs(args.timeout),
        started: Instant::now(),
        recorded: 0,
        refused: 0,
        batch: Vec::new(),
        bytes: 0,
    };
    for (number, text) in input.lines().enumerate() {
        let line = number + 1;
        let text = text.with_context(|| format!("reading line {line}"))?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Box<RawValue>>(&text) {
            Ok(event) => {
                run.bytes += event.get().len() + 1;
                run.batch.push((line, event));
            }
            Err(e) => {
                run.refused += 1;
                let error = serde_json::json!({"code": "invalid_request", "message": format!("not JSON: {e}")});
                println!("{}", serde_json::json!({"line": line, "error": error}));
            }
        }
        // Well under the largest request, as one event may be 64 KiB.
        if run.batch.len() >= args.batch_size || run.bytes > MAX_BATCH_BYTES * 3 / 4 {
            run.send().await?;
        }
    }
    run.send().await?;
    eprintln!(
        "done: {} recorded, {} refused in {:.1} s",
        run.recorded,
        run.refused,
        run.started.elapsed().as_secs_f64()
    );
    if run.refused > 0 {
        bail!(
            "{} events were refused (listed on stdout with their line numbers)",
            run.refused
        );
    }
    Ok(())
}

/// A back-fill under way.
struct Run {
    client: async_nats::Client,
    headers: async_nats::HeaderMap,
    subject: String,
    timeout: Duration,
    started: Instant,
    recorded: usize,
    refused: usize,
    /// (line number, the event's JSON) of the batch being filled.
    batch: Vec<(usize, Box<RawValue>)>,
    bytes: usize,
}

impl Run {
    /// Sends the batch being filled (if any), prints its refusals and the progress.
    async fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let reply = send(self, &self.batch).await?;
        for result in &reply.results {
            if let Some(error) = &result.error {
                let line = self.batch.get(result.index).map(|(line, _)| *line);
                println!("{}", serde_json::json!({"line": line, "error": error}));
            }
        }
        self.recorded += reply.recorded;
        self.refused += reply.refused;
        let last = self.batch.last().map(|(line, _)| *line).unwrap_or_default();
        eprintln!(
            "{} recorded, {} refused, up to line {last} ({:.0} events/s)",
            self.recorded,
            self.refused,
            (self.recorded + self.refused) as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
        );
        self.batch.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// One batch request; its reply, or why the whole batch failed.
async fn send(run: &Run, batch: &[(usize, Box<RawValue>)]) -> Result<BatchReply> {
    let (subject, timeout) = (&run.subject, run.timeout);
    // The events as they were read (each already checked to be JSON).
    let events: Vec<&str> = batch.iter().map(|(_, event)| event.get()).collect();
    let body = format!("{{\"events\":[{}]}}", events.join(","));
    let first = batch.first().map(|(line, _)| *line).unwrap_or_default();
    let request =
        run.client
            .request_with_headers(subject.to_owned(), run.headers.clone(), body.into());
    let reply = tokio::time::timeout(timeout, request)
        .await
        .with_context(|| format!("no reply within {timeout:?} for the batch from line {first}: re-run; events with an idempotency_key are not stored twice"))?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                anyhow::anyhow!("no batch service is answering {subject}: is it running?")
            }
            _ => anyhow::anyhow!("request to {subject} failed: {e}"),
        })?;
    let failed = reply.headers.as_ref().is_some_and(|h| {
        h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
            .is_some()
    });
    if failed {
        let message = serde_json::from_slice::<ErrorReply>(&reply.payload)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.payload).into_owned());
        bail!("the batch from line {first} was refused whole: {message}");
    }
    serde_json::from_slice(&reply.payload).context("reading the batch service's reply")
}
