//! A clinic's adverse-event rates and safety signals (counts only).

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::ClinicId;

use super::{
    AppState,
    admit::{Admitted, ask},
    audited::off_worker,
};
use crate::error::ApiError;

pub(super) async fn signals(
    State(state): State<AppState>,
    Admitted { clinic, .. }: Admitted<ask::Signals>,
) -> Result<Response, ApiError> {
    Ok(Json(signals_answer(&state, clinic).await?).into_response())
}

/// A clinic's rates and signals. Rates per group hold no patient data: not
/// an access to record.
pub(crate) async fn signals_answer(
    state: &AppState,
    clinic: ClinicId,
) -> Result<q::SignalReport, ApiError> {
    off_worker(state, move |store| {
        // The fold's raising rule (its settings are the defaults).
        let criteria = prolo_projector::rules::findings::FindingSettings::default().signal_criteria;
        q::signals(store, &clinic, &criteria)
    })
    .await
}
