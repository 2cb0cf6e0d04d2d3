//! FHIR R4 exports: a patient's record, a lot's reach.

use std::collections::{BTreeMap, BTreeSet};

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prolo_projector::Store;
use prolo_query as q;
use prolo_schemas::{ClinicId, LotNumber, PatientId};

use super::{
    admit::{Admitted, Named, ask},
    lots::trace_exposed,
};
use crate::{auth::QueryKind, error::ApiError};

/// A FHIR answer: the bundle as `application/fhir+json`.
pub(super) fn fhir_answer(bundle: &serde_json::Value) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/fhir+json; charset=utf-8",
        )],
        serde_json::to_vec(bundle).unwrap_or_default(),
    )
        .into_response()
}

/// The credentials of the practitioners a bundle references.
pub(super) fn practitioner_facts(
    store: &Store,
    clinic: &ClinicId,
    practitioners: &[String],
) -> Result<BTreeMap<String, crate::fhir::PractitionerFacts>, q::QueryError> {
    let mut facts = BTreeMap::new();
    for id in practitioners {
        let credentials = store
            .practitioner_summary(clinic.as_str(), id)?
            .map(|s| s.credentials)
            .unwrap_or_default();
        let stored = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        facts.insert(
            id.clone(),
            crate::fhir::PractitionerFacts {
                events: credentials
                    .iter()
                    .map(|c| (c.origin.event_id, stored(c.origin.recorded_at_ms)))
                    .collect(),
                credentials: credentials
                    .into_iter()
                    .map(|c| (c.credential, c.valid_from, c.valid_until))
                    .collect(),
            },
        );
    }
    Ok(facts)
}

pub(super) async fn patient_fhir(
    asker: Admitted<ask::FhirExport>,
    Named(patient): Named<PatientId>,
) -> Result<Response, ApiError> {
    // Its reads are in it only for those who may read the access log.
    let with_reads = asker.principal.may(QueryKind::AccessLog).is_ok();
    let (bundle, records) = {
        let patient = patient.clone();
        asker
            .read(move |store, clinic| {
                let seqs =
                    q::patient_history(store, clinic, &patient, &q::HistoryFilter::default())?;
                let views = q::views(store, &seqs, None)?;
                let reads = if with_reads {
                    let seqs = q::access_log(store, clinic, &patient)?;
                    q::views(store, &seqs, None)?
                } else {
                    Vec::new()
                };
                let mut bundle = crate::fhir::Bundle::new(clinic.as_str());
                bundle.add_events(&views, &views);
                bundle.add_access(&reads);
                let facts = practitioner_facts(store, clinic, &bundle.practitioners())?;
                Ok((bundle.finish(&facts), (views.len() + reads.len()) as u64))
            })
            .await?
    };
    asker
        .asked(Some(patient))
        .record(BTreeMap::new(), records, BTreeSet::new())
        .await?;
    Ok(fhir_answer(&bundle))
}

pub(super) async fn lot_fhir(
    asker: Admitted<ask::FhirExport>,
    Named(lot): Named<LotNumber>,
) -> Result<Response, ApiError> {
    let (bundle, records, exposed) = asker
        .read(move |store, clinic| {
            let trace = q::lot_trace(store, clinic, &lot)?;
            let exposed = trace_exposed(&trace);
            let mut seqs: Vec<u64> = trace.injections.iter().map(|r| r.seq).collect();
            seqs.extend(trace.adverse_events.iter().map(|r| r.seq));
            let views = q::views(store, &seqs, None)?;
            // Their corrections and the adverse events' follow-ups.
            let mut related: Vec<u64> = views
                .iter()
                .flat_map(|v| v.marks.iter().map(|m| m.seq))
                .collect();
            related.extend(
                trace
                    .adverse_events
                    .iter()
                    .flat_map(|r| r.state.updates.iter().map(|u| u.origin.seq)),
            );
            let mut history = views.clone();
            history.extend(q::views(store, &related, None)?);
            let mut bundle = crate::fhir::Bundle::new(clinic.as_str());
            bundle.add_events(&views, &history);
            let facts = practitioner_facts(store, clinic, &bundle.practitioners())?;
            Ok((bundle.finish(&facts), views.len() as u64, exposed))
        })
        .await?;
    asker
        .asked(None)
        .record(BTreeMap::new(), records, exposed)
        .await?;
    Ok(fhir_answer(&bundle))
}
