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

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn csv_line(fields: &[&str]) -> Bytes {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    Bytes::from(line)
}

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
    "subject",
];

fn event_csv(v: &EventView) -> Bytes {
    csv_line(&[
        &v.seq.to_string(),
        &v.event_id.to_string(),
        v.event_type,
        &v.occurred_at.to_rfc3339(),
        &v.recorded_at.to_rfc3339(),
        &v.stored_at.to_rfc3339(),
        &v.clinic_id,
        v.patient_id.as_deref().unwrap_or(""),
        &v.actor.id,
        &prolo_projector::fold::name(&v.actor.role),
        &v.source,
        v.standing,
        &v.subject,
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
    "lots",
];

/// Streams injection rows (a lot trace) as JSON Lines or CSV.
pub fn stream_injections(rows: Vec<InjectionRow>, format: Format) -> Response {
    match format {
        Format::Csv => streamed(
            "text/csv",
            std::iter::once(csv_line(INJECTION_COLUMNS)).chain(rows.into_iter().map(|r| {
                csv_line(&[
                    &r.seq.to_string(),
                    &r.event_id.to_string(),
                    &r.clinic_id,
                    &r.patient_id,
                    &r.site_key,
                    r.laterality.as_deref().unwrap_or(""),
                    &r.occurred_at.to_rfc3339(),
                    &r.practitioner_id,
                    &r.lots.join(" "),
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
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
