//! The envelope every event travels in, and its canonical JSON wire form.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    ClinicId, ContractError, EventType, PatientId, Payload, ProblemCode,
    bounds::SHORT_TEXT_MAX_CHARS,
    error::{problem_from_serde, require_json_object},
    upcast::upcast_payload,
    validate,
};

/// Who recorded the fact (or, for `access.recorded`, who looked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The person's or system's id in the clinic's directory.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub id: String,
    /// In what capacity they acted.
    pub role: ActorRole,
}

/// How the recording service proved who acted: the identity provider's
/// signed token it verified (an OpenID Connect token), not what the request
/// said. Absent on events recorded without a verified identity (before
/// identities were verified, or on a service that does not verify them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorProof {
    /// The identity provider that signed the token (`iss`).
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub issuer: String,
    /// Who the token proved (`sub`): the actor, or the integration that
    /// recorded on the actor's behalf (`delegated`).
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub subject: String,
    /// `subject` is an integration allowed to state who acted (RFC 8693's
    /// delegation: the actor is as it said, the integration is proven).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delegated: bool,
    /// The key that signed the token (`kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The token's id (`jti`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the person last signed in (`auth_time`), when the token says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<DateTime<Utc>>,
}

/// The capacity an actor acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    /// A credentialed clinician.
    Practitioner,
    /// Nursing staff.
    Nurse,
    /// Front-desk or records staff.
    Clerk,
    /// A machine: the EHR, an integration.
    Service,
    /// A compliance officer.
    Compliance,
    /// A safety reviewer.
    Safety,
}

/// An event: a fact that happened, who recorded it, when, and its payload.
///
/// `event_type` and `schema_version` are not stored fields: they follow from
/// the payload, so they can never disagree with it. Decoding upcasts older
/// versions, so an `Envelope` always holds the current schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// UUIDv7, unique; also the JetStream `Nats-Msg-Id`.
    pub event_id: Uuid,
    /// Clinic the fact belongs to.
    pub clinic_id: ClinicId,
    /// Pseudonymous patient; absent on practitioner and lot events.
    pub patient_id: Option<PatientId>,
    /// Clinical time, given by the caller.
    pub occurred_at: DateTime<Utc>,
    /// When the recording service stamped it.
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: Actor,
    /// How the recording service proved `actor`, when it did.
    pub actor_proof: Option<ActorProof>,
    /// The service that recorded it (e.g. `treatment`).
    pub source: String,
    /// Ties together the events of one clinical episode or request chain.
    pub correlation_id: String,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// The fact.
    pub payload: Payload,
}

/// The envelope as it is on the wire. `P` is the payload: typed for
/// writing, raw JSON for reading (the type is known only after `event_type`).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wire<P> {
    /// UUIDv7; also the JetStream `Nats-Msg-Id`.
    pub event_id: Uuid,
    /// Dotted event type name.
    pub event_type: String,
    /// Version of the payload schema.
    pub schema_version: u32,
    /// Clinic the fact belongs to.
    pub clinic_id: ClinicId,
    /// Pseudonymous patient id; absent on practitioner and lot events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
    /// Clinical time, given by the caller (RFC 3339, UTC).
    pub occurred_at: DateTime<Utc>,
    /// When the recording service stamped the event (RFC 3339, UTC).
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub actor: Actor,
    /// How the recording service proved `actor` (absent when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_proof: Option<ActorProof>,
    /// The recording service.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub source: String,
    /// Ties together the events of one episode or request chain.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub correlation_id: String,
    /// The event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The fact; its shape depends on `event_type`.
    pub payload: P,
}

impl Envelope {
    /// The event type, from the payload.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The schema version this envelope is written in (always the current one).
    pub fn schema_version(&self) -> u32 {
        self.event_type().current_version()
    }

    /// Checks every rule of the contract, reporting all problems at once.
    pub fn validate(&self) -> Result<(), ContractError> {
        validate::envelope(self)
    }

    /// The canonical JSON wire form: fields in a fixed order, absent options
    /// omitted, times in RFC 3339 UTC. Decoding and encoding again gives the
    /// same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            event_id: self.event_id,
            event_type: self.event_type().as_str().to_owned(),
            schema_version: self.schema_version(),
            clinic_id: self.clinic_id.clone(),
            patient_id: self.patient_id.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            actor: self.actor.clone(),
            actor_proof: self.actor_proof.clone(),
            source: self.source.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id,
            payload: &self.payload,
        };
        // Serialising plain structs, strings and numbers into a Vec cannot
        // fail: no maps with non-string keys, no I/O.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads an event from its wire form: checks its shape, upcasts an older
    /// `schema_version`, and validates it. Every error names the field.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, ContractError> {
        let (envelope, written) = Self::decode_written(bytes)?;
        crate::validate::envelope_as_written(&envelope, written)?;
        Ok(envelope)
    }

    /// Like [`Envelope::from_json`] but without the validation rules: shape,
    /// types and upcasting only. For readers that must accept what the
    /// stream holds even if the rules have since become stricter.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, ContractError> {
        Self::decode_written(bytes).map(|(envelope, _)| envelope)
    }

    /// [`Envelope::decode`], and the schema version the event was written in.
    fn decode_written(bytes: &[u8]) -> Result<(Envelope, u32), ContractError> {
        require_json_object(bytes).map_err(|problem| ContractError {
            event_type: None,
            problems: vec![problem],
        })?;
        // Fast path: plain serde with the payload kept as raw JSON text; the
        // field path of a problem is worked out only when there is one.
        let wire: Wire<Box<RawValue>> = match serde_json::from_slice(bytes) {
            Ok(wire) => wire,
            Err(_) => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let err = match serde_path_to_error::deserialize::<_, Wire<Box<RawValue>>>(&mut de)
                {
                    Err(err) => err,
                    Ok(_) => {
                        return Err(ContractError::single(
                            sniff_event_type(bytes),
                            "$",
                            ProblemCode::MalformedJson,
                            "not a valid event",
                        ));
                    }
                };
                return Err(ContractError {
                    event_type: sniff_event_type(bytes),
                    problems: vec![problem_from_serde(&err.path().to_string(), err.inner())],
                });
            }
        };
        let event_type: EventType = wire.event_type.parse()?;
        let named = |mut err: ContractError| {
            err.event_type = Some(event_type.as_str().to_owned());
            err
        };
        let current = event_type.current_version();
        let payload = match wire.schema_version {
            v if v == current => Payload::from_json(event_type, wire.payload.get())?,
            v if v >= 1 && v < current => {
                let raw: serde_json::Value =
                    serde_json::from_str(wire.payload.get()).map_err(|e| {
                        named(ContractError::single(
                            None,
                            "payload",
                            ProblemCode::MalformedJson,
                            e.to_string(),
                        ))
                    })?;
                let upcast = upcast_payload(event_type, v, raw).map_err(named)?;
                Payload::from_value(event_type, upcast)?
            }
            v => {
                return Err(named(ContractError::single(
                    None,
                    "schema_version",
                    ProblemCode::UnsupportedSchemaVersion,
                    format!("version {v} is not supported; this code reads 1 to {current}"),
                )));
            }
        };
        let envelope = Envelope {
            event_id: wire.event_id,
            clinic_id: wire.clinic_id,
            patient_id: wire.patient_id,
            occurred_at: wire.occurred_at,
            recorded_at: wire.recorded_at,
            actor: wire.actor,
            actor_proof: wire.actor_proof,
            source: wire.source,
            correlation_id: wire.correlation_id,
            causation_id: wire.causation_id,
            payload,
        };
        Ok((envelope, wire.schema_version))
    }
}

/// Best effort: the event type of bytes that failed to decode, for the error.
fn sniff_event_type(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(value.get("event_type")?.as_str()?.to_owned())
}
