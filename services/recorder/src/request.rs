//! A recording request, and how it becomes an event.

use chrono::{DateTime, Utc};
use prolo_schemas::{
    Actor, ClinicId, ContractError, Envelope, EventType, PatientId, Payload, ProblemCode,
};
use serde::Deserialize;
use uuid::Uuid;

/// Largest request body accepted. Events are small JSON documents; anything
/// larger is a mistake (an attached file, a loop) and is refused whole.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What a caller sends: the payload and the envelope fields only the caller
/// knows. The service adds `event_id`, `recorded_at` and `source`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// Clinic.
    pub clinic_id: ClinicId,
    /// Patient, for patient events.
    #[serde(default)]
    pub patient_id: Option<PatientId>,
    /// Clinical time.
    pub occurred_at: DateTime<Utc>,
    /// Who is recording.
    pub actor: Actor,
    /// Ties events of one episode together; defaults to the event id.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    /// A key the caller chooses so that a retried request makes the same
    /// event (and so is stored once).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The event payload, kept as JSON text until its type is applied.
    pub payload: Box<serde_json::value::RawValue>,
}

/// Why a body longer than `max` bytes is refused, when it is.
pub(crate) fn too_large(body: &[u8], max: usize) -> Option<String> {
    (body.len() > max).then(|| format!("request is {} bytes, the maximum is {max}", body.len()))
}

/// Reads a request body for `event_type`, naming the field of any problem.
pub fn parse(event_type: EventType, body: &[u8]) -> Result<RecordRequest, ContractError> {
    let named = |path: &str, code, message: String| {
        ContractError::single(Some(event_type.as_str().to_owned()), path, code, message)
    };
    if let Some(message) = too_large(body, MAX_REQUEST_BYTES) {
        return Err(named("$", ProblemCode::BadText, message));
    }
    prolo_schemas::require_json_object(body).map_err(|problem| ContractError {
        event_type: Some(event_type.as_str().to_owned()),
        problems: vec![problem],
    })?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: RecordRequest = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let problem = prolo_schemas::problem_from_serde(&path, &inner);
        ContractError {
            event_type: Some(event_type.as_str().to_owned()),
            problems: vec![problem],
        }
    })?;
    if let Some(key) = &request.idempotency_key
        && (key.trim().is_empty() || key.len() > 200)
    {
        return Err(named(
            "idempotency_key",
            ProblemCode::BadText,
            "must be 1 to 200 characters".into(),
        ));
    }
    Ok(request)
}

/// Refuses a request whose body names another clinic than the command
/// subject it was sent on: permissions are granted per subject, so the
/// subject's clinic is the one the caller may record for.
pub fn check_clinic(
    event_type: EventType,
    request: &RecordRequest,
    subject: &str,
) -> Result<(), ContractError> {
    let sent_for = crate::commands::clinic_of(subject).unwrap_or("");
    if sent_for == request.clinic_id.as_str() {
        return Ok(());
    }
    Err(ContractError::single(
        Some(event_type.as_str().to_owned()),
        "clinic_id",
        ProblemCode::Inconsistent,
        format!(
            "the request names clinic {:?} but was sent on {subject} (clinic {sent_for:?})",
            request.clinic_id.as_str()
        ),
    ))
}

/// Stamps a request into an event: `event_id`, `recorded_at`, `source`.
///
/// With an idempotency key the event id is derived from it, so that a retry
/// makes the same event: a UUIDv7 whose time part is `occurred_at` and
/// whose random part is a hash of (clinic, event type, key).
pub fn stamp(
    event_type: EventType,
    source: &str,
    request: RecordRequest,
    now: DateTime<Utc>,
) -> Result<Envelope, ContractError> {
    let payload = Payload::from_json(event_type, request.payload.get())?;
    let event_id = match &request.idempotency_key {
        Some(key) => derived_event_id(&request.clinic_id, event_type, key, request.occurred_at),
        None => Uuid::now_v7(),
    };
    Ok(Envelope {
        event_id,
        clinic_id: request.clinic_id,
        patient_id: request.patient_id,
        occurred_at: request.occurred_at,
        recorded_at: now,
        actor: request.actor,
        actor_proof: None,
        source: source.to_owned(),
        correlation_id: request
            .correlation_id
            .unwrap_or_else(|| event_id.to_string()),
        causation_id: request.causation_id,
        payload,
    })
}

/// The event id for an idempotency key (see [`stamp`]).
pub fn derived_event_id(
    clinic: &ClinicId,
    event_type: EventType,
    key: &str,
    occurred_at: DateTime<Utc>,
) -> Uuid {
    let name = format!("{clinic}\n{event_type}\n{key}");
    let hash = Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&hash.as_bytes()[6..16]);
    let millis = u64::try_from(occurred_at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_v7_id() {
        let clinic: ClinicId = "C1".parse().unwrap();
        let at = "2026-10-01T09:30:00Z".parse().unwrap();
        let a = derived_event_id(&clinic, EventType::InjectionGiven, "k-1", at);
        let b = derived_event_id(&clinic, EventType::InjectionGiven, "k-1", at);
        let c = derived_event_id(&clinic, EventType::InjectionGiven, "k-2", at);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.get_version_num(), 7);
    }
}
