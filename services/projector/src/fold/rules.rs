//! The policy rules and safety signals, applied as each event is folded.
//! See [`crate::findings`] for the rules themselves.

use chrono::Duration;
use prolo_schemas::{
    AdverseEventKind, Envelope, EventType, Guidance, InjectionGiven, Payload, RiskZone,
};
use uuid::Uuid;

use super::{Folder, Notification, cached, ms, name, solution_label};
use crate::{
    findings::{
        DIMENSIONS, Finding, GroupCount, OpenFinding, Rule, Signal, active_consents,
        credential_valid, signals,
    },
    keys,
    model::{PatientSummary, PractitionerSummary},
    store::StoreError,
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
        self.expire_awaiting(seq, e)?;
        let late = e.recorded_at - e.occurred_at;
        if late > Duration::hours(self.settings.late_documentation_hours) {
            let detail = format!(
                "{} recorded {} hours after it happened (limit {})",
                e.event_type(),
                late.num_hours(),
                self.settings.late_documentation_hours
            );
            self.raise(
                seq,
                Rule::LateDocumentation,
                &About {
                    event: e,
                    practitioner: None,
                    site_key: None,
                },
                vec![e.event_id],
                detail,
            )?;
        }
        match &e.payload {
            Payload::InjectionGiven(p) => self.injection_rules(seq, e, p)?,
            Payload::AdverseEventReported(p) => {
                self.link_rule(seq, e, p.linked_injection.as_ref().map(|l| l.event_id))?;
                let delay = e.recorded_at - p.onset_at;
                if p.serious && delay > Duration::hours(self.settings.serious_report_hours) {
                    let detail = format!(
                        "serious adverse event recorded {} hours after its onset (limit {})",
                        delay.num_hours(),
                        self.settings.serious_report_hours
                    );
                    self.raise(
                        seq,
                        Rule::SeriousEventReportedLate,
                        &About {
                            event: e,
                            practitioner: None,
                            site_key: None,
                        },
                        vec![e.event_id],
                        detail,
                    )?;
                }
                if matches!(
                    p.kind,
                    AdverseEventKind::Infection | AdverseEventKind::MisplacedInjection
                ) {
                    let deadline = ms(e.occurred_at)
                        + Duration::days(self.settings.adverse_event_update_days)
                            .num_milliseconds();
                    let awaiting = self.awaiting()?;
                    let at = awaiting.partition_point(|(d, _)| *d <= deadline);
                    awaiting.insert(at, (deadline, e.event_id));
                }
                if let Some(linked) = &p.linked_injection {
                    self.count_adverse_event(seq, e, linked.event_id)?;
                }
            }
            Payload::AdverseEventUpdated(p) => {
                self.awaiting()?.retain(|(_, id)| *id != p.adverse_event_id);
                let finding = Finding::id_for(Rule::NoAdverseEventUpdate, &p.adverse_event_id);
                self.resolve_where(seq, e, |f| f.id == finding)?;
            }
            Payload::ConsentGiven(_) => {
                // A consent recorded late may cover injections already flagged.
                let Some(summary) = self.patient_summary(e)? else {
                    return Ok(());
                };
                self.resolve_where(seq, e, |f| match f.rule {
                    Rule::NoActiveConsent => active_consents(&summary.consents, f.about_ms)
                        .next()
                        .is_some(),
                    Rule::SiteOutsideConsent => active_consents(&summary.consents, f.about_ms)
                        .any(|c| f.site_key.as_ref().is_some_and(|s| c.sites.contains(s))),
                    _ => false,
                })?;
            }
            Payload::ExaminationDone(_) | Payload::CandidacyAssessed(_) => {
                let Some(summary) = self.patient_summary(e)? else {
                    return Ok(());
                };
                self.resolve_where(seq, e, |f| {
                    f.rule == Rule::NoExaminationOrCandidacy
                        && examined_and_candidate(&summary, f.about_ms)
                })?;
            }
            Payload::ImagingRecorded(_) => {
                let Some(summary) = self.patient_summary(e)? else {
                    return Ok(());
                };
                self.resolve_where(seq, e, |f| {
                    f.rule == Rule::SeriesWithoutFollowUpImaging
                        && follow_up_imaged(&summary, f.about_ms)
                })?;
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
                                    f.rule == Rule::NoValidCredential
                                        && credential_valid(&summary.credentials, f.about_ms)
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
                    let Some(record) = self.pending.get::<crate::model::EventRecord>(
                        self.store,
                        &keys::by_seq(keys::EVENT, earlier),
                    )?
                    else {
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
        let at = ms(e.occurred_at);
        let site = p.site.site_key.as_str().to_owned();
        let about = |practitioner: Option<String>| About {
            event: e,
            practitioner,
            site_key: Some(site.clone()),
        };
        if let Some(summary) = self.patient_summary(e)? {
            let active: Vec<_> = active_consents(&summary.consents, at).collect();
            if active.is_empty() {
                self.raise(
                    seq,
                    Rule::NoActiveConsent,
                    &about(None),
                    vec![e.event_id],
                    "no consent was active at the injection".into(),
                )?;
            } else if !active.iter().any(|c| c.sites.contains(&site)) {
                let mut evidence = vec![e.event_id];
                evidence.extend(active.iter().map(|c| c.origin.event_id));
                let detail = format!("{site} is outside the scope of the active consents");
                self.raise(
                    seq,
                    Rule::SiteOutsideConsent,
                    &about(None),
                    evidence,
                    detail,
                )?;
            }
            if !examined_and_candidate(&summary, at) {
                self.raise(
                    seq,
                    Rule::NoExaminationOrCandidacy,
                    &about(None),
                    vec![e.event_id],
                    "no earlier examination and positive candidacy decision".into(),
                )?;
            }
            if p.session_number > self.settings.sessions_before_follow_up_imaging
                && !follow_up_imaged(&summary, at)
            {
                let detail = format!(
                    "session {} without follow-up imaging (required after session {})",
                    p.session_number, self.settings.sessions_before_follow_up_imaging
                );
                self.raise(
                    seq,
                    Rule::SeriesWithoutFollowUpImaging,
                    &about(None),
                    vec![e.event_id],
                    detail,
                )?;
            }
        }
        let practitioner = p.practitioner_id.as_str();
        let key = keys::practitioner(e.clinic_id.as_str(), practitioner);
        let credentials = cached(&mut self.practitioners, self.store, key, || None)?
            .map(|s| s.credentials.clone())
            .unwrap_or_default();
        if !credential_valid(&credentials, at) {
            let detail =
                format!("{practitioner} held no valid reconstructive-therapy credential that day");
            self.raise(
                seq,
                Rule::NoValidCredential,
                &about(Some(practitioner.to_owned())),
                vec![e.event_id],
                detail,
            )?;
        }
        let day = e.occurred_at.date_naive();
        for component in &p.solution.components {
            if component.lot_expiry < day {
                let detail = format!("lot {} expired on {}", component.lot, component.lot_expiry);
                self.raise(
                    seq,
                    Rule::ExpiredOrRecalledLot,
                    &about(None),
                    vec![e.event_id],
                    detail,
                )?;
            }
            let key = keys::key(keys::LOT_RECALLS, &[component.lot.as_str().as_bytes()]);
            // Only read: a lot never recalled gets no entry written.
            let recalls = cached(&mut self.lot_recalls, self.store, key, || None)?
                .cloned()
                .unwrap_or_default();
            if let Some((_, recall)) = recalls.iter().find(|(recalled_at, _)| *recalled_at <= at) {
                let detail = format!("lot {} had been recalled", component.lot);
                self.raise(
                    seq,
                    Rule::ExpiredOrRecalledLot,
                    &about(None),
                    vec![e.event_id, *recall],
                    detail,
                )?;
            }
        }
        if p.site.site_key.info().risk_zone != RiskZone::Peripheral
            && p.guidance == Guidance::Palpation
        {
            let detail = format!(
                "{site} ({} risk zone) injected with palpation guidance alone",
                name(&p.site.site_key.info().risk_zone)
            );
            self.raise(
                seq,
                Rule::AxialSiteByPalpationOnly,
                &about(Some(practitioner.to_owned())),
                vec![e.event_id],
                detail,
            )?;
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
        let problem = match self.event_by_id(&linked)? {
            None => Some(format!(
                "names injection {linked}, which is not in the trail"
            )),
            Some((_, injection)) if injection.event_type() != EventType::InjectionGiven => {
                Some(format!(
                    "names {linked}, which is a {} event, not an injection",
                    injection.event_type()
                ))
            }
            Some((_, injection))
                if injection.patient_id != e.patient_id || injection.clinic_id != e.clinic_id =>
            {
                Some(format!(
                    "names injection {linked}, which belongs to another patient"
                ))
            }
            Some(_) => None,
        };
        if let Some(detail) = problem {
            let about = About {
                event: e,
                practitioner: None,
                site_key: None,
            };
            self.raise(
                seq,
                Rule::AdverseEventLinkInvalid,
                &about,
                vec![e.event_id, linked],
                detail,
            )?;
        }
        Ok(())
    }

    /// Raises the no-update finding for every infection or misplaced
    /// injection whose deadline passed, by the stream's own clock (the
    /// recording time of the event being folded), so a rebuild agrees.
    fn expire_awaiting(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        let now = ms(e.recorded_at);
        let awaiting = self.awaiting()?;
        let due = awaiting.partition_point(|(deadline, _)| *deadline < now);
        let expired: Vec<(i64, Uuid)> = awaiting.drain(..due).collect();
        for (_, ae) in expired {
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

    fn awaiting(&mut self) -> Result<&mut Vec<(i64, Uuid)>, StoreError> {
        if self.awaiting.is_none() {
            self.awaiting = Some(self.store.get(keys::AWAITING_UPDATE)?.unwrap_or_default());
        }
        Ok(self.awaiting.get_or_insert_with(Vec::new))
    }

    fn patient_summary(&mut self, e: &Envelope) -> Result<Option<PatientSummary>, StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(None);
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        Ok(cached(&mut self.patients, self.store, key, || None)?.cloned())
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

    /// Resolves the patient's open findings that `satisfied` says the event satisfies.
    fn resolve_where(
        &mut self,
        seq: u64,
        e: &Envelope,
        satisfied: impl Fn(&OpenFinding) -> bool,
    ) -> Result<(), StoreError> {
        let Some(patient) = &e.patient_id else {
            return Ok(());
        };
        let key = keys::patient(e.clinic_id.as_str(), patient.as_str());
        let resolved: Vec<Uuid> = match cached(&mut self.patients, self.store, key, || None)? {
            Some(summary) => {
                let ids = summary
                    .open_findings
                    .iter()
                    .filter(|f| satisfied(f))
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
        self.notify(&finding, "resolved");
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

    /// The groups an injection counts in, with the clinic's baseline first.
    fn groups_of(p: &InjectionGiven) -> Vec<(&'static str, String)> {
        let mut groups = vec![("clinic", "all".to_owned())];
        for c in &p.solution.components {
            groups.push((DIMENSIONS[0], c.lot.to_string()));
            groups.push((DIMENSIONS[1], solution_label(c)));
        }
        groups.push((DIMENSIONS[2], p.site.site_key.as_str().to_owned()));
        groups.push((DIMENSIONS[3], p.practitioner_id.to_string()));
        groups.push((DIMENSIONS[4], name(&p.guidance)));
        groups.dedup();
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

    fn count_injection(&mut self, e: &Envelope, p: &InjectionGiven) -> Result<(), StoreError> {
        for (dimension, group) in Self::groups_of(p) {
            self.group(e.clinic_id.as_str(), dimension, &group)?
                .injections += 1;
        }
        Ok(())
    }

    /// Counts an adverse event in the groups of the injection it follows,
    /// and raises a signal for any group that now stands out.
    fn count_adverse_event(
        &mut self,
        seq: u64,
        e: &Envelope,
        injection: Uuid,
    ) -> Result<(), StoreError> {
        let Some((_, injection)) = self.event_by_id(&injection)? else {
            return Ok(());
        };
        let Payload::InjectionGiven(p) = &injection.payload else {
            return Ok(());
        };
        let clinic = e.clinic_id.as_str();
        let groups = Self::groups_of(p);
        for (dimension, group) in &groups {
            self.group(clinic, dimension, group)?.adverse_events += 1;
        }
        let baseline = *self.group(clinic, "clinic", "all")?;
        for (dimension, group) in groups.into_iter().skip(1) {
            let settings = self.settings.clone();
            let count = self.group(clinic, dimension, &group)?;
            if count.signalled || !signals(count, &baseline, &settings) {
                continue;
            }
            count.signalled = true;
            let signal = Signal {
                clinic_id: clinic.to_owned(),
                dimension: dimension.to_owned(),
                group: group.clone(),
                count: *count,
                baseline,
                raised_by: e.event_id,
                raised_seq: seq,
            };
            self.pending.put(
                keys::key(
                    keys::SIGNAL,
                    &[clinic.as_bytes(), dimension.as_bytes(), group.as_bytes()],
                ),
                &signal,
            )?;
            self.notifications.push(Notification {
                subject: format!("prolo.signal.{clinic}.raised"),
                payload: serde_json::to_vec(&signal).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

fn examined_and_candidate(summary: &PatientSummary, at_ms: i64) -> bool {
    let before = |t: &str, tag: Option<&str>| {
        summary.clinical.iter().any(|c| {
            c.origin.standing.counts()
                && c.event_type == t
                && c.origin.occurred_at_ms <= at_ms
                && tag.is_none_or(|tag| c.tag == tag)
        })
    };
    before("examination.done", None) && before("candidacy.assessed", Some("candidate"))
}

fn follow_up_imaged(summary: &PatientSummary, at_ms: i64) -> bool {
    summary.clinical.iter().any(|c| {
        c.origin.standing.counts()
            && c.event_type == "imaging.recorded"
            && c.tag == "follow_up"
            && c.origin.occurred_at_ms <= at_ms
    })
}

/// A reference that leaves its patient or clinic: the target, and why.
pub(super) struct OutsideReference {
    target: Uuid,
    reason: String,
}

impl Folder<'_> {
    /// Whether an update, correction or entered-in-error mark reaches
    /// outside its own patient and clinic, or at an access record, or at an
    /// event of another type than it declares. A target not (yet) in the
    /// trail is not judged here.
    pub(super) fn reference_outside(
        &self,
        e: &Envelope,
    ) -> Result<Option<OutsideReference>, StoreError> {
        let (target, declared) = match &e.payload {
            Payload::AdverseEventUpdated(p) => {
                (p.adverse_event_id, EventType::AdverseEventReported)
            }
            Payload::RecordCorrected(c) => (c.target.event_id, c.target.event_type),
            Payload::RecordEnteredInError(m) => (m.target.event_id, m.target.event_type),
            _ => return Ok(None),
        };
        let outside = |reason: String| Ok(Some(OutsideReference { target, reason }));
        if declared == EventType::AccessRecorded {
            return outside(format!(
                "{} names an access record ({target}); access records can never be corrected or voided",
                e.event_type()
            ));
        }
        let Some((_, original)) = self.event_by_id(&target)? else {
            return Ok(None);
        };
        let actual = original.event_type();
        if actual == EventType::AccessRecorded {
            return outside(format!(
                "{} targets the access record {target}; access records can never be corrected or voided",
                e.event_type()
            ));
        }
        if original.clinic_id != e.clinic_id {
            return outside(format!(
                "{} filed in clinic {} targets {target} of clinic {}",
                e.event_type(),
                e.clinic_id,
                original.clinic_id
            ));
        }
        if original.patient_id != e.patient_id {
            let who = |p: &Option<prolo_schemas::PatientId>| {
                p.as_ref()
                    .map_or_else(|| "no patient".to_owned(), |p| format!("patient {p}"))
            };
            return outside(format!(
                "{} filed for {} targets {target} of {}",
                e.event_type(),
                who(&e.patient_id),
                who(&original.patient_id)
            ));
        }
        if actual != declared {
            return outside(format!(
                "{} declares a {declared} target but {target} is a {actual}",
                e.event_type()
            ));
        }
        Ok(None)
    }

    /// Raises `reference_outside_patient` for an event that changed nothing.
    pub(super) fn reference_rule(
        &mut self,
        seq: u64,
        e: &Envelope,
        outside: OutsideReference,
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
        let off = (stamped - e.recorded_at).num_milliseconds();
        if off.abs() <= self.settings.recorded_at_tolerance_ms {
            return Ok(());
        }
        let detail = format!(
            "{} says recorded_at {} but JetStream stored it at {} ({:+.1} s); the stream's time is used",
            e.event_type(),
            stamped.to_rfc3339(),
            e.recorded_at.to_rfc3339(),
            off as f64 / 1000.0
        );
        self.raise(
            seq,
            Rule::RecordedAtMismatch,
            &About {
                event: e,
                practitioner: None,
                site_key: None,
            },
            vec![e.event_id],
            detail,
        )
    }
}
