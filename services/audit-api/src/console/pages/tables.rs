//! The tables the investigation and the lot trace share.

use maud::{Markup, html};
use prolo_query::EventView;
use prolo_schemas::names::name;

use crate::console::view::{self, patient_link, time};

pub(super) fn event_row(clinic: &str, v: &EventView) -> Markup {
    html! {
        tr {
            td { (time(v.occurred_at)) }
            td { (v.event_type.as_str()) }
            td { @if let Some(p) = &v.patient_id { (patient_link(clinic, p)) } }
            td { (view::summary(v.event_type, &v.payload)) }
        }
    }
}

pub(super) fn events_table(caption: &str, clinic: &str, events: &[EventView]) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { "Happened" } th scope="col" { "Event" } th scope="col" { "Patient" } th scope="col" { "What" } } }
            tbody { @for v in events { (event_row(clinic, v)) } }
        }
        @if events.is_empty() { p.none { "None." } }
    }
}

pub(super) fn injections_table(
    caption: &str,
    clinic: &str,
    rows: &[prolo_query::InjectionRow],
) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr {
                th scope="col" { "Given" } th scope="col" { "Patient" } th scope="col" { "Site" }
                th scope="col" { "Solution" } th scope="col" { "Lots" } th scope="col" { "Practitioner" } th scope="col" { "Guidance" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td { (time(r.occurred_at)) }
                        td { (patient_link(clinic, &r.patient_id)) }
                        td { (r.site_key) " " (r.laterality.clone().unwrap_or_default()) }
                        td { (r.solution) }
                        td { (r.lots.join(", ")) }
                        td { (r.practitioner_id) }
                        td { (r.guidance) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.none { "None." } }
    }
}

pub(super) fn adverse_table(
    caption: &str,
    clinic: &str,
    rows: &[prolo_query::AdverseEventRow],
) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr {
                th scope="col" { "Kind" } th scope="col" { "Patient" } th scope="col" { "Grade" }
                th scope="col" { "Serious" } th scope="col" { "Status" } th scope="col" { "" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td { (name(&r.state.kind)) }
                        td { (patient_link(clinic, &r.state.patient_id)) }
                        td { (r.state.grade) }
                        td { @if r.state.serious { "yes" } @else { "no" } }
                        td { (name(&r.state.status)) }
                        td { a href=(format!("/console/{clinic}/adverse-events/{}", r.state.origin.event_id)) { "Investigate" } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.none { "None." } }
    }
}
