//! A lot's trace and recall.

use axum::extract::{Path, Query, State};
use maud::html;
use prolo_schemas::LotNumber;
use serde::Deserialize;

use super::{
    OnPage, PageResult, fail, page, parsed,
    tables::{adverse_table, injections_table},
};
use crate::{
    console::view::{self},
    routes::{
        self, AppState, TraceParams,
        admit::{Admitted, ask},
    },
};

#[derive(Deserialize, Default)]
pub(in crate::console) struct Cursor {
    cursor: Option<u64>,
}

/// Who received a lot, when, where, what followed, and its recall.
pub(in crate::console) async fn lot(
    State(state): State<AppState>,
    OnPage(Admitted {
        principal: who,
        clinic,
        ..
    }): OnPage<Admitted<ask::LotTrace>>,
    Path((_, lot)): Path<(String, String)>,
    Query(form): Query<Cursor>,
) -> PageResult {
    let lot: LotNumber = parsed(&lot)?;
    let params = TraceParams {
        cursor: form.cursor,
        ..TraceParams::default()
    };
    let found = routes::lot_trace_page(&state, &who, &clinic, &lot, &params)
        .await
        .map_err(fail)?;
    let (c, l) = (clinic.as_str(), lot.as_str());
    let t = &found.trace;
    let body = html! {
        @if t.recalls.is_empty() {
            p.status { "Not recalled." }
        } @else {
            p.status.recalled role="status" { "Recalled (event #" (t.recalls.iter().map(u64::to_string).collect::<Vec<_>>().join(", #")) "). Every patient below received it." }
        }
        p.actions {
            a.button href=(format!("/v1/clinics/{c}/lots/{l}/trace?format=csv")) { "Export recall list (CSV)" }
        }
        (adverse_table("Adverse events after the lot", c, &t.adverse_events))
        (injections_table("Injections with the lot", c, &t.injections))
        (view::pager(&format!("/console/{c}/lots/{l}"), vec![], found.next_cursor.as_deref(), found.total_injections))
    };
    page(&format!("Lot {l}"), &who, Some(c), body)
}
