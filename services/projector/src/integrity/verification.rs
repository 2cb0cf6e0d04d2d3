//! The scheduled verification: beside the fold, the projector recomputes
//! the hash chain from the stream on a schedule (daily by default, from
//! the last verified sequence on, and a full pass every seventh run) and
//! compares it, and every stored event, with the database. Each result is
//! kept (`status` shows it); a failure is published
//! (`prolo.chain.verification.failed`) and raises the finding
//! `chain_verification_failed` in the clinic of the event that differs.

use async_nats::jetstream;
use prolo_bus::Shutdown;
use prolo_schemas::Envelope;
use uuid::Uuid;

use crate::{
    ProjectorError, Store, VerifyReport,
    integrity::verify::{verify, verify_from},
    project::{ProjectorSettings, VerifySchedule},
    rules::findings::{Finding, FindingCount, Rule},
    store::{Pending, keys},
};

/// Follows the stream and folds it ([`crate::project::run`]), with the
/// chain verified beside the fold on the settings' schedule.
pub async fn run(
    client: async_nats::Client,
    store: Store,
    settings: ProjectorSettings,
    shutdown: Shutdown,
) -> Result<(), ProjectorError> {
    if let Some(schedule) = settings.verify {
        tokio::spawn(run_schedule(
            client.clone(),
            store.clone(),
            schedule,
            settings.publish_derived,
            shutdown.clone(),
        ));
    }
    crate::project::run(client, store, settings, shutdown).await
}

/// Where a failed verification is published.
pub const FAILED_SUBJECT: &str = "prolo.chain.verification.failed";

/// One run: incremental from the last good verification, or full.
pub async fn verify_once(
    js: &jetstream::Context,
    store: &Store,
    full: bool,
) -> Result<VerifyReport, ProjectorError> {
    let last: Option<VerifyReport> = store.status_get("last_verify").ok().flatten();
    match last.filter(|r| r.first_difference.is_none() && !full) {
        Some(last) => verify_from(js, store, last.through).await,
        None => verify(js, store).await,
    }
}

/// Runs the schedule until `shutdown`; publishes failures when `publish`.
pub async fn run_schedule(
    client: async_nats::Client,
    store: Store,
    schedule: VerifySchedule,
    publish: bool,
    mut shutdown: Shutdown,
) {
    let js = jetstream::new(client.clone());
    let mut runs: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(schedule.every) => {}
        }
        runs = runs.wrapping_add(1);
        let full = schedule.full_every > 0 && runs.is_multiple_of(schedule.full_every);
        let verified = verify_once(&js, &store, full).await;
        if let Ok(report) = &verified {
            record_metrics(report);
        }
        match verified {
            Ok(report) => match &report.first_difference {
                None => tracing::info!(
                    checked = report.checked,
                    through = report.through,
                    full,
                    "chain verified"
                ),
                Some((seq, what)) => {
                    tracing::error!(seq, %what, "the scheduled verification found a difference");
                    if let Err(e) = raise(&store, *seq, what).await {
                        tracing::error!(error = %e, "the verification's finding could not be kept");
                    }
                    if publish {
                        let body = serde_json::to_vec(&report).unwrap_or_default();
                        if let Err(e) = client.publish(FAILED_SUBJECT, body.into()).await {
                            tracing::error!(error = %e, "the verification's failure could not be published");
                        }
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "the scheduled verification did not run; next time")
            }
        }
    }
}

/// The last verification's time and result, for the metrics.
fn record_metrics(report: &VerifyReport) {
    let Some(metrics) = prolo_bus::metrics::active() else {
        return;
    };
    metrics
        .last_verification_timestamp
        .set(chrono::Utc::now().timestamp());
    metrics
        .last_verification_ok
        .set(i64::from(report.first_difference.is_none()));
}

/// Keeps the finding: in the clinic (and about the patient) of the event
/// at `seq` when it can still be read, else unscoped.
async fn raise(store: &Store, seq: u64, what: &str) -> Result<(), ProjectorError> {
    let envelope = store
        .event(seq)?
        .and_then(|record| Envelope::decode(&record.raw).ok());
    let clinic = envelope.as_ref().map_or_else(
        || prolo_schemas::ClinicId::unscoped().to_string(),
        |e| e.clinic_id.to_string(),
    );
    let event = envelope.as_ref().map_or_else(
        || Uuid::new_v5(&Uuid::NAMESPACE_OID, &seq.to_be_bytes()),
        |e| e.event_id,
    );
    let rule = Rule::ChainVerificationFailed;
    let id = Finding::id_for(rule, &event);
    let key = keys::by_uuid(keys::FINDING, &id);
    if store.get::<Finding>(&key)?.is_some() {
        return Ok(());
    }
    let finding = Finding {
        id,
        rule,
        severity: rule.severity(),
        clinic_id: clinic.clone(),
        patient_id: envelope
            .as_ref()
            .and_then(|e| e.patient_id.as_ref().map(ToString::to_string)),
        practitioner_id: None,
        evidence: vec![event],
        detail: format!("sequence {seq}: {what}"),
        raised_seq: seq,
        about_ms: envelope
            .as_ref()
            .map_or(0, |e| e.occurred_at.timestamp_millis()),
        resolved_by: None,
    };
    let mut pending = Pending::default();
    pending.put(key, &finding)?;
    let posting = |prefix: &[u8], parts: &[&[u8]]| keys::posting(prefix, parts, seq);
    let mut index = |key: Vec<u8>| -> Result<(), ProjectorError> {
        let mut list: Vec<u64> = store.get(&key)?.unwrap_or_default();
        if !list.contains(&seq) {
            list.push(seq);
            list.sort_unstable();
        }
        pending.put(key, &list)?;
        Ok(())
    };
    index(posting(
        keys::FINDINGS_BY_RULE,
        &[clinic.as_bytes(), rule.code().as_bytes()],
    ))?;
    if let Some(patient) = &finding.patient_id {
        index(posting(
            keys::FINDINGS_BY_PATIENT,
            &[clinic.as_bytes(), patient.as_bytes()],
        ))?;
    }
    let at = keys::by_seq(keys::FINDINGS_AT, seq);
    let mut ids: Vec<Uuid> = store.get(&at)?.unwrap_or_default();
    ids.push(id);
    pending.put(at, &ids)?;
    let counts = keys::key(
        keys::FINDING_COUNTS,
        &[clinic.as_bytes(), rule.code().as_bytes()],
    );
    let mut count: FindingCount = store.get(&counts)?.unwrap_or_default();
    count.raised += 1;
    pending.put(counts, &count)?;
    store.write(pending).await?;
    Ok(())
}
