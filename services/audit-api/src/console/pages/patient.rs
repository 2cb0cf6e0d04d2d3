//! A patient's timeline and access log.

use std::collections::BTreeMap;

use axum::extract::Query;
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use prolo_query::{EventView, ViewStanding};
use prolo_schemas::{EventType, PatientId};
use serde::Deserialize;

use super::{Failed, OnPage, PageResult, page, parsed};
use crate::{
    auth::QueryKind,
    console::view::{self, time},
    error::ApiError,
    routes::{
        self, ListParams,
        admit::{Admitted, Named, ask},
        params::Checked,
    },
};

/// The timeline's filters, as a form sends them (dates, not times).
#[derive(Deserialize, Default)]
pub(in crate::console) struct TimelineParams {
    #[serde(rename = "type", default)]
    event_type: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    as_of: String,
    cursor: Option<u64>,
}

pub(super) fn day(value: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, Failed> {
    if value.is_empty() {
        return Ok(None);
    }
    let date: NaiveDate = value.parse().map_err(|_| {
        Failed::from(ApiError::BadRequest(format!(
            "{value} is not a date (YYYY-MM-DD)"
        )))
    })?;
    let time = if end_of_day {
        date.and_hms_opt(23, 59, 59)
    } else {
        date.and_hms_opt(0, 0, 0)
    };
    Ok(time.map(|t| t.and_utc()))
}

/// A patient's timeline: every event in clinical order with both times,
/// actor and source; a corrected or voided event struck through beside
/// what corrected it; filters; "as known on"; exports.
pub(in crate::console) async fn timeline(
    OnPage(asker): OnPage<Admitted<ask::PatientHistory>>,
    OnPage(Named(patient)): OnPage<Named<PatientId>>,
    Query(form): Query<TimelineParams>,
) -> PageResult {
    if !form.event_type.is_empty() {
        parsed::<EventType>(&form.event_type)?;
    }
    let params = ListParams {
        event_type: (!form.event_type.is_empty()).then(|| form.event_type.clone()),
        from: day(&form.from, false)?,
        to: day(&form.to, true)?,
        as_of: day(&form.as_of, true)?,
        cursor: form.cursor,
        ..ListParams::default()
    };
    let found = routes::history_page(&asker, &patient, &params).await?;
    let (c, p) = (asker.clinic.as_str(), patient.as_str());
    let by_seq: BTreeMap<u64, &EventView> = found.items.iter().map(|v| (v.seq, v)).collect();
    let mut events: Vec<&EventView> = found.items.iter().collect();
    events.sort_by_key(|v| (v.occurred_at, v.seq));
    let export = |format: &str| {
        let mut pairs = vec![("format", format.to_owned())];
        if let Some(as_of) = params.as_of {
            pairs.push(("as_of", as_of.to_rfc3339()));
        }
        format!(
            "/v1/clinics/{c}/patients/{p}/history{}",
            view::query(&pairs)
        )
    };
    let kept = vec![
        ("type", form.event_type.clone()),
        ("from", form.from.clone()),
        ("to", form.to.clone()),
        ("as_of", form.as_of.clone()),
    ];
    let body = html! {
        form.filters method="get" {
            label { "Type " select name="type" {
                option value="" { "every type" }
                @for t in EventType::ALL {
                    option value=(t.as_str()) selected[form.event_type == t.as_str()] { (t.as_str()) }
                }
            } }
            label { "From " input type="date" name="from" value=(form.from); }
            label { "To " input type="date" name="to" value=(form.to); }
            label { "As known on " input type="date" name="as_of" value=(form.as_of); }
            button type="submit" { "Apply" }
        }
        p.actions {
            a.button href=(export("csv")) { "Export CSV" }
            a.button href=(export("jsonl")) { "Export JSONL" }
            @if asker.principal.may(QueryKind::AccessLog).is_ok() {
                a href=(format!("/console/{c}/patients/{p}/access-log")) { "Who read this record" }
            }
        }
        table.timeline {
            caption { "Events of " (p) ", in clinical order" }
            thead { tr {
                th scope="col" { "Happened" } th scope="col" { "Recorded" } th scope="col" { "Event" }
                th scope="col" { "Actor" } th scope="col" { "Source" } th scope="col" { "What" }
            } }
            tbody {
                @for v in &events {
                    tr id=(format!("e-{}", v.event_id)) class=(v.standing.as_str()) {
                        td { (time(v.occurred_at)) }
                        td { (time(v.stored_at)) }
                        td { (v.event_type.as_str()) }
                        td {
                            (v.actor.id.to_string()) " (" (prolo_schemas::names::name(&v.actor.role)) ")"
                            @if let Some(proof) = &v.actor_proof {
                                br; small.proof title=(format!("token of {} from {}", proof.subject, proof.issuer)) {
                                    @if proof.delegated { "recorded by " (proof.subject) } @else { "proven" }
                                }
                            }
                        }
                        td { (v.source) }
                        td {
                            @match v.standing {
                                ViewStanding::Corrected | ViewStanding::EnteredInError => {
                                    del { (view::summary(v.event_type, &v.payload)) }
                                    @for mark in &v.marks {
                                        div.mark {
                                            @if mark.kind == EventType::RecordCorrected { "Corrected" } @else { "Entered in error" }
                                            @if let Some(by) = by_seq.get(&mark.seq) {
                                                " by " a href=(format!("#e-{}", by.event_id)) { (by.actor.id.to_string()) }
                                                @if let Some(now) = view::corrected_summary(by, v.event_type) {
                                                    ": " ins { (now) }
                                                }
                                            } @else { " (event #" (mark.seq) ")" }
                                        }
                                    }
                                }
                                _ => { (view::summary(v.event_type, &v.payload)) }
                            }
                            @for s in &v.signatures {
                                div.signature {
                                    "Signed by " (s.signer_name) " (" (s.meaning) ") " (time(s.signed_at))
                                    @if !s.signer_proven { " · signer not proven" }
                                    @if !s.hash_matches { " · not of this record as stored" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (view::pager(&format!("/console/{c}/patients/{p}"), kept, found.next_cursor.as_deref(), found.total))
    };
    page(&format!("Patient {p}"), &asker.principal, Some(c), body)
}

/// Who read a patient's data (compliance only).
pub(in crate::console) async fn access_log(
    OnPage(asker): OnPage<Admitted<ask::AccessLog>>,
    OnPage(Named(patient)): OnPage<Named<PatientId>>,
    OnPage(Checked(params)): OnPage<Checked<ListParams>>,
) -> PageResult {
    let found = routes::access_log_page(&asker, &patient, &params).await?;
    let (c, p) = (asker.clinic.as_str(), patient.as_str());
    let body = html! {
        table {
            caption { "Reads of " (p) "'s data" }
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Records" } } }
            tbody {
                @for v in &found.items {
                    tr {
                        td { (time(v.stored_at)) }
                        td { (v.payload["principal_id"].as_str().unwrap_or_default()) " (" (v.payload["role"].as_str().unwrap_or_default()) ")" }
                        td { (v.payload["query"].as_str().unwrap_or_default()) }
                        td { (v.payload["records_returned"].to_string()) }
                    }
                }
            }
        }
        (view::pager(&format!("/console/{c}/patients/{p}/access-log"), vec![], found.next_cursor.as_deref(), found.total))
    };
    page(
        &format!("Access log of {p}"),
        &asker.principal,
        Some(c),
        body,
    )
}
