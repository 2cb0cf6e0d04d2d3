//! A lot's trace and recall.

use maud::html;
use prolo_schemas::LotNumber;

use super::{
    OnPage, PageResult, page,
    tables::{adverse_table, injections_table},
};
use crate::{
    console::view::{self},
    routes::{
        self, TraceParams,
        admit::{Admitted, Named, ask},
        params::Checked,
    },
};

/// Who received a lot, when, where, what followed, and its recall.
pub(in crate::console) async fn lot(
    OnPage(asker): OnPage<Admitted<ask::LotTrace>>,
    OnPage(Named(lot)): OnPage<Named<LotNumber>>,
    OnPage(Checked(params)): OnPage<Checked<TraceParams>>,
) -> PageResult {
    let found = routes::lot_trace_page(&asker, &lot, &params).await?;
    let (c, l) = (asker.clinic.as_str(), lot.as_str());
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
    page(&format!("Lot {l}"), &asker.principal, Some(c), body)
}
