//! A lot's trace: everyone it reached, what followed, its recall.

use std::collections::BTreeSet;

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use prolo_query as q;
use prolo_schemas::{LotNumber, PatientId};

use super::{
    admit::{Admitted, Named, ask},
    audited::patients_named,
    params::{Checked, TraceParams, bounded_limit, logged},
};
use crate::{
    answer::LotTracePage,
    error::ApiError,
    render::{self, Format},
};

/// A lot's trace: as JSON a page of its injections (its adverse events
/// and recalls whole), as CSV or JSON lines every injection, streamed.
pub(super) async fn lot_trace(
    asker: Admitted<ask::LotTrace>,
    Named(lot): Named<LotNumber>,
    Checked(params): Checked<TraceParams>,
) -> Result<Response, ApiError> {
    let format = Format::parse(params.format.as_deref())?;
    // A JSON answer is a page of the injections (the adverse events and
    // recalls whole); an export streams every injection.
    if format == Format::Json {
        let page = lot_trace_page(&asker, &lot, &params).await?;
        return Ok(Json(page).into_response());
    }
    let trace = asker
        .read(move |store, clinic| q::lot_trace(store, clinic, &lot))
        .await?;
    let records = (trace.injections.len() + trace.adverse_events.len()) as u64;
    let on_cut = asker
        .asked(None)
        .record_export(logged(&params), records, trace_exposed(&trace))
        .await?;
    Ok(render::stream_injections(trace.injections, format, on_cut))
}

/// The patients a lot trace shows.
pub(super) fn trace_exposed(trace: &q::LotTrace) -> BTreeSet<PatientId> {
    patients_named(
        trace
            .injections
            .iter()
            .map(|r| r.patient_id.as_str())
            .chain(
                trace
                    .adverse_events
                    .iter()
                    .map(|r| r.state.patient_id.as_str()),
            ),
    )
}

/// A page of a lot's injections with its adverse events and recalls, its
/// read recorded (the API's JSON answer and the console's page).
pub(crate) async fn lot_trace_page(
    asker: &Admitted<ask::LotTrace>,
    lot: &LotNumber,
    params: &TraceParams,
) -> Result<LotTracePage, ApiError> {
    let mut trace = {
        let lot = lot.clone();
        asker
            .read(move |store, clinic| q::lot_trace(store, clinic, &lot))
            .await?
    };
    let total_injections = trace.injections.len();
    let seqs: Vec<u64> = trace.injections.iter().map(|r| r.seq).collect();
    let (page, next) = q::page(&seqs, params.cursor, bounded_limit(params.limit)?);
    let kept: BTreeSet<u64> = page.iter().copied().collect();
    trace.injections.retain(|r| kept.contains(&r.seq));
    let records = (trace.injections.len() + trace.adverse_events.len()) as u64;
    asker
        .asked(None)
        .record(logged(params), records, trace_exposed(&trace))
        .await?;
    Ok(LotTracePage {
        trace,
        total_injections,
        next_cursor: next.map(|c| c.to_string()),
    })
}
