//! Links that must stay inside their patient and clinic.

use prolo_schemas::{Envelope, EventType, Payload};
use uuid::Uuid;

use super::Draft;
use crate::rules::findings::Rule;

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
