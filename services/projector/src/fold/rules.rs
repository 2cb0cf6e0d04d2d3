//! The policy rules and safety signals, applied as each event is folded.
//! See [`crate::rules::findings`] for the rules themselves.

use chrono::Duration;
use prolo_schemas::{AdverseEventKind, Envelope, EventType, InjectionGiven, Payload};
use uuid::Uuid;

use super::{Folder, Notification, cached, ms};
use crate::{
    model::{PatientSummary, PractitionerSummary},
    names::{name, solution_label},
    rules::{
        self as policy,
        disproportionality::Table,
        findings::{
            DIMENSIONS, Finding, GroupCount, OpenFinding, Rule, Signal, SignalTransition, day_of,
        },
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
        let clinic = e.clinic_id.as_str().as_bytes();
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
        self.index(
            keys::FINDINGS_BY_RULE,
            &[clinic, rule.code().as_bytes()],
            seq,
        )?;
        if let Some(patient) = &e.patient_id {
            self.index(
                keys::FINDINGS_BY_PATIENT,
                &[clinic, patient.as_str().as_bytes()],
                seq,
            )?;
        }
        if let Some(practitioner) = &about.practitioner {
            self.index(
                keys::FINDINGS_BY_PRACTITIONER,
                &[clinic, practitioner.as_bytes()],
                seq,
            )?;
        }
        if let Some(ids) = cached(
            &mut self.findings_at,
            self.store,
            keys::by_seq(keys::FINDINGS_AT, seq),
            || Some(Vec::new()),
        )? {
            ids.push(id);
        }
        self.count_finding(e.clinic_id.as_str(), rule, |c| c.raised += 1)?;
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

    /// The groups an injection counts in, with the clinic's baseline first,
    /// then from the most specific to the broadest: signals are evaluated
    /// in this order, and a broader group whose events a more specific
    /// signal holds is explained by it (a contaminated multi-dose vial, not
    /// its whole lot; a lot, not the practitioners who used it).
    pub(super) fn groups_of(p: &InjectionGiven) -> Vec<(&'static str, String)> {
        let mut groups = vec![("clinic", "all".to_owned())];
        for c in &p.solution.components {
            if let Some(prolo_schemas::Vial {
                kind: prolo_schemas::VialKind::MultiDose,
                opened_at: Some(opened),
            }) = &c.vial
            {
                groups.push(("vial", format!("{} opened {}", c.lot, opened.date_naive())));
            }
        }
        if let Some(prep) = &p.preparation {
            groups.push((
                "preparation",
                format!("{} on {}", prep.prepared_by, prep.prepared_at.date_naive()),
            ));
        }
        for c in &p.solution.components {
            groups.push(("lot", c.lot.to_string()));
        }
        for c in &p.solution.components {
            groups.push(("solution", solution_label(c)));
        }
        groups.push(("site", p.site.site_key.as_str().to_owned()));
        groups.push(("practitioner", p.practitioner_id.to_string()));
        groups.push(("guidance", name(&p.guidance)));
        groups.dedup();
        debug_assert!(groups.iter().skip(1).all(|(d, _)| DIMENSIONS.contains(d)));
        groups
    }

    fn group(
        &mut self,
        clinic: &str,
        dimension: &str,
        group: &str,
    ) -> Result<&mut GroupCount, StoreError> {
        let key = keys::key(
            keys::GROUP,
            &[clinic.as_bytes(), dimension.as_bytes(), group.as_bytes()],
        );
        let entry = cached(&mut self.groups, self.store, key.clone(), || {
            Some(GroupCount::default())
        })?;
        match entry {
            Some(count) => Ok(count),
            None => Err(StoreError::Codec {
                key: String::from_utf8_lossy(&key).into_owned(),
                message: "group count missing".into(),
            }),
        }
    }

    /// The first day of the signals' rolling window, by the stream's clock at `e`.
    fn window_from(&self, e: &Envelope) -> i64 {
        self.settings
            .signal_criteria
            .window_from(day_of(ms(e.recorded_at)))
    }

    fn count_injection(&mut self, e: &Envelope, p: &InjectionGiven) -> Result<(), StoreError> {
        let (day, from) = (day_of(ms(e.occurred_at)), self.window_from(e));
        for (dimension, group) in Self::groups_of(p) {
            self.group(e.clinic_id.as_str(), dimension, &group)?
                .add_injection(day, 1, from);
        }
        Ok(())
    }

    /// Counts an adverse event of `kind` in the groups of the injection it
    /// follows, and raises a signal for any group in which that kind now
    /// stands out against the rest of the clinic.
    fn count_adverse_event(
        &mut self,
        seq: u64,
        e: &Envelope,
        linked: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let Payload::AdverseEventReported(report) = &e.payload else {
            return Ok(());
        };
        let kind = name(&report.kind);
        let clinic = e.clinic_id.as_str();
        let injections = self.patient_injections(e)?;
        let window = chrono::Duration::days(self.settings.attribution_window_days);
        let Some(policy::Attribution {
            injection,
            groups,
            inferred,
            day,
        }) = policy::attributed_injection(
            &injections,
            linked,
            ms(report.onset_at),
            window.num_milliseconds(),
        )
        else {
            // It names an injection of another patient or none in the
            // window: no group to count it in.
            return Ok(());
        };
        let counted = crate::model::Counted {
            kind: kind.clone(),
            groups: groups.clone(),
            injection,
            inferred,
            day,
        };
        let from = self.window_from(e);
        self.add_adverse_count(clinic, e.event_id, &counted, 1, from)?;
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &e.event_id);
        if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
            state.counted = Some(counted);
        }
        if self.settings.expected_kinds.contains(&kind) {
            return Ok(());
        }
        // Judged over the rolling window.
        let whole = self.group(clinic, "clinic", "all")?.clone();
        let criteria = self.settings.signal_criteria;
        // A group whose events are those of an active signal is explained
        // by it, not a signal, when that signal is of a more specific
        // dimension (a vial before its lot, a lot before the practitioners
        // who used it), or of the same one with more events, or as many and
        // a stronger disproportion (IC025): of two lots given to the same
        // patients, the one that holds the cluster more tightly.
        let rank = |dimension: &str| DIMENSIONS.iter().position(|d| *d == dimension);
        let explains = |(by, by_strength): (&str, (usize, f64)),
                        (of, of_strength): (&str, (usize, f64))| {
            rank(by) < rank(of) || (rank(by) == rank(of) && by_strength >= of_strength)
        };
        let strength = |events: &[Uuid], table: &Table| (events.len(), table.measures().ic025);
        let mut active = Vec::new();
        for (dimension, group) in self.active_signals(clinic, &kind)? {
            let count = self.group(clinic, &dimension, &group)?;
            let events = count.recent_events(&kind, from);
            let table = count.in_window_against_rest(&whole, &kind, from);
            let strength = strength(&events, &table);
            active.push(((dimension, group), events, strength));
        }
        for (dimension, group) in groups.into_iter().skip(1) {
            let count = self.group(clinic, &dimension, &group)?;
            let events = count.recent_events(&kind, from);
            let table = count.in_window_against_rest(&whole, &kind, from);
            if count.signalled.contains(&kind) {
                if !table.signals(&criteria) {
                    let reason = "no longer meets the criteria".to_owned();
                    let at = (dimension.as_str(), group.as_str());
                    self.clear_signal(seq, e, (clinic, at), &kind, table, reason)?;
                    active.retain(|((d, g), ..)| (d, g) != (&dimension, &group));
                }
                continue;
            }
            let explaining: Vec<Vec<Uuid>> = active
                .iter()
                .filter(|((d, _), _, by)| {
                    explains((d, *by), (&dimension, strength(&events, &table)))
                })
                .map(|(_, events, _)| events.clone())
                .collect();
            if !table.signals(&criteria)
                || policy::explained_by_signalled(&events, &explaining, criteria.events_min)
            {
                continue;
            }
            self.raise_signal(seq, e, (&dimension, &group), &kind, table)?;
            // Active signals of the same or a broader dimension whose
            // events this one explains clear.
            let explained: Vec<(String, String)> = active
                .iter()
                .filter(|((d, _), other, of)| {
                    explains((&dimension, strength(&events, &table)), (d, *of))
                        && policy::explained_by_signalled(
                            other,
                            std::slice::from_ref(&events),
                            criteria.events_min,
                        )
                })
                .map(|(at, ..)| at.clone())
                .collect();
            for (other_dimension, other_group) in explained {
                let other_table = self
                    .group(clinic, &other_dimension, &other_group)?
                    .in_window_against_rest(&whole, &kind, from);
                let reason = format!("explained by the signal of {dimension} {group}");
                let at = (other_dimension.as_str(), other_group.as_str());
                self.clear_signal(seq, e, (clinic, at), &kind, other_table, reason)?;
                active.retain(|((d, g), ..)| (d, g) != (&other_dimension, &other_group));
            }
            let strength = strength(&events, &table);
            active.push(((dimension, group), events, strength));
        }
        Ok(())
    }
}

impl Folder<'_> {
    /// Adds (`sign` 1) or takes away (-1) an adverse event counted as
    /// `counted`; the window starts on day `from`.
    fn add_adverse_count(
        &mut self,
        clinic: &str,
        event: Uuid,
        counted: &crate::model::Counted,
        sign: i8,
        from: i64,
    ) -> Result<(), StoreError> {
        for (dimension, group) in &counted.groups {
            self.group(clinic, dimension, group)?.add_event(
                &counted.kind,
                event,
                counted.day,
                sign,
                from,
            );
        }
        Ok(())
    }

    /// Moves an injection's counts from the groups it was counted in
    /// (`before`) to `after` (`None`: entered in error), and the adverse
    /// events that name it with it.
    /// `injection` is the injection and the day it was given.
    pub(super) fn recount_injection(
        &mut self,
        e: &Envelope,
        (injection, day): (Uuid, i64),
        before: &[(String, String)],
        after: Option<Vec<(String, String)>>,
        adverse_events: &[Uuid],
    ) -> Result<(), StoreError> {
        let clinic = e.clinic_id.as_str();
        let from = self.window_from(e);
        for (dimension, group) in before {
            self.group(clinic, dimension, group)?
                .add_injection(day, -1, from);
        }
        for (dimension, group) in after.iter().flatten() {
            self.group(clinic, dimension, group)?
                .add_injection(day, 1, from);
        }
        for id in adverse_events {
            let key = keys::by_uuid(keys::ADVERSE_EVENT, id);
            let Some(state) = cached(&mut self.adverse, self.store, key, || None)? else {
                continue;
            };
            let Some(counted) = state.counted.clone() else {
                continue;
            };
            if counted.injection != injection {
                continue;
            }
            let moved = after.clone().map(|groups| crate::model::Counted {
                groups,
                ..counted.clone()
            });
            self.recount_adverse_event(e, *id, &counted, moved)?;
        }
        Ok(())
    }

    /// Moves an adverse event's counts from `before` to `after` (`None`:
    /// counted nowhere: entered in error, or its injection was).
    pub(super) fn recount_adverse_event(
        &mut self,
        e: &Envelope,
        adverse_event: Uuid,
        before: &crate::model::Counted,
        after: Option<crate::model::Counted>,
    ) -> Result<(), StoreError> {
        let (clinic, from) = (e.clinic_id.as_str(), self.window_from(e));
        self.add_adverse_count(clinic, adverse_event, before, -1, from)?;
        if let Some(after) = &after {
            self.add_adverse_count(clinic, adverse_event, after, 1, from)?;
        }
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &adverse_event);
        if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
            state.counted = after;
        }
        Ok(())
    }

    /// The signal record of (`dimension`, `group`) for `kind`, loaded once per batch.
    fn signal_record(
        &mut self,
        clinic: &str,
        (dimension, group): (&str, &str),
        kind: &str,
    ) -> Result<Option<&mut Signal>, StoreError> {
        let key = keys::signal(clinic, dimension, group, kind);
        cached(&mut self.signals_raised, self.store, key, || None)
    }

    /// Raises (or raises again) the signal of `kind` in a group.
    fn raise_signal(
        &mut self,
        seq: u64,
        e: &Envelope,
        (dimension, group): (&str, &str),
        kind: &str,
        table: Table,
    ) -> Result<(), StoreError> {
        let clinic = e.clinic_id.as_str();
        self.group(clinic, dimension, group)?
            .signalled
            .insert(kind.to_owned());
        let transition = SignalTransition {
            state: "raised".into(),
            by: e.event_id,
            seq,
            reason: "meets the criteria".into(),
            table,
        };
        let signal = match self.signal_record(clinic, (dimension, group), kind)? {
            Some(signal) => {
                signal.table = table;
                signal.measures = table.measures();
                signal.raised_by = e.event_id;
                signal.raised_seq = seq;
                signal.active = true;
                signal.transitions.push(transition);
                signal.clone()
            }
            None => {
                let signal = Signal {
                    clinic_id: clinic.to_owned(),
                    dimension: dimension.to_owned(),
                    group: group.to_owned(),
                    kind: kind.to_owned(),
                    table,
                    measures: table.measures(),
                    raised_by: e.event_id,
                    raised_seq: seq,
                    active: true,
                    transitions: vec![transition],
                };
                self.signals_raised
                    .insert(keys::signal(clinic, dimension, group, kind), signal.clone());
                signal
            }
        };
        self.notifications.push(Notification {
            subject: format!("prolo.signal.{clinic}.raised"),
            payload: serde_json::to_vec(&signal).unwrap_or_default(),
        });
        Ok(())
    }

    /// Clears the active signal of `kind` in a clinic's group, saying why.
    fn clear_signal(
        &mut self,
        seq: u64,
        e: &Envelope,
        (clinic, (dimension, group)): (&str, (&str, &str)),
        kind: &str,
        table: Table,
        reason: String,
    ) -> Result<(), StoreError> {
        self.group(clinic, dimension, group)?.signalled.remove(kind);
        let Some(signal) = self.signal_record(clinic, (dimension, group), kind)? else {
            return Ok(());
        };
        signal.active = false;
        signal.table = table;
        signal.measures = table.measures();
        signal.transitions.push(SignalTransition {
            state: "cleared".into(),
            by: e.event_id,
            seq,
            reason,
            table,
        });
        let signal = signal.clone();
        self.notifications.push(Notification {
            subject: format!("prolo.signal.{clinic}.cleared"),
            payload: serde_json::to_vec(&signal).unwrap_or_default(),
        });
        Ok(())
    }

    /// Moves the signals' rolling window to the stream's clock at `e`: on
    /// the first event of a new day, every active signal (of any clinic)
    /// is judged over the new window and cleared if it no longer meets the
    /// criteria there.
    fn move_window(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        let today = day_of(ms(e.recorded_at));
        if self.signal_day.is_some_and(|day| day >= today) {
            return Ok(());
        }
        self.signal_day = Some(today);
        let criteria = self.settings.signal_criteria;
        let from = criteria.window_from(today);
        let mut active = std::collections::BTreeMap::new();
        for signal in self.store.signals_all()? {
            let key = keys::signal(
                &signal.clinic_id,
                &signal.dimension,
                &signal.group,
                &signal.kind,
            );
            active.insert(key, signal);
        }
        for (key, signal) in &self.signals_raised {
            active.insert(key.clone(), signal.clone());
        }
        for signal in active.into_values().filter(|s| s.active) {
            let clinic = signal.clinic_id.as_str();
            let whole = self.group(clinic, "clinic", "all")?.clone();
            let table = self
                .group(clinic, &signal.dimension, &signal.group)?
                .in_window_against_rest(&whole, &signal.kind, from);
            if !table.signals(&criteria) {
                let reason = format!(
                    "no longer meets the criteria in the {}-day window",
                    criteria.window_days
                );
                let group = (signal.dimension.as_str(), signal.group.as_str());
                self.clear_signal(seq, e, (clinic, group), &signal.kind, table, reason)?;
            }
        }
        Ok(())
    }

    /// The (dimension, group) of every active signal of `kind` in a clinic,
    /// as this batch left them.
    fn active_signals(
        &self,
        clinic: &str,
        kind: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut active = std::collections::BTreeMap::new();
        for signal in self.store.signals_raised(clinic)? {
            if signal.kind == kind {
                active.insert(
                    (signal.dimension.clone(), signal.group.clone()),
                    signal.active,
                );
            }
        }
        for signal in self.signals_raised.values() {
            if signal.clinic_id == clinic && signal.kind == kind {
                active.insert(
                    (signal.dimension.clone(), signal.group.clone()),
                    signal.active,
                );
            }
        }
        Ok(active
            .into_iter()
            .filter(|(_, is_active)| *is_active)
            .map(|(group, _)| group)
            .collect())
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
