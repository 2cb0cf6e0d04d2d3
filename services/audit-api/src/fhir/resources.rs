//! The clinical resources each event type maps to: Procedure and
//! MedicationAdministration for an injection, Consent, Observation,
//! ImagingStudy, AdverseEvent.

use prolo_query::EventView;
use serde_json::{Value, json};

use super::{Bundle, EVENT_SYSTEM, EXTENSIONS, UCUM, body_site, fhir_id, reference, text};

impl Bundle {
    pub(super) fn meta(correction: Option<&EventView>) -> Value {
        json!({"versionId": if correction.is_some() { "2" } else { "1" }})
    }

    pub(super) fn injection(
        &mut self,
        v: &EventView,
        p: &Value,
        voided: bool,
    ) -> Vec<(String, String)> {
        let id = v.event_id.to_string();
        let subject = self.patient_ref(v.patient_id.as_deref().unwrap_or_default());
        let performer = self.practitioner_ref(&text(&p["practitioner_id"]));
        let status = if voided {
            "entered-in-error"
        } else {
            "completed"
        };
        let site = body_site(&p["site"]);
        let components = p["solution"]["components"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let solution: Vec<String> = components
            .iter()
            .map(|c| match c["concentration_pct"].as_f64() {
                Some(pct) => format!("{} {pct}%", text(&c["agent"])),
                None => text(&c["agent"]),
            })
            .collect();
        let mut procedure = json!({
            "resourceType": "Procedure",
            "id": id,
            "status": status,
            "code": {"text": "Injection of a proliferant solution (prolotherapy)"},
            "subject": subject.clone(),
            "performedDateTime": v.occurred_at.to_rfc3339(),
            "performer": [{"actor": performer.clone()}],
            "bodySite": [site.clone()],
            "note": [{"text": format!(
                "{} · {} mL · needle {} G × {} mm · {} guidance · session {}",
                solution.join(" + "),
                text(&p["volume_ml"]),
                text(&p["needle"]["gauge"]),
                text(&p["needle"]["length_mm"]),
                text(&p["guidance"]),
                text(&p["session_number"]),
            )}],
            "extension": [
                {"url": format!("{EXTENSIONS}guidance"), "valueCode": text(&p["guidance"])},
                {"url": format!("{EXTENSIONS}session-number"), "valuePositiveInt": p["session_number"].as_u64().unwrap_or(1)}
            ],
        });
        if let Some(plan) = p["treatment_plan_event_id"].as_str() {
            procedure["basedOn"] = json!([{"identifier": {"system": EVENT_SYSTEM, "value": plan}}]);
        }
        let mut made = vec![("Procedure".to_owned(), id.clone())];
        self.add(procedure);
        for (i, c) in components.iter().enumerate() {
            let lot = text(&c["lot"]);
            let medication = format!("lot-{}", fhir_id(&lot));
            let agent = text(&c["agent"]);
            let mut ingredient = json!({"itemCodeableConcept": {"text": agent}, "isActive": true});
            if let Some(pct) = c["concentration_pct"].as_f64() {
                ingredient["strength"] = json!({
                    "numerator": {"value": pct, "unit": "g", "system": UCUM, "code": "g"},
                    "denominator": {"value": 100, "unit": "mL", "system": UCUM, "code": "mL"}
                });
            }
            self.seen("Medication", &medication);
            self.add(json!({
                "resourceType": "Medication",
                "id": medication,
                "code": {"text": agent},
                "ingredient": [ingredient],
                "batch": {"lotNumber": lot, "expirationDate": text(&c["lot_expiry"])},
            }));
            let administration = format!("{id}-{i}");
            self.add(json!({
                "resourceType": "MedicationAdministration",
                "id": administration,
                "meta": {"versionId": "1"},
                "status": status,
                "medicationReference": reference("Medication", &medication),
                "subject": subject.clone(),
                "effectiveDateTime": v.occurred_at.to_rfc3339(),
                "performer": [{"actor": performer.clone()}],
                "partOf": [reference("Procedure", &id)],
                "dosage": {
                    "text": format!("{} mL of {} (this component's lot: {lot})", text(&p["volume_ml"]), solution.join(" + ")),
                    "site": site,
                    "route": {"text": "injection"},
                    "dose": {"value": p["volume_ml"].as_f64().unwrap_or_default(), "unit": "mL", "system": UCUM, "code": "mL"}
                },
            }));
            made.push(("MedicationAdministration".to_owned(), administration));
        }
        made
    }

    pub(super) fn consent(
        &mut self,
        v: &EventView,
        p: &Value,
        status: &str,
    ) -> Vec<(String, String)> {
        let subject = self.patient_ref(v.patient_id.as_deref().unwrap_or_default());
        let id = v.event_id.to_string();
        let agents: Vec<String> = p["solutions"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        let sites: Vec<Value> = p["sites"]
            .as_array()
            .map(|s| s.iter().map(body_site).collect())
            .unwrap_or_default();
        let mut period = json!({"start": text(&p["valid_from"])});
        if let Some(until) = p["valid_until"].as_str() {
            period["end"] = until.into();
        }
        let risks: Vec<String> = p["risks_disclosed"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        self.add(json!({
            "resourceType": "Consent",
            "id": id,
            "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment", "display": "Treatment"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
            "patient": subject.clone(),
            "dateTime": v.occurred_at.to_rfc3339(),
            "policyRule": {"text": "Informed consent to reconstructive therapy (prolotherapy)"},
            "provision": {
                "type": "permit",
                "period": period,
                "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "use"}],
                            "text": format!("injections of {}{}", agents.join(", "), if p["series"] == true { ", a series" } else { ", one session" })}],
                "code": sites,
            },
            "extension": [{"url": format!("{EXTENSIONS}risks-disclosed"), "valueString": risks.join(", ")}],
        }));
        vec![("Consent".to_owned(), id)]
    }

    pub(super) fn examination(
        &mut self,
        v: &EventView,
        p: &Value,
        voided: bool,
    ) -> Vec<(String, String)> {
        let subject = self.patient_ref(v.patient_id.as_deref().unwrap_or_default());
        let status = if voided { "entered-in-error" } else { "final" };
        let category = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]}]);
        let mut made = Vec::new();
        if let Some(nrs) = p["pain_nrs"].as_u64() {
            let id = format!("{}-pain", v.event_id);
            self.add(json!({
                "resourceType": "Observation",
                "id": id,
                "status": status,
                "category": category,
                "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3", "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported"}]},
                "subject": subject.clone(),
                "effectiveDateTime": v.occurred_at.to_rfc3339(),
                "valueInteger": nrs,
            }));
            made.push(("Observation".to_owned(), id));
        }
        for (i, rom) in p["range_of_motion"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let id = format!("{}-rom-{i}", v.event_id);
            self.add(json!({
                "resourceType": "Observation",
                "id": id,
                "status": status,
                "category": category,
                "code": {"text": format!("Range of motion: {} {}", text(&rom["region"]), text(&rom["movement"]))},
                "subject": subject.clone(),
                "effectiveDateTime": v.occurred_at.to_rfc3339(),
                "valueQuantity": {"value": rom["degrees"].as_f64().unwrap_or_default(), "unit": "degrees", "system": UCUM, "code": "deg"},
            }));
            made.push(("Observation".to_owned(), id));
        }
        made
    }

    pub(super) fn imaging(
        &mut self,
        v: &EventView,
        p: &Value,
        voided: bool,
    ) -> Vec<(String, String)> {
        let subject = self.patient_ref(v.patient_id.as_deref().unwrap_or_default());
        let id = v.event_id.to_string();
        let modality = match p["modality"].as_str().unwrap_or_default() {
            "ultrasound" => "US",
            "mri" => "MR",
            "ct" => "CT",
            "fluoroscopy" => "RF",
            _ => "DX",
        };
        self.add(json!({
            "resourceType": "ImagingStudy",
            "id": id,
            "status": if voided { "entered-in-error" } else { "available" },
            "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality}],
            "subject": subject.clone(),
            "started": v.occurred_at.to_rfc3339(),
            "identifier": [{"value": text(&p["study_reference"])}],
            "description": format!("{} ({}): {}", text(&p["region"]), text(&p["purpose"]), text(&p["findings"])),
        }));
        vec![("ImagingStudy".to_owned(), id)]
    }

    pub(super) fn adverse_event(
        &mut self,
        v: &EventView,
        p: &Value,
        update: Option<&EventView>,
    ) -> Vec<(String, String)> {
        let subject = self.patient_ref(v.patient_id.as_deref().unwrap_or_default());
        let id = v.event_id.to_string();
        let grade = p["grade"].as_u64().unwrap_or(1);
        let latest = update.map(|u| &u.payload);
        let grade = latest.and_then(|u| u["grade"].as_u64()).unwrap_or(grade);
        let serious = latest
            .and_then(|u| u["serious"].as_bool())
            .unwrap_or(p["serious"] == true);
        let outcome = latest.map_or_else(|| text(&p["outcome"]), |u| text(&u["outcome"]));
        let outcome_code = match outcome.as_str() {
            "resolved" => "resolved",
            "recovering" => "recovering",
            "ongoing" => "ongoing",
            "resolved_with_sequelae" => "resolvedWithSequelae",
            "fatal" => "fatal",
            _ => "unknown",
        };
        let severity = match grade {
            1 => "mild",
            2 => "moderate",
            _ => "severe",
        };
        let kind = latest
            .and_then(|u| u["kind"].as_str())
            .map_or_else(|| text(&p["kind"]), str::to_owned);
        let mut event = json!({"text": kind});
        if let Some(code) = p["meddra"]["code"].as_str() {
            event["coding"] = json!([{"system": "http://terminology.hl7.org/CodeSystem/mdr", "code": code, "display": text(&p["meddra"]["term"])}]);
        }
        let mut resource = json!({
            "resourceType": "AdverseEvent",
            "id": id,
            "actuality": "actual",
            "event": event,
            "subject": subject.clone(),
            "date": text(&p["onset_at"]),
            "recordedDate": v.occurred_at.to_rfc3339(),
            "seriousness": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                "code": if serious { "serious" } else { "non-serious" }}]},
            "severity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "code": severity}]},
            "outcome": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "code": outcome_code}]},
            "extension": [{"url": format!("{EXTENSIONS}ctcae-grade"), "valuePositiveInt": grade}],
        });
        if let Some(injection) = p["linked_injection"]["event_id"].as_str() {
            let mut suspect = json!({"instance": reference("Procedure", injection)});
            if let Some(causality) = latest.and_then(|u| u["causality"].as_str()) {
                suspect["causality"] = json!([{"assessment": {"text": causality}}]);
            }
            resource["suspectEntity"] = json!([suspect]);
        }
        self.add(resource);
        vec![("AdverseEvent".to_owned(), id)]
    }
}
