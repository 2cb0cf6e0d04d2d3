//! A clinic's adverse-event rates and safety signals (counts only).

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;

use super::admit::{Admitted, Asks, ask};
use crate::error::ApiError;

pub(super) async fn signals(asker: Admitted<ask::Signals>) -> Result<Response, ApiError> {
    Ok(Json(signals_answer(&asker).await?).into_response())
}

/// A clinic's rates and signals. Rates per group hold no patient data: not
/// an access to record.
pub(crate) async fn signals_answer<Q: Asks>(
    asker: &Admitted<Q>,
) -> Result<q::SignalReport, ApiError> {
    asker
        .read(move |store, clinic| {
            // The fold's raising rule (its settings are the defaults).
            let settings = prolo_projector::rules::findings::FindingSettings::default();
            q::signals(store, clinic, &settings.signal_criteria)
        })
        .await
}
