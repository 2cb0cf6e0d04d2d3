//! The FHIR R4 exports against a real stack: a patient's record (with a
//! corrected injection and an adverse event) and a lot's reach are Bundles
//! whose every resource the R4 models of `fhir.resources` (Python, 6.4.0,
//! FHIR 4.0.1) parse strictly and whose references all resolve; the
//! corrected injection exports its corrected values with a Provenance
//! naming both events; reads appear as AuditEvents for compliance only;
//! each export is itself on the access log. The Python environment comes
//! from `deploy/install-python-example.sh` (`tests/run.sh` runs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use crate::common::{COMPLIANCE, SAFETY, answer_when, api, get};
use prolo_schemas::EventType;
use prolo_tests::{
    Stack, example_request, record_ok, repo_root,
    scenario::{corrected_injection, record_examples},
};
use serde_json::{Value, json};

/// Validates a bundle with the R4 models; the validator's summary.
fn validate(bundle: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let out = std::process::Command::new(prolo_tests::example_python())
        .arg(repo_root().join("tests/fhir/validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(printed.lines().last().unwrap()).unwrap()
}

async fn fhir(api: &str, token: &str, path: &str) -> Value {
    let response = get(api, Some(token), path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    response.json().await.unwrap()
}

fn resources<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

#[tokio::test]
async fn a_patient_and_a_lot_export_as_valid_r4_bundles_with_corrections_and_provenance() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let (api, _db) = api(&nats).await;
    record_examples(
        &client,
        &[
            EventType::PractitionerCredentialed,
            EventType::ExaminationDone,
            EventType::ImagingRecorded,
            EventType::CandidacyAssessed,
            EventType::ConsentGiven,
            EventType::TreatmentPlanned,
        ],
    )
    .await;
    let (injection, corrected) = corrected_injection(&client).await;
    let mut infection = example_request("adverse_event.reported");
    infection["payload"]["linked_injection"]["event_id"] = json!(injection);
    let reported = record_ok(&client, EventType::AdverseEventReported, &infection)
        .await
        .event_id;
    let mut update = example_request("adverse_event.updated");
    update["payload"]["adverse_event_id"] = json!(reported);
    record_ok(&client, EventType::AdverseEventUpdated, &update).await;
    // Wait for the fold; one read of the history makes an access event.
    answer_when(
        &api,
        "/v1/clinics/riverside/patients/P-1042/history",
        Duration::from_secs(20),
        |page| page["total"].as_u64() >= Some(9),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let bundle = fhir(
        &api,
        COMPLIANCE,
        "/v1/clinics/riverside/patients/P-1042/fhir",
    )
    .await;
    assert_eq!(
        (bundle["resourceType"].as_str(), bundle["type"].as_str()),
        (Some("Bundle"), Some("collection"))
    );
    let summary = validate(&bundle);
    assert_eq!(summary["fhir_version"], "4.0.1");
    for kind in [
        "Patient",
        "Practitioner",
        "Consent",
        "Procedure",
        "MedicationAdministration",
        "Medication",
        "Observation",
        "ImagingStudy",
        "AdverseEvent",
        "Provenance",
        "AuditEvent",
    ] {
        assert!(
            summary["resources"][kind].as_u64() >= Some(1),
            "no {kind}: {summary}"
        );
    }
    // Every resource has its Provenance (reads are AuditEvents themselves).
    let targets: std::collections::BTreeSet<String> = resources(&bundle, "Provenance")
        .iter()
        .flat_map(|p| p["target"].as_array().unwrap().iter())
        .map(|t| {
            t["reference"]
                .as_str()
                .unwrap()
                .split("/_history/")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    for entry in bundle["entry"].as_array().unwrap() {
        let r = &entry["resource"];
        let kind = r["resourceType"].as_str().unwrap();
        if kind != "Provenance" && kind != "AuditEvent" {
            let target = format!("{kind}/{}", r["id"].as_str().unwrap());
            assert!(targets.contains(&target), "no Provenance of {target}");
        }
    }
    // The corrected injection: its corrected volume, version 2, and a
    // Provenance naming the injection and its correction.
    let procedure = resources(&bundle, "Procedure")
        .into_iter()
        .find(|r| r["id"] == injection.to_string())
        .unwrap();
    assert_eq!(procedure["meta"]["versionId"], "2");
    assert_eq!(
        procedure["bodySite"][0]["coding"][0]["code"], "1627004",
        "SNOMED CT MCL of knee"
    );
    assert_eq!(
        procedure["bodySite"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "7771000",
        "left"
    );
    let administrations = resources(&bundle, "MedicationAdministration");
    assert!(
        administrations
            .iter()
            .all(|m| m["dosage"]["dose"]["value"] == 1.5)
    );
    let provenance = resources(&bundle, "Provenance")
        .into_iter()
        .find(|p| p["target"][0]["reference"] == format!("Procedure/{injection}/_history/2"))
        .unwrap();
    let entities: Vec<(&str, &str)> = provenance["entity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["role"].as_str().unwrap(),
                e["what"]["identifier"]["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entities,
        [
            ("source", injection.to_string().as_str()),
            ("revision", corrected.to_string().as_str())
        ]
    );
    assert_eq!(provenance["activity"]["coding"][0]["code"], "UPDATE");
    // The adverse event names the injection as suspect, with the update's causality.
    let adverse = &resources(&bundle, "AdverseEvent")[0];
    assert_eq!(
        adverse["suspectEntity"][0]["instance"]["reference"],
        format!("Procedure/{injection}")
    );
    // Lots are Medications with their batch.
    let lots: Vec<&str> = resources(&bundle, "Medication")
        .iter()
        .map(|m| m["batch"]["lotNumber"].as_str().unwrap())
        .collect();
    assert!(lots.contains(&"DX50-2026-114"), "{lots:?}");

    // A safety reviewer may not read the access log: no AuditEvent for them.
    let theirs = fhir(&api, SAFETY, "/v1/clinics/riverside/patients/P-1042/fhir").await;
    assert!(resources(&theirs, "AuditEvent").is_empty());
    validate(&theirs);

    // The lot's reach.
    let lot = fhir(
        &api,
        SAFETY,
        "/v1/clinics/riverside/lots/DX50-2026-114/fhir",
    )
    .await;
    let summary = validate(&lot);
    assert_eq!(summary["resources"]["Procedure"], 1, "{summary}");
    assert_eq!(summary["resources"]["AdverseEvent"], 1, "{summary}");
    assert!(summary["resources"]["Patient"].as_u64() >= Some(1));

    // Each export is on the patient's access log.
    answer_when(
        &api,
        "/v1/clinics/riverside/patients/P-1042/access-log?limit=1000",
        Duration::from_secs(20),
        |log| {
            let exports = log["items"].as_array().map_or(0, |items| {
                items
                    .iter()
                    .filter(|v| v["payload"]["query"] == "fhir_export")
                    .count()
            });
            exports >= 3
        },
    )
    .await;
    recorders.stop().await;
}
