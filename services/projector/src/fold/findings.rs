//! The policy's findings applied as each event is folded: raised with their
//! evidence, resolved by a later event, follow-ups awaited by the stream's
//! clock. The rules themselves are pure functions in [`crate::rules`].

use chrono::Duration;
use prolo_schemas::{AdverseEventKind, Envelope, EventType, InjectionGiven, Payload};
use uuid::Uuid;

use super::{Folder, Notification, cached, ms};
use crate::{
    model::{PatientSummary, PractitionerSummary},
    rules::{
        self as policy,
        findings::{Finding, OpenFinding, Rule},
    },
    store::{StoreError, keys},
};

/// What a finding is about: the event, and whom it concerns.
struct About<'e> {
    event: &'e Envelope,
    practitioner: Option<String>,
    site_key: Option<String>,
}

impl Folder<'_> {
    /// Applies the rules to the event just folded: raises findings it
    /// proves, resolves findings it satisfies, counts it for the signals.
    pub(super) fn rules(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        if !e.event_type().is_clinical() {
            return Ok(());
        }
        // A follow-up that happened within the deadline (its clinical time)
        // stops the wait before the stream's clock can expire it: a
        // back-filled history arrives long after its deadlines.
        if let Payload::AdverseEventUpdated(p) = &e.payload {
            self.updated_by(p.adverse_event_id, Some(ms(e.occurred_at)))?;
        }
        self.expire_awaiting(seq, e)?;
        self.move_window(seq, e)?;
        if let Some(draft) = policy::late_documentation(e, self.settings) {
            self.raise_draft(seq, e, draft)?;
        }
        let key = keys::key(keys::CLINIC_LIVE, &[e.clinic_id.as_str().as_bytes()]);
        let live_since = if e.source == prolo_schemas::BACKFILL_SOURCE {
            cached(&mut self.clinic_live, self.store, key, || None)?.copied()
        } else {
            let now = ms(e.recorded_at);
            cached(&mut self.clinic_live, self.store, key, || Some(now))?.copied()
        };
        if let Some(draft) = policy::backfill_after_go_live(e, live_since, self.settings) {
            self.raise_draft(seq, e, draft)?;
        }
        match &e.payload {
            Payload::InjectionGiven(p) => self.injection_rules(seq, e, p)?,
            Payload::AdverseEventReported(p) => {
                self.link_rule(seq, e, p.linked_injection.as_ref().map(|l| l.event_id))?;
                if let Some(draft) = policy::serious_reported_late(e, p, self.settings) {
                    self.raise_draft(seq, e, draft)?;
                }
                if p.serious
                    || matches!(
                        p.kind,
                        AdverseEventKind::Infection | AdverseEventKind::MisplacedInjection
                    )
                {
                    let deadline = ms(e.occurred_at)
                        + Duration::days(self.settings.adverse_event_update_days)
                            .num_milliseconds();
                    self.await_update(deadline, e.event_id);
                }
                self.count_adverse_event(seq, e, p.linked_injection.as_ref().map(|l| l.event_id))?;
            }
            Payload::AdverseEventUpdated(p) => {
                self.updated(p.adverse_event_id)?;
                let finding = Finding::id_for(Rule::NoAdverseEventUpdate, &p.adverse_event_id);
                self.resolve_open(seq, e, |_, f| f.id == finding)?;
            }
            // A consent, examination, candidacy decision or imaging recorded
            // late may satisfy findings already raised about the patient.
            Payload::ConsentGiven(_) => {
                self.resolve_where(seq, e, &[Rule::NoActiveConsent, Rule::SiteOutsideConsent])?;
                let draft = match &e.patient_id {
                    Some(patient) => {
                        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
                        cached(&mut self.patients, self.store, key, || None)?.and_then(|s| {
                            let consent = s
                                .consents
                                .iter()
                                .find(|c| c.origin.event_id == e.event_id)?;
                            policy::consent_after_injection(e, consent, &s.injections)
                        })
                    }
                    None => None,
                };
                if let Some(draft) = draft {
                    self.raise_draft(seq, e, draft)?;
                }
            }
            Payload::ExaminationDone(_) | Payload::CandidacyAssessed(_) => {
                self.resolve_where(seq, e, &[Rule::NoExaminationOrCandidacy])?;
            }
            Payload::ImagingRecorded(_) => {
                self.resolve_where(seq, e, &[Rule::SeriesWithoutFollowUpImaging])?;
            }
            Payload::PractitionerCredentialed(p) => {
                // A credential recorded late may cover injections already flagged.
                let key = keys::practitioner(e.clinic_id.as_str(), p.practitioner_id.as_str());
                let resolved: Vec<Uuid> =
                    match cached(&mut self.practitioners, self.store, key, || None)? {
                        Some(summary) => {
                            let covered: Vec<Uuid> = summary
                                .open_findings
                                .iter()
                                .filter(|f| {
                                    policy::credential_finding_resolved(&summary.credentials, f)
                                })
                                .map(|f| f.id)
                                .collect();
                            summary.open_findings.retain(|f| !covered.contains(&f.id));
                            covered
                        }
                        None => Vec::new(),
                    };
                for id in resolved {
                    self.resolve(seq, e, id)?;
                }
            }
            Payload::RecordEnteredInError(m)
                if m.target.event_type == EventType::AdverseEventReported =>
            {
                self.void_rule(seq, e, m.target.event_id)?;
            }
            Payload::LotRecalled(p) => {
                let key = keys::key(keys::LOT_RECALLS, &[p.lot.as_str().as_bytes()]);
                if let Some(recalls) =
                    cached(&mut self.lot_recalls, self.store, key, || Some(Vec::new()))?
                {
                    recalls.push((ms(e.occurred_at), e.event_id));
                }
                // Injections already recorded from the lot at or after the recall.
                let seqs = self.posted(keys::INJECTIONS_BY_LOT, &[p.lot.as_str().as_bytes()])?;
                for earlier in seqs {
                    let Some(record) = self.pending.record(self.store, earlier)? else {
                        continue;
                    };
                    let Ok(injection) = Envelope::decode(&record.raw) else {
                        continue;
                    };
                    if injection.event_type() == EventType::InjectionGiven
                        && injection.occurred_at >= e.occurred_at
                    {
                        let detail = format!(
                            "lot {} was recalled at {} before this injection",
                            p.lot, e.occurred_at
                        );
                        let about = About {
                            event: &injection,
                            practitioner: None,
                            site_key: None,
                        };
                        self.raise(
                            seq,
                            Rule::ExpiredOrRecalledLot,
                            &about,
                            vec![injection.event_id, e.event_id],
                            detail,
                        )?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Counts a void of an adverse event in its lots' and its
    /// practitioner's groups, and raises `adverse_events_voided_together`
    /// when one reaches the threshold. (A void that changed nothing, outside
    /// its patient or clinic, never gets here: [`Folder::fold`] applies the
    /// rules only to events whose references stay inside.)
    fn void_rule(&mut self, seq: u64, e: &Envelope, adverse_event: Uuid) -> Result<(), StoreError> {
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &adverse_event);
        let Some(state) = cached(&mut self.adverse, self.store, key, || None)? else {
            return Ok(());
        };
        let mut groups: Vec<(&str, String)> = state
            .injection_lots
            .iter()
            .map(|lot| ("lot", lot.clone()))
            .collect();
        groups.extend(
            state
                .injection_practitioner
                .clone()
                .map(|practitioner| ("practitioner", practitioner)),
        );
        let void = (ms(e.recorded_at), e.event_id, adverse_event);
        let clinic = e.clinic_id.as_str().as_bytes();
        let mut bursts: Vec<(&str, String, Vec<policy::Void>)> = Vec::new();
        for (dimension, group) in groups {
            let parts: [&[u8]; 3] = [clinic, dimension.as_bytes(), group.as_bytes()];
            let key = keys::key(keys::VOIDS, &parts);
            let Some(recent) = cached(&mut self.voids, self.store, key, || Some(Vec::new()))?
            else {
                continue;
            };
            if let Some(burst) = policy::voided_together(recent, void, self.settings) {
                bursts.push((dimension, group, burst));
            }
        }
        if bursts.is_empty() {
            return Ok(());
        }
        // One finding for the void that made the burst, naming every group
        // it completed; the evidence is this void first, then every void and
        // adverse event of the bursts.
        let mut evidence = vec![e.event_id, adverse_event];
        for (_, _, burst) in &bursts {
            for (_, void, adverse) in burst {
                for id in [*void, *adverse] {
                    if !evidence.contains(&id) {
                        evidence.push(id);
                    }
                }
            }
        }
        let named: Vec<String> = bursts
            .iter()
            .map(|(dimension, group, _)| format!("{dimension} {group}"))
            .collect();
        let detail = format!(
            "{} adverse events after {} marked entered in error within {} hours, the last by {}: review each",
            bursts[0].2.len(),
            named.join(", "),
            self.settings.void_window_hours,
            e.actor.id
        );
        let practitioner = bursts
            .iter()
            .find(|(dimension, ..)| *dimension == "practitioner")
            .map(|(_, group, _)| group.clone());
        let about = About {
            event: e,
            practitioner,
            site_key: None,
        };
        self.raise(
            seq,
            Rule::AdverseEventsVoidedTogether,
            &about,
            evidence,
            detail,
        )
    }

    fn injection_rules(
        &mut self,
        seq: u64,
        e: &Envelope,
        p: &InjectionGiven,
    ) -> Result<(), StoreError> {
        // Load what the policy looks at into the batch's caches, then ask it
        // with borrowed views (nothing cloned).
        let recall_keys: Vec<Vec<u8>> = p
            .solution
            .components
            .iter()
            .map(|c| keys::key(keys::LOT_RECALLS, &[c.lot.as_str().as_bytes()]))
            .collect();
        for key in &recall_keys {
            // Only read: a lot never recalled gets no entry written.
            cached(&mut self.lot_recalls, self.store, key.clone(), || None)?;
        }
        let patient_key = e
            .patient_id
            .as_ref()
            .map(|patient| keys::patient(e.clinic_id.as_str(), patient.as_str()));
        if let Some(key) = &patient_key {
            cached(&mut self.patients, self.store, key.clone(), || None)?;
        }
        let practitioner_key = keys::practitioner(e.clinic_id.as_str(), p.practitioner_id.as_str());
        cached(
            &mut self.practitioners,
            self.store,
            practitioner_key.clone(),
            || None,
        )?;
        let context = policy::InjectionContext {
            patient: patient_key.as_ref().and_then(|k| self.patients.get(k)),
            credentials: self
                .practitioners
                .get(&practitioner_key)
                .map_or(&[][..], |s| &s.credentials[..]),
            recalls: recall_keys
                .iter()
                .map(|k| self.lot_recalls.get(k).map_or(&[][..], |r| &r[..]))
                .collect(),
        };
        let drafts = policy::injection_findings(e, p, &context, self.settings);
        for draft in drafts {
            self.raise_draft(seq, e, draft)?;
        }
        self.count_injection(e, p)
    }

    /// An adverse event must name an injection in the trail, of the same patient.
    fn link_rule(
        &mut self,
        seq: u64,
        e: &Envelope,
        linked: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let Some(linked) = linked else { return Ok(()) };
        let found = self.event_by_id(&linked)?;
        match policy::adverse_event_link(e, linked, found.as_ref().map(|(_, f)| f)) {
            Some(draft) => self.raise_draft(seq, e, draft),
            None => Ok(()),
        }
    }

    /// Raises the no-update finding for every infection or misplaced
    /// injection whose deadline passed, by the stream's own clock (the
    /// recording time of the event being folded), so a rebuild agrees.
    fn expire_awaiting(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        let now = ms(e.recorded_at);
        // Most events find nothing due: one comparison, no read.
        match self.earliest_awaiting()? {
            Some(earliest) if earliest < now => {}
            _ => return Ok(()),
        }
        let due = self.pending.keys_in(
            self.store,
            keys::AWAITING,
            &keys::awaiting(now, &Uuid::nil()),
            usize::MAX,
        )?;
        self.awaiting_floor = None;
        for key in due {
            let parsed = keys::parse_awaiting(&key);
            self.pending.remove(key);
            let Some((_, ae)) = parsed else { continue };
            let Some((_, report)) = self.event_by_id(&ae)? else {
                continue;
            };
            let detail = format!(
                "no follow-up within {} days",
                self.settings.adverse_event_update_days
            );
            let about = About {
                event: &report,
                practitioner: None,
                site_key: None,
            };
            self.raise(seq, Rule::NoAdverseEventUpdate, &about, vec![ae], detail)?;
        }
        Ok(())
    }

    /// An adverse event now waits for its follow-up until `deadline`.
    fn await_update(&mut self, deadline: i64, event: Uuid) {
        self.pending
            .put_raw(keys::awaiting(deadline, &event), Vec::new());
        if let Some(earliest) = &mut self.awaiting_floor {
            *earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
        }
    }

    /// An adverse event was followed up: it waits no more.
    fn updated(&mut self, adverse_event: Uuid) -> Result<(), StoreError> {
        self.updated_by(adverse_event, None)
    }

    /// Stops the wait of an adverse event followed up at `at_ms` (clinical
    /// time), when that is within its deadline; `None`: whenever it was.
    fn updated_by(&mut self, adverse_event: Uuid, at_ms: Option<i64>) -> Result<(), StoreError> {
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &adverse_event);
        let Some(reported_ms) = cached(&mut self.adverse, self.store, key, || None)?
            .map(|state| state.origin.occurred_at_ms)
        else {
            return Ok(());
        };
        let deadline = reported_ms
            + Duration::days(self.settings.adverse_event_update_days).num_milliseconds();
        if at_ms.is_some_and(|at| at > deadline) {
            return Ok(());
        }
        self.pending
            .remove(keys::awaiting(deadline, &adverse_event));
        self.awaiting_floor = None;
        Ok(())
    }

    /// The earliest deadline waiting, as after this batch (read once per
    /// batch, and again after an expiry or follow-up). The first time, moves
    /// a list kept by an earlier version into keys.
    fn earliest_awaiting(&mut self) -> Result<Option<i64>, StoreError> {
        if let Some(earliest) = self.awaiting_floor {
            return Ok(earliest);
        }
        if !self.awaiting_migrated {
            self.awaiting_migrated = true;
            let list: Option<Vec<(i64, Uuid)>> =
                self.pending.get(self.store, keys::AWAITING_UPDATE_LIST)?;
            if let Some(list) = list {
                for (deadline, event) in list {
                    self.pending
                        .put_raw(keys::awaiting(deadline, &event), Vec::new());
                }
                self.pending.remove(keys::AWAITING_UPDATE_LIST.to_vec());
            }
        }
        let first = self
            .pending
            .keys_in(self.store, keys::AWAITING, keys::AWAITING_END, 1)?;
        let earliest = first
            .first()
            .and_then(|k| keys::parse_awaiting(k))
            .map(|(deadline, _)| deadline);
        self.awaiting_floor = Some(earliest);
        Ok(earliest)
    }

    /// Raises what the policy asked for, about `e`.
    fn raise_draft(
        &mut self,
        seq: u64,
        e: &Envelope,
        draft: policy::Draft,
    ) -> Result<(), StoreError> {
        let about = About {
            event: e,
            practitioner: draft.practitioner,
            site_key: draft.site_key,
        };
        self.raise(seq, draft.rule, &about, draft.evidence, draft.detail)
    }

    /// Raises a finding (once: the id is derived from the rule and the event).
    fn raise(
        &mut self,
        seq: u64,
        rule: Rule,
        about: &About<'_>,
        evidence: Vec<Uuid>,
        detail: String,
    ) -> Result<(), StoreError> {
        let e = about.event;
        let id = Finding::id_for(rule, &evidence[0]);
        let key = keys::by_uuid(keys::FINDING, &id);
        if cached(&mut self.findings, self.store, key.clone(), || None)?.is_some() {
            return Ok(());
        }
        let finding = Finding {
            id,
            rule,
            severity: rule.severity(),
            clinic_id: e.clinic_id.to_string(),
            patient_id: e.patient_id.as_ref().map(ToString::to_string),
            practitioner_id: about.practitioner.clone(),
            evidence,
            detail,
            raised_seq: seq,
            about_ms: ms(e.occurred_at),
            resolved_by: None,
        };
        self.file_finding(&finding)?;
        let open = OpenFinding {
            id,
            rule,
            about_ms: finding.about_ms,
            site_key: about.site_key.clone(),
        };
        match rule {
            Rule::NoActiveConsent
            | Rule::SiteOutsideConsent
            | Rule::NoExaminationOrCandidacy
            | Rule::SeriesWithoutFollowUpImaging
            | Rule::NoAdverseEventUpdate => {
                if let Some(patient) = &e.patient_id {
                    let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
                    if let Some(summary) = cached(&mut self.patients, self.store, key, || None)? {
                        summary.open_findings.push(open);
                    }
                }
            }
            Rule::NoValidCredential => {
                if let Some(practitioner) = &about.practitioner {
                    let key = keys::practitioner(e.clinic_id.as_str(), practitioner);
                    let fresh = || {
                        Some(PractitionerSummary {
                            clinic_id: e.clinic_id.to_string(),
                            practitioner_id: practitioner.clone(),
                            ..PractitionerSummary::default()
                        })
                    };
                    if let Some(summary) = cached(&mut self.practitioners, self.store, key, fresh)?
                    {
                        summary.open_findings.push(open);
                    }
                }
            }
            _ => {}
        }
        self.notify(&finding, "raised");
        self.findings.insert(key, finding);
        Ok(())
    }

    /// Resolves the patient's open findings of `rules` that the patient's
    /// record now satisfies (the policy decides).
    fn resolve_where(&mut self, seq: u64, e: &Envelope, rules: &[Rule]) -> Result<(), StoreError> {
        self.resolve_open(seq, e, |summary, f| {
            rules.contains(&f.rule) && policy::patient_finding_resolved(summary, f)
        })
    }

    /// Resolves the patient's open findings for which `satisfied` holds.
    fn resolve_open(
        &mut self,
        seq: u64,
        e: &Envelope,
        satisfied: impl Fn(&PatientSummary, &OpenFinding) -> bool,
    ) -> Result<(), StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(());
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        let resolved: Vec<Uuid> = match cached(&mut self.patients, self.store, key, || None)? {
            Some(summary) => {
                let view: &PatientSummary = summary;
                let ids = view
                    .open_findings
                    .iter()
                    .filter(|f| satisfied(view, f))
                    .map(|f| f.id)
                    .collect::<Vec<_>>();
                summary.open_findings.retain(|f| !ids.contains(&f.id));
                ids
            }
            None => Vec::new(),
        };
        for id in resolved {
            self.resolve(seq, e, id)?;
        }
        Ok(())
    }

    fn resolve(&mut self, seq: u64, by: &Envelope, id: Uuid) -> Result<(), StoreError> {
        let key = keys::by_uuid(keys::FINDING, &id);
        let Some(finding) = cached(&mut self.findings, self.store, key, || None)? else {
            return Ok(());
        };
        if finding.resolved_by.is_some() {
            return Ok(());
        }
        finding.resolved_by = Some((by.event_id, seq));
        let finding = finding.clone();
        self.count_finding(&finding.clinic_id, finding.rule, |c| c.resolved += 1)?;
        self.notify(&finding, "resolved");
        Ok(())
    }

    /// Files a new finding under its rule, patient and practitioner, at the
    /// sequence that raised it, and counts it.
    fn file_finding(&mut self, finding: &Finding) -> Result<(), StoreError> {
        let (seq, clinic) = (finding.raised_seq, finding.clinic_id.as_bytes());
        self.clinic_index(keys::FINDINGS_BY_RULE, clinic, &finding.rule.code(), seq)?;
        if let Some(patient) = &finding.patient_id {
            self.clinic_index(keys::FINDINGS_BY_PATIENT, clinic, patient, seq)?;
        }
        if let Some(practitioner) = &finding.practitioner_id {
            self.clinic_index(keys::FINDINGS_BY_PRACTITIONER, clinic, practitioner, seq)?;
        }
        if let Some(ids) = cached(
            &mut self.findings_at,
            self.store,
            keys::by_seq(keys::FINDINGS_AT, seq),
            || Some(Vec::new()),
        )? {
            ids.push(finding.id);
        }
        self.count_finding(&finding.clinic_id, finding.rule, |c| c.raised += 1)
    }

    fn count_finding(
        &mut self,
        clinic: &str,
        rule: Rule,
        change: impl FnOnce(&mut crate::rules::findings::FindingCount),
    ) -> Result<(), StoreError> {
        let key = keys::key(
            keys::FINDING_COUNTS,
            &[clinic.as_bytes(), rule.code().as_bytes()],
        );
        if let Some(count) = cached(&mut self.finding_counts, self.store, key, || {
            Some(crate::rules::findings::FindingCount::default())
        })? {
            change(count);
        }
        Ok(())
    }

    fn notify(&mut self, finding: &Finding, what: &str) {
        self.notifications.push(Notification {
            subject: format!(
                "prolo.finding.{}.{}.{what}",
                finding.clinic_id,
                finding.rule.code()
            ),
            payload: serde_json::to_vec(finding).unwrap_or_default(),
        });
    }
}

impl Folder<'_> {
    /// Whether an update, correction or entered-in-error mark reaches
    /// outside its own patient and clinic (the policy decides, given its
    /// target as stored).
    pub(super) fn reference_outside(
        &self,
        e: &Envelope,
    ) -> Result<Option<policy::OutsideReference>, StoreError> {
        let Some(target) = policy::reference_target(e) else {
            return Ok(None);
        };
        let found = self.event_by_id(&target)?;
        Ok(policy::reference_outside(e, found.as_ref().map(|(_, f)| f)))
    }

    /// Raises `reference_outside_patient` for an event that changed nothing.
    pub(super) fn reference_rule(
        &mut self,
        seq: u64,
        e: &Envelope,
        outside: policy::OutsideReference,
    ) -> Result<(), StoreError> {
        self.raise(
            seq,
            Rule::ReferenceOutsidePatient,
            &About {
                event: e,
                practitioner: None,
                site_key: None,
            },
            vec![e.event_id, outside.target],
            format!("{}; it changed nothing there", outside.reason),
        )
    }
}

impl Folder<'_> {
    /// Raises `recorded_at_mismatch` when the `recorded_at` a publisher
    /// wrote (`stamped`) is further than the tolerance from the stream's
    /// time (now `e.recorded_at`), which the fold used instead.
    pub(super) fn recorded_at_rule(
        &mut self,
        seq: u64,
        e: &Envelope,
        stamped: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        match policy::recorded_at_mismatch(e, stamped, self.settings) {
            Some(draft) => self.raise_draft(seq, e, draft),
            None => Ok(()),
        }
    }
}

impl Folder<'_> {
    /// Raises `unproven_publisher` for the message quarantined at `seq`
    /// because no recording service sealed it. Its clinic and patient are
    /// what it claims (else the subject's clinic): that is whose record a
    /// forgery aimed at. One finding per sequence, even for copies of one
    /// event id.
    pub(super) fn unproven_rule(
        &mut self,
        seq: u64,
        subject: &str,
        raw: &[u8],
        stored_at_ms: i64,
        why: &prolo_bus::seal::Unsealed,
    ) -> Result<(), StoreError> {
        let rule = Rule::UnprovenPublisher;
        let at_seq = Uuid::new_v5(&Uuid::NAMESPACE_OID, &seq.to_be_bytes());
        let id = Finding::id_for(rule, &at_seq);
        let key = keys::by_uuid(keys::FINDING, &id);
        if cached(&mut self.findings, self.store, key.clone(), || None)?.is_some() {
            return Ok(());
        }
        let claimed = Envelope::from_json(raw).ok();
        let clinic = claimed.as_ref().map_or_else(
            || {
                subject
                    .split('.')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(prolo_schemas::ClinicId::unscoped)
                    .to_string()
            },
            |e| e.clinic_id.to_string(),
        );
        let patient_id = claimed
            .as_ref()
            .and_then(|e| e.patient_id.as_ref().map(ToString::to_string));
        let shown: String = subject.chars().take(200).collect();
        let finding = Finding {
            id,
            rule,
            severity: rule.severity(),
            clinic_id: clinic,
            patient_id,
            practitioner_id: None,
            evidence: vec![claimed.as_ref().map_or(at_seq, |e| e.event_id)],
            detail: format!(
                "sequence {seq} on {shown}: {why}; quarantined, not applied (who can publish on the stream around the recording services?)"
            ),
            raised_seq: seq,
            about_ms: stored_at_ms,
            resolved_by: None,
        };
        self.file_finding(&finding)?;
        self.notify(&finding, "raised");
        self.findings.insert(key, finding);
        Ok(())
    }
}
