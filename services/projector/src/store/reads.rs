//! What the read side may ask of the read models, typed. With the fold, the
//! only code that knows the key layout ([`crate::store::keys`]): the query crate
//! asks for "a patient's events" or "the findings raised at a sequence" and
//! never builds or parses key bytes.

use uuid::Uuid;

use super::{Store, StoreError, decode, keys};
use crate::{
    model::{AdverseEventState, Marks, PatientSummary, PractitionerSummary},
    rules::{
        findings::{Finding, Rule},
        signals::{Dimension, GroupCount, Signal},
    },
};

/// A list of sequences the fold keeps, in stream order.
#[derive(Debug, Clone, Copy)]
pub enum Index<'a> {
    /// The sequences quarantined (not events of the contract).
    Quarantined,
    /// A patient's events.
    Patient {
        /// Clinic.
        clinic: &'a str,
        /// Patient.
        patient: &'a str,
    },
    /// A practitioner's events: credentials, injections, adverse events after them.
    Practitioner {
        /// Clinic.
        clinic: &'a str,
        /// Practitioner.
        practitioner: &'a str,
    },
    /// Every event of a type.
    Type(prolo_schemas::EventType),
    /// A lot's injections, its recalls and the adverse events after it.
    Lot(&'a str),
    /// The reads of a patient's data (`access.recorded`).
    ReadsOfPatient {
        /// Clinic.
        clinic: &'a str,
        /// Patient.
        patient: &'a str,
    },
    /// The sequences that raised findings about a patient.
    FindingsOfPatient {
        /// Clinic.
        clinic: &'a str,
        /// Patient.
        patient: &'a str,
    },
    /// … about a practitioner.
    FindingsOfPractitioner {
        /// Clinic.
        clinic: &'a str,
        /// Practitioner.
        practitioner: &'a str,
    },
    /// … of a rule.
    FindingsOfRule {
        /// Clinic.
        clinic: &'a str,
        /// The rule.
        rule: Rule,
    },
}

/// One signal group's counts: its dimension (`lot`, `site`, …; `clinic` for
/// the baseline), the group, and the counts.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCounts {
    /// `lot`, `solution`, `site`, `practitioner`, `guidance`, or `clinic`.
    pub dimension: Dimension,
    /// The group, e.g. the lot number (`all` for the baseline).
    pub group: String,
    /// Its counts.
    pub count: GroupCount,
}

impl Store {
    /// The sequences of an index, in stream order.
    pub fn index(&self, index: Index<'_>) -> Result<Vec<u64>, StoreError> {
        let (prefix, parts): (&[u8], Vec<Vec<u8>>) = match index {
            Index::Quarantined => (keys::QUARANTINED, vec![]),
            Index::Patient { clinic, patient } => {
                (keys::BY_PATIENT, vec![clinic.into(), patient.into()])
            }
            Index::Practitioner {
                clinic,
                practitioner,
            } => (
                keys::BY_PRACTITIONER,
                vec![clinic.into(), practitioner.into()],
            ),
            Index::Type(event_type) => (keys::BY_TYPE, vec![event_type.as_str().into()]),
            Index::Lot(lot) => (keys::BY_LOT, vec![lot.into()]),
            Index::ReadsOfPatient { clinic, patient } => {
                (keys::READS_OF_PATIENT, vec![clinic.into(), patient.into()])
            }
            Index::FindingsOfPatient { clinic, patient } => (
                keys::FINDINGS_BY_PATIENT,
                vec![clinic.into(), patient.into()],
            ),
            Index::FindingsOfPractitioner {
                clinic,
                practitioner,
            } => (
                keys::FINDINGS_BY_PRACTITIONER,
                vec![clinic.into(), practitioner.into()],
            ),
            Index::FindingsOfRule { clinic, rule } => (
                keys::FINDINGS_BY_RULE,
                vec![clinic.into(), rule.code().into_bytes()],
            ),
        };
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.seqs(&keys::index_prefix(prefix, &parts)).collect()
    }

    /// A patient's summary.
    pub fn patient_summary(
        &self,
        clinic: &str,
        patient: &str,
    ) -> Result<Option<PatientSummary>, StoreError> {
        self.get(&keys::patient(clinic, patient))
    }

    /// A practitioner's summary.
    pub fn practitioner_summary(
        &self,
        clinic: &str,
        practitioner: &str,
    ) -> Result<Option<PractitionerSummary>, StoreError> {
        self.get(&keys::practitioner(clinic, practitioner))
    }

    /// The sequence of an event id.
    pub fn seq_of(&self, event_id: &Uuid) -> Result<Option<u64>, StoreError> {
        Ok(crate::store::event_ids::seq_of(self.model(), event_id)?)
    }

    /// An adverse event's state (by the id of its report).
    pub fn adverse_event(&self, id: &Uuid) -> Result<Option<AdverseEventState>, StoreError> {
        self.get(&keys::by_uuid(keys::ADVERSE_EVENT, id))
    }

    /// The corrections and entered-in-error marks of an event.
    pub fn marks(&self, event_id: &Uuid) -> Result<Marks, StoreError> {
        Ok(self
            .get(&keys::by_uuid(keys::MARKS, event_id))?
            .unwrap_or_default())
    }

    /// The sequences of the `record.signed` events of an event, in stream order.
    pub fn signatures(&self, event_id: &Uuid) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .get(&keys::by_uuid(keys::SIGNATURES, event_id))?
            .unwrap_or_default())
    }

    /// A practitioner's injections whose clinical day lies between those of
    /// `from_ms` and `to_ms` (both included), as rows, in day then stream order.
    pub fn practitioner_injections_by_day(
        &self,
        clinic: &str,
        practitioner: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<crate::model::DayInjection>, StoreError> {
        let day = |ms: i64| keys::time_bytes(keys::day(ms));
        let parts = |ms: i64| {
            keys::index_prefix(
                keys::PRACTITIONER_DAY,
                &[clinic.as_bytes(), practitioner.as_bytes(), &day(ms)],
            )
        };
        let (from, to) = (parts(from_ms), parts(to_ms + 86_400_000));
        let mut rows = Vec::new();
        for entry in self.model().range(from..to) {
            let (key, value) = entry?;
            rows.extend(decode::<Vec<crate::model::DayInjection>>(&key, &value)?);
        }
        Ok(rows)
    }

    /// The ids of the findings raised when `seq` was folded.
    pub fn findings_raised_at(&self, seq: u64) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .get(&keys::by_seq(keys::FINDINGS_AT, seq))?
            .unwrap_or_default())
    }

    /// A finding.
    pub fn finding(&self, id: &Uuid) -> Result<Option<Finding>, StoreError> {
        self.get(&keys::by_uuid(keys::FINDING, id))
    }

    /// Every signal group of a clinic with its counts, the baseline included.
    pub fn group_counts(&self, clinic: &str) -> Result<Vec<GroupCounts>, StoreError> {
        let prefix = keys::index_prefix(keys::GROUP, &[clinic.as_bytes()]);
        let mut groups = Vec::new();
        for entry in self.model().scan_prefix(&prefix) {
            let (key, value) = entry?;
            let count: GroupCount = decode(&key, &value)?;
            let mut parts = key[prefix.len()..].splitn(2, |b| *b == 0);
            let mut text =
                || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let (dimension, group) = (text(), text());
            let dimension = Dimension::named(&dimension).ok_or_else(|| StoreError::Codec {
                key: String::from_utf8_lossy(&key).into_owned(),
                message: format!("no signal dimension is named {dimension}"),
            })?;
            groups.push(GroupCounts {
                dimension,
                group,
                count,
            });
        }
        Ok(groups)
    }

    /// The day of the stream's clock the signals' rolling window ends on
    /// (`None` before the first clinical event).
    pub fn signal_day(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .model()
            .get(keys::SIGNAL_DAY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// A clinic's findings raised and resolved, by rule code.
    pub fn finding_counts(
        &self,
        clinic: &str,
    ) -> Result<Vec<(String, crate::rules::findings::FindingCount)>, StoreError> {
        let prefix = keys::index_prefix(keys::FINDING_COUNTS, &[clinic.as_bytes()]);
        let mut counts = Vec::new();
        for entry in self.model().scan_prefix(&prefix) {
            let (key, value) = entry?;
            let rule = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            counts.push((rule, decode(&key, &value)?));
        }
        Ok(counts)
    }

    /// The signals raised in every clinic.
    pub fn signals_all(&self) -> Result<Vec<Signal>, StoreError> {
        self.values_under(keys::SIGNAL)
    }

    /// The signals raised in a clinic, in the order they were raised.
    pub fn signals_raised(&self, clinic: &str) -> Result<Vec<Signal>, StoreError> {
        let prefix = keys::index_prefix(keys::SIGNAL, &[clinic.as_bytes()]);
        let mut raised: Vec<Signal> = self.values_under(&prefix)?;
        raised.sort_by_key(|s| s.raised_seq);
        Ok(raised)
    }

    /// Every finding raised in every clinic, resolved or not, in id order.
    pub fn findings_all(&self) -> Result<Vec<Finding>, StoreError> {
        self.values_under(keys::FINDING)
    }

    /// Every value stored under `prefix`, decoded, in key order.
    fn values_under<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<T>, StoreError> {
        let mut values = Vec::new();
        for entry in self.model().scan_prefix(prefix) {
            let (key, value) = entry?;
            values.push(decode::<T>(&key, &value)?);
        }
        Ok(values)
    }
}
