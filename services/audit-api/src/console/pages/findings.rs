//! Findings and safety signals.

use axum::extract::Query;
use maud::html;
use serde::Deserialize;

use super::{Failed, OnPage, PageResult, page};
use crate::{
    console::view::{self, patient_link},
    error::ApiError,
    routes::{
        self, FindingParams,
        admit::{Admitted, ask},
    },
};

#[derive(Deserialize, Default)]
pub(in crate::console) struct FindingForm {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    status: String,
    cursor: Option<usize>,
}

/// Findings: counts by rule and severity, open and resolved; the list,
/// filtered, each with its evidence.
pub(in crate::console) async fn findings(
    OnPage(asker): OnPage<Admitted<ask::Findings>>,
    Query(form): Query<FindingForm>,
) -> PageResult {
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
        .map_err(|e| Failed::from(ApiError::BadRequest(e.to_string())))?;
    // Counts per rule carry no patient data: read without a record.
    let counts: Vec<(String, String, u64, u64)> = {
        asker
            .read(|store, clinic| Ok(store.finding_counts(clinic.as_str())?))
            .await?
            .into_iter()
            .map(|(rule, count)| {
                let severity = prolo_projector::rules::findings::Rule::ALL
                    .iter()
                    .find(|r| r.code() == rule)
                    .map(|r| prolo_schemas::names::name(&r.severity()))
                    .unwrap_or_default();
                (rule, severity, count.open(), count.resolved)
            })
            .collect()
    };
    let found = routes::findings_page(&asker, &params).await?;
    let c = asker.clinic.as_str();
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
                @for rule in prolo_projector::rules::findings::Rule::ALL {
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
                        td class=(format!("severity {}", prolo_schemas::names::name(&f.severity))) { (prolo_schemas::names::name(&f.severity)) }
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
    page("Findings", &asker.principal, Some(c), body)
}

/// The safety signals: a forest plot per adverse-event kind over the
/// rolling window, signalled groups marked, and the table under it.
pub(in crate::console) async fn signals(
    OnPage(asker): OnPage<Admitted<ask::Signals>>,
) -> PageResult {
    let report = routes::signals_answer(&asker).await?;
    let c = asker.clinic.as_str();
    let body = crate::console::plot::signals_body(c, &report);
    page("Safety signals", &asker.principal, Some(c), body)
}

#[derive(Deserialize, Default)]
pub(in crate::console) struct QuarantineForm {
    cursor: Option<u64>,
}

/// The messages quarantined on the clinic's subjects, with their reasons
/// (the read recorded: their subjects name patients).
pub(in crate::console) async fn quarantine(
    OnPage(asker): OnPage<Admitted<ask::Quarantine>>,
    Query(form): Query<QuarantineForm>,
) -> PageResult {
    let params = routes::PageParams {
        cursor: form.cursor,
        limit: None,
    };
    let found = routes::quarantine_page(&asker, &params).await?;
    let c = asker.clinic.as_str();
    let body = html! {
        p { (found.total) " messages on this clinic's subjects were quarantined: kept in the stream and the read models, never applied. "
            "Those no recording service sealed each raised an "
            a href=(format!("/console/{c}/findings?rule=unproven_publisher")) { "unproven_publisher" } " finding." }
        table {
            thead { tr { th scope="col" { "Sequence" } th scope="col" { "Stored" } th scope="col" { "Subject" } th scope="col" { "Reason" } th scope="col" { "Bytes" } } }
            tbody {
                @for m in &found.items {
                    tr {
                        td { (m.seq) }
                        td { (view::time(m.stored_at)) }
                        td { code { (m.subject) } }
                        td { (m.reason) }
                        td { (m.bytes) }
                    }
                }
            }
        }
        @if let Some(next) = &found.next_cursor {
            p { a href=(format!("/console/{c}/quarantine?cursor={next}")) { "Next page" } }
        }
    };
    page("Quarantine", &asker.principal, Some(c), body)
}
