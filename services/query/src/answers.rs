//! The queries. Each returns its answer as stream sequences first (so the
//! number of records is known before rendering), or a small struct.

use chrono::{DateTime, Duration, Utc};
use prolo_projector::{
    Store,
    model::{AdverseEventState, DayInjection, PatientSummary, PractitionerSummary},
    rules::signals::Dimension,
    store::{RecordReader, reads::Index},
};
use prolo_schemas::{ClinicId, Envelope, EventType, LotNumber, PatientId, Payload, PractitionerId};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    EventView, QueryError, event_view,
    view::{stored, view_of},
};

/// Filters of a history.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only these types (all when empty).
    pub event_types: Vec<EventType>,
    /// Clinical time from (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Clinical time to (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// As known at this time: only events recorded up to it.
    pub as_of: Option<DateTime<Utc>>,
}

impl HistoryFilter {
    fn is_empty(&self) -> bool {
        self.event_types.is_empty()
            && self.from.is_none()
            && self.to.is_none()
            && self.as_of.is_none()
    }

    /// Whether the event, stored by JetStream at `stored_at_ms`, is asked for.
    fn admits(&self, e: &Envelope, stored_at_ms: i64) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&e.event_type()))
            && self.from.is_none_or(|from| e.occurred_at >= from)
            && self.to.is_none_or(|to| e.occurred_at < to)
            && self
                .as_of
                .is_none_or(|as_of| stored_at_ms <= as_of.timestamp_millis())
    }
}

/// The applied event at `seq`.
fn envelope(records: &mut RecordReader<'_>, seq: u64) -> Result<Option<Envelope>, QueryError> {
    Ok(stored_envelope(records, seq)?.map(|(e, _)| e))
}

/// The applied event at `seq` and when JetStream stored it (ms).
fn stored_envelope(
    records: &mut RecordReader<'_>,
    seq: u64,
) -> Result<Option<(Envelope, i64)>, QueryError> {
    Ok(stored(records, seq)?.map(|s| (s.envelope, s.record.stored_at_ms)))
}

fn filtered(store: &Store, seqs: Vec<u64>, filter: &HistoryFilter) -> Result<Vec<u64>, QueryError> {
    if filter.is_empty() {
        return Ok(seqs);
    }
    let mut kept = Vec::with_capacity(seqs.len());
    let mut records = store.record_reader();
    for seq in seqs {
        if stored_envelope(&mut records, seq)?
            .is_some_and(|(e, stored_at)| filter.admits(&e, stored_at))
        {
            kept.push(seq);
        }
    }
    Ok(kept)
}

fn index(store: &Store, index: Index<'_>) -> Result<Vec<u64>, QueryError> {
    Ok(store.index(index)?)
}

/// Every event of a patient, in stream order, filtered.
pub fn patient_history(
    store: &Store,
    clinic: &ClinicId,
    patient: &PatientId,
    filter: &HistoryFilter,
) -> Result<Vec<u64>, QueryError> {
    let (clinic, patient) = (clinic.as_str(), patient.as_str());
    filtered(
        store,
        index(store, Index::Patient { clinic, patient })?,
        filter,
    )
}

/// One page of a list of events and how many the whole list holds.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Events in the whole list.
    pub total: usize,
    /// The page's events.
    pub items: Vec<EventView>,
    /// The cursor of the next page, if there is one.
    pub next: Option<u64>,
}

/// One page of `seqs` (see [`page`]) as views.
pub fn event_page(
    store: &Store,
    seqs: &[u64],
    cursor: Option<u64>,
    limit: usize,
    as_of: Option<DateTime<Utc>>,
) -> Result<EventPage, QueryError> {
    let (shown, next) = page(seqs, cursor, limit);
    Ok(EventPage {
        total: seqs.len(),
        items: views(store, shown, as_of)?,
        next,
    })
}

/// One page of a patient's history, filtered. Each of the patient's events
/// is read and decoded once: to filter and count it and, on the page, to
/// show it. Unfiltered, only the page is read.
pub fn patient_history_page(
    store: &Store,
    (clinic, patient): (&ClinicId, &PatientId),
    filter: &HistoryFilter,
    cursor: Option<u64>,
    limit: usize,
    as_of: Option<DateTime<Utc>>,
) -> Result<EventPage, QueryError> {
    let (c, p) = (clinic.as_str(), patient.as_str());
    let seqs = index(
        store,
        Index::Patient {
            clinic: c,
            patient: p,
        },
    )?;
    if filter.is_empty() {
        return event_page(store, &seqs, cursor, limit, as_of);
    }
    let mut kept = Vec::with_capacity(seqs.len());
    let mut shown = Vec::new();
    let mut records = store.record_reader();
    for seq in seqs {
        let Some(event) = stored(&mut records, seq)? else {
            continue;
        };
        if !filter.admits(&event.envelope, event.record.stored_at_ms) {
            continue;
        }
        kept.push(seq);
        // The page: the first `limit` after the cursor, as [`page`] cuts it.
        if cursor.is_none_or(|c| seq > c) && shown.len() < limit.max(1) {
            shown.push(event);
        }
    }
    let (_, next) = page(&kept, cursor, limit);
    Ok(EventPage {
        total: kept.len(),
        items: shown
            .into_iter()
            .map(|event| view_of(store, event, as_of))
            .collect::<Result<_, _>>()?,
        next,
    })
}

/// A patient's current view (corrections applied).
pub fn patient_summary(
    store: &Store,
    clinic: &ClinicId,
    patient: &PatientId,
) -> Result<PatientSummary, QueryError> {
    store
        .patient_summary(clinic.as_str(), patient.as_str())?
        .ok_or_else(|| QueryError::NotFound(format!("patient {patient} in clinic {clinic}")))
}

/// Every event of a practitioner (credentials, injections given, adverse
/// events after them), in stream order, filtered; and the summary.
pub fn practitioner_history(
    store: &Store,
    clinic: &ClinicId,
    practitioner: &PractitionerId,
    filter: &HistoryFilter,
) -> Result<(Option<PractitionerSummary>, Vec<u64>), QueryError> {
    let summary = store.practitioner_summary(clinic.as_str(), practitioner.as_str())?;
    let all = index(
        store,
        Index::Practitioner {
            clinic: clinic.as_str(),
            practitioner: practitioner.as_str(),
        },
    )?;
    let seqs = filtered(store, all, filter)?;
    Ok((summary, seqs))
}

/// The reads of a patient's data (`access.recorded` events): who looked.
pub fn access_log(
    store: &Store,
    clinic: &ClinicId,
    patient: &PatientId,
) -> Result<Vec<u64>, QueryError> {
    let (clinic, patient) = (clinic.as_str(), patient.as_str());
    index(store, Index::ReadsOfPatient { clinic, patient })
}

/// The refused requests (`access.refused`) filed under `clinic`, in order.
pub fn access_refused(store: &Store, clinic: &ClinicId) -> Result<Vec<u64>, QueryError> {
    let mut kept = Vec::new();
    let mut records = store.record_reader();
    for seq in index(store, Index::Type(EventType::AccessRefused))? {
        if envelope(&mut records, seq)?.is_some_and(|e| e.clinic_id == *clinic) {
            kept.push(seq);
        }
    }
    Ok(kept)
}

/// A message the fold quarantined: kept, never applied, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QuarantinedMessage {
    /// Its stream sequence.
    pub seq: u64,
    /// The subject it was published on (which names the clinic, and the
    /// patient it claims to be about).
    pub subject: String,
    /// When JetStream stored it.
    pub stored_at: DateTime<Utc>,
    /// Why it was not applied.
    pub reason: String,
    /// Its size in bytes (the bytes themselves stay in the stream and the
    /// read models, for an investigator with the stream's credentials).
    pub bytes: usize,
}

impl QuarantinedMessage {
    /// The patient its subject names, if any.
    pub fn patient(&self) -> Option<&str> {
        let mut tokens = self.subject.split('.');
        match (tokens.nth(2), tokens.next()) {
            (Some("patient"), Some(patient)) => Some(patient),
            _ => None,
        }
    }
}

/// The messages quarantined on `clinic`'s subjects, in stream order.
pub fn quarantined(
    store: &Store,
    clinic: &ClinicId,
) -> Result<Vec<QuarantinedMessage>, QueryError> {
    let prefix = format!("clinic.{clinic}.");
    let mut records = store.record_reader();
    let mut found = Vec::new();
    for seq in index(store, Index::Quarantined)? {
        let Some(record) = records.event(seq)? else {
            continue;
        };
        if !record.subject.starts_with(&prefix) {
            continue;
        }
        found.push(QuarantinedMessage {
            seq,
            stored_at: DateTime::from_timestamp_millis(record.stored_at_ms).unwrap_or_default(),
            reason: record.quarantine.unwrap_or_default(),
            bytes: record.raw.len(),
            subject: record.subject,
        });
    }
    Ok(found)
}

/// The patients of the applied events at `seqs` (for the access log of an
/// export, before it is streamed).
pub fn patients_of(
    store: &Store,
    seqs: &[u64],
) -> Result<std::collections::BTreeSet<PatientId>, QueryError> {
    let mut patients = std::collections::BTreeSet::new();
    let mut records = store.record_reader();
    for seq in seqs {
        if let Some(patient) = stored(&mut records, *seq)?.and_then(|s| s.envelope.patient_id) {
            patients.insert(patient);
        }
    }
    Ok(patients)
}

/// The sequence of an event id.
pub fn seq_of(store: &Store, event_id: &Uuid) -> Result<Option<u64>, QueryError> {
    Ok(store.seq_of(event_id)?)
}

/// One page of an answer: the sequences after `cursor` (a sequence), at
/// most `limit`, and the cursor of the next page.
pub fn page(seqs: &[u64], cursor: Option<u64>, limit: usize) -> (&[u64], Option<u64>) {
    let start = cursor.map_or(0, |c| seqs.partition_point(|s| *s <= c));
    let end = (start + limit.max(1)).min(seqs.len());
    let next = (end < seqs.len()).then(|| seqs[end - 1]);
    (&seqs[start..end], next)
}

/// Renders sequences as event views (skipping quarantined ones).
pub fn views(
    store: &Store,
    seqs: &[u64],
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<EventView>, QueryError> {
    let mut out = Vec::with_capacity(seqs.len());
    let mut records = store.record_reader();
    for seq in seqs {
        if let Some(stored) = stored(&mut records, *seq)? {
            out.push(view_of(store, stored, as_of)?);
        }
    }
    Ok(out)
}

/// One injection in a trace.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InjectionRow {
    /// Stream sequence.
    pub seq: u64,
    /// Event id.
    pub event_id: Uuid,
    /// Clinic.
    pub clinic_id: String,
    /// Patient.
    pub patient_id: String,
    /// Site key.
    pub site_key: String,
    /// Side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub laterality: Option<String>,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Who injected.
    pub practitioner_id: String,
    /// Lots of every component.
    pub lots: Vec<String>,
    /// The solution, e.g. `dextrose 15% + lidocaine 1%`.
    pub solution: String,
    /// Volume injected, mL.
    pub volume_ml: f64,
    /// Guidance: palpation, ultrasound, fluoroscopy.
    pub guidance: String,
}

/// An adverse event in a trace.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AdverseEventRow {
    /// Stream sequence of the report.
    pub seq: u64,
    /// Its state (kind, grade, linked injection, updates, outcome).
    #[serde(flatten)]
    pub state: AdverseEventState,
}

fn injection_row(seq: u64, e: &Envelope) -> Option<InjectionRow> {
    let Payload::InjectionGiven(p) = &e.payload else {
        return None;
    };
    Some(InjectionRow::of(
        &e.clinic_id,
        p.practitioner_id.as_str(),
        DayInjection::of(e, seq, p),
    ))
}

impl InjectionRow {
    /// The row of an injection by `practitioner` in `clinic`: built from
    /// its record or read from the practitioner's day index alike.
    fn of(clinic: &ClinicId, practitioner: &str, row: DayInjection) -> Self {
        InjectionRow {
            seq: row.seq,
            event_id: row.event_id,
            clinic_id: clinic.to_string(),
            occurred_at: row.occurred_at(),
            patient_id: row.patient_id,
            site_key: row.site_key,
            laterality: row.laterality.as_ref().map(prolo_schemas::names::name),
            practitioner_id: practitioner.to_owned(),
            lots: row.lots,
            solution: row.solution,
            volume_ml: row.volume_ml,
            guidance: prolo_schemas::names::name(&row.guidance),
        }
    }
}

fn adverse_row(
    store: &Store,
    seq: u64,
    e: &Envelope,
) -> Result<Option<AdverseEventRow>, QueryError> {
    if e.event_type() != EventType::AdverseEventReported {
        return Ok(None);
    }
    let state: Option<AdverseEventState> = store.adverse_event(&e.event_id)?;
    Ok(state.map(|state| AdverseEventRow { seq, state }))
}

/// Everyone exposed to a lot: its injections (patient, site, date,
/// practitioner), the adverse events after them, and its recall.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LotTrace {
    /// The lot.
    pub lot: String,
    /// Injections with the lot, in stream order.
    pub injections: Vec<InjectionRow>,
    /// Adverse events linked to those injections.
    pub adverse_events: Vec<AdverseEventRow>,
    /// `lot.recalled` events of the lot.
    pub recalls: Vec<u64>,
}

/// The trace of `lot` within `clinic`.
pub fn lot_trace(
    store: &Store,
    clinic: &ClinicId,
    lot: &LotNumber,
) -> Result<LotTrace, QueryError> {
    let mut trace = LotTrace {
        lot: lot.to_string(),
        injections: Vec::new(),
        adverse_events: Vec::new(),
        recalls: Vec::new(),
    };
    let mut records = store.record_reader();
    for seq in index(store, Index::Lot(lot.as_str()))? {
        let Some(e) = envelope(&mut records, seq)? else {
            continue;
        };
        if e.clinic_id != *clinic {
            continue;
        }
        match e.event_type() {
            EventType::InjectionGiven => trace.injections.extend(injection_row(seq, &e)),
            EventType::AdverseEventReported => {
                trace.adverse_events.extend(adverse_row(store, seq, &e)?)
            }
            EventType::LotRecalled => trace.recalls.push(seq),
            _ => {}
        }
    }
    Ok(trace)
}

/// Everything around an adverse event, for a safety reviewer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Investigation {
    /// The report, as recorded.
    pub report: EventView,
    /// Its state: current grade, status, outcome, linked injection details.
    pub state: AdverseEventState,
    /// Its follow-ups, as recorded.
    pub updates: Vec<EventView>,
    /// The injection it follows, if in the trail.
    pub injection: Option<EventView>,
    /// The patient's consents (given or withdrawn) recorded before the event.
    pub consents_before: Vec<EventView>,
    /// The patient's examinations, imaging and candidacy decisions before it.
    pub examinations_before: Vec<EventView>,
    /// All of the patient's events within `window_days` of the onset.
    pub window: Vec<EventView>,
    /// Other injections from the same lots.
    pub same_lot_injections: Vec<InjectionRow>,
    /// Other adverse events after injections from the same lots.
    pub same_lot_adverse_events: Vec<AdverseEventRow>,
    /// Other injections by the same practitioner within `window_days` of the onset.
    pub same_practitioner_injections: Vec<InjectionRow>,
}

impl Investigation {
    /// How many records the answer holds (for the access log).
    pub fn records(&self) -> u64 {
        (1 + self.updates.len()
            + usize::from(self.injection.is_some())
            + self.consents_before.len()
            + self.examinations_before.len()
            + self.window.len()
            + self.same_lot_injections.len()
            + self.same_lot_adverse_events.len()
            + self.same_practitioner_injections.len()) as u64
    }
}

/// The investigation of adverse event `id` in `clinic`.
pub fn investigation(
    store: &Store,
    clinic: &ClinicId,
    id: &Uuid,
    window_days: i64,
) -> Result<Investigation, QueryError> {
    let not_found = || QueryError::NotFound(format!("adverse event {id}"));
    let state: AdverseEventState = store.adverse_event(id)?.ok_or_else(not_found)?;
    if state.clinic_id != clinic.as_str() {
        return Err(not_found());
    }
    let report = event_view(store, state.origin.seq, None)?.ok_or_else(not_found)?;
    let updates = views(
        store,
        &state
            .updates
            .iter()
            .map(|u| u.origin.seq)
            .collect::<Vec<_>>(),
        None,
    )?;
    let injection = match state.injection_seq {
        Some(seq) => event_view(store, seq, None)?,
        None => None,
    };
    let patient: PatientId = state
        .patient_id
        .parse()
        .map_err(|e| QueryError::BadRequest(format!("{e}")))?;
    let history = patient_history(store, clinic, &patient, &HistoryFilter::default())?;
    let onset = DateTime::<Utc>::from_timestamp_millis(state.onset_at_ms).unwrap_or_default();
    let window = Duration::days(window_days);
    let mut consents_before = Vec::new();
    let mut examinations_before = Vec::new();
    let mut around = Vec::new();
    // One pass, each event read and decoded once, each block of records
    // decompressed once.
    let mut records = store.record_reader();
    for seq in history {
        let Some(event) = stored(&mut records, seq)? else {
            continue;
        };
        let bucket = match event.envelope.event_type() {
            _ if seq >= state.origin.seq => None,
            EventType::ConsentGiven | EventType::ConsentWithdrawn => Some(&mut consents_before),
            EventType::ExaminationDone
            | EventType::ImagingRecorded
            | EventType::CandidacyAssessed => Some(&mut examinations_before),
            _ => None,
        };
        let near_onset = (event.envelope.occurred_at - onset).abs() <= window;
        if bucket.is_none() && !near_onset {
            continue;
        }
        let view = view_of(store, event, None)?;
        match bucket {
            Some(bucket) if near_onset => {
                bucket.push(view.clone());
                around.push(view);
            }
            Some(bucket) => bucket.push(view),
            None => around.push(view),
        }
    }
    let mut same_lot_injections = Vec::new();
    let mut same_lot_adverse_events = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for lot in &state.injection_lots {
        for seq in index(store, Index::Lot(lot))? {
            if !seen.insert(seq) || Some(seq) == state.injection_seq || seq == state.origin.seq {
                continue;
            }
            let Some(e) = envelope(&mut records, seq)? else {
                continue;
            };
            if e.clinic_id != *clinic {
                continue;
            }
            same_lot_injections.extend(injection_row(seq, &e));
            same_lot_adverse_events.extend(adverse_row(store, seq, &e)?);
        }
    }
    let mut same_practitioner_injections = Vec::new();
    if let Some(practitioner) = &state.injection_practitioner {
        let span = window.num_milliseconds();
        let rows = store.practitioner_injections_by_day(
            clinic.as_str(),
            practitioner,
            state.onset_at_ms - span,
            state.onset_at_ms + span,
        )?;
        // Rows kept by the fold: no record is read for them.
        for row in rows {
            if Some(row.seq) != state.injection_seq && (row.occurred_at() - onset).abs() <= window {
                same_practitioner_injections.push(InjectionRow::of(clinic, practitioner, row));
            }
        }
    }
    Ok(Investigation {
        report,
        state,
        updates,
        injection,
        consents_before,
        examinations_before,
        window: around,
        same_lot_injections,
        same_lot_adverse_events,
        same_practitioner_injections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let seqs: Vec<u64> = (1..=25).map(|i| i * 3).collect();
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let (items, next) = page(&seqs, cursor, 10);
            seen.extend_from_slice(items);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, seqs);
        assert_eq!(page(&seqs, Some(75), 10), (&[][..], None));
    }
}

/// Filters of the findings query.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    /// Only this rule.
    pub rule: Option<prolo_projector::rules::findings::Rule>,
    /// Only `open` or `resolved`.
    pub status: Option<String>,
    /// Only about this patient.
    pub patient: Option<PatientId>,
    /// Only about this practitioner.
    pub practitioner: Option<PractitionerId>,
    /// Clinical time of the event it is about, from (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// … to (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// The findings of a clinic matching `filter`, in the order they were raised.
pub fn findings(
    store: &Store,
    clinic: &ClinicId,
    filter: &FindingFilter,
) -> Result<Vec<prolo_projector::rules::findings::Finding>, QueryError> {
    findings_range(store, clinic, filter, 0, usize::MAX)
}

/// The findings matching `filter` after the first `skip`, at most `take`:
/// only what the page needs is read.
pub fn findings_range(
    store: &Store,
    clinic: &ClinicId,
    filter: &FindingFilter,
    skip: usize,
    take: usize,
) -> Result<Vec<prolo_projector::rules::findings::Finding>, QueryError> {
    use prolo_projector::rules::findings::Rule;
    let c = clinic.as_str();
    // The narrowest index the filter allows.
    let mut seqs = match (&filter.patient, &filter.practitioner, filter.rule) {
        (Some(p), _, _) => index(
            store,
            Index::FindingsOfPatient {
                clinic: c,
                patient: p.as_str(),
            },
        )?,
        (None, Some(p), _) => index(
            store,
            Index::FindingsOfPractitioner {
                clinic: c,
                practitioner: p.as_str(),
            },
        )?,
        (None, None, Some(rule)) => index(store, Index::FindingsOfRule { clinic: c, rule })?,
        (None, None, None) => {
            let mut all = Vec::new();
            for rule in Rule::ALL {
                all.extend(index(
                    store,
                    Index::FindingsOfRule {
                        clinic: c,
                        rule: *rule,
                    },
                )?);
            }
            all.sort_unstable();
            all
        }
    };
    seqs.dedup();
    let (mut out, mut skipped) = (Vec::new(), 0);
    for seq in seqs {
        if out.len() >= take {
            break;
        }
        for id in store.findings_raised_at(seq)? {
            let Some(finding) = store.finding(&id)? else {
                continue;
            };
            let about =
                DateTime::<Utc>::from_timestamp_millis(finding.about_ms).unwrap_or_default();
            let keep = finding.clinic_id == clinic.as_str()
                && filter.rule.is_none_or(|r| r == finding.rule)
                && filter
                    .status
                    .as_deref()
                    .is_none_or(|s| s == finding.status())
                && filter
                    .patient
                    .as_ref()
                    .is_none_or(|p| finding.patient_id.as_deref() == Some(p.as_str()))
                && filter
                    .practitioner
                    .as_ref()
                    .is_none_or(|p| finding.practitioner_id.as_deref() == Some(p.as_str()))
                && filter.from.is_none_or(|from| about >= from)
                && filter.to.is_none_or(|to| about < to);
            if keep && skipped < skip {
                skipped += 1;
            } else if keep && out.len() < take {
                out.push(finding);
            }
        }
    }
    Ok(out)
}

/// One group's adverse-event rate.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GroupRate {
    /// `lot`, `solution`, `site`, `practitioner`, `guidance` (or `clinic` for the baseline).
    pub dimension: Dimension,
    /// The group.
    pub group: String,
    /// Injections.
    pub injections: u64,
    /// Adverse events after them.
    pub adverse_events: u64,
    /// Per 1,000 injections.
    pub rate_per_1000: f64,
    /// 95% Wilson interval, per 1,000.
    pub ci95_per_1000: (f64, f64),
    /// A signal is active for it (for some kind).
    pub signalled: bool,
    /// Injections in the rolling window.
    pub window_injections: u64,
    /// Adverse events after them.
    pub window_adverse_events: u64,
    /// Each adverse-event kind seen in the clinic: this group against the
    /// rest of the clinic (the baseline: the whole clinic's counts),
    /// all-time and over the rolling window.
    pub by_kind: Vec<KindRate>,
}

/// One adverse-event kind in one group, against the rest of the clinic.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KindRate {
    /// The kind, e.g. `infection`.
    pub kind: String,
    /// Its events after the group's injections.
    pub events: u64,
    /// The 2×2 table against the rest of the clinic.
    pub table: prolo_projector::rules::disproportionality::Table,
    /// PRR with its 95% interval and χ², IC and IC025.
    pub measures: prolo_projector::rules::disproportionality::Measures,
    /// Its events over the rolling window.
    pub window_events: u64,
    /// The 2×2 table a signal is judged on: the group over the rolling
    /// window against the rest of the clinic over all time.
    pub window_table: prolo_projector::rules::disproportionality::Table,
    /// Its measures.
    pub window_measures: prolo_projector::rules::disproportionality::Measures,
    /// A signal is active for this kind in this group.
    pub signalled: bool,
}

/// The rolling window the signals are judged over.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SignalWindow {
    /// Its length in days.
    pub days: i64,
    /// Its first day (injections given on or after it), by the stream's clock.
    pub from: Option<chrono::NaiveDate>,
    /// Its last day: the day of the last clinical event folded.
    pub to: Option<chrono::NaiveDate>,
}

/// Adverse-event rates of a clinic: its baseline, every group, the signals raised.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SignalReport {
    /// The rolling window.
    pub window: SignalWindow,
    /// The raising rule.
    pub criteria: prolo_projector::rules::disproportionality::Criteria,
    /// The whole clinic.
    pub baseline: Option<GroupRate>,
    /// Every group, by dimension then group.
    pub groups: Vec<GroupRate>,
    /// Every signal raised, active or cleared, with its transitions.
    pub signals: Vec<prolo_projector::rules::signals::Signal>,
}

/// The rates and signals of `clinic`.
pub fn signals(
    store: &Store,
    clinic: &ClinicId,
    criteria: &prolo_projector::rules::disproportionality::Criteria,
) -> Result<SignalReport, QueryError> {
    let counted = store.group_counts(clinic.as_str())?;
    let whole = counted
        .iter()
        .find(|c| c.dimension == Dimension::Clinic)
        .map(|c| c.count.clone())
        .unwrap_or_default();
    let today = store.signal_day()?;
    // Before any clinical event there is no window: nothing counts in it.
    let from = today.map_or(i64::MAX, |day| criteria.window_from(day));
    let date = |day: i64| chrono::DateTime::from_timestamp(day * 86_400, 0).map(|t| t.date_naive());
    let mut baseline = None;
    let mut groups = Vec::new();
    for counted in counted {
        let window = counted.count.window(from);
        let by_kind = whole
            .by_kind
            .keys()
            .map(|kind| {
                let table = counted.count.against_rest(&whole, kind);
                let window_table = counted.count.in_window_against_rest(&whole, kind, from);
                KindRate {
                    kind: kind.clone(),
                    events: counted.count.events(kind),
                    table,
                    measures: table.measures(),
                    window_events: window.events(kind),
                    window_table,
                    window_measures: window_table.measures(),
                    signalled: counted.count.signalled.contains(kind),
                }
            })
            .collect();
        let row = GroupRate {
            dimension: counted.dimension,
            group: counted.group,
            injections: counted.count.injections,
            adverse_events: counted.count.adverse_events,
            rate_per_1000: counted.count.rate(),
            ci95_per_1000: counted.count.interval(),
            signalled: !counted.count.signalled.is_empty(),
            window_injections: window.injections,
            window_adverse_events: window.adverse_events,
            by_kind,
        };
        if row.dimension == Dimension::Clinic {
            baseline = Some(row);
        } else {
            groups.push(row);
        }
    }
    let raised = store.signals_raised(clinic.as_str())?;
    Ok(SignalReport {
        window: SignalWindow {
            days: criteria.window_days,
            from: today.and_then(|day| date(criteria.window_from(day))),
            to: today.and_then(date),
        },
        criteria: *criteria,
        baseline,
        groups,
        signals: raised,
    })
}
