//! The console's pages. Each checks the session's principal exactly as the
//! API does (role, clinic scope), reads through the API's own functions
//! (which record the read before returning), then renders.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{Html, IntoResponse, Redirect, Response},
};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use prolo_projector::names::name;
use prolo_query::EventView;
use prolo_schemas::{ClinicId, EventType, LotNumber, PatientId};
use serde::Deserialize;

use super::view::{self, layout, patient_link, time};
use crate::{
    auth::{ClinicScope, Principal, QueryKind},
    error::ApiError,
    routes::{self, AppState, FindingParams, InvestigationParams, ListParams, TraceParams},
};

type PageResult = Result<Response, Failed>;

/// A page that could not be shown: its error page (boxed: a response is large).
pub(super) struct Failed(Box<Response>);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn fail(error: ApiError) -> Failed {
    Failed(Box::new(error_page(error)))
}

/// An API error as a page (a sign-in form when there is no session).
pub(super) fn error_page(error: ApiError) -> Response {
    let unauthorized = matches!(error, ApiError::Unauthorized);
    let message = error.to_string();
    let body = html! {
        p.error role="alert" { (message) }
        @if unauthorized { (sign_in_form()) }
        p { a href="/" { "Back to the start" } }
    };
    let title = if unauthorized {
        "Sign in"
    } else {
        "Not allowed"
    };
    super::html_error(error, layout(title, None, None, body))
}

fn sign_in_form() -> Markup {
    html! {
        form.card method="post" action="/sign-in" {
            label for="token" { "Access token" }
            input id="token" name="token" type="password" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
    }
}

fn page(title: &str, who: &Principal, clinic: Option<&str>, body: Markup) -> PageResult {
    Ok(Html(layout(title, Some(who), clinic, body).into_string()).into_response())
}

/// The principal allowed to run `query` in `clinic`, or the error page.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: QueryKind,
    clinic: &str,
) -> Result<Principal, Failed> {
    routes::admit(state, headers, query, clinic).map_err(fail)
}

fn parsed<T: std::str::FromStr>(value: &str) -> Result<T, Failed>
where
    T::Err: std::fmt::Display,
{
    routes::id(value).map_err(fail)
}

/// The start: the sign-in form, or the clinics the session may read.
pub(super) async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(who) = state.principals.authenticate(&headers) else {
        let body = html! {
            p { "Sign in with the access token your administrator gave you. It is kept only in this browser's session cookie." }
            (sign_in_form())
        };
        return Html(layout("Sign in", None, None, body).into_string()).into_response();
    };
    let body = html! {
        @match &who.clinics {
            ClinicScope::Only(clinics) => {
                h2 { "Your clinics" }
                ul { @for c in clinics { li { a href=(format!("/console/{c}")) { (c.as_str()) } } } }
            }
            ClinicScope::All => { p { "You may read every clinic." } }
        }
        form.card method="get" action="/go" {
            label for="clinic" { "Open a clinic" }
            input id="clinic" name="clinic" required;
            button type="submit" { "Open" }
        }
    };
    page("prolo-audit", &who, None, body).unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub(super) struct Go {
    clinic: String,
}

/// The start page's form: checks the clinic id, then goes to it.
pub(super) async fn go(Query(go): Query<Go>) -> PageResult {
    let clinic: ClinicId = parsed(go.clinic.trim())?;
    Ok(Redirect::to(&format!("/console/{clinic}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct OpenParams {
    patient: Option<String>,
    lot: Option<String>,
    adverse_event: Option<String>,
}

/// A clinic's start: find a patient, a lot or an adverse event.
pub(super) async fn clinic(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::Signals, &clinic)
        .or_else(|_| admit(&state, &headers, QueryKind::Findings, &clinic))?;
    let clinic: ClinicId = parsed(&clinic)?;
    let c = clinic.as_str();
    let body = html! {
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="patient" { "Patient id" }
            input id="patient" name="patient" placeholder="P-1000";
            button type="submit" { "Open timeline" }
        }
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="lot" { "Lot number" }
            input id="lot" name="lot" placeholder="DX50-2026-114";
            button type="submit" { "Trace lot" }
        }
        form.card method="get" action=(format!("/console/{c}/open")) {
            label for="adverse_event" { "Adverse event id" }
            input id="adverse_event" name="adverse_event";
            button type="submit" { "Investigate" }
        }
        ul.links {
            li { a href=(format!("/console/{c}/findings")) { "Findings" } }
            li { a href=(format!("/console/{c}/signals")) { "Safety signals" } }
        }
    };
    page(&format!("Clinic {c}"), &who, Some(c), body)
}

/// The forms' target: checks the id, then goes to its page.
pub(super) async fn open(
    Path(clinic): Path<String>,
    Query(params): Query<OpenParams>,
) -> PageResult {
    let clinic: ClinicId = parsed(&clinic)?;
    let c = clinic.as_str();
    let to = if let Some(p) = params.patient.filter(|p| !p.is_empty()) {
        let p: PatientId = parsed(p.trim())?;
        format!("/console/{c}/patients/{p}")
    } else if let Some(l) = params.lot.filter(|l| !l.is_empty()) {
        let l: LotNumber = parsed(l.trim())?;
        format!("/console/{c}/lots/{l}")
    } else if let Some(a) = params.adverse_event.filter(|a| !a.is_empty()) {
        let a: uuid::Uuid = parsed(a.trim())?;
        format!("/console/{c}/adverse-events/{a}")
    } else {
        format!("/console/{c}")
    };
    Ok(Redirect::to(&to).into_response())
}

/// The timeline's filters, as a form sends them (dates, not times).
#[derive(Deserialize, Default)]
pub(super) struct TimelineParams {
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

fn day(value: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, Failed> {
    if value.is_empty() {
        return Ok(None);
    }
    let date: NaiveDate = value.parse().map_err(|_| {
        fail(ApiError::BadRequest(format!(
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
pub(super) async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
    Query(form): Query<TimelineParams>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::PatientHistory, &clinic)?;
    let (clinic, patient): (ClinicId, PatientId) = (parsed(&clinic)?, parsed(&patient)?);
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
    let found = routes::history_page(&state, &who, (&clinic, &patient), &params)
        .await
        .map_err(fail)?;
    let (c, p) = (clinic.as_str(), patient.as_str());
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
            @if who.may(QueryKind::AccessLog).is_ok() {
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
                    tr id=(format!("e-{}", v.event_id)) class=(v.standing) {
                        td { (time(v.occurred_at)) }
                        td { (time(v.stored_at)) }
                        td { (v.event_type) }
                        td { (v.actor.id.to_string()) " (" (prolo_projector::names::name(&v.actor.role)) ")" }
                        td { (v.source) }
                        td {
                            @match v.standing {
                                "corrected" | "entered_in_error" => {
                                    del { (view::summary(v.event_type, &v.payload)) }
                                    @for mark in &v.marks {
                                        div.mark {
                                            @if mark.kind == "record.corrected" { "Corrected" } @else { "Entered in error" }
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
                                div.signature { "Signed by " (s.signer_name) " (" (s.meaning) ")" }
                            }
                        }
                    }
                }
            }
        }
        (view::pager(&format!("/console/{c}/patients/{p}"), kept, found.next_cursor.as_deref(), found.total))
    };
    page(&format!("Patient {p}"), &who, Some(c), body)
}

/// Who read a patient's data (compliance only).
pub(super) async fn access_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
    Query(form): Query<TimelineParams>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::AccessLog, &clinic)?;
    let (clinic, patient): (ClinicId, PatientId) = (parsed(&clinic)?, parsed(&patient)?);
    let params = ListParams {
        cursor: form.cursor,
        ..ListParams::default()
    };
    let found = routes::access_log_page(&state, &who, (&clinic, &patient), &params)
        .await
        .map_err(fail)?;
    let (c, p) = (clinic.as_str(), patient.as_str());
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
    page(&format!("Access log of {p}"), &who, Some(c), body)
}

fn event_row(clinic: &str, v: &EventView) -> Markup {
    html! {
        tr {
            td { (time(v.occurred_at)) }
            td { (v.event_type) }
            td { @if let Some(p) = &v.patient_id { (patient_link(clinic, p)) } }
            td { (view::summary(v.event_type, &v.payload)) }
        }
    }
}

fn events_table(caption: &str, clinic: &str, events: &[EventView]) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { "Happened" } th scope="col" { "Event" } th scope="col" { "Patient" } th scope="col" { "What" } } }
            tbody { @for v in events { (event_row(clinic, v)) } }
        }
        @if events.is_empty() { p.none { "None." } }
    }
}

fn injections_table(caption: &str, clinic: &str, rows: &[prolo_query::InjectionRow]) -> Markup {
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

fn adverse_table(caption: &str, clinic: &str, rows: &[prolo_query::AdverseEventRow]) -> Markup {
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

/// An adverse event and everything around it, for a safety reviewer.
pub(super) async fn investigation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, event_id)): Path<(String, String)>,
) -> PageResult {
    let who = admit(
        &state,
        &headers,
        QueryKind::AdverseEventInvestigation,
        &clinic,
    )?;
    let clinic: ClinicId = parsed(&clinic)?;
    let event_id: uuid::Uuid = parsed(&event_id)?;
    let params = InvestigationParams::default();
    let inv = routes::investigation_answer(&state, &who, &clinic, event_id, &params)
        .await
        .map_err(fail)?;
    let c = clinic.as_str();
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
        &who,
        Some(c),
        body,
    )
}

#[derive(Deserialize, Default)]
pub(super) struct Cursor {
    cursor: Option<u64>,
}

/// Who received a lot, when, where, what followed, and its recall.
pub(super) async fn lot(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, lot)): Path<(String, String)>,
    Query(form): Query<Cursor>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::LotTrace, &clinic)?;
    let (clinic, lot): (ClinicId, LotNumber) = (parsed(&clinic)?, parsed(&lot)?);
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

#[derive(Deserialize, Default)]
pub(super) struct FindingForm {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    status: String,
    cursor: Option<usize>,
}

/// Findings: counts by rule and severity, open and resolved; the list,
/// filtered, each with its evidence.
pub(super) async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
    Query(form): Query<FindingForm>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::Findings, &clinic)?;
    let clinic: ClinicId = parsed(&clinic)?;
    let as_json = |field: &str, value: &str| -> Result<Option<serde_json::Value>, Failed> {
        Ok((!value.is_empty()).then(|| serde_json::Value::String(value.to_owned())))
            .map(|v| v.map(|v| serde_json::json!({ field: v })))
    };
    let mut params_json = serde_json::Map::new();
    for (field, value) in [("rule", &form.rule), ("status", &form.status)] {
        if let Some(serde_json::Value::Object(m)) = as_json(field, value)? {
            params_json.extend(m);
        }
    }
    if let Some(cursor) = form.cursor {
        params_json.insert("cursor".into(), cursor.into());
    }
    let params: FindingParams = serde_json::from_value(serde_json::Value::Object(params_json))
        .map_err(|e| fail(ApiError::BadRequest(e.to_string())))?;
    // Counts per rule carry no patient data: read without a record.
    let counts: Vec<(String, String, u64, u64)> = {
        let clinic = clinic.clone();
        routes::off_worker(&state, move |store| {
            Ok(store.finding_counts(clinic.as_str())?)
        })
        .await
        .map_err(fail)?
        .into_iter()
        .map(|(rule, count)| {
            let severity = prolo_projector::findings::Rule::ALL
                .iter()
                .find(|r| r.code() == rule)
                .map(|r| prolo_projector::names::name(&r.severity()))
                .unwrap_or_default();
            (rule, severity, count.open(), count.resolved)
        })
        .collect()
    };
    let found = routes::findings_page(&state, &who, &clinic, &params)
        .await
        .map_err(fail)?;
    let c = clinic.as_str();
    let body = html! {
        table.counts {
            caption { "Findings by rule" }
            thead { tr { th scope="col" { "Rule" } th scope="col" { "Severity" } th scope="col" { "Open" } th scope="col" { "Resolved" } } }
            tbody {
                @for (rule, severity, open, resolved) in &counts {
                    tr {
                        td { a href=(format!("/console/{c}/findings?rule={rule}")) { (rule) } }
                        td class=(format!("severity {severity}")) { (severity) }
                        td { (open) } td { (resolved) }
                    }
                }
            }
        }
        form.filters method="get" {
            label { "Rule " select name="rule" {
                option value="" { "every rule" }
                @for rule in prolo_projector::findings::Rule::ALL {
                    option value=(rule.code()) selected[form.rule == rule.code()] { (rule.code()) }
                }
            } }
            label { "Status " select name="status" {
                option value="" { "open and resolved" }
                option value="open" selected[form.status == "open"] { "open" }
                option value="resolved" selected[form.status == "resolved"] { "resolved" }
            } }
            button type="submit" { "Apply" }
        }
        table.findings {
            caption { "Findings" }
            thead { tr { th scope="col" { "Severity" } th scope="col" { "Rule" } th scope="col" { "Patient" } th scope="col" { "What" } th scope="col" { "Evidence" } th scope="col" { "Status" } } }
            tbody {
                @for f in &found.items {
                    tr {
                        td class=(format!("severity {}", prolo_projector::names::name(&f.severity))) { (prolo_projector::names::name(&f.severity)) }
                        td { (f.rule.code()) }
                        td { @if let Some(p) = &f.patient_id { (patient_link(c, p)) } @else if let Some(pr) = &f.practitioner_id { (pr) } }
                        td { (f.detail) }
                        td {
                            @for id in &f.evidence {
                                @match &f.patient_id {
                                    Some(p) => { a.evidence href=(format!("/console/{c}/patients/{p}#e-{id}")) { (id.to_string().get(24..).unwrap_or_default()) } " " }
                                    None => { code { (id.to_string().get(24..).unwrap_or_default()) } " " }
                                }
                            }
                        }
                        td { @if f.resolved_by.is_some() { "resolved" } @else { "open" } }
                    }
                }
            }
        }
        (view::pager(&format!("/console/{c}/findings"), vec![("rule", form.rule.clone()), ("status", form.status.clone())], found.next_cursor.as_deref(), found.total))
    };
    page("Findings", &who, Some(c), body)
}

/// The safety signals: a forest plot per adverse-event kind over the
/// rolling window, signalled groups marked, and the table under it.
pub(super) async fn signals(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
) -> PageResult {
    let who = admit(&state, &headers, QueryKind::Signals, &clinic)?;
    let clinic: ClinicId = parsed(&clinic)?;
    let report = routes::signals_answer(&state, clinic.clone())
        .await
        .map_err(fail)?;
    let c = clinic.as_str();
    let body = super::plot::signals_body(c, &report);
    page("Safety signals", &who, Some(c), body)
}

/// Stream position, lag, quarantine, chain head, last verification.
pub(super) async fn status(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let who = state.principals.authenticate(&headers).map_err(fail)?;
    who.may(QueryKind::Status).map_err(fail)?;
    let s = routes::status_answer(&state).await.map_err(fail)?;
    let body = html! {
        dl.facts {
            dt { "Stream" } dd { (s.stream) }
            dt { "Last sequence" } dd { (s.stream_last_seq.map(|n| n.to_string()).unwrap_or_else(|| "broker not answering".into())) }
            dt { "Folded" } dd { (s.applied_seq) }
            dt { "Lag" } dd { (s.lag.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into())) }
            dt { "Quarantined" } dd { (s.quarantined) }
            dt { "Chain head" } dd { code { (s.chain_head) } }
            dt { "Last verification" } dd {
                @match &s.last_verification {
                    Some(v) => { (serde_json::to_string(v).unwrap_or_default()) }
                    None => { "never run" }
                }
            }
        }
    };
    page("Status", &who, None, body)
}
