//! Everything around an adverse event, for a safety reviewer.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;

use super::{
    admit::{Admitted, Named, ask},
    audited::patients_named,
    params::{Checked, InvestigationParams, logged},
};
use crate::error::ApiError;

pub(super) async fn investigation(
    asker: Admitted<ask::AdverseEventInvestigation>,
    Named(event_id): Named<uuid::Uuid>,
    Checked(params): Checked<InvestigationParams>,
) -> Result<Response, ApiError> {
    let answer = investigation_answer(&asker, event_id, &params).await?;
    Ok(Json(answer).into_response())
}

/// An adverse event's investigation, its read recorded (the API's answer
/// and the console's page).
pub(crate) async fn investigation_answer(
    asker: &Admitted<ask::AdverseEventInvestigation>,
    event_id: uuid::Uuid,
    params: &InvestigationParams,
) -> Result<q::Investigation, ApiError> {
    let window = params.window_days.unwrap_or(14);
    let answer = asker
        .read(move |store, clinic| q::investigation(store, clinic, &event_id, window))
        .await?;
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
    asker
        .asked(patient)
        .record(logged(params), answer.records(), exposed)
        .await?;
    Ok(answer)
}
