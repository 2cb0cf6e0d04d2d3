//! Schema evolution: older payload versions are upcast to the current one
//! when read, so the rest of the code sees only the current shape. The
//! stream keeps the original bytes forever; upcasting happens on every read.
//!
//! Upcasters are small functions from one version's JSON to the next,
//! registered in [`UPCASTERS`] and chained v1 → v2 → v3.

use serde_json::{Map, Value};

use crate::{ContractError, EventType, ProblemCode};

type Upcaster = fn(Map<String, Value>) -> Result<Map<String, Value>, ContractError>;

/// (event type, version it reads, function to the next version).
const UPCASTERS: &[(EventType, u32, Upcaster)] = &[
    (EventType::InjectionGiven, 1, injection_given_v1_to_v2),
    (EventType::InjectionGiven, 2, unchanged),
    (EventType::ConsentGiven, 1, consent_given_v1_to_v2),
    (EventType::ExaminationDone, 1, unchanged),
    (EventType::TreatmentPlanned, 1, unchanged),
    (EventType::AdverseEventReported, 1, unchanged),
    (EventType::AdverseEventUpdated, 1, unchanged),
];

/// A version that only added optional fields or widened bounds (sites not
/// on the list, agents named, boosters, negative ranges of motion, vials
/// and preparation, awareness dates, MedDRA terms, escalating updates): every
/// older payload is a valid payload of the next version as it is.
fn unchanged(payload: Map<String, Value>) -> Result<Map<String, Value>, ContractError> {
    Ok(payload)
}

/// `consent.given` v1 listed site keys (`"sites": ["KNEE_MCL"]`); version 2
/// lists sites with their side (`{"site_key": "KNEE_MCL", "laterality":
/// "left"}`). A v1 consent named no side, which version 2 reads as "either
/// side" (laterality absent), so nothing is invented.
fn consent_given_v1_to_v2(mut v1: Map<String, Value>) -> Result<Map<String, Value>, ContractError> {
    let Some(Value::Array(keys)) = v1.remove("sites") else {
        return Err(shape("payload.sites", "is not a list (v1)"));
    };
    let sites = keys
        .into_iter()
        .map(|key| {
            let mut site = Map::new();
            site.insert("site_key".into(), key);
            Value::Object(site)
        })
        .collect();
    v1.insert("sites".into(), Value::Array(sites));
    Ok(v1)
}

/// Upcasts a payload written as `from_version` of `event_type` to the current version.
pub fn upcast_payload(
    event_type: EventType,
    from_version: u32,
    payload: Value,
) -> Result<Value, ContractError> {
    let Value::Object(mut map) = payload else {
        return Err(shape("payload", "is not an object"));
    };
    let mut version = from_version;
    while version < event_type.current_version() {
        let step = UPCASTERS
            .iter()
            .find(|(t, v, _)| *t == event_type && *v == version)
            .map(|(_, _, f)| f)
            .ok_or_else(|| {
                ContractError::single(
                    None,
                    "schema_version",
                    ProblemCode::UnsupportedSchemaVersion,
                    format!("no upcaster from version {version}"),
                )
            })?;
        map = step(map)?;
        version += 1;
    }
    Ok(Value::Object(map))
}

fn shape(path: &str, message: &str) -> ContractError {
    ContractError::single(None, path, ProblemCode::WrongType, message)
}

/// `injection.given` v1 had one solution component and a flat needle:
/// `solution: {agent, concentration_pct, lot, lot_expiry}`,
/// `needle_gauge`, `needle_length_mm`. Version 2 records every component with
/// its own lot (a syringe of dextrose and lidocaine holds two lots) and
/// groups the needle: `solution: {components: [...]}`, `needle: {gauge, length_mm}`.
fn injection_given_v1_to_v2(
    mut v1: Map<String, Value>,
) -> Result<Map<String, Value>, ContractError> {
    let solution = v1.remove("solution").ok_or_else(|| {
        ContractError::single(
            None,
            "payload.solution",
            ProblemCode::MissingField,
            "missing field `solution` (v1)",
        )
    })?;
    if !solution.is_object() {
        return Err(shape("payload.solution", "is not an object (v1)"));
    }
    let mut components = Map::new();
    components.insert("components".into(), Value::Array(vec![solution]));
    v1.insert("solution".into(), Value::Object(components));

    let mut needle = Map::new();
    for (old, new) in [("needle_gauge", "gauge"), ("needle_length_mm", "length_mm")] {
        let value = v1.remove(old).ok_or_else(|| {
            ContractError::single(
                None,
                format!("payload.{old}"),
                ProblemCode::MissingField,
                format!("missing field `{old}` (v1)"),
            )
        })?;
        needle.insert(new.into(), value);
    }
    v1.insert("needle".into(), Value::Object(needle));
    Ok(v1)
}
