//! A patient's history, summary and access log.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query::{self as q, EventView};
use prolo_schemas::PatientId;

use super::{
    admit::{Admitted, Named, ask},
    audited::{ListOf, json_page, list_response, page_answer, recorded_page},
    params::{Checked, ListParams, bounded_limit},
};
use crate::{answer::Page, error::ApiError, render::Format};

pub(super) async fn patient_history(
    asker: Admitted<ask::PatientHistory>,
    Named(patient): Named<PatientId>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    if Format::parse(params.format.as_deref())? == Format::Json {
        return Ok(page_answer(history_page(&asker, &patient, &params).await?));
    }
    let filter = params.filter()?;
    let seqs = {
        let patient = patient.clone();
        asker
            .read(move |store, clinic| q::patient_history(store, clinic, &patient, &filter))
            .await?
    };
    let asked = asker.asked(Some(patient));
    list_response(asked, ListOf::OnePatient, &params, seqs, page_answer).await
}

/// A JSON page of a patient's history, its read recorded (the API's and
/// the console's timeline): each of the patient's events is decoded once,
/// also when a filter has to read all of them.
pub(crate) async fn history_page(
    asker: &Admitted<ask::PatientHistory>,
    patient: &PatientId,
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let (filter, cursor, as_of) = (params.filter()?, params.cursor, params.as_of);
    let page = {
        let patient = patient.clone();
        asker
            .read(move |store, clinic| {
                q::patient_history_page(store, (clinic, &patient), &filter, cursor, limit, as_of)
            })
            .await?
    };
    recorded_page(asker.asked(Some(patient.clone())), params, page).await
}

pub(super) async fn access_log(
    asker: Admitted<ask::AccessLog>,
    Named(patient): Named<PatientId>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let seqs = access_log_seqs(&asker, &patient).await?;
    list_response(
        asker.asked(Some(patient)),
        ListOf::Events,
        &params,
        seqs,
        page_answer,
    )
    .await
}

/// A page of a patient's access log, its read recorded (the console's).
pub(crate) async fn access_log_page(
    asker: &Admitted<ask::AccessLog>,
    patient: &PatientId,
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let seqs = access_log_seqs(asker, patient).await?;
    let limit = bounded_limit(params.limit)?;
    json_page(asker.asked(Some(patient.clone())), params, seqs, limit).await
}

/// The stream positions of a patient's access records.
async fn access_log_seqs(
    asker: &Admitted<ask::AccessLog>,
    patient: &PatientId,
) -> Result<Vec<u64>, ApiError> {
    let patient = patient.clone();
    asker
        .read(move |store, clinic| q::access_log(store, clinic, &patient))
        .await
}

pub(super) async fn patient_summary(
    asker: Admitted<ask::PatientSummary>,
    Named(patient): Named<PatientId>,
) -> Result<Response, ApiError> {
    let summary = {
        let patient = patient.clone();
        asker
            .read(move |store, clinic| q::patient_summary(store, clinic, &patient))
            .await?
    };
    asker
        .asked(Some(patient))
        .record(BTreeMap::new(), 1, BTreeSet::new())
        .await?;
    Ok(Json(summary).into_response())
}
