//! The policy: which findings an event raises and which open findings it
//! resolves. Pure functions of the read models and one event, with no store,
//! no broker, no clock: the fold loads what they need, asks, and writes what
//! they answer ([`crate::fold`]). A rule is tested here without sled or NATS.

use std::collections::BTreeMap;

use chrono::Duration;
use prolo_schemas::{
    AdverseEventReported, CredentialKind, Envelope, EventType, Guidance, InjectionGiven, Payload,
    RiskZone,
};
use uuid::Uuid;

use crate::{
    findings::{FindingSettings, OpenFinding, Rule},
    model::Standing,
    model::{ConsentEntry, CredentialEntry, Origin, PatientSummary, PlanEntry},
};

/// A finding the policy asks for, about the event being folded.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The rule broken.
    pub rule: Rule,
    /// The events that prove it; the first is the one it is about.
    pub evidence: Vec<Uuid>,
    /// What is wrong, in words.
    pub detail: String,
    /// The practitioner it concerns, when it concerns one.
    pub practitioner: Option<String>,
    /// The injection's site, for consent-scope findings.
    pub site_key: Option<String>,
}

impl Draft {
    fn about(rule: Rule, event: Uuid, detail: String) -> Draft {
        Draft {
            rule,
            evidence: vec![event],
            detail,
            practitioner: None,
            site_key: None,
        }
    }
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

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

/// What an injection is checked against: the patient's record (before this
/// injection), the practitioner's credentials, and each component's recalls.
pub struct InjectionContext<'a> {
    /// The patient's summary, if the patient has one.
    pub patient: Option<&'a PatientSummary>,
    /// The practitioner's credentials.
    pub credentials: &'a [CredentialEntry],
    /// For each solution component (in order), its lot's recalls:
    /// `(recalled at ms, recall event id)`.
    pub recalls: Vec<&'a [(i64, Uuid)]>,
}

/// The findings an injection raises: consent, examination and candidacy,
/// follow-up imaging, credential, lot expiry and recall, axial site by palpation.
pub fn injection_findings(
    e: &Envelope,
    p: &InjectionGiven,
    context: &InjectionContext<'_>,
    settings: &FindingSettings,
) -> Vec<Draft> {
    let at = ms(e.occurred_at);
    let site = p.site.site_key.as_str();
    let scope = site_scope(&p.site);
    let practitioner = p.practitioner_id.as_str();
    let mut drafts = Vec::new();
    let mut raise = |rule, evidence: Vec<Uuid>, detail: String, concerns: bool| {
        // Outside consent names the side too, so that only a consent
        // covering that side resolves it.
        let site_key = if rule == Rule::SiteOutsideConsent {
            scope.clone()
        } else {
            site.to_owned()
        };
        drafts.push(Draft {
            rule,
            evidence,
            detail,
            practitioner: concerns.then(|| practitioner.to_owned()),
            site_key: Some(site_key),
        });
    };
    if let Some(summary) = context.patient {
        let mut active = active_consents(&summary.consents, at).peekable();
        if active.peek().is_none() {
            raise(
                Rule::NoActiveConsent,
                vec![e.event_id],
                "no consent was active at the injection".into(),
                false,
            );
        } else {
            let active: Vec<_> = active.collect();
            if !active.iter().any(|c| consent_covers(&c.sites, &scope)) {
                let mut evidence = vec![e.event_id];
                evidence.extend(active.iter().map(|c| c.origin.event_id));
                raise(
                    Rule::SiteOutsideConsent,
                    evidence,
                    format!("{scope} is outside the scope of the active consents"),
                    false,
                );
            }
        }
        let consented_agents: Vec<&String> = active_consents(&summary.consents, at)
            .flat_map(|c| &c.solutions)
            .collect();
        if !consented_agents.is_empty() {
            for component in &p.solution.components {
                let agent = crate::names::name(&component.agent);
                if !consented_agents.contains(&&agent) {
                    raise(
                        Rule::AgentOutsideConsent,
                        vec![e.event_id],
                        format!("{agent} is not among the agents the active consents name"),
                        false,
                    );
                }
            }
        }
        let active: Vec<&ConsentEntry> = active_consents(&summary.consents, at).collect();
        if p.session_number > 1 && !active.is_empty() && active.iter().all(|c| !c.series) {
            let mut evidence = vec![e.event_id];
            evidence.extend(active.iter().map(|c| c.origin.event_id));
            raise(
                Rule::SeriesUnderSingleSessionConsent,
                evidence,
                format!(
                    "session {} under consents for a single session",
                    p.session_number
                ),
                false,
            );
        }
        let zone_risk = match p.site.site_key.info().risk_zone {
            RiskZone::Spinal => Some("dural_puncture"),
            RiskZone::Thoracic => Some("pneumothorax"),
            RiskZone::Cervical => Some("spinal_cord_injury"),
            RiskZone::Peripheral => None,
        };
        if let Some(risk) = zone_risk
            && !active.is_empty()
            && !active.iter().any(|c| c.risks.iter().any(|r| r == risk))
        {
            let mut evidence = vec![e.event_id];
            evidence.extend(active.iter().map(|c| c.origin.event_id));
            raise(
                Rule::RiskNotDisclosed,
                evidence,
                format!("{site} carries the risk of {risk}, which no active consent disclosed"),
                false,
            );
        }
        if let Some(decision) = latest_candidacy(summary, at)
            && decision.tag == "not_candidate"
        {
            raise(
                Rule::InjectionAfterNegativeCandidacy,
                vec![e.event_id, decision.origin.event_id],
                "the latest candidacy decision before the injection said not a candidate".into(),
                false,
            );
        }
        plan_findings(e, p, summary, &scope, settings, &mut raise);
        if let Some((share, evidence, detail)) = anaesthetic_above_maximum(e, p, summary) {
            raise(
                Rule::LocalAnaestheticAboveMaximum,
                evidence,
                format!("{detail}: {:.0}% of the maximum", share * 100.0),
                true,
            );
        }
        if !examined_and_candidate(summary, at) {
            raise(
                Rule::NoExaminationOrCandidacy,
                vec![e.event_id],
                "no earlier examination and positive candidacy decision".into(),
                false,
            );
        }
        if p.session_number > settings.sessions_before_follow_up_imaging
            && !follow_up_imaged(summary, at)
        {
            raise(
                Rule::SeriesWithoutFollowUpImaging,
                vec![e.event_id],
                format!(
                    "session {} without follow-up imaging (required after session {})",
                    p.session_number, settings.sessions_before_follow_up_imaging
                ),
                false,
            );
        }
    }
    let needed = match p.guidance {
        Guidance::Ultrasound => Some(CredentialKind::UltrasoundGuidance),
        Guidance::Fluoroscopy => Some(CredentialKind::FluoroscopyGuidance),
        Guidance::Palpation | Guidance::Ct => None,
    };
    if let Some(needed) = needed
        && !credential_valid_for(context.credentials, needed, at)
    {
        raise(
            Rule::GuidanceWithoutCredential,
            vec![e.event_id],
            format!(
                "{practitioner} held no valid {} credential that day",
                crate::names::name(&needed)
            ),
            true,
        );
    }
    if !p.aseptic_preparation {
        raise(
            Rule::AsepsisNotDone,
            vec![e.event_id],
            "recorded without skin preparation, sterile gloves and a single-use needle".into(),
            true,
        );
    }
    if !credential_valid(context.credentials, at) {
        raise(
            Rule::NoValidCredential,
            vec![e.event_id],
            format!("{practitioner} held no valid reconstructive-therapy credential that day"),
            true,
        );
    }
    let day = e.occurred_at.date_naive();
    for (i, component) in p.solution.components.iter().enumerate() {
        if component.lot_expiry < day {
            raise(
                Rule::ExpiredOrRecalledLot,
                vec![e.event_id],
                format!("lot {} expired on {}", component.lot, component.lot_expiry),
                false,
            );
        }
        let recalls = context.recalls.get(i).copied().unwrap_or_default();
        if let Some((_, recall)) = recalls.iter().find(|(recalled_at, _)| *recalled_at <= at) {
            raise(
                Rule::ExpiredOrRecalledLot,
                vec![e.event_id, *recall],
                format!("lot {} had been recalled", component.lot),
                false,
            );
        }
    }
    let zone = p.site.site_key.info().risk_zone;
    if zone != RiskZone::Peripheral && p.guidance == Guidance::Palpation {
        raise(
            Rule::AxialSiteByPalpationOnly,
            vec![e.event_id],
            format!(
                "{site} ({} risk zone) injected with palpation guidance alone",
                crate::names::name(&zone)
            ),
            true,
        );
    }
    drafts
}

/// The treatment plan an injection follows: the one it names, else the
/// patient's latest standing plan made before it.
fn plan_of<'s>(
    e: &Envelope,
    p: &InjectionGiven,
    summary: &'s PatientSummary,
) -> Option<&'s PlanEntry> {
    let mut standing = summary.plans.iter().filter(|plan| stands(&plan.origin));
    match p.treatment_plan_event_id {
        Some(id) => standing.find(|plan| plan.origin.event_id == id),
        None => standing.rfind(|plan| plan.origin.occurred_at_ms <= ms(e.occurred_at)),
    }
}

/// `outside_treatment_plan`, `sessions_beyond_plan` and
/// `interval_shorter_than_planned`, each with the injection and the plan
/// (and the previous session's injection) as evidence.
fn plan_findings(
    e: &Envelope,
    p: &InjectionGiven,
    summary: &PatientSummary,
    scope: &str,
    settings: &FindingSettings,
    raise: &mut impl FnMut(Rule, Vec<Uuid>, String, bool),
) {
    let Some(plan) = plan_of(e, p, summary) else {
        return;
    };
    let evidence = vec![e.event_id, plan.origin.event_id];
    if !consent_covers(&plan.sites, scope) {
        raise(
            Rule::OutsideTreatmentPlan,
            evidence.clone(),
            format!("{scope} is not among the plan's sites"),
            true,
        );
    }
    if !plan.solutions.is_empty() {
        for component in &p.solution.components {
            let agent = crate::names::name(&component.agent);
            if !plan.solutions.contains(&agent) {
                raise(
                    Rule::OutsideTreatmentPlan,
                    evidence.clone(),
                    format!("{agent} is not among the plan's agents"),
                    true,
                );
            }
        }
    }
    if p.session_number > plan.sessions_planned {
        raise(
            Rule::SessionsBeyondPlan,
            evidence.clone(),
            format!(
                "session {} of a plan for {}",
                p.session_number, plan.sessions_planned
            ),
            true,
        );
    }
    // The previous session: the latest standing injection of this plan
    // (or, with no plan named, of the patient) with a lower session number.
    // Only a session's first injection is judged (its other points are
    // the same visit).
    let at = ms(e.occurred_at);
    let earlier = summary
        .injections
        .iter()
        .filter(|i| stands(&i.origin) && i.origin.event_id != e.event_id)
        .filter(|i| i.origin.occurred_at_ms <= at)
        .filter(|i| p.treatment_plan_event_id.is_none() || i.plan == p.treatment_plan_event_id);
    let first_of_session = !earlier
        .clone()
        .any(|i| i.session_number == p.session_number);
    let previous = earlier
        .filter(|i| i.session_number < p.session_number)
        .max_by_key(|i| i.origin.occurred_at_ms);
    if let Some(previous) = previous.filter(|_| first_of_session) {
        let days = (at - previous.origin.occurred_at_ms) / 86_400_000;
        let shortest = i64::from(plan.interval_days) - settings.plan_interval_tolerance_days;
        if days < shortest {
            let mut evidence = evidence;
            evidence.push(previous.origin.event_id);
            raise(
                Rule::IntervalShorterThanPlanned,
                evidence,
                format!(
                    "session {} came {days} days after session {} (plan: every {} days, tolerance {})",
                    p.session_number,
                    previous.session_number,
                    plan.interval_days,
                    settings.plan_interval_tolerance_days
                ),
                true,
            );
        }
    }
}

/// Each local anaesthetic an injection carries and how much, mg: its final
/// concentration times the volume (1% w/v is 10 mg/mL).
pub fn anaesthetic_mg(p: &InjectionGiven) -> Vec<(String, f64)> {
    p.solution
        .components
        .iter()
        .filter(|c| c.agent.max_session_dose_mg().is_some())
        .filter_map(|c| {
            Some((
                crate::names::name(&c.agent),
                c.concentration_pct? * 10.0 * p.volume_ml,
            ))
        })
        .collect()
}

/// The maximum session dose of the agent named `agent`, mg.
fn max_session_dose_mg(agent: &str) -> Option<f64> {
    let value = serde_json::Value::String(agent.to_owned());
    serde_json::from_value::<prolo_schemas::Agent>(value)
        .ok()?
        .max_session_dose_mg()
}

/// The session's local anaesthetic, if this injection takes it above the
/// maximum while the session's earlier injections had not: its share of
/// the maximum (the sum over agents of mg / maximum mg), the evidence (this
/// injection, then the session's earlier ones) and the amounts in words.
/// A session is the patient's standing injections of the same session
/// number on the same day.
fn anaesthetic_above_maximum(
    e: &Envelope,
    p: &InjectionGiven,
    summary: &PatientSummary,
) -> Option<(f64, Vec<Uuid>, String)> {
    let share = |amounts: &[(String, f64)]| -> f64 {
        amounts
            .iter()
            .filter_map(|(agent, mg)| {
                let max = max_session_dose_mg(agent)?;
                Some(mg / max)
            })
            .sum()
    };
    let this = anaesthetic_mg(p);
    if this.is_empty() {
        return None;
    }
    let day = e.occurred_at.date_naive();
    let earlier: Vec<&crate::model::InjectionEntry> = summary
        .injections
        .iter()
        .filter(|i| stands(&i.origin) && i.origin.event_id != e.event_id)
        .filter(|i| i.session_number == p.session_number)
        .filter(|i| {
            chrono::DateTime::from_timestamp_millis(i.origin.occurred_at_ms)
                .is_some_and(|t| t.date_naive() == day)
        })
        .collect();
    let before: Vec<(String, f64)> = earlier
        .iter()
        .flat_map(|i| i.anaesthetic_mg.iter().cloned())
        .collect();
    let mut total = before.clone();
    total.extend(this);
    let (was, now) = (share(&before), share(&total));
    if now <= 1.0 || was > 1.0 {
        return None;
    }
    let mut by_agent: BTreeMap<&str, f64> = BTreeMap::new();
    for (agent, mg) in &total {
        *by_agent.entry(agent).or_default() += mg;
    }
    let amounts: Vec<String> = by_agent
        .iter()
        .map(|(agent, mg)| {
            let max = max_session_dose_mg(agent).unwrap_or(f64::NAN);
            format!("{agent} {mg:.0} mg (maximum {max:.0} mg)")
        })
        .collect();
    let mut evidence = vec![e.event_id];
    evidence.extend(earlier.iter().map(|i| i.origin.event_id));
    Some((
        now,
        evidence,
        format!("session {}: {}", p.session_number, amounts.join(", ")),
    ))
}

fn stands(origin: &Origin) -> bool {
    origin.standing.counts()
}

/// How a consent's site, or an injection's, is kept in the read model:
/// `KNEE_MCL` (a consent for either side), `KNEE_MCL:left`, and for a site
/// not on the list its SNOMED CT code, `OTHER/202882003:right`.
pub fn site_scope(site: &prolo_schemas::Site) -> String {
    let mut scope = site.site_key.as_str().to_owned();
    if let Some(code) = &site.snomed_code {
        scope.push('/');
        scope.push_str(code);
    }
    if let Some(side) = site.laterality {
        scope.push(':');
        scope.push_str(&crate::names::name(&side));
    }
    scope
}

/// Whether a consent's sites (as [`site_scope`]s) cover an injection at
/// `injected` (a [`site_scope`]): the same site on the same side, or a
/// consent for either side or both.
pub fn consent_covers(consented: &[String], injected: &str) -> bool {
    let (site, side) = injected.split_once(':').unwrap_or((injected, ""));
    consented.iter().any(|c| {
        c == injected
            || c == site
            || (!side.is_empty() && c.strip_suffix(":bilateral") == Some(site))
    })
}

/// The injection an adverse event is counted after.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The injection.
    pub injection: Uuid,
    /// Its signal groups, as it stands.
    pub groups: Vec<(String, String)>,
    /// Inferred (the adverse event named none).
    pub inferred: bool,
    /// The day it was given (see [`crate::findings::day_of`]).
    pub day: i64,
}

/// The injection an adverse event is counted after, its groups, and
/// whether that was inferred: the injection it names, among the patient's
/// injections as they now stand; or, when it names none, the patient's
/// latest injection at or before the onset and at most `window_ms` before
/// it. Injections entered in error count for nothing. `None` when there is
/// no such injection (or it names another patient's).
pub fn attributed_injection(
    injections: &[crate::model::InjectionEntry],
    linked: Option<Uuid>,
    onset_ms: i64,
    window_ms: i64,
) -> Option<Attribution> {
    let standing = |i: &&crate::model::InjectionEntry| {
        !matches!(i.origin.standing, Standing::EnteredInError { .. })
    };
    match linked {
        Some(id) => injections
            .iter()
            .filter(standing)
            .find(|i| i.origin.event_id == id)
            .map(|i| Attribution {
                injection: id,
                groups: i.groups.clone(),
                inferred: false,
                day: crate::findings::day_of(i.origin.occurred_at_ms),
            }),
        None => injections
            .iter()
            .filter(standing)
            .filter(|i| {
                i.origin.occurred_at_ms <= onset_ms
                    && onset_ms - i.origin.occurred_at_ms <= window_ms
            })
            .max_by_key(|i| i.origin.occurred_at_ms)
            .map(|i| Attribution {
                injection: i.origin.event_id,
                groups: i.groups.clone(),
                inferred: true,
                day: crate::findings::day_of(i.origin.occurred_at_ms),
            }),
    }
}

/// `consent_after_injection`: a consent that occurred after injections its
/// period covers (a back-dated `valid_from` does not make consent prior).
/// The injections are the patient's, as they stand.
pub fn consent_after_injection(
    e: &Envelope,
    consent: &ConsentEntry,
    injections: &[crate::model::InjectionEntry],
) -> Option<Draft> {
    let given = ms(e.occurred_at);
    let covered: Vec<Uuid> = injections
        .iter()
        .filter(|i| {
            i.origin.standing.counts()
                && i.origin.occurred_at_ms < given
                && consent.valid_from_ms <= i.origin.occurred_at_ms
                && consent
                    .valid_until_ms
                    .is_none_or(|until| i.origin.occurred_at_ms < until)
        })
        .map(|i| i.origin.event_id)
        .collect();
    if covered.is_empty() {
        return None;
    }
    let mut evidence = vec![e.event_id];
    evidence.extend(&covered);
    Some(Draft {
        rule: Rule::ConsentAfterInjection,
        evidence,
        detail: format!(
            "consent given after {} injection(s) its period covers (valid_from back-dated)",
            covered.len()
        ),
        practitioner: None,
        site_key: None,
    })
}

/// Whether a group's events of a kind (`events`) are explained by groups
/// already signalled for it (`signalled`, each with its events): fewer than
/// `events_min` of them lie outside every such group. The practitioner and
/// the site of a contaminated lot's patients share its infections; they are
/// not signals of their own.
pub fn explained_by_signalled(events: &[Uuid], signalled: &[Vec<Uuid>], events_min: u64) -> bool {
    if signalled.is_empty() {
        return false;
    }
    let unexplained = events
        .iter()
        .filter(|id| !signalled.iter().any(|s| s.contains(id)))
        .count();
    (unexplained as u64) < events_min
}

/// The consents active at `at_ms`: given, in their period, not withdrawn by then.
pub fn active_consents(
    consents: &[ConsentEntry],
    at_ms: i64,
) -> impl Iterator<Item = &ConsentEntry> {
    consents.iter().filter(move |c| {
        stands(&c.origin)
            && c.valid_from_ms <= at_ms
            && c.valid_until_ms.is_none_or(|until| at_ms < until)
            && c.withdrawn
                .is_none_or(|(withdrawn_at, _)| at_ms < withdrawn_at)
    })
}

/// Whether a reconstructive-therapy credential was valid on the day of `at_ms`.
pub fn credential_valid(credentials: &[CredentialEntry], at_ms: i64) -> bool {
    credential_valid_for(credentials, CredentialKind::ReconstructiveTherapy, at_ms)
}

/// Whether a credential of `kind` was valid on the (UTC) day of `at_ms`.
pub fn credential_valid_for(
    credentials: &[CredentialEntry],
    kind: CredentialKind,
    at_ms: i64,
) -> bool {
    let Some(day) =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at_ms).map(|t| t.date_naive())
    else {
        return false;
    };
    credentials.iter().any(|c| {
        stands(&c.origin)
            && c.credential == kind
            && c.valid_from <= day
            && c.valid_until.is_none_or(|until| day <= until)
    })
}

/// An adverse event must name an injection in the trail (`found`, if it
/// is there), of the same patient and clinic.
pub fn adverse_event_link(e: &Envelope, linked: Uuid, found: Option<&Envelope>) -> Option<Draft> {
    let detail = match found {
        None => format!("names injection {linked}, which is not in the trail"),
        Some(injection) if injection.event_type() != EventType::InjectionGiven => format!(
            "names {linked}, which is a {} event, not an injection",
            injection.event_type()
        ),
        Some(injection)
            if injection.patient_id != e.patient_id || injection.clinic_id != e.clinic_id =>
        {
            format!("names injection {linked}, which belongs to another patient")
        }
        Some(_) => return None,
    };
    Some(Draft {
        rule: Rule::AdverseEventLinkInvalid,
        evidence: vec![e.event_id, linked],
        detail,
        practitioner: None,
        site_key: None,
    })
}

/// A reference that leaves its patient or clinic: the target, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct OutsideReference {
    /// The event referred to.
    pub target: Uuid,
    /// Why the reference is refused.
    pub reason: String,
}

/// The event an update, correction or entered-in-error mark refers to.
pub fn reference_target(e: &Envelope) -> Option<Uuid> {
    match &e.payload {
        Payload::AdverseEventUpdated(p) => Some(p.adverse_event_id),
        Payload::RecordCorrected(c) => Some(c.target.event_id),
        Payload::RecordEnteredInError(m) => Some(m.target.event_id),
        _ => None,
    }
}

/// Whether an update, correction or entered-in-error mark reaches outside
/// its own patient and clinic, or at an access record, or at an event of
/// another type than it declares; `original` is its target as stored. A
/// target not (yet) in the trail is not judged here.
pub fn reference_outside(e: &Envelope, original: Option<&Envelope>) -> Option<OutsideReference> {
    let (target, declared) = match &e.payload {
        Payload::AdverseEventUpdated(p) => (p.adverse_event_id, EventType::AdverseEventReported),
        Payload::RecordCorrected(c) => (c.target.event_id, c.target.event_type),
        Payload::RecordEnteredInError(m) => (m.target.event_id, m.target.event_type),
        _ => return None,
    };
    let outside = |reason: String| Some(OutsideReference { target, reason });
    if declared == EventType::AccessRecorded {
        return outside(format!(
            "{} names an access record ({target}); access records can never be corrected or voided",
            e.event_type()
        ));
    }
    let original = original?;
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
    None
}

/// Whether an open finding about the patient is now satisfied by the
/// patient's record (after a consent, examination, candidacy decision or
/// imaging was folded into it).
pub fn patient_finding_resolved(summary: &PatientSummary, open: &OpenFinding) -> bool {
    match open.rule {
        Rule::NoActiveConsent => active_consents(&summary.consents, open.about_ms)
            .next()
            .is_some(),
        Rule::SiteOutsideConsent => active_consents(&summary.consents, open.about_ms).any(|c| {
            open.site_key
                .as_ref()
                .is_some_and(|s| consent_covers(&c.sites, s))
        }),
        Rule::NoExaminationOrCandidacy => examined_and_candidate(summary, open.about_ms),
        Rule::SeriesWithoutFollowUpImaging => follow_up_imaged(summary, open.about_ms),
        _ => false,
    }
}

/// Whether a credential finding is now satisfied by the practitioner's credentials.
pub fn credential_finding_resolved(credentials: &[CredentialEntry], open: &OpenFinding) -> bool {
    open.rule == Rule::NoValidCredential && credential_valid(credentials, open.about_ms)
}

/// An examination and a positive candidacy decision, both standing, before `at_ms`.
pub fn examined_and_candidate(summary: &PatientSummary, at_ms: i64) -> bool {
    let before = |t: EventType, tag: Option<&str>| {
        summary.clinical.iter().any(|c| {
            c.origin.standing.counts()
                && c.event_type == t
                && c.origin.occurred_at_ms <= at_ms
                && tag.is_none_or(|tag| c.tag == tag)
        })
    };
    before(EventType::ExaminationDone, None)
        && before(EventType::CandidacyAssessed, Some("candidate"))
}

/// The latest standing candidacy decision at or before `at_ms`.
pub fn latest_candidacy(
    summary: &PatientSummary,
    at_ms: i64,
) -> Option<&crate::model::ClinicalEntry> {
    summary
        .clinical
        .iter()
        .filter(|c| {
            c.origin.standing.counts()
                && c.event_type == EventType::CandidacyAssessed
                && c.origin.occurred_at_ms <= at_ms
        })
        .max_by_key(|c| (c.origin.occurred_at_ms, c.origin.seq))
}

/// Follow-up imaging, standing, before `at_ms`.
pub fn follow_up_imaged(summary: &PatientSummary, at_ms: i64) -> bool {
    summary.clinical.iter().any(|c| {
        c.origin.standing.counts()
            && c.event_type == EventType::ImagingRecorded
            && c.tag == "follow_up"
            && c.origin.occurred_at_ms <= at_ms
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{ClinicalEntry, ConsentEntry, Origin, Standing};

    use prolo_tests::example_envelope as example;

    fn injection() -> (Envelope, InjectionGiven) {
        let e = example("injection.given");
        let Payload::InjectionGiven(p) = e.payload.clone() else {
            unreachable!("the example is an injection")
        };
        (e, p)
    }

    fn origin(at_ms: i64) -> Origin {
        Origin {
            event_id: Uuid::now_v7(),
            seq: 1,
            occurred_at_ms: at_ms,
            recorded_at_ms: at_ms,
            standing: Standing::AsRecorded,
        }
    }

    fn entry(event_type: &str, tag: &str, at_ms: i64) -> ClinicalEntry {
        ClinicalEntry {
            origin: origin(at_ms),
            event_type: event_type.parse().expect("an event type"),
            summary: String::new(),
            tag: tag.into(),
        }
    }

    /// A patient consented for `sites`, examined and found a candidate, a day before `at`.
    fn prepared(at: i64, sites: &[&str]) -> PatientSummary {
        let day = 86_400_000;
        PatientSummary {
            consents: vec![ConsentEntry {
                origin: origin(at - day),
                valid_from_ms: at - day,
                valid_until_ms: Some(at + 90 * day),
                sites: sites.iter().map(|s| s.to_string()).collect(),
                solutions: vec!["dextrose".into(), "lidocaine".into()],
                series: true,
                risks: vec!["pain_flare".into(), "dural_puncture".into()],
                withdrawn: None,
            }],
            clinical: vec![
                entry("examination.done", "", at - day),
                entry("candidacy.assessed", "candidate", at - day),
            ],
            ..PatientSummary::default()
        }
    }

    fn credentialed() -> Vec<CredentialEntry> {
        credentialed_with(&[])
    }

    /// A reconstructive-therapy credential and the `others` named, all valid since 2020.
    fn credentialed_with(others: &[CredentialKind]) -> Vec<CredentialEntry> {
        [CredentialKind::ReconstructiveTherapy]
            .iter()
            .chain(others)
            .map(|kind| CredentialEntry {
                origin: origin(0),
                credential: *kind,
                valid_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
                valid_until: None,
            })
            .collect()
    }

    /// The findings of an injection by a credentialed practitioner.
    fn judged(
        e: &Envelope,
        p: &InjectionGiven,
        patient: &PatientSummary,
        recalls: Vec<&[(i64, Uuid)]>,
    ) -> Vec<Draft> {
        let credentials = credentialed();
        let context = InjectionContext {
            patient: Some(patient),
            credentials: &credentials,
            recalls,
        };
        injection_findings(e, p, &context, &FindingSettings::default())
    }

    fn rules(drafts: &[Draft]) -> Vec<Rule> {
        drafts.iter().map(|d| d.rule).collect()
    }

    #[test]
    fn a_prepared_injection_by_a_credentialed_practitioner_raises_nothing() {
        let (e, p) = injection();
        let at = e.occurred_at.timestamp_millis();
        let patient = prepared(at, &["KNEE_MCL"]);
        let drafts = judged(&e, &p, &patient, vec![&[], &[]]);
        assert_eq!(drafts, vec![]);
    }

    #[test]
    fn an_unprepared_injection_raises_consent_examination_and_credential_findings() {
        let (e, p) = injection();
        let patient = PatientSummary::default();
        let context = InjectionContext {
            patient: Some(&patient),
            credentials: &[],
            recalls: vec![],
        };
        let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
        assert_eq!(
            rules(&drafts),
            [
                Rule::NoActiveConsent,
                Rule::NoExaminationOrCandidacy,
                Rule::NoValidCredential
            ]
        );
        let credential = &drafts[2];
        assert_eq!(credential.practitioner.as_deref(), Some("dr-hale"));
        assert_eq!(credential.evidence, [e.event_id]);
        assert_eq!(drafts[0].site_key.as_deref(), Some("KNEE_MCL"));
    }

    #[test]
    fn a_site_outside_the_consent_names_the_consents_in_evidence() {
        let (e, p) = injection();
        let at = e.occurred_at.timestamp_millis();
        let patient = prepared(at, &["KNEE_LCL"]);
        let drafts = judged(&e, &p, &patient, vec![]);
        assert_eq!(rules(&drafts), [Rule::SiteOutsideConsent]);
        assert_eq!(
            drafts[0].evidence,
            [e.event_id, patient.consents[0].origin.event_id]
        );
    }

    #[test]
    fn a_lot_recalled_before_the_injection_is_found_and_one_recalled_after_is_not() {
        let (e, p) = injection();
        let at = e.occurred_at.timestamp_millis();
        let patient = prepared(at, &["KNEE_MCL"]);
        let (before, after) = ([(at - 1, Uuid::now_v7())], [(at + 1, Uuid::now_v7())]);
        let drafts = judged(&e, &p, &patient, vec![&after, &before]);
        assert_eq!(rules(&drafts), [Rule::ExpiredOrRecalledLot]);
        assert_eq!(drafts[0].evidence, [e.event_id, before[0].1]);
        assert!(
            drafts[0].detail.contains("LID1-88A"),
            "{}",
            drafts[0].detail
        );
    }

    #[test]
    fn an_axial_site_by_palpation_alone_concerns_the_practitioner() {
        let (e, mut p) = injection();
        p.site.site_key = prolo_schemas::SiteKey::LUMBAR_INTERSPINOUS_LIG;
        p.site.laterality = None;
        let at = e.occurred_at.timestamp_millis();
        let patient = prepared(at, &["LUMBAR_INTERSPINOUS_LIG"]);
        let drafts = judged(&e, &p, &patient, vec![]);
        assert_eq!(rules(&drafts), [Rule::AxialSiteByPalpationOnly]);
        assert_eq!(drafts[0].practitioner.as_deref(), Some("dr-hale"));
    }

    #[test]
    fn a_late_consent_resolves_the_no_consent_finding_it_covers() {
        let (e, _) = injection();
        let at = e.occurred_at.timestamp_millis();
        let open = OpenFinding {
            id: Uuid::now_v7(),
            rule: Rule::NoActiveConsent,
            about_ms: at,
            site_key: Some("KNEE_MCL".into()),
        };
        assert!(!patient_finding_resolved(&PatientSummary::default(), &open));
        assert!(patient_finding_resolved(
            &prepared(at, &["KNEE_MCL"]),
            &open
        ));
        let outside = OpenFinding {
            rule: Rule::SiteOutsideConsent,
            ..open
        };
        assert!(!patient_finding_resolved(&prepared(at, &["HIP"]), &outside));
    }

    #[test]
    fn standing_matters_for_consents() {
        let origin = Origin {
            event_id: Uuid::nil(),
            seq: 1,
            occurred_at_ms: 0,
            recorded_at_ms: 0,
            standing: Standing::EnteredInError { by_seq: 2 },
        };
        let consent = ConsentEntry {
            origin,
            valid_from_ms: 0,
            valid_until_ms: None,
            sites: vec![],
            solutions: vec![],
            series: false,
            risks: vec![],
            withdrawn: None,
        };
        assert_eq!(
            active_consents(std::slice::from_ref(&consent), 5).count(),
            0
        );
    }

    #[test]
    fn an_adverse_event_must_name_an_injection_of_its_own_patient() {
        let report = example("adverse_event.reported");
        let (injection, _) = injection();
        let linked = injection.event_id;
        assert_eq!(adverse_event_link(&report, linked, Some(&injection)), None);
        let missing = adverse_event_link(&report, linked, None).unwrap();
        assert_eq!(missing.rule, Rule::AdverseEventLinkInvalid);
        assert_eq!(missing.evidence, [report.event_id, linked]);
        assert!(missing.detail.contains("not in the trail"));
        let mut someone_else = injection.clone();
        someone_else.patient_id = Some("P-9999".parse().unwrap());
        let other = adverse_event_link(&report, linked, Some(&someone_else)).unwrap();
        assert!(other.detail.contains("another patient"), "{}", other.detail);
        let consent = example("consent.given");
        let wrong_type = adverse_event_link(&report, consent.event_id, Some(&consent)).unwrap();
        assert!(wrong_type.detail.contains("not an injection"));
    }

    #[test]
    fn a_correction_may_not_reach_another_patients_record() {
        let correction = example("record.corrected");
        let (injection, _) = injection();
        assert_eq!(reference_target(&correction), Some(injection.event_id));
        assert_eq!(reference_outside(&correction, Some(&injection)), None);
        assert_eq!(reference_outside(&correction, None), None, "not judged yet");
        let mut someone_else = injection.clone();
        someone_else.patient_id = Some("P-9999".parse().unwrap());
        let outside = reference_outside(&correction, Some(&someone_else)).unwrap();
        assert_eq!(outside.target, injection.event_id);
        assert!(
            outside.reason.contains("patient P-9999"),
            "{}",
            outside.reason
        );
        assert_eq!(reference_target(&injection), None);
    }

    #[test]
    fn documentation_is_late_after_the_configured_hours() {
        let (mut e, _) = injection();
        let settings = FindingSettings::default();
        e.recorded_at = e.occurred_at + Duration::hours(settings.late_documentation_hours);
        assert_eq!(late_documentation(&e, &settings), None);
        e.recorded_at += Duration::minutes(1);
        let draft = late_documentation(&e, &settings).unwrap();
        assert_eq!(draft.rule, Rule::LateDocumentation);
    }

    #[test]
    fn a_recorded_at_within_the_tolerance_of_the_stream_is_accepted() {
        let (e, _) = injection();
        let settings = FindingSettings::default();
        let tolerance = Duration::milliseconds(settings.recorded_at_tolerance_ms);
        assert_eq!(
            recorded_at_mismatch(&e, e.recorded_at + tolerance, &settings),
            None
        );
        assert!(recorded_at_mismatch(&e, e.recorded_at - tolerance * 2, &settings).is_some());
    }

    #[test]
    fn a_consent_covers_the_side_it_names_either_side_or_both() {
        let either = vec!["KNEE_MCL".to_owned()];
        let left = vec!["KNEE_MCL:left".to_owned()];
        let both = vec!["KNEE_MCL:bilateral".to_owned()];
        assert!(consent_covers(&either, "KNEE_MCL:right"));
        assert!(consent_covers(&left, "KNEE_MCL:left"));
        assert!(!consent_covers(&left, "KNEE_MCL:right"));
        assert!(consent_covers(&both, "KNEE_MCL:right"));
        assert!(!consent_covers(&either, "KNEE_LCL:right"));
        let site = prolo_schemas::Site {
            site_key: prolo_schemas::SiteKey::OTHER,
            laterality: Some(prolo_schemas::Laterality::Left),
            snomed_code: Some("1627004".into()),
            description: Some("MCL remnant".into()),
        };
        assert_eq!(site_scope(&site), "OTHER/1627004:left");
        assert!(!consent_covers(
            &["OTHER/5580002".to_owned()],
            &site_scope(&site)
        ));
    }

    #[test]
    fn a_groups_events_are_explained_by_a_signalled_group_that_holds_them() {
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let lot = vec![ids[0], ids[1], ids[2], ids[3]];
        // The practitioner's infections are the lot's, plus one: explained.
        assert!(explained_by_signalled(
            &[ids[0], ids[1], ids[2], ids[4]],
            std::slice::from_ref(&lot),
            3
        ));
        // Nothing signalled yet: nothing is explained.
        assert!(!explained_by_signalled(&ids[..4], &[], 3));
        // Three of its own: a signal in its own right.
        let others: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        assert!(!explained_by_signalled(&others, &[lot], 3));
    }

    #[test]
    fn an_adverse_event_naming_no_injection_is_attributed_to_the_latest_before_its_onset() {
        let day = 86_400_000;
        let entry = |at: i64, lot: &str, standing: Standing| crate::model::InjectionEntry {
            origin: crate::model::Origin {
                event_id: Uuid::now_v7(),
                seq: 1,
                occurred_at_ms: at,
                recorded_at_ms: at,
                standing,
            },
            site_key: "KNEE_MCL".into(),
            laterality: None,
            lots: vec![lot.into()],
            practitioner_id: "dr-hale".into(),
            session_number: 1,
            guidance: Guidance::Palpation,
            volume_ml: 2.0,
            groups: vec![("lot".into(), lot.into())],
            plan: None,
            anaesthetic_mg: vec![],
        };
        let injections = vec![
            entry(0, "A", Standing::AsRecorded),
            entry(10 * day, "B", Standing::AsRecorded),
            entry(12 * day, "C", Standing::EnteredInError { by_seq: 9 }),
            entry(20 * day, "D", Standing::AsRecorded),
        ];
        let window = 30 * day;
        // Onset on day 15: B (C was entered in error, D came after).
        let found = attributed_injection(&injections, None, 15 * day, window).unwrap();
        assert_eq!(
            (found.injection, found.inferred),
            (injections[1].origin.event_id, true)
        );
        assert_eq!(found.groups, vec![("lot".to_owned(), "B".to_owned())]);
        // Onset 45 days after the last injection: outside the window.
        assert!(attributed_injection(&injections, None, 65 * day, window).is_none());
        // A named injection is used as it stands, not inferred.
        let named = injections[0].origin.event_id;
        assert_eq!(
            attributed_injection(&injections, Some(named), 15 * day, window)
                .map(|a| (a.injection, a.inferred)),
            Some((named, false))
        );
        // One entered in error counts for nothing.
        let voided = injections[2].origin.event_id;
        assert!(attributed_injection(&injections, Some(voided), 15 * day, window).is_none());
    }

    #[test]
    fn agents_guidance_asepsis_and_a_negative_candidacy_each_raise_their_rule() {
        let (e, mut p) = injection();
        let at = e.occurred_at.timestamp_millis();
        let mut patient = prepared(at, &["KNEE_MCL"]);
        // Bupivacaine is not among the consented agents (dextrose, lidocaine).
        p.solution.components[1].agent = prolo_schemas::Agent::Bupivacaine;
        p.solution.components[1].concentration_pct = Some(0.25);
        // Ultrasound guidance without that credential; no aseptic preparation.
        p.guidance = Guidance::Ultrasound;
        p.aseptic_preparation = false;
        // A later candidacy decision said no.
        patient
            .clinical
            .push(entry("candidacy.assessed", "not_candidate", at - 1000));
        let drafts = judged(&e, &p, &patient, vec![&[], &[]]);
        assert_eq!(
            rules(&drafts),
            [
                Rule::AgentOutsideConsent,
                Rule::InjectionAfterNegativeCandidacy,
                Rule::GuidanceWithoutCredential,
                Rule::AsepsisNotDone,
            ]
        );
        assert!(
            drafts[0].detail.contains("bupivacaine"),
            "{}",
            drafts[0].detail
        );
        assert_eq!(
            drafts[1].evidence.len(),
            2,
            "the injection and the decision"
        );
        assert_eq!(drafts[2].practitioner.as_deref(), Some("dr-hale"));

        // With the ultrasound credential, guidance raises nothing.
        let credentials = credentialed_with(&[CredentialKind::UltrasoundGuidance]);
        let context = InjectionContext {
            patient: Some(&patient),
            credentials: &credentials,
            recalls: vec![&[], &[]],
        };
        let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
        assert!(!rules(&drafts).contains(&Rule::GuidanceWithoutCredential));
    }

    #[test]
    fn consent_scope_rules_single_session_undisclosed_risk_and_consent_after_the_fact() {
        let (e, mut p) = injection();
        let at = e.occurred_at.timestamp_millis();
        let mut patient = prepared(at, &["LUMBAR_INTERSPINOUS_LIG"]);
        patient.consents[0].series = false;
        patient.consents[0].risks = vec!["pain_flare".into()];
        p.site = prolo_schemas::Site::listed(prolo_schemas::SiteKey::LUMBAR_INTERSPINOUS_LIG, None);
        p.guidance = Guidance::Fluoroscopy;
        p.session_number = 2;
        let credentials = credentialed_with(&[CredentialKind::FluoroscopyGuidance]);
        let context = InjectionContext {
            patient: Some(&patient),
            credentials: &credentials,
            recalls: vec![&[], &[]],
        };
        let drafts = injection_findings(&e, &p, &context, &FindingSettings::default());
        assert_eq!(
            rules(&drafts),
            [
                Rule::SeriesUnderSingleSessionConsent,
                Rule::RiskNotDisclosed
            ]
        );
        assert!(
            drafts[1].detail.contains("dural_puncture"),
            "{}",
            drafts[1].detail
        );

        // A consent given a week after an injection its back-dated period covers.
        let day = 86_400_000;
        let injection_entry = crate::model::InjectionEntry {
            origin: origin(at),
            site_key: "KNEE_MCL".into(),
            laterality: None,
            lots: vec![],
            practitioner_id: "dr-hale".into(),
            session_number: 1,
            guidance: Guidance::Palpation,
            volume_ml: 2.0,
            groups: vec![],
            plan: None,
            anaesthetic_mg: vec![],
        };
        let mut consent_event = e.clone();
        consent_event.occurred_at += chrono::Duration::days(7);
        let back_dated = ConsentEntry {
            valid_from_ms: at - day,
            ..patient.consents[0].clone()
        };
        let draft = consent_after_injection(
            &consent_event,
            &back_dated,
            std::slice::from_ref(&injection_entry),
        )
        .unwrap();
        assert_eq!(draft.rule, Rule::ConsentAfterInjection);
        assert_eq!(
            draft.evidence,
            [consent_event.event_id, injection_entry.origin.event_id]
        );
        // Given before the injection: nothing.
        let mut earlier = e.clone();
        earlier.occurred_at -= chrono::Duration::days(2);
        assert!(consent_after_injection(&earlier, &back_dated, &[injection_entry]).is_none());
    }

    #[test]
    fn a_declared_back_fill_is_not_late_documentation() {
        let (mut e, _) = injection();
        e.recorded_at = e.occurred_at + chrono::Duration::days(90);
        let settings = FindingSettings::default();
        assert!(late_documentation(&e, &settings).is_some());
        e.source = prolo_schemas::BACKFILL_SOURCE.to_owned();
        assert!(late_documentation(&e, &settings).is_none());
    }
}
