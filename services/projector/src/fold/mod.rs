//! The fold: one stream message at a time into the pending writes of a
//! batch. No I/O beyond reading the store, no clock: folding the same
//! stream twice gives the same read models, byte for byte.

mod rules;

use std::collections::BTreeMap;

use prolo_bus::edge::SourcedFrom;
use prolo_schemas::{Envelope, Payload, RecordCorrected, RecordEnteredInError};
use uuid::Uuid;

use crate::{
    integrity::chain,
    model::*,
    names::{name, solution_label},
    rules::findings::{Finding, FindingSettings, GroupCount},
    store::{Pending, Store, StoreError, event_ids::IdIndex, keys},
};

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Folded into the read models.
    Applied,
    /// Kept in quarantine with this reason.
    Quarantined(String),
}

/// Folds messages into one batch. Create one per batch; commit its
/// [`Folder::into_pending`] with the last sequence.
///
/// Summaries, adverse-event states and posting lists touched by the batch
/// are kept decoded here and written once at the end, so that a patient
/// with ten events in a batch costs one write, not ten.
pub struct Folder<'a> {
    store: &'a Store,
    pending: Pending,
    chain_head: [u8; 32],
    quarantined: u64,
    patients: BTreeMap<Vec<u8>, PatientSummary>,
    practitioners: BTreeMap<Vec<u8>, PractitionerSummary>,
    adverse: BTreeMap<Vec<u8>, AdverseEventState>,
    postings: BTreeMap<Vec<u8>, Vec<u64>>,
    /// A practitioner's injections by day, as rows.
    day_injections: BTreeMap<Vec<u8>, Vec<DayInjection>>,
    marks: BTreeMap<Vec<u8>, Marks>,
    signatures: BTreeMap<Vec<u8>, Vec<u64>>,
    settings: &'a FindingSettings,
    findings: BTreeMap<Vec<u8>, Finding>,
    findings_at: BTreeMap<Vec<u8>, Vec<Uuid>>,
    groups: BTreeMap<Vec<u8>, GroupCount>,
    /// Signals raised or cleared in this batch (and loaded to change).
    signals_raised: BTreeMap<Vec<u8>, crate::rules::findings::Signal>,
    lot_recalls: BTreeMap<Vec<u8>, Vec<(i64, Uuid)>>,
    /// The hash chains of the clinic edges this batch sourced from.
    edge_chains: BTreeMap<Vec<u8>, crate::model::EdgeChain>,
    /// Findings raised and resolved per clinic and rule.
    finding_counts: BTreeMap<Vec<u8>, crate::rules::findings::FindingCount>,
    /// When each clinic began recording live (stream time, ms).
    clinic_live: BTreeMap<Vec<u8>, i64>,
    /// The day of the stream's clock the signals' window was last moved to.
    signal_day: Option<i64>,
    /// The earliest follow-up deadline waiting (`Some(None)`: none), once known in this batch.
    awaiting_floor: Option<Option<i64>>,
    /// Whether the old single list of waiting adverse events was looked for.
    awaiting_migrated: bool,
    notifications: Vec<Notification>,
    /// The event ids this batch adds, and the committed blocks it read.
    ids: IdIndex,
    /// The event [`Folder::event_by_id`] found last.
    last_found: std::cell::RefCell<Option<(u64, Envelope)>>,
}

/// Decodes and validates a message against the contract and its subject;
/// the reason when it cannot be applied. Pure: no store, no order.
pub fn decode(subject: &str, raw: &[u8]) -> Result<Envelope, String> {
    let envelope =
        Envelope::from_json(raw).map_err(|e| format!("does not satisfy the contract: {e}"))?;
    match envelope.subject() {
        Ok(expected) if expected.to_string() == subject => Ok(envelope),
        Ok(expected) => Err(format!(
            "published on {subject}, but the event belongs on {expected}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The fewest messages worth a thread of their own.
const DECODE_PER_THREAD: usize = 64;

/// [`decode`] of each `(subject, payload)`, in order, split over the
/// machine's cores: decoding and validating is a sixth of the fold's work
/// and needs nothing of the store, so it need not wait for the one thread
/// that folds and commits.
pub fn decode_all(messages: &[(&str, &[u8])]) -> Vec<Result<Envelope, String>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let parts = cores.min(messages.len() / DECODE_PER_THREAD).max(1);
    if parts == 1 {
        return messages.iter().map(|(s, raw)| decode(s, raw)).collect();
    }
    let chunk = messages.len().div_ceil(parts);
    std::thread::scope(|scope| {
        let mut chunks = messages.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|c| {
                scope.spawn(move || c.iter().map(|(s, raw)| decode(s, raw)).collect::<Vec<_>>())
            })
            .collect();
        let mut decoded: Vec<_> = first.iter().map(|(s, raw)| decode(s, raw)).collect();
        for other in others {
            decoded.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        decoded
    })
}

/// A message for other systems about a finding or signal, published on core
/// NATS after the batch that raised it is committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Subject, e.g. `prolo.finding.riverside.no_active_consent.raised`.
    pub subject: String,
    /// JSON body.
    pub payload: Vec<u8>,
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

fn origin(e: &Envelope, seq: u64) -> Origin {
    Origin {
        event_id: e.event_id,
        seq,
        occurred_at_ms: ms(e.occurred_at),
        recorded_at_ms: ms(e.recorded_at),
        standing: Standing::AsRecorded,
    }
}

/// Takes the cached value for `key`, loading it from the store (or making
/// a default) the first time in the batch.
fn cached<'c, T: serde::de::DeserializeOwned>(
    cache: &'c mut BTreeMap<Vec<u8>, T>,
    store: &Store,
    key: Vec<u8>,
    default: impl FnOnce() -> Option<T>,
) -> Result<Option<&'c mut T>, StoreError> {
    use std::collections::btree_map::Entry;
    match cache.entry(key) {
        Entry::Occupied(entry) => Ok(Some(entry.into_mut())),
        Entry::Vacant(entry) => {
            let loaded = match store.get::<T>(entry.key())? {
                Some(value) => Some(value),
                None => default(),
            };
            Ok(loaded.map(|value| entry.insert(value)))
        }
    }
}

impl<'a> Folder<'a> {
    /// Starts a batch after the store's applied sequence.
    pub fn new(store: &'a Store, settings: &'a FindingSettings) -> Result<Self, StoreError> {
        Ok(Folder {
            store,
            pending: Pending::default(),
            chain_head: store.chain_head()?,
            quarantined: store.quarantined()?,
            patients: BTreeMap::new(),
            practitioners: BTreeMap::new(),
            adverse: BTreeMap::new(),
            postings: BTreeMap::new(),
            day_injections: BTreeMap::new(),
            marks: BTreeMap::new(),
            signatures: BTreeMap::new(),
            settings,
            findings: BTreeMap::new(),
            findings_at: BTreeMap::new(),
            groups: BTreeMap::new(),
            signals_raised: BTreeMap::new(),
            lot_recalls: BTreeMap::new(),
            signal_day: store.signal_day()?,
            clinic_live: BTreeMap::new(),
            finding_counts: BTreeMap::new(),
            edge_chains: BTreeMap::new(),
            awaiting_floor: None,
            awaiting_migrated: false,
            notifications: Vec::new(),
            ids: IdIndex::default(),
            last_found: std::cell::RefCell::new(None),
        })
    }

    /// The writes to commit, and the notifications to send once committed.
    pub fn into_pending(mut self) -> Result<(Pending, Vec<Notification>), StoreError> {
        self.pending.put_raw(
            keys::QUARANTINE_COUNT.to_vec(),
            self.quarantined.to_be_bytes().to_vec(),
        );
        if let Some(day) = self.signal_day {
            self.pending
                .put_raw(keys::SIGNAL_DAY.to_vec(), day.to_be_bytes().to_vec());
        }
        for (key, block) in std::mem::take(&mut self.ids).into_writes(self.store.model())? {
            self.pending.put_raw(key, block);
        }
        self.pending.put_all(std::mem::take(&mut self.patients))?;
        self.pending
            .put_all(std::mem::take(&mut self.practitioners))?;
        self.pending.put_all(std::mem::take(&mut self.adverse))?;
        self.pending.put_all(std::mem::take(&mut self.postings))?;
        self.pending
            .put_all(std::mem::take(&mut self.day_injections))?;
        self.pending.put_all(std::mem::take(&mut self.marks))?;
        self.pending.put_all(std::mem::take(&mut self.signatures))?;
        self.pending.put_all(std::mem::take(&mut self.findings))?;
        self.pending
            .put_all(std::mem::take(&mut self.findings_at))?;
        self.pending.put_all(std::mem::take(&mut self.groups))?;
        self.pending
            .put_all(std::mem::take(&mut self.signals_raised))?;
        self.pending
            .put_all(std::mem::take(&mut self.lot_recalls))?;
        self.pending
            .put_all(std::mem::take(&mut self.clinic_live))?;
        self.pending
            .put_all(std::mem::take(&mut self.finding_counts))?;
        self.pending
            .put_all(std::mem::take(&mut self.edge_chains))?;
        Ok((self.pending, self.notifications))
    }

    /// Folds the message at `seq`, stored by JetStream at `stored_at`.
    /// Every message extends the hash chain; one that cannot be applied is
    /// quarantined, never dropped. The fold's recorded time is `stored_at`,
    /// not the `recorded_at` a publisher wrote: a differing one is kept as
    /// stored and raises `recorded_at_mismatch`.
    ///
    /// A message `sourced` from a clinic's edge was recorded when the edge
    /// stored it, possibly long before the hub's `stored_at` (the link was
    /// down). Sourcing does not carry the edge stream's timestamp, so its
    /// recorded time is the `recorded_at` the edge's recording service
    /// stamped as it stored it there (the edge's own fold holds it to the
    /// edge stream's time); one later than its arrival at the hub cannot be
    /// and raises `recorded_at_mismatch`. The arrival is kept beside it, the
    /// edge's hash chain is recomputed, and an event of another clinic than
    /// the edge's is quarantined.
    ///
    /// `decoded` is [`decode`] of the message, done before the fold (on
    /// every core, see [`decode_all`]).
    pub fn apply(
        &mut self,
        seq: u64,
        subject: &str,
        raw: &[u8],
        stored_at: chrono::DateTime<chrono::Utc>,
        sourced: Option<&SourcedFrom>,
        decoded: Result<Envelope, String>,
    ) -> Result<Outcome, StoreError> {
        self.chain_head = chain::link(&self.chain_head, seq, raw);
        let checked = self.check(decoded, sourced)?;
        let quarantine = checked.as_ref().err().cloned();
        let recorded_at = match (sourced, &checked) {
            (Some(_), Ok(envelope))
                if (envelope.recorded_at - stored_at).num_milliseconds()
                    <= self.settings.recorded_at_tolerance_ms =>
            {
                envelope.recorded_at
            }
            _ => stored_at,
        };
        if let Some(from) = sourced {
            self.sourced(seq, raw, stored_at, from)?;
        }
        self.pending.put_record(
            self.store,
            &EventRecord {
                seq,
                subject: subject.to_owned(),
                raw: raw.to_vec(),
                chain: self.chain_head,
                stored_at_ms: ms(recorded_at),
                quarantine: quarantine.clone(),
            },
        )?;
        match checked {
            Ok(mut envelope) => {
                let stamped = envelope.recorded_at;
                envelope.recorded_at = recorded_at;
                self.fold(seq, &envelope)?;
                self.recorded_at_rule(seq, &envelope, stamped)?;
                Ok(Outcome::Applied)
            }
            Err(reason) => {
                tracing::warn!(seq, subject, %reason, "message quarantined");
                self.quarantined += 1;
                self.index(keys::QUARANTINED, &[], seq)?;
                Ok(Outcome::Quarantined(reason))
            }
        }
    }

    /// Keeps where a sourced message came from and extends its edge's chain.
    fn sourced(
        &mut self,
        seq: u64,
        raw: &[u8],
        arrived_at: chrono::DateTime<chrono::Utc>,
        from: &SourcedFrom,
    ) -> Result<(), StoreError> {
        self.pending.put(
            keys::by_seq(keys::SOURCED, seq),
            &crate::model::SourcedRecord {
                source: from.source.clone(),
                edge_seq: from.edge_seq,
                arrived_at_ms: ms(arrived_at),
            },
        )?;
        let mut key = keys::EDGE_CHAIN.to_vec();
        key.extend_from_slice(from.source.as_bytes());
        let clinic = from.clinic().unwrap_or_default().to_owned();
        if let Some(edge) = cached(&mut self.edge_chains, self.store, key, || {
            Some(crate::model::EdgeChain {
                clinic,
                through: 0,
                head: chain::GENESIS,
                gaps: 0,
            })
        })? {
            if from.edge_seq != edge.through + 1 {
                edge.gaps += 1;
            }
            edge.head = chain::link(&edge.head, from.edge_seq, raw);
            edge.through = from.edge_seq;
        }
        Ok(())
    }

    /// The checks that need the trail (its edge, an id stored before) of
    /// a decoded message; the reason when it cannot be applied.
    fn check(
        &self,
        decoded: Result<Envelope, String>,
        sourced: Option<&SourcedFrom>,
    ) -> Result<Result<Envelope, String>, StoreError> {
        let envelope = match decoded {
            Ok(envelope) => envelope,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Some(edge_clinic) = sourced.and_then(SourcedFrom::clinic)
            && edge_clinic != envelope.clinic_id.as_str()
        {
            return Ok(Err(format!(
                "sourced from clinic {edge_clinic}'s edge, but it is an event of clinic {}: an edge records only its own clinic",
                envelope.clinic_id
            )));
        }
        if let Some(at) = self.ids.seq_of(self.store.model(), &envelope.event_id)? {
            return Ok(Err(format!(
                "event id {} is already stored at sequence {at} (a retry outside the duplicate window)",
                envelope.event_id
            )));
        }
        Ok(Ok(envelope))
    }

    /// The sequences of an index as they will be after this batch: the
    /// committed buckets and the ones this batch has touched.
    pub(super) fn posted(&self, prefix: &[u8], parts: &[&[u8]]) -> Result<Vec<u64>, StoreError> {
        let prefix = keys::index_prefix(prefix, parts);
        let mut seqs: std::collections::BTreeSet<u64> =
            self.store.seqs(&prefix).collect::<Result<_, _>>()?;
        for (key, bucket) in self.postings.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            seqs.extend(bucket.iter().copied());
        }
        Ok(seqs.into_iter().collect())
    }

    /// Adds `seq` to an index's posting list.
    fn index(&mut self, prefix: &[u8], parts: &[&[u8]], seq: u64) -> Result<(), StoreError> {
        let key = keys::posting(prefix, parts, seq);
        if let Some(list) = cached(&mut self.postings, self.store, key, || Some(Vec::new()))?
            && list.last() != Some(&seq)
        {
            list.push(seq);
        }
        Ok(())
    }

    fn fold(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        match self.reference_outside(e)? {
            None => {
                self.facts(seq, e)?;
                self.rules(seq, e)
            }
            // Kept in the trail and shown in the filer's history; changes
            // nothing of its target.
            Some(outside) => {
                self.index_event(seq, e)?;
                self.patient(e, seq, |_| {})?;
                self.reference_rule(seq, e, outside)
            }
        }
    }

    /// The read models proper: indexes, summaries, states.
    fn facts(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        self.index_event(seq, e)?;
        let clinic = e.clinic_id.as_str().as_bytes();
        self.apply_facts(seq, e, clinic)
    }

    /// The indexes every applied event is in: by id, type, clinical day, patient.
    fn index_event(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        self.ids.add(&e.event_id, seq);
        let event_type = e.event_type();
        self.index(keys::BY_TYPE, &[event_type.as_str().as_bytes()], seq)?;
        self.index(
            keys::BY_OCCURRED_DAY,
            &[&keys::time_bytes(keys::day(ms(e.occurred_at)))],
            seq,
        )?;
        let clinic = e.clinic_id.as_str().as_bytes();
        if let Some(patient) = &e.patient_id {
            self.index(
                keys::BY_PATIENT,
                &[clinic, patient.as_str().as_bytes()],
                seq,
            )?;
        }
        Ok(())
    }

    fn apply_facts(&mut self, seq: u64, e: &Envelope, clinic: &[u8]) -> Result<(), StoreError> {
        match &e.payload {
            Payload::PractitionerCredentialed(p) => {
                self.index(
                    keys::BY_PRACTITIONER,
                    &[clinic, p.practitioner_id.as_str().as_bytes()],
                    seq,
                )?;
                let entry = credential_entry(e, seq, p);
                self.practitioner(e.clinic_id.as_str(), p.practitioner_id.as_str(), |s| {
                    s.credentials.push(entry)
                })?;
            }
            Payload::InjectionGiven(p) => {
                let practitioner = p.practitioner_id.as_str().as_bytes();
                self.index(keys::BY_PRACTITIONER, &[clinic, practitioner], seq)?;
                let day = keys::time_bytes(keys::day(ms(e.occurred_at)));
                let key = keys::posting(keys::PRACTITIONER_DAY, &[clinic, practitioner, &day], seq);
                if let Some(rows) = cached(&mut self.day_injections, self.store, key, || {
                    Some(Vec::new())
                })? && rows.last().is_none_or(|r| r.seq != seq)
                {
                    rows.push(DayInjection::of(e, seq, p));
                }
                for component in &p.solution.components {
                    self.index(keys::BY_LOT, &[component.lot.as_str().as_bytes()], seq)?;
                    self.index(
                        keys::INJECTIONS_BY_LOT,
                        &[component.lot.as_str().as_bytes()],
                        seq,
                    )?;
                }
                self.practitioner(e.clinic_id.as_str(), p.practitioner_id.as_str(), |s| {
                    s.injection_count += 1
                })?;
                self.patient(e, seq, |s| s.injections.push(injection_entry(e, seq, p)))?;
            }
            Payload::AdverseEventReported(p) => {
                let state = self.adverse_event_state(e, seq, p)?;
                if let Some(practitioner) = &state.injection_practitioner {
                    self.index(
                        keys::BY_PRACTITIONER,
                        &[clinic, practitioner.as_bytes()],
                        seq,
                    )?;
                    self.practitioner(e.clinic_id.as_str(), practitioner, |s| {
                        s.adverse_event_count += 1
                    })?;
                }
                for lot in &state.injection_lots {
                    self.index(keys::BY_LOT, &[lot.as_bytes()], seq)?;
                }
                self.adverse
                    .insert(keys::by_uuid(keys::ADVERSE_EVENT, &e.event_id), state);
                self.patient(e, seq, |s| s.adverse_events.push(e.event_id))?;
            }
            Payload::AdverseEventUpdated(p) => {
                let mut recount = None;
                let key = keys::by_uuid(keys::ADVERSE_EVENT, &p.adverse_event_id);
                if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
                    if let Some(grade) = p.grade {
                        state.grade = grade;
                    }
                    // An escalation: the update event keeps the step.
                    if let Some(kind) = p.kind {
                        state.kind = kind;
                        let counted_as = name(&kind);
                        if let Some(counted) = &state.counted
                            && counted.kind != counted_as
                        {
                            recount = Some((
                                counted.clone(),
                                crate::model::Counted {
                                    kind: counted_as,
                                    ..counted.clone()
                                },
                            ));
                        }
                    }
                    if let Some(serious) = p.serious {
                        state.serious = serious;
                    }
                    state.status = p.status;
                    state.outcome = Some(p.outcome);
                    state.updates.push(AdverseEventUpdate {
                        origin: origin(e, seq),
                        causality: p.causality,
                        grade: p.grade,
                        status: p.status,
                        outcome: p.outcome,
                    });
                }
                // A flare that turned out to be an infection counts as one.
                if let Some((before, after)) = recount {
                    self.recount_adverse_event(e, p.adverse_event_id, &before, Some(after))?;
                }
                self.patient(e, seq, |_| {})?;
            }
            Payload::AccessRecorded(p) => {
                self.index(
                    keys::BY_PRINCIPAL,
                    &[clinic, p.principal_id.as_str().as_bytes()],
                    seq,
                )?;
                // On the access log of the patient asked about and of every
                // patient whose data the answer carried.
                let exposed: std::collections::BTreeSet<&str> = p
                    .patient_id
                    .iter()
                    .chain(&p.exposed_patients)
                    .map(|patient| patient.as_str())
                    .collect();
                for patient in exposed {
                    self.index(keys::READS_OF_PATIENT, &[clinic, patient.as_bytes()], seq)?;
                }
            }
            Payload::LotRecalled(p) => {
                self.index(keys::BY_LOT, &[p.lot.as_str().as_bytes()], seq)?;
            }
            // Found through the by-type index (`/v1/access-refused`) and the
            // principal's.
            Payload::AccessRefused(p) => {
                self.index(
                    keys::BY_PRINCIPAL,
                    &[clinic, p.principal_id.as_str().as_bytes()],
                    seq,
                )?;
            }
            Payload::ConsentGiven(p) => {
                let entry = ConsentEntry {
                    origin: origin(e, seq),
                    valid_from_ms: ms(p.valid_from),
                    valid_until_ms: p.valid_until.map(ms),
                    sites: p.sites.iter().map(crate::rules::site_scope).collect(),
                    solutions: p.solutions.iter().map(name).collect(),
                    series: p.series,
                    risks: p.risks_disclosed.iter().map(name).collect(),
                    withdrawn: None,
                };
                self.patient(e, seq, |s| s.consents.push(entry))?;
            }
            Payload::ConsentWithdrawn(p) => {
                let at = ms(e.occurred_at);
                self.patient(e, seq, |s| {
                    if let Some(consent) = s
                        .consents
                        .iter_mut()
                        .find(|c| c.origin.event_id == p.consent_event_id)
                    {
                        consent.withdrawn = Some((at, seq));
                    }
                })?;
            }
            Payload::RecordCorrected(RecordCorrected { target, reason, .. })
            | Payload::RecordEnteredInError(RecordEnteredInError { target, reason }) => {
                let corrected = matches!(e.payload, Payload::RecordCorrected(_));
                self.correction(e, seq, target.event_id, corrected, reason)?;
            }
            Payload::RecordSigned(p) => {
                let key = keys::by_uuid(keys::SIGNATURES, &p.target.event_id);
                if let Some(signatures) =
                    cached(&mut self.signatures, self.store, key, || Some(Vec::new()))?
                {
                    signatures.push(seq);
                }
                self.patient(e, seq, |_| {})?;
            }
            Payload::TreatmentPlanned(p) => {
                let entry = clinical_entry(e, seq);
                let plan = plan_entry(origin(e, seq), p);
                self.patient(e, seq, |s| {
                    s.clinical.extend(entry);
                    s.plans.push(plan);
                })?;
            }
            Payload::ExaminationDone(_)
            | Payload::ImagingRecorded(_)
            | Payload::CandidacyAssessed(_)
            | Payload::AdjunctTherapyRecommended(_)
            | Payload::ScreeningDone(_)
            | Payload::ProcedureTimeOut(_)
            | Payload::ObservationCompleted(_)
            | Payload::OutcomeReported(_)
            | Payload::SeriesCompleted(_) => {
                let entry = clinical_entry(e, seq);
                self.patient(e, seq, |s| s.clinical.extend(entry))?;
            }
        }
        Ok(())
    }

    /// Loads (or starts) the patient's summary, applies `change`, and counts the event.
    fn patient(
        &mut self,
        e: &Envelope,
        seq: u64,
        change: impl FnOnce(&mut PatientSummary),
    ) -> Result<(), StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(());
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        let fresh = || {
            Some(PatientSummary {
                clinic_id: e.clinic_id.to_string(),
                patient_id: patient.to_string(),
                ..PatientSummary::default()
            })
        };
        if let Some(summary) = cached(&mut self.patients, self.store, key, fresh)? {
            summary.event_count += 1;
            summary.last_seq = seq;
            change(summary);
        }
        Ok(())
    }

    /// Loads (or starts) a practitioner's summary and applies `change`.
    fn practitioner(
        &mut self,
        clinic: &str,
        practitioner: &str,
        change: impl FnOnce(&mut PractitionerSummary),
    ) -> Result<(), StoreError> {
        let key = keys::practitioner(clinic, practitioner);
        let fresh = || {
            Some(PractitionerSummary {
                clinic_id: clinic.to_owned(),
                practitioner_id: practitioner.to_owned(),
                ..PractitionerSummary::default()
            })
        };
        if let Some(summary) = cached(&mut self.practitioners, self.store, key, fresh)? {
            change(summary);
        }
        Ok(())
    }

    /// An applied event, decoded, by id. The last one found is kept: an
    /// adverse event asks for its injection three times (its state, the
    /// link rule, the signal counts), and a stored event never changes.
    pub(super) fn event_by_id(&self, id: &Uuid) -> Result<Option<(u64, Envelope)>, StoreError> {
        if let Some((seq, envelope)) = self
            .last_found
            .borrow()
            .as_ref()
            .filter(|(_, e)| e.event_id == *id)
        {
            return Ok(Some((*seq, envelope.clone())));
        }
        let Some(seq) = self.ids.seq_of(self.store.model(), id)? else {
            return Ok(None);
        };
        let Some(stored) = self.pending.record(self.store, seq)? else {
            return Ok(None);
        };
        let found = Envelope::decode(&stored.raw).ok().map(|e| (seq, e));
        if let Some(found) = &found {
            *self.last_found.borrow_mut() = Some(found.clone());
        }
        Ok(found)
    }

    /// The state of a newly reported adverse event, with what its linked
    /// injection tells (practitioner, lots, site) when it is in the trail.
    fn adverse_event_state(
        &self,
        e: &Envelope,
        seq: u64,
        p: &prolo_schemas::AdverseEventReported,
    ) -> Result<AdverseEventState, StoreError> {
        let linked = p.linked_injection.as_ref().map(|l| l.event_id);
        let injection = match &linked {
            Some(id) => self
                .event_by_id(id)?
                .and_then(|(seq, env)| match env.payload {
                    Payload::InjectionGiven(i) => Some((seq, i)),
                    _ => None,
                }),
            None => None,
        };
        Ok(AdverseEventState {
            origin: origin(e, seq),
            clinic_id: e.clinic_id.to_string(),
            patient_id: e
                .patient_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            kind: p.kind,
            grade: p.grade,
            serious: p.serious,
            onset_at_ms: ms(p.onset_at),
            linked_injection: linked,
            counted: None,
            injection_seq: injection.as_ref().map(|(s, _)| *s),
            injection_practitioner: injection
                .as_ref()
                .map(|(_, i)| i.practitioner_id.to_string()),
            injection_lots: injection
                .as_ref()
                .map(|(_, i)| {
                    i.solution
                        .components
                        .iter()
                        .map(|c| c.lot.to_string())
                        .collect()
                })
                .unwrap_or_default(),
            injection_site: injection
                .as_ref()
                .map(|(_, i)| i.site.site_key.as_str().to_owned()),
            injection_guidance: injection.as_ref().map(|(_, i)| i.guidance),
            injection_solutions: injection
                .as_ref()
                .map(|(_, i)| i.solution.components.iter().map(solution_label).collect())
                .unwrap_or_default(),
            updates: Vec::new(),
            status: prolo_schemas::AdverseEventStatus::Open,
            outcome: p.outcome,
        })
    }

    /// A correction: marks the target, and shows the corrected values (or
    /// the entered-in-error mark) in the current views. The target's own
    /// event stays as it was stored.
    fn correction(
        &mut self,
        e: &Envelope,
        seq: u64,
        target: Uuid,
        corrected: bool,
        reason: &str,
    ) -> Result<(), StoreError> {
        let marks_key = keys::by_uuid(keys::MARKS, &target);
        if let Some(marks) = cached(&mut self.marks, self.store, marks_key, || {
            Some(Marks::default())
        })? {
            marks.marks.push((seq, corrected));
        }
        let entry = CorrectionEntry {
            origin: origin(e, seq),
            target_event_id: target,
            kind: e.event_type().as_str().to_owned(),
            reason: reason.to_owned(),
        };
        self.patient(e, seq, |s| s.corrections.push(entry))?;

        let Some((target_seq, original)) = self.event_by_id(&target)? else {
            return Ok(());
        };
        // The target as it now stands: its envelope with the corrected payload.
        let current = match (&e.payload, corrected) {
            (Payload::RecordCorrected(c), true) => {
                let value =
                    serde_json::Value::Object(c.corrected_payload.clone().into_iter().collect());
                match Payload::from_corrected(original.event_type(), value) {
                    Ok(payload) => Envelope {
                        payload,
                        ..original.clone()
                    },
                    Err(_) => original.clone(),
                }
            }
            _ => original.clone(),
        };
        let standing = if corrected {
            Standing::Corrected { by_seq: seq }
        } else {
            Standing::EnteredInError { by_seq: seq }
        };
        let restate = |o: &Origin| Origin {
            standing,
            ..o.clone()
        };
        match &current.payload {
            Payload::InjectionGiven(p) => {
                let entry = injection_entry(&current, target_seq, p);
                let mut counted_before = None;
                let mut adverse_events = Vec::new();
                self.patient_quiet(&current, |s| {
                    adverse_events = s.adverse_events.clone();
                    if let Some(i) = s
                        .injections
                        .iter_mut()
                        .find(|i| i.origin.event_id == target)
                    {
                        counted_before = Some((
                            i.groups.clone(),
                            crate::rules::findings::day_of(i.origin.occurred_at_ms),
                        ));
                        *i = InjectionEntry {
                            origin: restate(&i.origin),
                            ..entry.clone()
                        };
                    }
                })?;
                // The counts follow the record: a corrected injection counts
                // in its corrected groups, one entered in error in none.
                if let Some((before, day)) = counted_before {
                    let after = corrected.then_some(entry.groups);
                    let counted = (target, day);
                    self.recount_injection(&current, counted, &before, after, &adverse_events)?;
                }
            }
            Payload::ConsentGiven(p) => {
                self.patient_quiet(&current, |s| {
                    if let Some(c) = s.consents.iter_mut().find(|c| c.origin.event_id == target) {
                        c.origin = restate(&c.origin);
                        c.valid_from_ms = ms(p.valid_from);
                        c.valid_until_ms = p.valid_until.map(ms);
                        c.sites = p.sites.iter().map(crate::rules::site_scope).collect();
                        c.solutions = p.solutions.iter().map(name).collect();
                        c.series = p.series;
                        c.risks = p.risks_disclosed.iter().map(name).collect();
                    }
                })?;
            }
            Payload::PractitionerCredentialed(p) => {
                let entry = credential_entry(&current, target_seq, p);
                self.practitioner(
                    current.clinic_id.as_str(),
                    p.practitioner_id.as_str(),
                    |s| {
                        if let Some(c) = s
                            .credentials
                            .iter_mut()
                            .find(|c| c.origin.event_id == target)
                        {
                            *c = CredentialEntry {
                                origin: restate(&c.origin),
                                ..entry
                            };
                        }
                    },
                )?;
            }
            Payload::AdverseEventReported(p) => {
                let key = keys::by_uuid(keys::ADVERSE_EVENT, &target);
                let mut before = None;
                if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
                    state.origin = restate(&state.origin);
                    state.kind = p.kind;
                    state.grade = p.grade;
                    state.serious = p.serious;
                    state.onset_at_ms = ms(p.onset_at);
                    before = state.counted.clone();
                }
                // Counted as corrected (its kind; the groups of the injection
                // it now names), or not at all once entered in error.
                if let Some(before) = before {
                    // As corrected: its kind, the injection it now names
                    // (or the one attributed before, when it names none).
                    let after = if corrected {
                        let injections = self.patient_injections(&current)?;
                        let window = chrono::Duration::days(self.settings.attribution_window_days);
                        crate::rules::attributed_injection(
                            &injections,
                            p.linked_injection.as_ref().map(|l| l.event_id),
                            ms(p.onset_at),
                            window.num_milliseconds(),
                        )
                        .map(|a| crate::model::Counted {
                            kind: name(&p.kind),
                            groups: a.groups,
                            injection: a.injection,
                            inferred: a.inferred,
                            day: a.day,
                        })
                    } else {
                        None
                    };
                    self.recount_adverse_event(&current, target, &before, after)?;
                }
            }
            _ => {
                let entry = clinical_entry(&current, target_seq);
                let plan = match &current.payload {
                    Payload::TreatmentPlanned(p) => Some(p),
                    _ => None,
                };
                self.patient_quiet(&current, |s| {
                    // A plan's rules read it as corrected (or not at all).
                    if let Some(p) = plan
                        && let Some(entry) =
                            s.plans.iter_mut().find(|c| c.origin.event_id == target)
                    {
                        *entry = plan_entry(restate(&entry.origin), p);
                    }
                    if let Some(c) = s.clinical.iter_mut().find(|c| c.origin.event_id == target) {
                        *c = match entry {
                            Some(entry) => ClinicalEntry {
                                origin: restate(&c.origin),
                                ..entry
                            },
                            None => ClinicalEntry {
                                origin: restate(&c.origin),
                                ..c.clone()
                            },
                        };
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Changes a patient's summary without counting an event for it.
    /// The patient's injections as they now stand (corrections applied).
    pub(super) fn patient_injections(
        &mut self,
        e: &Envelope,
    ) -> Result<Vec<InjectionEntry>, StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(Vec::new());
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        Ok(cached(&mut self.patients, self.store, key, || None)?
            .map(|s| s.injections.clone())
            .unwrap_or_default())
    }

    fn patient_quiet(
        &mut self,
        e: &Envelope,
        change: impl FnOnce(&mut PatientSummary),
    ) -> Result<(), StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(());
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        if let Some(summary) = cached(&mut self.patients, self.store, key, || None)? {
            change(summary);
        }
        Ok(())
    }
}

fn plan_entry(origin: Origin, p: &prolo_schemas::TreatmentPlanned) -> PlanEntry {
    PlanEntry {
        origin,
        sessions_planned: p.sessions_planned,
        interval_days: p.interval_days,
        sites: p
            .target_sites
            .iter()
            .map(crate::rules::site_scope)
            .collect(),
        solutions: p.solutions.iter().map(name).collect(),
    }
}

fn injection_entry(e: &Envelope, seq: u64, p: &prolo_schemas::InjectionGiven) -> InjectionEntry {
    InjectionEntry {
        origin: origin(e, seq),
        site_key: p.site.site_key.as_str().to_owned(),
        laterality: p.site.laterality,
        lots: lots_of(p),
        practitioner_id: p.practitioner_id.to_string(),
        session_number: p.session_number,
        guidance: p.guidance,
        volume_ml: p.volume_ml,
        groups: Folder::groups_of(p)
            .into_iter()
            .map(|(d, g)| (d.to_owned(), g))
            .collect(),
        plan: p.treatment_plan_event_id,
        anaesthetic_mg: crate::rules::anaesthetic_mg(p),
    }
}

fn credential_entry(
    e: &Envelope,
    seq: u64,
    p: &prolo_schemas::PractitionerCredentialed,
) -> CredentialEntry {
    CredentialEntry {
        origin: origin(e, seq),
        credential: p.credential,
        valid_from: p.valid_from,
        valid_until: p.valid_until,
    }
}

/// The one-line entry of an examination, imaging, candidacy, plan or adjunct event.
fn clinical_entry(e: &Envelope, seq: u64) -> Option<ClinicalEntry> {
    let summary = match &e.payload {
        Payload::ExaminationDone(p) => format!(
            "{} examination, cause {}",
            name(&p.complaint_region),
            name(&p.underlying_cause)
        ),
        Payload::ImagingRecorded(p) => format!(
            "{} {} of {}",
            name(&p.modality),
            name(&p.purpose),
            name(&p.region)
        ),
        Payload::CandidacyAssessed(p) => {
            if p.candidate {
                "candidate".into()
            } else {
                "not a candidate".into()
            }
        }
        Payload::TreatmentPlanned(p) => format!(
            "{} sessions every {} days",
            p.sessions_planned, p.interval_days
        ),
        Payload::AdjunctTherapyRecommended(p) => {
            p.therapies.iter().map(name).collect::<Vec<_>>().join(", ")
        }
        Payload::ScreeningDone(p) => {
            let held: Vec<String> = p
                .anticoagulants
                .iter()
                .map(|a| {
                    format!(
                        "{} {}",
                        name(&a.agent),
                        if a.held { "held" } else { "continued" }
                    )
                })
                .collect();
            let mut line = format!(
                "screening: {}; {} allergies, {} contraindications",
                name(&p.decision),
                p.allergies.len(),
                p.contraindications.len()
            );
            if !held.is_empty() {
                line.push_str(&format!("; {}", held.join(", ")));
            }
            line
        }
        Payload::ProcedureTimeOut(p) => format!(
            "time-out: identity {}, site {}, time-out {}, {} participants",
            if p.identity_verified {
                "verified"
            } else {
                "NOT verified"
            },
            if p.site_marked {
                "marked"
            } else {
                "not marked"
            },
            if p.time_out_performed {
                "performed"
            } else {
                "NOT performed"
            },
            p.participants.len()
        ),
        Payload::ObservationCompleted(p) => format!(
            "observed {} min, {}",
            p.minutes,
            if p.discharged_well {
                "discharged well"
            } else {
                "NOT discharged well"
            }
        ),
        Payload::OutcomeReported(p) => format!(
            "{} {} at week {}",
            name(&p.instrument),
            p.score,
            p.weeks_since_series_start
        ),
        Payload::SeriesCompleted(p) => format!(
            "series ended after {} sessions: {}",
            p.sessions_given,
            name(&p.reason)
        ),
        _ => return None,
    };
    let tag = match &e.payload {
        Payload::ImagingRecorded(p) => name(&p.purpose),
        Payload::CandidacyAssessed(p) => if p.candidate {
            "candidate"
        } else {
            "not_candidate"
        }
        .to_owned(),
        Payload::ScreeningDone(p) => name(&p.decision),
        Payload::OutcomeReported(p) => name(&p.instrument),
        Payload::SeriesCompleted(p) => name(&p.reason),
        _ => String::new(),
    };
    Some(ClinicalEntry {
        origin: origin(e, seq),
        event_type: e.event_type(),
        summary,
        tag,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn decoding_on_every_core_gives_each_message_its_own_answer_in_order() {
        let events: Vec<Envelope> = prolo_tests::synthetic_events(400, 40).collect();
        let mut texts: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| (e.subject().unwrap().to_string(), e.to_json()))
            .collect();
        // Garbage, and an event on another event's subject, among them.
        texts[7].1 = b"{not json".to_vec();
        texts[301].0 = texts[300].0.clone();
        let borrowed: Vec<(&str, &[u8])> = texts
            .iter()
            .map(|(s, raw)| (s.as_str(), raw.as_slice()))
            .collect();
        let decoded = decode_all(&borrowed);
        assert_eq!(decoded.len(), 400);
        for (i, (one, (subject, raw))) in decoded.iter().zip(&borrowed).enumerate() {
            assert_eq!(one, &decode(subject, raw), "message {i}");
        }
        assert!(decoded[7].as_ref().unwrap_err().contains("contract"));
        if texts[301].0 != events[301].subject().unwrap().to_string() {
            assert!(decoded[301].as_ref().unwrap_err().contains("belongs on"));
        }
        assert_eq!(
            decoded[100].as_ref().unwrap().event_id,
            events[100].event_id
        );
        assert_eq!(decode_all(&borrowed[..3]).len(), 3);
        assert!(decode_all(&[]).is_empty());
    }

    /// The read models hold schema enums and dates; their JSON (what the
    /// API answers) is the names the event was recorded with.
    #[test]
    fn typed_entries_answer_in_json_with_the_recorded_names() {
        let e = prolo_tests::example_envelope("injection.given");
        let Payload::InjectionGiven(p) = &e.payload else {
            panic!("not an injection")
        };
        let entry = serde_json::to_value(injection_entry(&e, 7, p)).unwrap();
        assert_eq!(entry["laterality"], "left");
        assert_eq!(entry["guidance"], "palpation");
        let e = prolo_tests::example_envelope("practitioner.credentialed");
        let Payload::PractitionerCredentialed(p) = &e.payload else {
            panic!("not a credential")
        };
        let entry = serde_json::to_value(credential_entry(&e, 3, p)).unwrap();
        assert_eq!(entry["credential"], "reconstructive_therapy");
        assert_eq!(entry["valid_from"], "2024-03-01");
        assert_eq!(entry["valid_until"], "2027-02-28");
    }
}
