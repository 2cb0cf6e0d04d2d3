//! An injection against consent, credentials, plan, lots and the
//! session's local anaesthetic.

use std::collections::BTreeMap;

use prolo_schemas::{CredentialKind, Envelope, Guidance, InjectionGiven, RiskZone};
use uuid::Uuid;

use super::{
    Draft, ms,
    standing::{
        active_consents, consent_covers, credential_valid, credential_valid_for,
        examined_and_candidate, follow_up_imaged, latest_candidacy, stands,
    },
};
use crate::{
    model::{ClinicalTag, ConsentEntry, CredentialEntry, PatientSummary, PlanEntry},
    rules::findings::{FindingSettings, Rule},
};

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
    let mut raise = |rule: Rule, evidence: Vec<Uuid>, detail: String| {
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
            practitioner: rule
                .concerns_practitioner()
                .then(|| practitioner.to_owned()),
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
            );
        } else {
            let active: Vec<_> = active.collect();
            if !active.iter().any(|c| consent_covers(&c.sites, &scope)) {
                raise(
                    Rule::SiteOutsideConsent,
                    under_consents(e, &active),
                    format!("{scope} is outside the scope of the active consents"),
                );
            }
        }
        let consented_agents: Vec<&String> = active_consents(&summary.consents, at)
            .flat_map(|c| &c.solutions)
            .collect();
        if !consented_agents.is_empty() {
            for component in &p.solution.components {
                let agent = prolo_schemas::names::name(&component.agent);
                if !consented_agents.contains(&&agent) {
                    raise(
                        Rule::AgentOutsideConsent,
                        vec![e.event_id],
                        format!("{agent} is not among the agents the active consents name"),
                    );
                }
            }
        }
        let active: Vec<&ConsentEntry> = active_consents(&summary.consents, at).collect();
        if p.session_number > 1 && !active.is_empty() && active.iter().all(|c| !c.series) {
            raise(
                Rule::SeriesUnderSingleSessionConsent,
                under_consents(e, &active),
                format!(
                    "session {} under consents for a single session",
                    p.session_number
                ),
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
            raise(
                Rule::RiskNotDisclosed,
                under_consents(e, &active),
                format!("{site} carries the risk of {risk}, which no active consent disclosed"),
            );
        }
        if let Some(decision) = latest_candidacy(summary, at)
            && decision.tag == (ClinicalTag::Candidacy { candidate: false })
        {
            raise(
                Rule::InjectionAfterNegativeCandidacy,
                vec![e.event_id, decision.origin.event_id],
                "the latest candidacy decision before the injection said not a candidate".into(),
            );
        }
        plan_findings(e, p, summary, &scope, settings, &mut raise);
        if let Some((share, evidence, detail)) = anaesthetic_above_maximum(e, p, summary) {
            raise(
                Rule::LocalAnaestheticAboveMaximum,
                evidence,
                format!("{detail}: {:.0}% of the maximum", share * 100.0),
            );
        }
        if !examined_and_candidate(summary, at) {
            raise(
                Rule::NoExaminationOrCandidacy,
                vec![e.event_id],
                "no earlier examination and positive candidacy decision".into(),
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
        let needed = prolo_schemas::names::name(&needed);
        let detail = format!("{practitioner} held no valid {needed} credential that day");
        raise(Rule::GuidanceWithoutCredential, vec![e.event_id], detail);
    }
    if !p.aseptic_preparation {
        raise(
            Rule::AsepsisNotDone,
            vec![e.event_id],
            "recorded without skin preparation, sterile gloves and a single-use needle".into(),
        );
    }
    if !credential_valid(context.credentials, at) {
        raise(
            Rule::NoValidCredential,
            vec![e.event_id],
            format!("{practitioner} held no valid reconstructive-therapy credential that day"),
        );
    }
    let day = e.occurred_at.date_naive();
    for (i, component) in p.solution.components.iter().enumerate() {
        if component.lot_expiry < day {
            raise(
                Rule::ExpiredOrRecalledLot,
                vec![e.event_id],
                format!("lot {} expired on {}", component.lot, component.lot_expiry),
            );
        }
        let recalls = context.recalls.get(i).copied().unwrap_or_default();
        if let Some((_, recall)) = recalls.iter().find(|(recalled_at, _)| *recalled_at <= at) {
            raise(
                Rule::ExpiredOrRecalledLot,
                vec![e.event_id, *recall],
                format!("lot {} had been recalled", component.lot),
            );
        }
    }
    let zone = p.site.site_key.info().risk_zone;
    if zone != RiskZone::Peripheral && p.guidance == Guidance::Palpation {
        let zone = prolo_schemas::names::name(&zone);
        let detail = format!("{site} ({zone} risk zone) injected with palpation guidance alone");
        raise(Rule::AxialSiteByPalpationOnly, vec![e.event_id], detail);
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

/// The injection and the consents it was given under: a consent
/// finding's evidence.
fn under_consents(e: &Envelope, consents: &[&ConsentEntry]) -> Vec<Uuid> {
    std::iter::once(e.event_id)
        .chain(consents.iter().map(|c| c.origin.event_id))
        .collect()
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
    raise: &mut impl FnMut(Rule, Vec<Uuid>, String),
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
        );
    }
    if !plan.solutions.is_empty() {
        for component in &p.solution.components {
            let agent = prolo_schemas::names::name(&component.agent);
            if !plan.solutions.contains(&agent) {
                raise(
                    Rule::OutsideTreatmentPlan,
                    evidence.clone(),
                    format!("{agent} is not among the plan's agents"),
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
                prolo_schemas::names::name(&c.agent),
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
        scope.push_str(&prolo_schemas::names::name(&side));
    }
    scope
}
