//! JSON Schema (draft 2020-12) for the envelope and every event type,
//! generated from the Rust types so there is one source of truth.
//!
//! The committed files in `schemas/json/` are these, written out; a test
//! fails when they are stale (`PROLO_UPDATE_SCHEMAS=1 cargo test -p
//! prolo-schemas --test it contract::` rewrites them). The schemas describe the
//! *current* schema version of each type; readers upcast older versions.
//! Cross-field rules (grade 5 ⇒ fatal, a site's laterality, …) are beyond
//! JSON Schema and live in the Rust validation only.

use schemars::{SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};

use crate::{EntityKind, EventType, envelope::Wire};

/// Where the schemas are published, as the base of each `$id`.
pub const ID_BASE: &str = "https://prolo-audit.invalid/schemas/";

/// File name of the envelope schema.
pub const ENVELOPE_FILE: &str = "envelope.schema.json";

/// File name of one event type's schema, e.g. `injection.given.schema.json`.
pub fn file_name(event_type: EventType) -> String {
    format!("{event_type}.schema.json")
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// The envelope with any payload object: what every event has in common.
pub fn envelope() -> Value {
    let mut schema = generator()
        .into_root_schema_for::<Wire<serde_json::Map<String, Value>>>()
        .to_value();
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    schema["$id"] = json!(format!("{ID_BASE}{ENVELOPE_FILE}"));
    schema["title"] = json!("prolo-audit event envelope");
    schema["properties"]["event_type"] =
        json!({ "enum": names, "description": "Dotted event type name." });
    schema["properties"]["schema_version"]["minimum"] = json!(1);
    schema
}

/// One event type: the envelope with its payload, event type and version fixed.
pub fn for_event(event_type: EventType) -> Value {
    let mut generator = generator();
    let payload = generator_payload(&mut generator, event_type);
    let mut schema = generator
        .root_schema_for::<Wire<serde_json::Map<String, Value>>>()
        .to_value();
    schema["$id"] = json!(format!("{ID_BASE}{}", file_name(event_type)));
    schema["title"] = json!(format!("{event_type} event"));
    schema["properties"]["event_type"] = json!({ "const": event_type.as_str() });
    schema["properties"]["schema_version"] = json!({ "const": event_type.current_version() });
    schema["properties"]["payload"] = payload;
    match event_type.entity_kind() {
        EntityKind::Patient => {
            if let Some(required) = schema["required"].as_array_mut() {
                required.push(json!("patient_id"));
            }
        }
        EntityKind::Practitioner | EntityKind::Lot | EntityKind::Principal => {
            schema["not"] = json!({ "required": ["patient_id"] });
        }
        // A correction is filed like its target: checked in Rust.
        EntityKind::TargetOf => {}
    }
    schema
}

fn generator_payload(generator: &mut SchemaGenerator, event_type: EventType) -> Value {
    event_type.payload_schema(generator).to_value()
}

/// Every schema file, as `(file name, pretty JSON with a final newline)`.
pub fn files() -> Vec<(String, String)> {
    let render = |value: &Value| {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        text
    };
    let mut files = vec![(ENVELOPE_FILE.to_owned(), render(&envelope()))];
    files.extend(
        EventType::ALL
            .iter()
            .map(|t| (file_name(*t), render(&for_event(*t)))),
    );
    files
}
