//! Events found by id, and the refused requests filed under a clinic.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::{ClinicId, PatientId};

use super::{
    AppState,
    admit::{Admitted, Allowed, ask, id},
    audited::{Asked, ListOf, list_response, off_worker, page_answer},
    params::{Checked, ListParams},
};
use crate::{auth::QueryKind, error::ApiError};

pub(super) async fn event_by_id(
    State(state): State<AppState>,
    Allowed { principal, .. }: Allowed<ask::EventById>,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let event_id: uuid::Uuid = id(&event_id)?;
    let not_found = || ApiError::NotFound(format!("event {event_id}"));
    let view = off_worker(&state, move |store| match q::seq_of(store, &event_id)? {
        Some(seq) => q::event_view(store, seq, None),
        None => Ok(None),
    })
    .await?
    .ok_or_else(not_found)?;
    principal.may_read(&view.clinic_id)?;
    let clinic: ClinicId = id(&view.clinic_id)?;
    let patient: Option<PatientId> = view.patient_id.as_deref().and_then(|p| p.parse().ok());
    let parameters = BTreeMap::from([("event_id".to_owned(), event_id.to_string())]);
    let asked = Asked::new(&state, &principal, &clinic, QueryKind::EventById, patient);
    asked.record(parameters, 1, BTreeSet::new()).await?;
    Ok(Json(view).into_response())
}

/// The refused requests filed under a clinic (compliance only).
pub(super) async fn access_refused(
    asker: Admitted<ask::AccessRefused>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let seqs = asker.read(q::access_refused).await?;
    list_response(
        asker.asked(None),
        ListOf::Events,
        &params,
        seqs,
        page_answer,
    )
    .await
}
