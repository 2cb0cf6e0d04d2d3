//! The subject scheme, the public contract for subscribers:
//!
//! - `clinic.<clinic_id>.patient.<patient_id>.<event_type>`
//! - `clinic.<clinic_id>.practitioner.<practitioner_id>.<event_type>`
//! - `clinic.<clinic_id>.lot.<lot>.<event_type>`
//!
//! where `<event_type>` is dotted (`consent.given`). A subscriber takes one
//! patient with `clinic.*.patient.P.>`, one type with
//! `clinic.*.patient.*.adverse_event.>`, one clinic with `clinic.C.>`.

use std::{fmt, str::FromStr};

use crate::{
    ClinicId, ContractError, EntityKind, Envelope, EventType, LotNumber, PatientId, Payload,
    PractitionerId, PrincipalId, ProblemCode,
};

/// The first token of every event subject; the stream takes `clinic.>`.
pub const ROOT: &str = "clinic";

/// The entity an event is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A patient (pseudonymous id).
    Patient(PatientId),
    /// A practitioner.
    Practitioner(PractitionerId),
    /// A solution lot.
    Lot(LotNumber),
    /// A principal reading the trail.
    Principal(PrincipalId),
}

impl Entity {
    fn kind_token(&self) -> &'static str {
        match self {
            Entity::Patient(_) => "patient",
            Entity::Practitioner(_) => "practitioner",
            Entity::Lot(_) => "lot",
            Entity::Principal(_) => "principal",
        }
    }

    fn id(&self) -> &str {
        match self {
            Entity::Patient(id) => id.as_str(),
            Entity::Practitioner(id) => id.as_str(),
            Entity::Lot(id) => id.as_str(),
            Entity::Principal(id) => id.as_str(),
        }
    }
}

/// A parsed event subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The clinic.
    pub clinic_id: ClinicId,
    /// Patient, practitioner or lot.
    pub entity: Entity,
    /// The event type.
    pub event_type: EventType,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ROOT}.{}.{}.{}.{}",
            self.clinic_id,
            self.entity.kind_token(),
            self.entity.id(),
            self.event_type
        )
    }
}

/// Why a string is not an event subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subject {subject:?}: {reason}")]
pub struct SubjectError {
    /// The subject as given.
    pub subject: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Subject, SubjectError> {
        let fail = |reason: String| SubjectError {
            subject: s.to_owned(),
            reason,
        };
        let mut tokens = s.splitn(5, '.');
        let (Some(root), Some(clinic), Some(kind), Some(id), Some(event_type)) = (
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
        ) else {
            return Err(fail(
                "expected clinic.<clinic_id>.<patient|practitioner|lot>.<id>.<event_type>".into(),
            ));
        };
        if root != ROOT {
            return Err(fail(format!("does not start with {ROOT:?}")));
        }
        let clinic_id = clinic.parse().map_err(|e| fail(format!("{e}")))?;
        let entity = match kind {
            "patient" => Entity::Patient(id.parse().map_err(|e| fail(format!("{e}")))?),
            "practitioner" => Entity::Practitioner(id.parse().map_err(|e| fail(format!("{e}")))?),
            "lot" => Entity::Lot(id.parse().map_err(|e| fail(format!("{e}")))?),
            other => {
                return Err(fail(format!(
                    "{other:?} is not patient, practitioner or lot"
                )));
            }
        };
        let event_type: EventType = event_type
            .parse()
            .map_err(|_| fail(format!("{event_type:?} is not a known event type")))?;
        Ok(Subject {
            clinic_id,
            entity,
            event_type,
        })
    }
}

impl Envelope {
    /// The subject this event is published on. Fails only for an envelope
    /// that does not validate (the entity it belongs to is not named).
    pub fn subject(&self) -> Result<Subject, ContractError> {
        let missing = |path: &str, what: &str| {
            ContractError::single(
                Some(self.event_type().as_str().to_owned()),
                path,
                ProblemCode::MissingField,
                format!("is required: the event is filed under its {what}"),
            )
        };
        let target = match &self.payload {
            Payload::RecordCorrected(x) => Some(&x.target),
            Payload::RecordEnteredInError(x) => Some(&x.target),
            Payload::RecordSigned(x) => Some(&x.target),
            _ => None,
        };
        let kind = match target {
            Some(target) => target.event_type.entity_kind(),
            None => self.event_type().entity_kind(),
        };
        let entity = match kind {
            EntityKind::Patient | EntityKind::TargetOf => Entity::Patient(
                self.patient_id
                    .clone()
                    .ok_or_else(|| missing("patient_id", "patient"))?,
            ),
            EntityKind::Practitioner => {
                let id = match (&self.payload, target) {
                    (Payload::PractitionerCredentialed(x), _) => Some(x.practitioner_id.clone()),
                    (_, Some(t)) => t.practitioner_id.clone(),
                    _ => None,
                };
                Entity::Practitioner(
                    id.ok_or_else(|| missing("payload.practitioner_id", "practitioner"))?,
                )
            }
            EntityKind::Lot => {
                let lot = match (&self.payload, target) {
                    (Payload::LotRecalled(x), _) => Some(x.lot.clone()),
                    (_, Some(t)) => t.lot.clone(),
                    _ => None,
                };
                Entity::Lot(lot.ok_or_else(|| missing("payload.lot", "lot"))?)
            }
            EntityKind::Principal => match &self.payload {
                Payload::AccessRecorded(x) => Entity::Principal(x.principal_id.clone()),
                Payload::AccessRefused(x) => Entity::Principal(x.principal_id.clone()),
                _ => return Err(missing("payload.principal_id", "principal")),
            },
        };
        Ok(Subject {
            clinic_id: self.clinic_id.clone(),
            entity,
            event_type: self.event_type(),
        })
    }
}

/// A subscription filter: `None` is "any". Built from checked ids, so it can
/// only ever hold the wildcards it means to.
pub fn filter(
    clinic: Option<&ClinicId>,
    patient: Option<&PatientId>,
    event_type: Option<EventType>,
) -> String {
    let clinic = clinic.map_or("*", ClinicId::as_str);
    match (patient, event_type) {
        (None, None) => format!("{ROOT}.{clinic}.>"),
        (Some(p), None) => format!("{ROOT}.{clinic}.patient.{p}.>"),
        (p, Some(t)) => {
            let kind = match t.entity_kind() {
                EntityKind::Practitioner => "practitioner",
                EntityKind::Lot => "lot",
                EntityKind::Principal => "principal",
                EntityKind::Patient | EntityKind::TargetOf => "patient",
            };
            let id = p.map_or("*", PatientId::as_str);
            format!("{ROOT}.{clinic}.{kind}.{id}.{t}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_entity_kind() {
        for s in [
            "clinic.C1.patient.P-9.injection.given",
            "clinic.C1.practitioner.dr_a.practitioner.credentialed",
            "clinic.C1.lot.LOT-7.lot.recalled",
            "clinic.C1.patient.P-9.adverse_event.reported",
        ] {
            let subject: Subject = s.parse().unwrap();
            assert_eq!(subject.to_string(), s);
        }
    }

    #[test]
    fn refuses_malformed_subjects_with_a_reason() {
        for (s, reason) in [
            ("clinic.C1.patient.P9", "expected"),
            ("other.C1.patient.P9.consent.given", "does not start"),
            ("clinic.C1.doctor.P9.consent.given", "not patient"),
            (
                "clinic.C1.patient.P9.consent.taken",
                "not a known event type",
            ),
            ("clinic.*.patient.P9.consent.given", "only letters"),
            ("clinic.C1.patient.>.consent.given", "only letters"),
        ] {
            let err = s.parse::<Subject>().unwrap_err();
            assert!(err.to_string().contains(reason), "{s}: {err}");
        }
    }

    #[test]
    fn filters_use_wildcards_only_where_asked() {
        let c: ClinicId = "C1".parse().unwrap();
        let p: PatientId = "P9".parse().unwrap();
        assert_eq!(filter(None, None, None), "clinic.*.>");
        assert_eq!(filter(Some(&c), None, None), "clinic.C1.>");
        assert_eq!(filter(None, Some(&p), None), "clinic.*.patient.P9.>");
        assert_eq!(
            filter(None, None, Some(EventType::AdverseEventReported)),
            "clinic.*.patient.*.adverse_event.reported"
        );
        assert_eq!(
            filter(Some(&c), None, Some(EventType::LotRecalled)),
            "clinic.C1.lot.*.lot.recalled"
        );
    }
}
