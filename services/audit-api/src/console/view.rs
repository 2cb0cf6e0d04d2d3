//! The console's page frame and the pieces pages share: times, links,
//! one-line summaries of events, pagers.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use prolo_query::EventView;
use prolo_schemas::EventType;
use serde_json::Value;

use crate::{auth::Principal, render::text};

/// A whole page: skip link, header with the clinic's navigation and the
/// signed-in principal, the page's title and body.
pub fn layout(title: &str, who: Option<&Principal>, clinic: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — prolo-audit" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "prolo-audit" }
                    nav aria-label="Main" {
                        @if let Some(clinic) = clinic {
                            a href=(format!("/console/{clinic}")) { (clinic) }
                            a href=(format!("/console/{clinic}/findings")) { "Findings" }
                            a href=(format!("/console/{clinic}/signals")) { "Signals" }
                        }
                        a href="/console/status" { "Status" }
                    }
                    @if let Some(who) = who {
                        span.who { (who.id.to_string()) " · " (prolo_schemas::names::name(&who.role)) }
                        form.inline method="post" action="/sign-out" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A time as `2026-10-01 09:30 UTC`, machine-readable in the markup.
pub fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M")) } }
}

/// A link to a patient's timeline.
pub fn patient_link(clinic: &str, patient: &str) -> Markup {
    html! { a href=(format!("/console/{clinic}/patients/{patient}")) { (patient) } }
}

/// The query string of `pairs` (values percent-encoded).
pub fn query(pairs: &[(&str, String)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// "Next page" when there is one, keeping the page's other parameters.
pub fn pager(
    base: &str,
    mut pairs: Vec<(&str, String)>,
    next: Option<&str>,
    total: usize,
) -> Markup {
    html! {
        p.pager {
            (total) " in all. "
            @if let Some(next) = next {
                ({
                    pairs.push(("cursor", next.to_owned()));
                    html! { a rel="next" href=(format!("{base}{}", query(&pairs))) { "Next page →" } }
                })
            }
        }
    }
}

fn field(payload: &Value, name: &str) -> String {
    text(&payload[name])
}

/// One line saying what an event records.
pub fn summary(event_type: EventType, payload: &Value) -> String {
    match event_type {
        EventType::InjectionGiven => {
            let site = &payload["site"];
            let components: Vec<String> = payload["solution"]["components"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let pct = c["concentration_pct"]
                                .as_f64()
                                .map(|p| format!(" {p}%"))
                                .unwrap_or_default();
                            format!("{}{pct} (lot {})", field(c, "agent"), field(c, "lot"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} {} · {} · {} mL · {} · session {} · by {}",
                field(site, "site_key"),
                field(site, "laterality"),
                components.join(" + "),
                field(payload, "volume_ml"),
                field(payload, "guidance"),
                field(payload, "session_number"),
                field(payload, "practitioner_id"),
            )
        }
        EventType::AdverseEventReported => format!(
            "{} · grade {}{} · onset {}",
            field(payload, "kind"),
            field(payload, "grade"),
            if payload["serious"] == Value::Bool(true) {
                " · serious"
            } else {
                ""
            },
            field(payload, "onset_at"),
        ),
        EventType::AdverseEventUpdated => format!(
            "{} · outcome {} · causality {}",
            field(payload, "status"),
            field(payload, "outcome"),
            field(payload, "causality"),
        ),
        EventType::RecordCorrected | EventType::RecordEnteredInError => format!(
            "{} {}: {}",
            field(&payload["target"], "event_type"),
            field(&payload["target"], "event_id"),
            field(payload, "reason"),
        ),
        _ => {
            let Value::Object(map) = payload else {
                return text(payload);
            };
            map.iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
                .take(6)
                .map(|(k, v)| format!("{k}: {}", text(v)))
                .collect::<Vec<_>>()
                .join(" · ")
        }
    }
}

/// What a correction says the event should have been.
pub fn corrected_summary(correction: &EventView, original_type: EventType) -> Option<String> {
    let payload = &correction.payload["corrected_payload"];
    (!payload.is_null()).then(|| summary(original_type, payload))
}
