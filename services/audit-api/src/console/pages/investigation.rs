//! An adverse event and everything around it.

use maud::html;
use prolo_schemas::names::name;

use super::{
    OnPage, PageResult, page,
    tables::{adverse_table, events_table, injections_table},
};
use crate::{
    console::view::{self, patient_link, time},
    routes::{
        self, InvestigationParams,
        admit::{Admitted, Named, ask},
    },
};

/// An adverse event and everything around it, for a safety reviewer.
pub(in crate::console) async fn investigation(
    OnPage(asker): OnPage<Admitted<ask::AdverseEventInvestigation>>,
    OnPage(Named(event_id)): OnPage<Named<uuid::Uuid>>,
) -> PageResult {
    let params = InvestigationParams::default();
    let inv = routes::investigation_answer(&asker, event_id, &params).await?;
    let c = asker.clinic.as_str();
    let s = &inv.state;
    let body = html! {
        dl.facts {
            dt { "Patient" } dd { (patient_link(c, &s.patient_id)) }
            dt { "Kind" } dd { (name(&s.kind)) }
            dt { "Grade" } dd { (s.grade) }
            dt { "Serious" } dd { @if s.serious { "yes" } @else { "no" } }
            dt { "Status" } dd { (name(&s.status)) " · outcome " (s.outcome.as_ref().map(name).unwrap_or_default()) }
            dt { "Reported" } dd { (time(inv.report.occurred_at)) " by " (inv.report.actor.id.to_string()) }
            dt { "Counted after" } dd {
                @match &s.counted {
                    Some(counted) => { "injection " (counted.injection.to_string()) @if counted.inferred { " (inferred: the report named none)" } }
                    None => { "no injection" }
                }
            }
        }
        h2 { "The injection it follows" }
        @match &inv.injection {
            Some(v) => {
                p { (time(v.occurred_at)) " · " (view::summary(v.event_type, &v.payload)) }
                p { "Needle: " (v.payload["needle"]["gauge"].to_string()) " G × " (v.payload["needle"]["length_mm"].to_string()) " mm" }
            }
            None => { p.none { "Not in the trail." } }
        }
        h2 { "Follow-ups" }
        (events_table("Updates of this adverse event", c, &inv.updates))
        h2 { "Before it" }
        (events_table("Consents recorded before", c, &inv.consents_before))
        (events_table("Examinations, imaging and candidacy before", c, &inv.examinations_before))
        h2 { "The patient's window" }
        (events_table("The patient's events within 14 days of the onset", c, &inv.window))
        h2 { "Same-lot exposure" }
        (injections_table("Other injections from the same lots", c, &inv.same_lot_injections))
        (adverse_table("Adverse events after the same lots", c, &inv.same_lot_adverse_events))
        h2 { "The practitioner's other injections" }
        (injections_table("Injections by the same practitioner within 14 days", c, &inv.same_practitioner_injections))
    };
    page(
        &format!("Adverse event: {}", name(&s.kind)),
        &asker.principal,
        Some(c),
        body,
    )
}
