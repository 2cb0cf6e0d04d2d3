//! A practitioner's history: credentials, injections, what followed them.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::PractitionerId;

use super::{
    AppState,
    admit::{Admitted, ask, id},
    audited::{Asked, ListOf, list_response, off_worker},
    params::{Checked, ListParams},
};
use crate::{answer::PractitionerHistory, auth::QueryKind, error::ApiError};

pub(super) async fn practitioner_history(
    State(state): State<AppState>,
    Admitted {
        principal, clinic, ..
    }: Admitted<ask::PractitionerHistory>,
    Path((_, practitioner)): Path<(String, String)>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let practitioner: PractitionerId = id(&practitioner)?;
    let (summary, seqs) = {
        let (clinic, practitioner, filter) =
            (clinic.clone(), practitioner.clone(), params.filter()?);
        off_worker(&state, move |store| {
            q::practitioner_history(store, &clinic, &practitioner, &filter)
        })
        .await?
    };
    let answer = move |page| Json(PractitionerHistory { page, summary }).into_response();
    let asked = Asked::new(&principal, &clinic, QueryKind::PractitionerHistory, None);
    list_response(&state, asked, ListOf::Events, &params, seqs, answer).await
}
