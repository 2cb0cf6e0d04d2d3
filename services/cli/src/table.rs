//! Answers printed for people at a terminal: a history as a timeline with
//! both times, findings grouped by rule, signals with their intervals, the
//! status as a list. Anything else (and `--json`, and piped output) stays
//! the API's JSON.

use std::{collections::BTreeMap, fmt::Write};

use prolo_audit_api::render::text;
use prolo_projector::rules::disproportionality::{per_1000, wilson_per_1000 as wilson};
use serde_json::Value;

/// The answers that have a readable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A page of events: a timeline.
    Timeline,
    /// Findings, grouped by rule.
    Findings,
    /// Rates and signals.
    Signals,
    /// The status.
    Status,
}

/// The readable form of `answer`.
pub fn render(shape: Shape, answer: &Value) -> String {
    match shape {
        Shape::Timeline => timeline(answer),
        Shape::Findings => findings(answer),
        Shape::Signals => signals(answer),
        Shape::Status => status(answer),
    }
}

/// `2026-10-01T09:30:00Z` as `2026-10-01 09:30`.
fn short_time(v: &Value) -> String {
    let t = text(v);
    t.get(..16).map(|s| s.replace('T', " ")).unwrap_or(t)
}

fn timeline(answer: &Value) -> String {
    let mut out = String::new();
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<16}  {:<16}  {:<26}  {:<14}  what",
        "happened", "recorded", "event", "actor"
    );
    for v in &items {
        let event_type = text(&v["event_type"]);
        let mut what = match event_type.parse() {
            Ok(known) => prolo_audit_api::console::summary(known, &v["payload"]),
            Err(_) => String::new(),
        };
        match v["standing"].as_str() {
            Some("corrected") => what = format!("[corrected] {what}"),
            Some("entered_in_error") => what = format!("[entered in error] {what}"),
            _ => {}
        }
        let _ = writeln!(
            out,
            "{:<16}  {:<16}  {:<26}  {:<14}  {what}",
            short_time(&v["occurred_at"]),
            short_time(&v["stored_at"]),
            event_type,
            text(&v["actor"]["id"]),
        );
    }
    let _ = writeln!(out, "{} of {}", items.len(), text(&answer["total"]));
    if let Some(next) = answer["next_cursor"].as_str() {
        let _ = writeln!(out, "more: --cursor {next}");
    }
    out
}

fn findings(answer: &Value) -> String {
    let mut by_rule: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let items = answer["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for f in items {
        by_rule.entry(text(&f["rule"])).or_default().push(f);
    }
    let mut out = String::new();
    for (rule, found) in &by_rule {
        let open = found.iter().filter(|f| f["resolved_by"].is_null()).count();
        let _ = writeln!(
            out,
            "{rule} ({}): {open} open, {} resolved",
            text(&found[0]["severity"]),
            found.len() - open
        );
        for f in found {
            let who = f["patient_id"]
                .as_str()
                .or(f["practitioner_id"].as_str())
                .unwrap_or("-");
            let state = if f["resolved_by"].is_null() {
                "open"
            } else {
                "resolved"
            };
            let _ = writeln!(out, "  {state:<8}  {who:<12}  {}", text(&f["detail"]));
        }
    }
    let _ = writeln!(
        out,
        "{} of {} findings",
        items.len(),
        text(&answer["total"])
    );
    if let Some(next) = answer["next_cursor"].as_str() {
        let _ = writeln!(out, "more: the API's cursor {next}");
    }
    out
}

fn signals(answer: &Value) -> String {
    let mut out = String::new();
    let w = &answer["window"];
    let _ = writeln!(
        out,
        "window: {} days, {} to {}",
        text(&w["days"]),
        text(&w["from"]),
        text(&w["to"])
    );
    let active: Vec<&Value> = answer["signals"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["active"] == true).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "active signals: {}", active.len());
    for s in &active {
        let _ = writeln!(
            out,
            "  ◆ {} in {} {}",
            text(&s["kind"]),
            text(&s["dimension"]),
            text(&s["group"])
        );
    }
    let groups = answer["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut kinds: Vec<String> = Vec::new();
    for g in groups {
        for k in g["by_kind"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let kind = text(&k["kind"]);
            let seen = k["window_table"]["group_events"].as_u64().unwrap_or(0) > 0;
            if (seen || k["signalled"] == true) && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    for kind in kinds {
        let _ = writeln!(
            out,
            "\n{kind} over the window (per 1,000 injections, 95% interval):"
        );
        for g in groups {
            let Some(k) = g["by_kind"]
                .as_array()
                .and_then(|ks| ks.iter().find(|k| k["kind"] == kind.as_str()))
            else {
                continue;
            };
            let t = &k["window_table"];
            let (a, n1) = (
                t["group_events"].as_u64().unwrap_or(0),
                t["group_injections"].as_u64().unwrap_or(0),
            );
            if a == 0 && k["signalled"] != true {
                continue;
            }
            let (c, n2) = (
                t["rest_events"].as_u64().unwrap_or(0),
                t["rest_injections"].as_u64().unwrap_or(0),
            );
            let (low, high) = wilson(a, n1);
            let _ = writeln!(
                out,
                "  {} {:<32} {a:>3}/{n1:<5} {:>7.1} ({low:.1}–{high:.1})  rest {:.1}",
                if k["signalled"] == true { "◆" } else { " " },
                format!("{} {}", text(&g["dimension"]), text(&g["group"])),
                per_1000(a, n1),
                per_1000(c, n2),
            );
        }
    }
    out
}

/// When the hub last heard from a clinic edge, from its `active_ms`.
pub fn last_heard(active_ms: Option<u64>) -> String {
    active_ms.map_or("not now (line down?)".to_owned(), |ms| {
        format!("{:.1} s ago", ms as f64 / 1000.0)
    })
}

fn status(answer: &Value) -> String {
    let mut out = String::new();
    for key in [
        "stream",
        "stream_last_seq",
        "applied_seq",
        "lag",
        "quarantined",
        "chain_head",
    ] {
        let _ = writeln!(out, "{key:<16} {}", text(&answer[key]));
    }
    let verified = &answer["last_verification"];
    let _ = writeln!(
        out,
        "{:<16} {}",
        "last verified",
        if verified.is_null() {
            "never".to_owned()
        } else {
            verified.to_string()
        }
    );
    for edge in answer["edges"].as_array().into_iter().flatten() {
        let chain = &edge["chain"];
        let _ = writeln!(
            out,
            "{:<16} {}: sourcing lag {}, last heard from {}, chain through edge seq {} {}{}",
            "clinic edge",
            text(&edge["clinic"]),
            text(&edge["sourcing_lag"]),
            last_heard(edge["active_ms"].as_u64()),
            text(&chain["through"]),
            text(&chain["head"]),
            match chain["gaps"].as_u64() {
                Some(gaps) if gaps > 0 => format!(" ({gaps} gaps: not comparable with the edge's)"),
                _ => String::new(),
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_history_reads_as_a_timeline_with_both_times_and_corrections_marked() {
        let answer = json!({"total": 2, "next_cursor": "2", "items": [
            {"event_type": "injection.given", "occurred_at": "2026-10-01T09:30:00Z", "stored_at": "2026-10-01T09:31:12.250Z",
             "actor": {"id": "dr-hale"}, "standing": "corrected",
             "payload": {"site": {"site_key": "KNEE_MCL", "laterality": "left"}, "volume_ml": 2.5, "session_number": 1,
                         "guidance": "palpation", "practitioner_id": "dr-hale", "solution": {"components": []}}},
            {"event_type": "consent.given", "occurred_at": "2026-09-20T14:00:00Z", "stored_at": "2026-09-20T14:01:00Z",
             "actor": {"id": "dr-hale"}, "standing": "as_recorded", "payload": {"series": true}}
        ]});
        let out = timeline(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("happened"), "{out}");
        assert!(
            lines[1].starts_with("2026-10-01 09:30  2026-10-01 09:31  injection.given"),
            "{out}"
        );
        assert!(lines[1].contains("[corrected] KNEE_MCL left"), "{out}");
        assert!(lines[2].contains("series: true"), "{out}");
        assert_eq!(lines[3], "2 of 2");
        assert_eq!(lines[4], "more: --cursor 2");
    }

    #[test]
    fn signals_show_the_signalled_group_with_its_interval() {
        let answer = json!({
            "window": {"days": 90, "from": "2026-08-29", "to": "2026-11-26"},
            "signals": [{"active": true, "kind": "infection", "dimension": "lot", "group": "DX-1"}],
            "groups": [{"dimension": "lot", "group": "DX-1", "by_kind": [{"kind": "infection", "signalled": true,
                "window_table": {"group_events": 4, "group_injections": 20, "rest_events": 0, "rest_injections": 60}}]}]
        });
        let out = signals(&answer);
        assert!(
            out.contains("active signals: 1\n  ◆ infection in lot DX-1"),
            "{out}"
        );
        assert!(out.contains("◆ lot DX-1"), "{out}");
        assert!(out.contains("200.0 (80.7–416.0)  rest 0.0"), "{out}");
    }

    #[test]
    fn findings_are_grouped_by_rule_with_open_and_resolved_counts() {
        let answer = json!({"total": 3, "next_cursor": null, "items": [
            {"rule": "no_active_consent", "severity": "high", "patient_id": "P-1", "detail": "none", "resolved_by": null},
            {"rule": "no_active_consent", "severity": "high", "patient_id": "P-2", "detail": "none", "resolved_by": ["x", 4]},
            {"rule": "asepsis_not_done", "severity": "high", "practitioner_id": "dr-a", "detail": "no prep", "resolved_by": null}
        ]});
        let out = findings(&answer);
        assert!(
            out.contains("no_active_consent (high): 1 open, 1 resolved"),
            "{out}"
        );
        assert!(out.contains("  open      dr-a          no prep"), "{out}");
        assert!(out.ends_with("3 of 3 findings\n"), "{out}");
    }
}
