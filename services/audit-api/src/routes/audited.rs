//! An answer's read recorded before it is sent: who asked what about whom,
//! every patient the answer exposes, and for a streamed export what its
//! early end must add. Reads of the store run off the async workers.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query::{self as q, EventView};
use prolo_schemas::{ClinicId, PatientId};

use super::{
    AppState,
    params::{ListParams, bounded_limit, logged},
};
use crate::{
    access::Read,
    answer::Page,
    auth::{Principal, QueryKind},
    error::ApiError,
    render::{self, Format},
};

/// Runs a read of the read models on the blocking pool: sled reads block,
/// and must not hold up the async workers that serve other requests.
pub(crate) async fn off_worker<T, F>(state: &AppState, read: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&prolo_projector::Store) -> Result<T, prolo_query::QueryError> + Send + 'static,
{
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| ApiError::Internal(format!("a read of the store failed: {e}")))?
        .map_err(ApiError::from)
}

/// Who asked what, about whom: what the access log records, and where.
pub(crate) struct Asked<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) principal: &'a Principal,
    pub(crate) clinic: &'a ClinicId,
    pub(crate) query: QueryKind,
    pub(crate) patient: Option<PatientId>,
}

impl<'a> Asked<'a> {
    /// `principal` asked `query` in `clinic`, about `patient` if about one.
    pub(crate) fn new(
        state: &'a AppState,
        principal: &'a Principal,
        clinic: &'a ClinicId,
        query: QueryKind,
        patient: Option<PatientId>,
    ) -> Self {
        Asked {
            state,
            principal,
            clinic,
            query,
            patient,
        }
    }

    /// The read as the access log records it; `exposed`: every patient
    /// whose data the answer carries (the patient asked about is added).
    pub(super) fn read(
        &self,
        parameters: BTreeMap<String, String>,
        records: u64,
        mut exposed: BTreeSet<PatientId>,
    ) -> Read {
        exposed.extend(self.patient.clone());
        Read {
            query: self.query,
            parameters,
            patient_id: self.patient.clone(),
            exposed,
            records,
        }
    }

    /// Records the read of an answer sent whole.
    pub(super) async fn record(
        self,
        parameters: BTreeMap<String, String>,
        records: u64,
        exposed: BTreeSet<PatientId>,
    ) -> Result<(), ApiError> {
        let read = self.read(parameters, records, exposed);
        self.state
            .access
            .record(self.principal, self.clinic, &read)
            .await
            .map(|_| ())
    }

    /// Records the read of a streamed export; what its early end must record.
    pub(super) async fn record_export(
        self,
        parameters: BTreeMap<String, String>,
        records: u64,
        exposed: BTreeSet<PatientId>,
    ) -> Result<render::OnCut, ApiError> {
        let read = self.read(parameters, records, exposed);
        let first = self
            .state
            .access
            .record(self.principal, self.clinic, &read)
            .await?;
        Ok(on_cut(self.state, self.principal, self.clinic, read, first))
    }
}

/// What an export that ends early does: records the same read again,
/// marked incomplete with the rows sent and why, caused by the first record
/// (`first`). The body is already on its way, so this runs on its own task.
pub(super) fn on_cut(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    read: Read,
    first: uuid::Uuid,
) -> render::OnCut {
    let (access, principal, clinic) = (state.access.clone(), principal.clone(), clinic.clone());
    Box::new(move |cut| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%first, "an incomplete export could not be recorded: no runtime");
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = access
                .record_cut(&principal, &clinic, read, first, cut)
                .await
            {
                tracing::error!(%first, error = %e, "an incomplete export could not be recorded");
            }
        });
    })
}

/// The patients named by rendered rows (views' and rows' `patient_id`).
pub(super) fn patients_named<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<PatientId> {
    ids.into_iter().filter_map(|p| p.parse().ok()).collect()
}

/// A page of events as the JSON answer.
pub(super) fn page_answer(page: Page<EventView>) -> Response {
    Json(page).into_response()
}

/// Whose data a list of events carries, for the access log of its export.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ListOf {
    /// One patient's history: the patient index holds only events filed
    /// under that patient, so the patient asked about is every patient it
    /// exposes, and no pass over the events is needed to name them.
    OnePatient,
    /// Any other list: each event's patient, read from the events.
    Events,
}

/// Answers a list of events: a JSON page (made the answer by `answer`), or
/// the whole list streamed.
pub(super) async fn list_response(
    asked: Asked<'_>,
    list: ListOf,
    params: &ListParams,
    seqs: Vec<u64>,
    answer: impl FnOnce(Page<EventView>) -> Response,
) -> Result<Response, ApiError> {
    let state = asked.state;
    let format = Format::parse(params.format.as_deref())?;
    let limit = bounded_limit(params.limit)?;
    if format != Format::Json {
        let exposed = match list {
            // `Asked::read` adds the patient asked about.
            ListOf::OnePatient if asked.patient.is_some() => BTreeSet::new(),
            _ => {
                let seqs = seqs.clone();
                off_worker(state, move |store| q::patients_of(store, &seqs)).await?
            }
        };
        let on_cut = asked
            .record_export(logged(params), seqs.len() as u64, exposed)
            .await?;
        return Ok(render::stream_events(
            state.store.clone(),
            seqs,
            params.as_of,
            format,
            on_cut,
        ));
    }
    Ok(answer(json_page(asked, params, seqs, limit).await?))
}

/// One page of a list of events, its read recorded: the JSON answer's,
/// and the console's.
pub(super) async fn json_page(
    asked: Asked<'_>,
    params: &ListParams,
    seqs: Vec<u64>,
    limit: usize,
) -> Result<Page<EventView>, ApiError> {
    let page = {
        let (cursor, as_of) = (params.cursor, params.as_of);
        off_worker(asked.state, move |store| {
            q::event_page(store, &seqs, cursor, limit, as_of)
        })
        .await?
    };
    recorded_page(asked, params, page).await
}

/// A page made, its read recorded before it is answered.
pub(super) async fn recorded_page(
    asked: Asked<'_>,
    params: &ListParams,
    page: q::EventPage,
) -> Result<Page<EventView>, ApiError> {
    let exposed = patients_named(page.items.iter().filter_map(|v| v.patient_id.as_deref()));
    asked
        .record(logged(params), page.items.len() as u64, exposed)
        .await?;
    Ok(Page {
        total: page.total,
        items: page.items,
        next_cursor: page.next.map(|c| c.to_string()),
    })
}
