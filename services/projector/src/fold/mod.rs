//! The fold: one stream message at a time into the pending writes of a
//! batch. No I/O beyond reading the store, no clock: folding the same
//! stream twice gives the same read models, byte for byte.

mod decode;
mod entries;
mod facts;
mod findings;
mod references;
mod signals;

pub use decode::{
    Decoded, Rejected, StreamMessage, check, decode, decode_batch, decode_off_runtime, stream_time,
};

use std::collections::BTreeMap;

use prolo_bus::edge::SourcedFrom;
use prolo_schemas::Envelope;
use uuid::Uuid;

use crate::{
    integrity::chain,
    model::*,
    rules::{
        findings::{Finding, FindingSettings},
        signals::GroupCount,
    },
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
    signals_raised: BTreeMap<Vec<u8>, crate::rules::signals::Signal>,
    lot_recalls: BTreeMap<Vec<u8>, Vec<(i64, Uuid)>>,
    /// Recent voids of adverse events by lot and practitioner.
    voids: BTreeMap<Vec<u8>, Vec<crate::rules::adverse_events::Void>>,
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
            voids: BTreeMap::new(),
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
        self.pending.put_all(std::mem::take(&mut self.voids))?;
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
        decoded: Result<Envelope, Rejected>,
    ) -> Result<Outcome, StoreError> {
        self.chain_head = chain::link(&self.chain_head, seq, raw);
        let checked = self.check(decoded, sourced)?;
        let quarantine = checked.as_ref().err().map(ToString::to_string);
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
                if let Rejected::Unsealed(why) = &reason {
                    self.unproven_rule(seq, subject, raw, ms(stored_at), why)?;
                }
                Ok(Outcome::Quarantined(reason.to_string()))
            }
        }
    }

    /// Keeps where a sourced message came from and extends its edge's chain.
    pub(super) fn sourced(
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
    pub(super) fn check(
        &self,
        decoded: Result<Envelope, Rejected>,
        sourced: Option<&SourcedFrom>,
    ) -> Result<Result<Envelope, Rejected>, StoreError> {
        let envelope = match decoded {
            Ok(envelope) => envelope,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Some(edge_clinic) = sourced.and_then(SourcedFrom::clinic)
            && edge_clinic != envelope.clinic_id.as_str()
        {
            return Ok(Err(Rejected::Invalid(format!(
                "sourced from clinic {edge_clinic}'s edge, but it is an event of clinic {}: an edge records only its own clinic",
                envelope.clinic_id
            ))));
        }
        if let Some(at) = self.ids.seq_of(self.store.model(), &envelope.event_id)? {
            return Ok(Err(Rejected::Invalid(format!(
                "event id {} is already stored at sequence {at} (a retry outside the duplicate window)",
                envelope.event_id
            ))));
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
    /// Indexes `seq` under `prefix`, the clinic and one key of it (a
    /// patient, a practitioner, a rule).
    pub(super) fn clinic_index(
        &mut self,
        prefix: &[u8],
        clinic: &[u8],
        key: &str,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.index(prefix, &[clinic, key.as_bytes()], seq)
    }

    pub(super) fn index(
        &mut self,
        prefix: &[u8],
        parts: &[&[u8]],
        seq: u64,
    ) -> Result<(), StoreError> {
        let key = keys::posting(prefix, parts, seq);
        if let Some(list) = cached(&mut self.postings, self.store, key, || Some(Vec::new()))?
            && list.last() != Some(&seq)
        {
            list.push(seq);
        }
        Ok(())
    }

    pub(super) fn fold(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
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
}
