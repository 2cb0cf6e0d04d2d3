//! A patient's history, summary and access log.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use prolo_query::{self as q, EventView};
use prolo_schemas::{ClinicId, PatientId};

use super::{
    AppState,
    admit::{Admitted, ask, id},
    audited::{Asked, ListOf, json_page, list_response, off_worker, page_answer, recorded_page},
    params::{Checked, ListParams, bounded_limit},
};
use crate::{
    answer::Page,
    auth::{Principal, QueryKind},
    error::ApiError,
    render::Format,
};

pub(super) async fn patient_history(
    State(state): State<AppState>,
    Admitted {
        principal, clinic, ..
    }: Admitted<ask::PatientHistory>,
    Path((_, patient)): Path<(String, String)>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let patient: PatientId = id(&patient)?;
    if Format::parse(params.format.as_deref())? == Format::Json {
        let page = history_page(&state, &principal, (&clinic, &patient), &params).await?;
        return Ok(page_answer(page));
    }
    let seqs = {
        let (clinic, patient, filter) = (clinic.clone(), patient.clone(), params.filter()?);
        off_worker(&state, move |store| {
            q::patient_history(store, &clinic, &patient, &filter)
        })
        .await?
    };
    let asked = Asked::new(
        &principal,
        &clinic,
        QueryKind::PatientHistory,
        Some(patient),
    );
    list_response(
        &state,
        asked,
        ListOf::OnePatient,
        &params,
        seqs,
        page_answer,
    )
    .await
}

/// A JSON page of a patient's history, its read recorded (the API's and
/// the console's timeline): each of the patient's events is decoded once,
/// also when a filter has to read all of them.
pub(crate) async fn history_page(
    state: &AppState,
    principal: &Principal,
    (clinic, patient): (&ClinicId, &PatientId),
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let page = {
        let (clinic, patient, filter) = (clinic.clone(), patient.clone(), params.filter()?);
        let (cursor, as_of) = (params.cursor, params.as_of);
        off_worker(state, move |store| {
            q::patient_history_page(store, (&clinic, &patient), &filter, cursor, limit, as_of)
        })
        .await?
    };
    let asked = Asked::new(
        principal,
        clinic,
        QueryKind::PatientHistory,
        Some(patient.clone()),
    );
    recorded_page(state, asked, params, page).await
}

pub(super) async fn access_log(
    State(state): State<AppState>,
    Admitted {
        principal, clinic, ..
    }: Admitted<ask::AccessLog>,
    Path((_, patient)): Path<(String, String)>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let patient: PatientId = id(&patient)?;
    let seqs = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(&state, move |store| q::access_log(store, &clinic, &patient)).await?
    };
    let asked = Asked::new(&principal, &clinic, QueryKind::AccessLog, Some(patient));
    list_response(&state, asked, ListOf::Events, &params, seqs, page_answer).await
}

/// A page of a patient's access log, its read recorded (the console's).
pub(crate) async fn access_log_page(
    state: &AppState,
    principal: &Principal,
    (clinic, patient): (&ClinicId, &PatientId),
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let seqs = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(state, move |store| q::access_log(store, &clinic, &patient)).await?
    };
    let asked = Asked::new(
        principal,
        clinic,
        QueryKind::AccessLog,
        Some(patient.clone()),
    );
    json_page(state, asked, params, seqs, bounded_limit(params.limit)?).await
}

pub(super) async fn patient_summary(
    State(state): State<AppState>,
    Admitted {
        principal, clinic, ..
    }: Admitted<ask::PatientSummary>,
    Path((_, patient)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let patient: PatientId = id(&patient)?;
    let summary = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(&state, move |store| {
            q::patient_summary(store, &clinic, &patient)
        })
        .await?
    };
    let asked = Asked::new(
        &principal,
        &clinic,
        QueryKind::PatientSummary,
        Some(patient),
    );
    asked
        .record(&state, BTreeMap::new(), 1, BTreeSet::new())
        .await?;
    Ok(Json(summary).into_response())
}
