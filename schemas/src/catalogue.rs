//! The event catalogue: every event type, its payload type, its current
//! schema version and the entity its subject is filed under, in one table.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{ContractError, ProblemCode, error::problem_from_serde, payload::*};

/// The kind of entity an event is filed under in its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// `clinic.<c>.patient.<patient_id>.<type>`
    Patient,
    /// `clinic.<c>.practitioner.<practitioner_id>.<type>`
    Practitioner,
    /// `clinic.<c>.lot.<lot>.<type>`
    Lot,
    /// A correction: filed under the entity of the event it corrects.
    TargetOf,
    /// `clinic.<c>.principal.<principal_id>.<type>`: reads of the trail.
    Principal,
}

macro_rules! catalogue {
    ($($variant:ident => $name:literal, $payload:ident, v $version:literal, $entity:ident;)*) => {
        /// Every event type, by its dotted name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum EventType {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl EventType {
            /// Every event type, in catalogue order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The dotted name, as in subjects and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The schema version this code writes. Older versions are upcast on read.
            pub fn current_version(self) -> u32 {
                match self {
                    $(EventType::$variant => $version,)*
                }
            }

            /// The entity whose subject the event is filed under.
            pub fn entity_kind(self) -> EntityKind {
                match self {
                    $(EventType::$variant => EntityKind::$entity,)*
                }
            }

            /// The JSON Schema of this type's payload.
            pub(crate) fn payload_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self {
                    $(EventType::$variant => generator.subschema_for::<$payload>(),)*
                }
            }
        }

        impl FromStr for EventType {
            type Err = ContractError;
            fn from_str(s: &str) -> Result<Self, ContractError> {
                match s {
                    $($name => Ok(EventType::$variant),)*
                    other => Err(ContractError::single(
                        None,
                        "event_type",
                        ProblemCode::UnknownEventType,
                        format!("{other:?} is not a known event type"),
                    )),
                }
            }
        }

        /// The payload of an event, one variant per event type.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Payload {
            $($variant($payload),)*
        }

        impl Payload {
            /// The event type this payload belongs to.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Payload::$variant(_) => EventType::$variant,)*
                }
            }

            /// Reads a payload of `event_type` (current schema version) from JSON,
            /// naming the field of the first shape problem (`payload.<path>`).
            pub fn from_value(event_type: EventType, value: serde_json::Value) -> Result<Payload, ContractError> {
                match event_type {
                    $(EventType::$variant => serde_path_to_error::deserialize(value)
                        .map(Payload::$variant)
                        .map_err(|err| shape_error(event_type, err)),)*
                }
            }

            /// Like [`Payload::from_value`] from JSON text, without building a
            /// `serde_json::Value` first: the path of a problem is tracked
            /// only when there is one (the fold reads every event this way).
            pub fn from_json(event_type: EventType, json: &str) -> Result<Payload, ContractError> {
                fn typed<T: serde::de::DeserializeOwned>(event_type: EventType, json: &str) -> Result<T, ContractError> {
                    serde_json::from_str(json).or_else(|_| {
                        let mut de = serde_json::Deserializer::from_str(json);
                        serde_path_to_error::deserialize(&mut de).map_err(|err| shape_error(event_type, err))
                    })
                }
                match event_type {
                    $(EventType::$variant => typed(event_type, json).map(Payload::$variant),)*
                }
            }
        }

        impl Serialize for Payload {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Payload::$variant(p) => p.serialize(serializer),)*
                }
            }
        }

        $(
            impl From<$payload> for Payload {
                fn from(p: $payload) -> Payload {
                    Payload::$variant(p)
                }
            }
        )*
    };
}

catalogue! {
    PractitionerCredentialed => "practitioner.credentialed", PractitionerCredentialed, v 1, Practitioner;
    ConsentGiven => "consent.given", ConsentGiven, v 2, Patient;
    ConsentWithdrawn => "consent.withdrawn", ConsentWithdrawn, v 1, Patient;
    ExaminationDone => "examination.done", ExaminationDone, v 2, Patient;
    ImagingRecorded => "imaging.recorded", ImagingRecorded, v 1, Patient;
    CandidacyAssessed => "candidacy.assessed", CandidacyAssessed, v 1, Patient;
    TreatmentPlanned => "treatment.planned", TreatmentPlanned, v 2, Patient;
    InjectionGiven => "injection.given", InjectionGiven, v 3, Patient;
    AdverseEventReported => "adverse_event.reported", AdverseEventReported, v 2, Patient;
    AdverseEventUpdated => "adverse_event.updated", AdverseEventUpdated, v 2, Patient;
    LotRecalled => "lot.recalled", LotRecalled, v 1, Lot;
    AdjunctTherapyRecommended => "adjunct_therapy.recommended", AdjunctTherapyRecommended, v 1, Patient;
    RecordCorrected => "record.corrected", RecordCorrected, v 1, TargetOf;
    RecordEnteredInError => "record.entered_in_error", RecordEnteredInError, v 1, TargetOf;
    ScreeningDone => "screening.done", ScreeningDone, v 1, Patient;
    ProcedureTimeOut => "procedure.time_out", ProcedureTimeOut, v 1, Patient;
    ObservationCompleted => "observation.completed", ObservationCompleted, v 1, Patient;
    OutcomeReported => "outcome.reported", OutcomeReported, v 1, Patient;
    SeriesCompleted => "series.completed", SeriesCompleted, v 1, Patient;
    RecordSigned => "record.signed", RecordSigned, v 1, TargetOf;
    AccessRecorded => "access.recorded", AccessRecorded, v 1, Principal;
    AccessRefused => "access.refused", AccessRefused, v 1, Principal;
}

impl Payload {
    /// The corrected payload of a `record.corrected` event as the current
    /// version of `event_type`. A correction carries its target's payload
    /// in the version that was current when it was written, without saying
    /// which: read it as the current version, else as each older one (the
    /// newest first) upcast to the current.
    pub fn from_corrected(
        event_type: EventType,
        value: serde_json::Value,
    ) -> Result<Payload, ContractError> {
        let current = Payload::from_value(event_type, value.clone());
        if current.is_ok() {
            return current;
        }
        for version in (1..event_type.current_version()).rev() {
            if let Ok(upcast) = crate::upcast_payload(event_type, version, value.clone())
                && let Ok(payload) = Payload::from_value(event_type, upcast)
            {
                return Ok(payload);
            }
        }
        current
    }
}

impl EventType {
    /// Whether clinic staff record this type through a recording service.
    /// The others are written by the system itself (the query service's
    /// access log).
    pub fn is_clinical(self) -> bool {
        !matches!(self, EventType::AccessRecorded | EventType::AccessRefused)
    }
}

/// A payload shape problem, named `payload.<path>`.
fn shape_error(
    event_type: EventType,
    err: serde_path_to_error::Error<serde_json::Error>,
) -> ContractError {
    let path = format!("payload.{}", err.path());
    let path = path.trim_end_matches('.').to_owned();
    ContractError {
        event_type: Some(event_type.as_str().to_owned()),
        problems: vec![problem_from_serde(&path, err.inner())],
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
