//! The contract as other systems see it: the committed JSON Schema files,
//! the examples, the invalid examples, the canonical wire form and upcasting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{fs, path::PathBuf};

use prolo_schemas::{Envelope, EventType, Payload, ProblemCode, json_schema};
use serde_json::Value;

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(sub)
}

fn read_json(path: &PathBuf) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(file: &str) -> jsonschema::Validator {
    let schema = read_json(&dir("json").join(file));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{file} is not a valid JSON Schema: {e}"))
}

fn schema_errors(file: &str, instance: &Value) -> Vec<String> {
    validator(file)
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn committed_schema_files_are_generated_from_the_types() {
    let update = std::env::var_os("PROLO_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, content) in json_schema::files() {
        let path = dir("json").join(&name);
        if update {
            fs::write(&path, &content).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schema files {stale:?}: run `PROLO_UPDATE_SCHEMAS=1 cargo test -p prolo-schemas --test it contract::` and commit them"
    );
}

#[test]
fn every_event_type_has_an_example_that_validates_against_its_schema_and_in_rust() {
    for event_type in EventType::ALL {
        let path = dir("examples").join(format!("{event_type}.json"));
        let example = read_json(&path);
        let errors = schema_errors(&json_schema::file_name(*event_type), &example);
        assert!(errors.is_empty(), "{event_type}: {errors:?}");
        let errors = schema_errors(json_schema::ENVELOPE_FILE, &example);
        assert!(errors.is_empty(), "{event_type} (envelope): {errors:?}");
        let envelope = Envelope::from_json(&fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
        assert_eq!(envelope.event_type(), *event_type);
        envelope.subject().unwrap();
    }
}

#[test]
fn an_example_of_one_type_does_not_pass_another_types_schema() {
    let consent = read_json(&dir("examples").join("consent.given.json"));
    assert!(!schema_errors("injection.given.schema.json", &consent).is_empty());
}

#[test]
fn invalid_examples_are_rejected_by_the_schema_and_by_rust_naming_the_field() {
    let mut count = 0;
    for entry in fs::read_dir(dir("examples/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let doc = read_json(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event = &doc["event"];
        let expect_path = doc["expect_path"].as_str().unwrap();
        let event_type = event["event_type"].as_str().unwrap();

        let schema_file = format!("{event_type}.schema.json");
        let errors = schema_errors(&schema_file, event);
        let field = expect_path.rsplit('.').next().unwrap();
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{name}: schema errors {errors:?} do not name {field}"
        );

        let bytes = serde_json::to_vec(event).unwrap();
        let err = Envelope::from_json(&bytes).expect_err(&name);
        assert!(
            err.names(expect_path),
            "{name}: expected a problem at {expect_path}, got {err}"
        );
        assert!(err.to_string().starts_with(event_type), "{name}: {err}");
        count += 1;
    }
    assert!(count >= 20, "only {count} invalid examples");
}

#[test]
fn the_error_names_type_field_and_rule() {
    let mut event = read_json(&dir("examples").join("injection.given.json"));
    event["payload"]["volume_ml"] = 80.into();
    let err = Envelope::from_json(&serde_json::to_vec(&event).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "injection.given: payload.volume_ml: 80 is above the maximum 20"
    );
    assert_eq!(err.code(), ProblemCode::OutOfRange);
}

#[test]
fn canonical_json_round_trip_is_byte_identical() {
    for event_type in EventType::ALL {
        let bytes = fs::read(dir("examples").join(format!("{event_type}.json"))).unwrap();
        let first = Envelope::from_json(&bytes).unwrap().to_json();
        let decoded = Envelope::from_json(&first).unwrap();
        let second = decoded.to_json();
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second),
            "{event_type}"
        );
        // The canonical form holds the same JSON value as the example.
        assert_eq!(
            serde_json::from_slice::<Value>(&first).unwrap(),
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            "{event_type}"
        );
    }
}

#[test]
fn injection_given_v1_is_upcast_to_the_current_version() {
    let v1_bytes = fs::read(dir("examples/v1/injection.given.json")).unwrap();
    assert_eq!(
        read_json(&dir("examples/v1/injection.given.json"))["schema_version"],
        1
    );
    let v1 = Envelope::from_json(&v1_bytes).unwrap();
    // The v2 example is the same injection with a second (lidocaine) component.
    let mut v2 =
        Envelope::from_json(&fs::read(dir("examples/injection.given.json")).unwrap()).unwrap();
    if let Payload::InjectionGiven(injection) = &mut v2.payload {
        // Without what later versions added: the second component, the
        // vial, the preparation.
        injection.solution.components.truncate(1);
        injection.solution.components[0].vial = None;
        injection.preparation = None;
    }
    assert_eq!(
        v1.schema_version(),
        EventType::InjectionGiven.current_version()
    );
    assert_eq!(
        v1, v2,
        "v1 upcast must equal the same injection written in the current version"
    );
    let Payload::InjectionGiven(injection) = &v1.payload else {
        panic!("not an injection")
    };
    assert_eq!(
        injection.solution.components.len(),
        1,
        "v1 held one component"
    );
    assert_eq!(
        (injection.needle.gauge, injection.needle.length_mm),
        (25, 38)
    );
    let rewritten: Value = serde_json::from_slice(&v1.to_json()).unwrap();
    assert_eq!(rewritten["schema_version"], 3);
}

#[test]
fn every_older_example_still_reads_and_validates_after_upcasting() {
    let mut count = 0;
    for entry in fs::read_dir(dir("examples/v1")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let event =
            Envelope::from_json(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(read_json(&path)["schema_version"], 1);
        assert_eq!(event.schema_version(), event.event_type().current_version());
        event.validate().unwrap();
        // What it is written as now validates against the current schema.
        let now: Value = serde_json::from_slice(&event.to_json()).unwrap();
        let errors = schema_errors(&format!("{}.schema.json", event.event_type()), &now);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        count += 1;
    }
    assert!(count >= 2);
}

#[test]
fn a_v1_consent_covers_its_sites_on_either_side() {
    let v1 =
        Envelope::from_json(&fs::read(dir("examples/v1/consent.given.json")).unwrap()).unwrap();
    let Payload::ConsentGiven(consent) = &v1.payload else {
        panic!("not a consent")
    };
    assert_eq!(consent.sites.len(), 3);
    assert!(
        consent.sites.iter().all(|s| s.laterality.is_none()),
        "version 1 named no side; none is invented"
    );
}

#[test]
fn unknown_type_and_future_version_are_refused() {
    let mut event = read_json(&dir("examples").join("consent.given.json"));
    event["schema_version"] = 9.into();
    let err = Envelope::from_json(&serde_json::to_vec(&event).unwrap()).unwrap_err();
    assert_eq!(err.code(), ProblemCode::UnsupportedSchemaVersion);
    assert!(err.names("schema_version"));

    event["schema_version"] = 1.into();
    event["event_type"] = "consent.forged".into();
    let err = Envelope::from_json(&serde_json::to_vec(&event).unwrap()).unwrap_err();
    assert_eq!(err.code(), ProblemCode::UnknownEventType);

    let err = Envelope::from_json(b"{not json").unwrap_err();
    assert_eq!(err.code(), ProblemCode::MalformedJson);
}

#[test]
fn the_clinical_notes_list_every_site_of_the_list() {
    let notes = fs::read_to_string(dir("CLINICAL_NOTES.md")).unwrap();
    for key in prolo_schemas::SiteKey::ALL {
        assert!(
            notes.contains(&format!("| `{}` |", key.as_str())),
            "{} is not in schemas/CLINICAL_NOTES.md",
            key.as_str()
        );
    }
}
