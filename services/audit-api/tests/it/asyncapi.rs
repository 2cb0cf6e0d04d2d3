//! The AsyncAPI description of the NATS interface: the committed
//! `schemas/asyncapi.json` is the one the code makes (regenerate with
//! `PROLO_UPDATE_SCHEMAS=1`), it names every event type and every command,
//! the official parser (`@asyncapi/parser`, run by Node.js; installed by
//! `tests/run.sh`) finds no error in it, and the API serves it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;

use prolo_schemas::EventType;
use serde_json::Value;

fn committed() -> PathBuf {
    prolo_tests::repo_root().join("schemas/asyncapi.json")
}

#[test]
fn the_committed_document_is_the_one_the_catalogue_makes() {
    let made = prolo_audit_api::asyncapi::rendered();
    if std::env::var_os("PROLO_UPDATE_SCHEMAS").is_some() {
        std::fs::write(committed(), &made).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
    assert!(
        on_disk == made,
        "schemas/asyncapi.json is stale: run `PROLO_UPDATE_SCHEMAS=1 cargo test -p prolo-audit-api --test it asyncapi::` and commit it"
    );
}

#[test]
fn every_event_type_and_every_command_has_its_channel_and_operation() {
    let document = prolo_audit_api::asyncapi::document();
    let channels = document["channels"].as_object().unwrap();
    let operations = document["operations"].as_object().unwrap();
    for t in EventType::ALL {
        let channel = &channels[&format!("event.{}", t.as_str())];
        let address = channel["address"].as_str().unwrap();
        assert!(
            address.starts_with("clinic.{clinic_id}.") && address.ends_with(t.as_str()),
            "{address}"
        );
        assert!(operations.contains_key(&format!("receive.{}", t.as_str())));
        // The payload schema is the event's JSON Schema.
        assert!(document["components"]["schemas"][t.as_str()].is_object());
    }
    for spec in prolo_recorder::ALL_SERVICES {
        for command in spec.commands {
            let channel = &channels[&format!("command.{}", command.verb)];
            assert_eq!(
                channel["address"],
                format!("prolo.cmd.{{clinic_id}}.{}", command.verb)
            );
            let send = &operations[&format!("send.{}", command.verb)];
            assert_eq!(send["action"], "send");
            assert!(send["reply"]["channel"]["$ref"].is_string());
        }
    }
    for derived in ["findings", "signals", "checkpoints", "command.batch"] {
        assert!(channels.contains_key(derived), "{derived}");
    }
    // A request is the event without what the service stamps.
    let request = &document["components"]["schemas"]["injection.given.request"];
    let required: Vec<&str> = request["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        !required.contains(&"event_id") && required.contains(&"payload"),
        "{required:?}"
    );
    assert!(request["properties"]["idempotency_key"].is_object());
}

#[test]
fn the_official_parser_finds_no_error() {
    let parser = std::env::var("ASYNCAPI_PARSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| prolo_tests::repo_root().join(".tools/asyncapi"));
    assert!(
        parser.join("node_modules/@asyncapi/parser").is_dir(),
        "the AsyncAPI parser is not installed at {}: run ./deploy/install-asyncapi-parser.sh (tests/run.sh does)",
        parser.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("asyncapi.json");
    std::fs::write(&file, prolo_audit_api::asyncapi::rendered()).unwrap();
    let out = std::process::Command::new("node")
        .arg(prolo_tests::repo_root().join("tests/asyncapi/validate.cjs"))
        .arg(&parser)
        .arg(&file)
        .output()
        .expect("node (Node.js) runs the AsyncAPI parser");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    assert_eq!(summary["valid"], true);
    let commands: usize = prolo_recorder::ALL_SERVICES
        .iter()
        .map(|s| s.commands.len())
        .sum();
    // Events, commands with their replies, the batch command and its reply,
    // findings, signals, checkpoints and three services-API channels.
    assert_eq!(
        summary["channels"].as_u64().unwrap() as usize,
        EventType::ALL.len() + 2 * commands + 2 + 3 + 3
    );
    println!("{printed}");
}
