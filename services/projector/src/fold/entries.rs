//! The summary entries an event becomes.

use prolo_schemas::{Envelope, Payload, names::name};

use super::{Folder, origin};
use crate::model::*;

pub(super) fn plan_entry(origin: Origin, p: &prolo_schemas::TreatmentPlanned) -> PlanEntry {
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

pub(super) fn injection_entry(
    e: &Envelope,
    seq: u64,
    p: &prolo_schemas::InjectionGiven,
) -> InjectionEntry {
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

pub(super) fn credential_entry(
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
pub(super) fn clinical_entry(e: &Envelope, seq: u64) -> Option<ClinicalEntry> {
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
        Payload::ImagingRecorded(p) => ClinicalTag::Imaging(p.purpose),
        Payload::CandidacyAssessed(p) => ClinicalTag::Candidacy {
            candidate: p.candidate,
        },
        Payload::ScreeningDone(p) => ClinicalTag::Screening(p.decision),
        Payload::OutcomeReported(p) => ClinicalTag::Outcome(p.instrument),
        Payload::SeriesCompleted(p) => ClinicalTag::SeriesEnd(p.reason),
        _ => ClinicalTag::None,
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
