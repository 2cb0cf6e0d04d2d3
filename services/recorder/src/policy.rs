//! Who may record what: the capacities (roles) in which an actor may
//! record each event type. Enforced on the actor as recorded: the proven
//! one when the service verifies identities ([`crate::identity`]), as
//! claimed otherwise. A request outside it is refused (403 `not_permitted`)
//! and nothing is stored.
//!
//! Facts are still recorded when they break clinical policy (an injection
//! without consent is a fact, and a finding); this table is about who may
//! state a fact at all.

use prolo_schemas::{ActorRole, EventType, Payload};

use ActorRole::{Clerk, Compliance, Nurse, Practitioner, Safety};

/// The roles that may record `event_type`.
pub fn roles_for(event_type: EventType) -> &'static [ActorRole] {
    match event_type {
        // The credentialing office (compliance) checks a credential
        // before it is recorded; nobody else may record one.
        EventType::PractitionerCredentialed => &[Compliance],
        // Clinical acts, by those who perform them.
        EventType::ExaminationDone
        | EventType::ImagingRecorded
        | EventType::CandidacyAssessed
        | EventType::TreatmentPlanned
        | EventType::InjectionGiven
        | EventType::AdjunctTherapyRecommended
        | EventType::SeriesCompleted => &[Practitioner],
        EventType::ConsentGiven
        | EventType::ScreeningDone
        | EventType::ProcedureTimeOut
        | EventType::ObservationCompleted
        | EventType::RecordSigned => &[Practitioner, Nurse],
        // A patient may withdraw consent or report an outcome to anyone,
        // the front desk included.
        EventType::ConsentWithdrawn | EventType::OutcomeReported => &[Practitioner, Nurse, Clerk],
        EventType::AdverseEventReported | EventType::AdverseEventUpdated => {
            &[Practitioner, Nurse, Safety]
        }
        EventType::LotRecalled => &[Safety, Compliance],
        // Corrections and voids: never a clerk; see [`may_correct`] for
        // the target's own rule.
        EventType::RecordCorrected | EventType::RecordEnteredInError => {
            &[Practitioner, Nurse, Safety, Compliance]
        }
        // Written by the services themselves (the audit API's reads and
        // refusals, the recording services' refusals), never through a command.
        EventType::AccessRecorded | EventType::AccessRefused => &[],
    }
}

/// The roles that may correct or void an event of `target`'s type: an
/// adverse event only in a clinical or safety role (voiding a lot's
/// infections silences its signal), a credential only by the credentialing
/// office, anything else by whoever may record such a correction.
pub fn may_correct(target: EventType) -> &'static [ActorRole] {
    match target {
        EventType::AdverseEventReported | EventType::AdverseEventUpdated => {
            &[Practitioner, Nurse, Safety]
        }
        EventType::PractitionerCredentialed => &[Compliance],
        _ => &[Practitioner, Nurse, Safety, Compliance],
    }
}

/// Why `role` may not record `payload`, when it may not.
pub fn refusal(role: ActorRole, payload: &Payload) -> Option<String> {
    let event_type = payload.event_type();
    let named = |roles: &[ActorRole]| {
        roles
            .iter()
            .map(prolo_schemas::names::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let role_name = prolo_schemas::names::name(&role);
    let allowed = roles_for(event_type);
    if !allowed.contains(&role) {
        return Some(format!(
            "a {role_name} may not record {event_type}; it is recorded by: {}",
            named(allowed)
        ));
    }
    let target = match payload {
        Payload::RecordCorrected(c) => c.target.event_type,
        Payload::RecordEnteredInError(m) => m.target.event_type,
        _ => return None,
    };
    let allowed = may_correct(target);
    (!allowed.contains(&role)).then(|| {
        format!(
            "a {role_name} may not correct or void a {target}; that takes: {}",
            named(allowed)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recordable_type_has_a_role_and_no_clerk_records_a_clinical_act_or_voids() {
        for &event_type in EventType::ALL {
            if crate::command_for(event_type).is_some() {
                assert!(!roles_for(event_type).is_empty(), "{event_type}");
            }
        }
        for event_type in [
            EventType::InjectionGiven,
            EventType::PractitionerCredentialed,
            EventType::RecordEnteredInError,
            EventType::RecordCorrected,
            EventType::AdverseEventReported,
        ] {
            assert!(!roles_for(event_type).contains(&Clerk), "{event_type}");
        }
        assert!(!may_correct(EventType::AdverseEventReported).contains(&Compliance));
    }
}
