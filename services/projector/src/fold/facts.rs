//! The facts an event adds to the read models: its indexes, the patient's
//! and practitioner's summaries.

use prolo_schemas::{Envelope, Payload, RecordCorrected, RecordEnteredInError, names::name};

use super::{
    Folder, cached,
    entries::{clinical_entry, credential_entry, injection_entry, plan_entry},
    ms, origin,
};
use crate::{
    model::*,
    store::{StoreError, keys},
};

impl Folder<'_> {
    /// The read models proper: indexes, summaries, states.
    pub(super) fn facts(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        self.index_event(seq, e)?;
        let clinic = e.clinic_id.as_str().as_bytes();
        self.apply_facts(seq, e, clinic)
    }

    /// The indexes every applied event is in: by id, type, clinical day, patient.
    pub(super) fn index_event(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
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
            self.clinic_index(keys::BY_PATIENT, clinic, patient.as_str(), seq)?;
        }
        Ok(())
    }

    pub(super) fn apply_facts(
        &mut self,
        seq: u64,
        e: &Envelope,
        clinic: &[u8],
    ) -> Result<(), StoreError> {
        match &e.payload {
            Payload::PractitionerCredentialed(p) => {
                self.clinic_index(
                    keys::BY_PRACTITIONER,
                    clinic,
                    p.practitioner_id.as_str(),
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
                    self.clinic_index(keys::BY_PRACTITIONER, clinic, practitioner.as_str(), seq)?;
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
                self.clinic_index(keys::BY_PRINCIPAL, clinic, p.principal_id.as_str(), seq)?;
                // On the access log of the patient asked about and of every
                // patient whose data the answer carried.
                let exposed: std::collections::BTreeSet<&str> = p
                    .patient_id
                    .iter()
                    .chain(&p.exposed_patients)
                    .map(|patient| patient.as_str())
                    .collect();
                for patient in exposed {
                    self.clinic_index(keys::READS_OF_PATIENT, clinic, patient, seq)?;
                }
            }
            Payload::LotRecalled(p) => {
                self.index(keys::BY_LOT, &[p.lot.as_str().as_bytes()], seq)?;
            }
            // Found through the by-type index (`/v1/access-refused`) and the
            // principal's.
            Payload::AccessRefused(p) => {
                self.clinic_index(keys::BY_PRINCIPAL, clinic, p.principal_id.as_str(), seq)?;
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
    pub(super) fn patient(
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
    pub(super) fn practitioner(
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
}
