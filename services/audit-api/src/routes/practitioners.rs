//! A practitioner's history: credentials, injections, what followed them.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::PractitionerId;

use super::{
    admit::{Admitted, Named, ask},
    audited::{ListOf, list_response},
    params::{Checked, ListParams},
};
use crate::{answer::PractitionerHistory, error::ApiError};

pub(super) async fn practitioner_history(
    asker: Admitted<ask::PractitionerHistory>,
    Named(practitioner): Named<PractitionerId>,
    Checked(params): Checked<ListParams>,
) -> Result<Response, ApiError> {
    let filter = params.filter()?;
    let (summary, seqs) = asker
        .read(move |store, clinic| q::practitioner_history(store, clinic, &practitioner, &filter))
        .await?;
    let answer = move |page| Json(PractitionerHistory { page, summary }).into_response();
    list_response(asker.asked(None), ListOf::Events, &params, seqs, answer).await
}
