//! The consistency rules beyond JSON Schema, each shown breaking.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{fs, path::PathBuf};

use prolo_schemas::{ContractError, Envelope, ProblemCode};
use serde_json::{Value, json};

fn example(event_type: &str) -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{event_type}.json"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn check(event: &Value) -> Result<Envelope, ContractError> {
    Envelope::from_json(&serde_json::to_vec(event).unwrap())
}

fn rejected_at(event: &Value, path: &str, code: ProblemCode) -> ContractError {
    let err = check(event).expect_err("should be rejected");
    assert!(
        err.problems
            .iter()
            .any(|p| p.path == path && p.code == code),
        "expected {code:?} at {path}, got {err}"
    );
    err
}

#[test]
fn grade_five_needs_death_seriousness_and_a_fatal_outcome() {
    let mut e = example("adverse_event.reported");
    e["payload"]["grade"] = 5.into();
    rejected_at(&e, "payload.outcome", ProblemCode::Inconsistent);
    rejected_at(&e, "payload.serious", ProblemCode::Inconsistent);
    e["payload"]["outcome"] = "fatal".into();
    e["payload"]["serious"] = true.into();
    e["payload"]["seriousness_criteria"] = json!(["death"]);
    check(&e).unwrap();
}

#[test]
fn a_serious_event_names_a_criterion() {
    let mut e = example("adverse_event.reported");
    e["payload"]["serious"] = true.into();
    rejected_at(
        &e,
        "payload.seriousness_criteria",
        ProblemCode::MissingField,
    );
}

#[test]
fn onset_cannot_precede_the_injection() {
    let mut e = example("adverse_event.reported");
    e["payload"]["onset_at"] = "2026-09-30T08:00:00Z".into();
    let err = rejected_at(&e, "payload.onset_at", ProblemCode::Inconsistent);
    assert!(err.to_string().contains("before the injection"), "{err}");
}

#[test]
fn a_misplaced_injection_names_the_injection_and_both_sites() {
    let mut e = example("adverse_event.reported");
    e["payload"]["kind"] = "misplaced_injection".into();
    e["payload"].as_object_mut().unwrap().remove("infection");
    e["payload"]
        .as_object_mut()
        .unwrap()
        .remove("linked_injection");
    rejected_at(&e, "payload.misplacement", ProblemCode::MissingField);
    rejected_at(&e, "payload.linked_injection", ProblemCode::MissingField);
    e["payload"]["misplacement"] = json!({
        "intended_site": {"site_key": "KNEE_MCL", "laterality": "left"},
        "actual_site": {"site_key": "PES_ANSERINUS", "laterality": "left"},
        "route": "wrong_structure"
    });
    e["payload"]["linked_injection"] = json!({"event_id": "0193a3c2-7c1e-7a3b-8c4d-5e6f7a8b9c09", "occurred_at": "2026-10-01T09:30:00Z"});
    check(&e).unwrap();
}

#[test]
fn a_sided_site_needs_its_laterality_and_a_midline_site_has_none() {
    let mut e = example("injection.given");
    e["payload"]["site"] = json!({"site_key": "KNEE_MCL"});
    rejected_at(&e, "payload.site.laterality", ProblemCode::MissingField);
    e["payload"]["site"] = json!({"site_key": "LUMBAR_INTERSPINOUS_LIG", "laterality": "left"});
    rejected_at(&e, "payload.site.laterality", ProblemCode::Inconsistent);
}

#[test]
fn each_agent_has_its_own_concentration_limit() {
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][1]["concentration_pct"] = 5.into();
    let err = rejected_at(
        &e,
        "payload.solution.components[1].concentration_pct",
        ProblemCode::OutOfRange,
    );
    assert!(err.to_string().contains("above the maximum 2"), "{err}");
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][0]["agent"] = "prp".into();
    rejected_at(
        &e,
        "payload.solution.components[0].concentration_pct",
        ProblemCode::Inconsistent,
    );
}

#[test]
fn patient_events_need_a_patient_and_practitioner_events_must_not_have_one() {
    let mut e = example("consent.given");
    e.as_object_mut().unwrap().remove("patient_id");
    rejected_at(&e, "patient_id", ProblemCode::MissingField);
    let mut e = example("practitioner.credentialed");
    e["patient_id"] = "P-1".into();
    rejected_at(&e, "patient_id", ProblemCode::Inconsistent);
}

#[test]
fn event_ids_are_uuid_v7_and_facts_are_not_recorded_before_they_happen() {
    let mut e = example("consent.given");
    e["event_id"] = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff".into();
    rejected_at(&e, "event_id", ProblemCode::InvalidValue);
    let mut e = example("consent.given");
    e["occurred_at"] = "2026-10-02T09:30:00Z".into();
    rejected_at(&e, "occurred_at", ProblemCode::Inconsistent);
}

#[test]
fn a_corrected_payload_is_validated_as_its_target_type() {
    let mut e = example("record.corrected");
    e["payload"]["corrected_payload"]["volume_ml"] = 80.into();
    rejected_at(
        &e,
        "payload.corrected_payload.volume_ml",
        ProblemCode::OutOfRange,
    );
    let mut e = example("record.corrected");
    e["payload"]["corrected_payload"]
        .as_object_mut()
        .unwrap()
        .remove("site");
    rejected_at(
        &e,
        "payload.corrected_payload.site",
        ProblemCode::MissingField,
    );
}

#[test]
fn a_correction_cannot_target_a_correction_and_names_its_entity() {
    let mut e = example("record.entered_in_error");
    e["payload"]["target"]["event_type"] = "record.corrected".into();
    rejected_at(&e, "payload.target.event_type", ProblemCode::Inconsistent);
    let mut e = example("record.entered_in_error");
    e["payload"]["target"]["event_type"] = "practitioner.credentialed".into();
    e.as_object_mut().unwrap().remove("patient_id");
    rejected_at(
        &e,
        "payload.target.practitioner_id",
        ProblemCode::MissingField,
    );
    e["payload"]["target"]["practitioner_id"] = "dr-hale".into();
    let envelope = check(&e).unwrap();
    assert_eq!(
        envelope.subject().unwrap().to_string(),
        "clinic.riverside.practitioner.dr-hale.record.entered_in_error"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut e = example("injection.given");
    e["payload"]["volume_ml"] = 80.into();
    e["payload"]["needle"]["gauge"] = 40.into();
    e["payload"]["session_number"] = 31.into();
    let err = check(&e).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
}

/// Records real clinics make, which the first contract refused, and records
/// no clinic can make, which it must still refuse.
#[test]
fn real_procedures_are_recorded_and_impossible_ones_refused() {
    // A plantar-fascia injection with dextrose and bupivacaine through a
    // 178 mm (7") 22 G spinal needle, as session 9: a booster six months on.
    let mut plantar = example("injection.given");
    plantar["payload"]["site"] = json!({"site_key": "PLANTAR_FASCIA", "laterality": "right"});
    plantar["payload"]["solution"]["components"][1] = json!({
        "agent": "bupivacaine", "concentration_pct": 0.25, "lot": "BUP-2291", "lot_expiry": "2027-12-31"
    });
    plantar["payload"]["needle"] = json!({"gauge": 22, "length_mm": 178});
    plantar["payload"]["session_number"] = 9.into();
    check(&plantar).unwrap_or_else(|e| panic!("{e}"));

    let mut booster_plan = example("treatment.planned");
    booster_plan["payload"]["interval_days"] = 182.into();
    booster_plan["payload"]["sessions_planned"] = 12.into();
    check(&booster_plan).unwrap_or_else(|e| panic!("{e}"));

    // Ropivacaine, an agent not on the list by name, and a site not on the
    // list with its SNOMED CT code.
    let mut other = example("injection.given");
    other["payload"]["solution"]["components"][1] = json!({
        "agent": "ropivacaine", "concentration_pct": 0.5, "lot": "ROP-11", "lot_expiry": "2027-06-30"
    });
    other["payload"]["solution"]["components"].as_array_mut().unwrap().push(json!({
        "agent": "other", "agent_name": "sodium bicarbonate", "concentration_pct": 8.4, "lot": "BIC-7", "lot_expiry": "2027-01-31"
    }));
    other["payload"]["site"] = json!({
        "site_key": "OTHER", "snomed_code": "1627004", "description": "medial collateral ligament remnant after repair", "laterality": "left"
    });
    check(&other).unwrap_or_else(|e| panic!("{e}"));

    // An extension lag of 15°, a dorsiflexion below neutral (equinus).
    let mut exam = example("examination.done");
    exam["payload"]["range_of_motion"] = json!([
        {"region": "knee_region", "laterality": "left", "movement": "extension", "degrees": -15},
        {"region": "ankle_joint", "laterality": "left", "movement": "dorsiflexion", "degrees": -10}
    ]);
    check(&exam).unwrap_or_else(|e| panic!("{e}"));

    // Impossible: a 30 G needle 150 mm long; −200° of anything; flexion below zero.
    let mut fine_and_long = example("injection.given");
    fine_and_long["payload"]["needle"] = json!({"gauge": 30, "length_mm": 150});
    let err = rejected_at(
        &fine_and_long,
        "payload.needle.length_mm",
        ProblemCode::Inconsistent,
    );
    assert!(err.to_string().contains("30 G"), "{err}");
    let mut minus_200 = example("examination.done");
    minus_200["payload"]["range_of_motion"][0]["degrees"] = (-200).into();
    rejected_at(
        &minus_200,
        "payload.range_of_motion[0].degrees",
        ProblemCode::OutOfRange,
    );
    let mut negative_flexion = example("examination.done");
    negative_flexion["payload"]["range_of_motion"] = json!([{"region": "knee_region", "laterality": "left", "movement": "flexion", "degrees": -5}]);
    rejected_at(
        &negative_flexion,
        "payload.range_of_motion[0].degrees",
        ProblemCode::OutOfRange,
    );
}

#[test]
fn a_site_not_on_the_list_names_a_real_snomed_code_and_a_description() {
    let mut e = example("injection.given");
    e["payload"]["site"] = json!({"site_key": "OTHER"});
    rejected_at(&e, "payload.site.snomed_code", ProblemCode::MissingField);
    rejected_at(&e, "payload.site.description", ProblemCode::MissingField);
    e["payload"]["site"] = json!({"site_key": "OTHER", "snomed_code": "1627005", "description": "typo in the check digit"});
    rejected_at(&e, "payload.site.snomed_code", ProblemCode::InvalidValue);
    e["payload"]["site"] =
        json!({"site_key": "KNEE_MCL", "laterality": "left", "snomed_code": "1627004"});
    rejected_at(&e, "payload.site.snomed_code", ProblemCode::Inconsistent);
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][1]["agent"] = "other".into();
    rejected_at(
        &e,
        "payload.solution.components[1].agent_name",
        ProblemCode::MissingField,
    );
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][0]["agent_name"] = "dextrose".into();
    rejected_at(
        &e,
        "payload.solution.components[0].agent_name",
        ProblemCode::Inconsistent,
    );
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][1]["agent"] = "bupivacaine".into();
    e["payload"]["solution"]["components"][1]["concentration_pct"] = 1.into();
    rejected_at(
        &e,
        "payload.solution.components[1].concentration_pct",
        ProblemCode::OutOfRange,
    );
}

#[test]
fn a_consent_names_sides_or_covers_either_and_a_midline_site_has_none() {
    let mut e = example("consent.given");
    e["payload"]["sites"] =
        json!([{"site_key": "KNEE_MCL"}, {"site_key": "LUMBAR_INTERSPINOUS_LIG"}]);
    check(&e).unwrap_or_else(|err| panic!("{err}"));
    e["payload"]["sites"][1]["laterality"] = "left".into();
    rejected_at(&e, "payload.sites[1].laterality", ProblemCode::Inconsistent);
}

/// A rule added in a later version is not applied to events written in an
/// earlier one: a record accepted once is never quarantined on a rebuild.
#[test]
fn stricter_rules_apply_only_to_events_written_under_them() {
    // 30 G × 150 mm was within the bounds of injection.given v2.
    let mut old = example("injection.given");
    old["schema_version"] = 2.into();
    old["payload"]["needle"] = json!({"gauge": 30, "length_mm": 150});
    for component in old["payload"]["solution"]["components"]
        .as_array_mut()
        .unwrap()
    {
        component.as_object_mut().unwrap().remove("vial");
    }
    old["payload"]
        .as_object_mut()
        .unwrap()
        .remove("preparation");
    check(&old).unwrap_or_else(|e| panic!("{e}"));
    // 150° of extension was within examination.done v1's 0–200°.
    let mut old_exam = example("examination.done");
    old_exam["schema_version"] = 1.into();
    old_exam["payload"]["range_of_motion"] = json!([{"region": "knee_region", "laterality": "left", "movement": "extension", "degrees": 150}]);
    check(&old_exam).unwrap_or_else(|e| panic!("{e}"));
    let mut new_exam = old_exam.clone();
    new_exam["schema_version"] = 2.into();
    rejected_at(
        &new_exam,
        "payload.range_of_motion[0].degrees",
        ProblemCode::OutOfRange,
    );
}

/// A correction written when consent.given was version 1 carries a v1
/// payload: it is still read, as the current version.
#[test]
fn a_correction_carrying_an_older_payload_is_read_as_the_current_version() {
    let v1_consent: Value = serde_json::from_slice(
        &fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/v1/consent.given.json"))
            .unwrap(),
    )
    .unwrap();
    let mut correction = example("record.corrected");
    correction["payload"]["target"] =
        json!({"event_id": v1_consent["event_id"], "event_type": "consent.given"});
    correction["payload"]["corrected_payload"] = v1_consent["payload"].clone();
    correction["payload"]["corrected_payload"]["series"] = false.into();
    check(&correction).unwrap_or_else(|e| panic!("{e}"));
    let payload = prolo_schemas::Payload::from_corrected(
        prolo_schemas::EventType::ConsentGiven,
        correction["payload"]["corrected_payload"].clone(),
    )
    .unwrap();
    let prolo_schemas::Payload::ConsentGiven(consent) = payload else {
        panic!("not a consent")
    };
    assert!(!consent.series);
    assert_eq!(consent.sites[0].site_key, prolo_schemas::SiteKey::KNEE_MCL);
}

#[test]
fn adverse_events_know_awareness_depth_organism_meddra_and_escalate_by_update() {
    let mut e = example("adverse_event.reported");
    e["payload"]["aware_at"] = "2026-10-02T08:00:00Z".into();
    rejected_at(&e, "payload.aware_at", ProblemCode::Inconsistent);
    let mut e = example("adverse_event.reported");
    e["payload"]["meddra"] = json!({"pt_code": "1234", "version": "27.1"});
    rejected_at(&e, "payload.meddra.pt_code", ProblemCode::InvalidValue);
    let mut e = example("adverse_event.reported");
    e["payload"]["infection"]["depth"] = "septic_arthritis".into();
    e["payload"]["infection"]["organism"] = "Staphylococcus aureus".into();
    e["payload"]["serious"] = true.into();
    e["payload"]["seriousness_criteria"] = json!(["hospitalisation", "congenital_anomaly"]);
    check(&e).unwrap_or_else(|err| panic!("{err}"));
    for kind in [
        "vasovagal_reaction",
        "haematoma",
        "local_anaesthetic_systemic_toxicity",
    ] {
        let mut e = example("adverse_event.reported");
        e["payload"]["kind"] = kind.into();
        e["payload"].as_object_mut().unwrap().remove("infection");
        check(&e).unwrap_or_else(|err| panic!("{kind}: {err}"));
    }
    // A pain flare that turns out to be a deep infection, and serious.
    let mut update = example("adverse_event.updated");
    update["payload"]["kind"] = "infection".into();
    rejected_at(&update, "payload.infection", ProblemCode::MissingField);
    update["payload"]["infection"] =
        json!({"signs": ["swelling", "fever"], "culture_taken": true, "depth": "deep"});
    update["payload"]["serious"] = true.into();
    rejected_at(
        &update,
        "payload.seriousness_criteria",
        ProblemCode::MissingField,
    );
    update["payload"]["seriousness_criteria"] = json!(["hospitalisation"]);
    check(&update).unwrap_or_else(|err| panic!("{err}"));
    update["payload"]["kind"] = "misplaced_injection".into();
    rejected_at(&update, "payload.kind", ProblemCode::Inconsistent);
}

#[test]
fn how_an_injection_was_prepared_is_checked() {
    let mut e = example("injection.given");
    e["payload"]["solution"]["components"][0]["vial"] = json!({"kind": "multi_dose"});
    rejected_at(
        &e,
        "payload.solution.components[0].vial.opened_at",
        ProblemCode::MissingField,
    );
    let mut e = example("injection.given");
    e["payload"]["preparation"]["sterile_probe_cover"] = true.into();
    rejected_at(
        &e,
        "payload.preparation.sterile_probe_cover",
        ProblemCode::Inconsistent,
    );
    e["payload"]["guidance"] = "ultrasound".into();
    check(&e).unwrap_or_else(|err| panic!("{err}"));
    let mut e = example("injection.given");
    e["payload"]["preparation"]["prepared_at"] = "2026-10-02T09:00:00Z".into();
    rejected_at(
        &e,
        "payload.preparation.prepared_at",
        ProblemCode::Inconsistent,
    );
}
