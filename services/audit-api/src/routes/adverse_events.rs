//! Everything around an adverse event, for a safety reviewer.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::ClinicId;

use super::{
    AppState,
    admit::{Admitted, ask, id},
    audited::{Asked, off_worker, patients_named},
    params::{Checked, InvestigationParams, logged},
};
use crate::{
    auth::{Principal, QueryKind},
    error::ApiError,
};

pub(super) async fn investigation(
    State(state): State<AppState>,
    Admitted {
        principal, clinic, ..
    }: Admitted<ask::AdverseEventInvestigation>,
    Path((_, event_id)): Path<(String, String)>,
    Checked(params): Checked<InvestigationParams>,
) -> Result<Response, ApiError> {
    let event_id: uuid::Uuid = id(&event_id)?;
    let answer = investigation_answer(&state, &principal, &clinic, event_id, &params).await?;
    Ok(Json(answer).into_response())
}

/// An adverse event's investigation, its read recorded (the API's answer
/// and the console's page).
pub(crate) async fn investigation_answer(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    event_id: uuid::Uuid,
    params: &InvestigationParams,
) -> Result<q::Investigation, ApiError> {
    let answer = {
        let (clinic, window) = (clinic.clone(), params.window_days.unwrap_or(14));
        off_worker(state, move |store| {
            q::investigation(store, &clinic, &event_id, window)
        })
        .await?
    };
    let patient = answer.state.patient_id.parse().ok();
    let views = std::iter::once(&answer.report)
        .chain(&answer.updates)
        .chain(&answer.injection)
        .chain(&answer.consents_before)
        .chain(&answer.examinations_before)
        .chain(&answer.window)
        .filter_map(|v| v.patient_id.as_deref());
    let rows = answer
        .same_lot_injections
        .iter()
        .chain(&answer.same_practitioner_injections)
        .map(|r| r.patient_id.as_str());
    let adverse = answer
        .same_lot_adverse_events
        .iter()
        .map(|r| r.state.patient_id.as_str());
    let exposed = patients_named(
        views
            .chain(rows)
            .chain(adverse)
            .chain(std::iter::once(answer.state.patient_id.as_str())),
    );
    let asked = Asked::new(
        principal,
        clinic,
        QueryKind::AdverseEventInvestigation,
        patient,
    );
    asked
        .record(state, logged(params), answer.records(), exposed)
        .await?;
    Ok(answer)
}
