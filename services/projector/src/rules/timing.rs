//! When an event was documented, reported or stored, against when it happened.

use chrono::Duration;
use prolo_schemas::{AdverseEventReported, Envelope};

use super::{Draft, ms};
use crate::rules::findings::{FindingSettings, Rule};

/// Documentation too long after the fact (any clinical event).
pub fn late_documentation(e: &Envelope, settings: &FindingSettings) -> Option<Draft> {
    // A declared back-fill is late by nature; a serious adverse event in it
    // is still judged by `serious_event_reported_late`.
    if e.source == prolo_schemas::BACKFILL_SOURCE {
        return None;
    }
    let late = e.recorded_at - e.occurred_at;
    (late > Duration::hours(settings.late_documentation_hours)).then(|| {
        Draft::about(
            Rule::LateDocumentation,
            e.event_id,
            format!(
                "{} recorded {} hours after it happened (limit {})",
                e.event_type(),
                late.num_hours(),
                settings.late_documentation_hours
            ),
        )
    })
}

/// `backfill_after_go_live`: a back-filled event that happened after the
/// clinic began recording live (`live_since_ms`, stream time) and was
/// recorded later than the late-documentation limit. A back-fill of the
/// history before go-live is what back-fills are for; care given while the
/// clinic recorded live and back-filled days later should have been
/// recorded as it happened.
pub fn backfill_after_go_live(
    e: &Envelope,
    live_since_ms: Option<i64>,
    settings: &FindingSettings,
) -> Option<Draft> {
    let live_since = live_since_ms?;
    let late = e.recorded_at - e.occurred_at;
    let after_go_live = ms(e.occurred_at) >= live_since;
    (e.source == prolo_schemas::BACKFILL_SOURCE
        && after_go_live
        && late > Duration::hours(settings.late_documentation_hours))
    .then(|| {
        let live = chrono::DateTime::from_timestamp_millis(live_since).unwrap_or_default();
        Draft::about(
            Rule::BackfillAfterGoLive,
            e.event_id,
            format!(
                "{} happened after the clinic began recording live ({}) and was back-filled {} hours later (limit {})",
                e.event_type(),
                live.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                late.num_hours(),
                settings.late_documentation_hours
            ),
        )
    })
}

/// A serious adverse event recorded too long after its onset.
pub fn serious_reported_late(
    e: &Envelope,
    p: &AdverseEventReported,
    settings: &FindingSettings,
) -> Option<Draft> {
    // A declared back-fill was reported when it occurred (a back-fill of
    // care since go-live is judged by `backfill_after_go_live`).
    let reported = if e.source == prolo_schemas::BACKFILL_SOURCE {
        e.occurred_at
    } else {
        e.recorded_at
    };
    let delay = reported - p.onset_at;
    (p.serious && delay > Duration::hours(settings.serious_report_hours)).then(|| {
        Draft::about(
            Rule::SeriousEventReportedLate,
            e.event_id,
            format!(
                "serious adverse event recorded {} hours after its onset (limit {})",
                delay.num_hours(),
                settings.serious_report_hours
            ),
        )
    })
}

/// A `recorded_at` (as the publisher `stamped` it) further than the
/// tolerance from the stream's own time (now `e.recorded_at`).
pub fn recorded_at_mismatch(
    e: &Envelope,
    stamped: chrono::DateTime<chrono::Utc>,
    settings: &FindingSettings,
) -> Option<Draft> {
    let off = (stamped - e.recorded_at).num_milliseconds();
    (off.abs() > settings.recorded_at_tolerance_ms).then(|| {
        Draft::about(
            Rule::RecordedAtMismatch,
            e.event_id,
            format!(
                "{} says recorded_at {} but JetStream stored it at {} ({:+.1} s); the stream's time is used",
                e.event_type(),
                stamped.to_rfc3339(),
                e.recorded_at.to_rfc3339(),
                off as f64 / 1000.0
            ),
        )
    })
}
