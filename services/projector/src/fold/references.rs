//! Events that point at other events: an adverse event and the injection
//! it follows, corrections and entered-in-error marks.

use prolo_schemas::{
    Envelope, Payload,
    names::{name, solution_label},
};
use uuid::Uuid;

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
    pub(super) fn adverse_event_state(
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
    pub(super) fn correction(
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
                            crate::rules::signals::day_of(i.origin.occurred_at_ms),
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

    pub(super) fn patient_quiet(
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
