//! The trail as HL7 FHIR R4 (4.0.1): a `collection` Bundle of a patient's
//! record, or of everyone a lot reached, for EHRs, registries and
//! regulators. Pure mapping from the events as the query library shows
//! them (current schema version, corrections known) to resources; the
//! mapping table in docs/integration.md says which field goes where, and what has no home
//! (carried in extensions under [`EXTENSIONS`]).
//!
//! References are relative (`Procedure/<id>`) and every entry's `fullUrl`
//! is [`BASE`] + `Type/id`, so that they resolve inside the bundle. A
//! corrected event exports its corrected values, `meta.versionId` 2, and a
//! Provenance naming both events; one entered in error exports with status
//! `entered-in-error` where the resource has a status.

mod resources;

use std::collections::{BTreeMap, BTreeSet};

use prolo_query::{EventView, ViewStanding};
use prolo_schemas::{ActorRole, EventType, SiteKey};
use serde_json::{Value, json};

use crate::render::text;

/// The base of every entry's `fullUrl`.
pub const BASE: &str = "https://prolo-audit.invalid/fhir/";
/// Where this system's extensions are defined.
pub const EXTENSIONS: &str = "https://prolo-audit.invalid/fhir/StructureDefinition/";
/// The identifier system of event ids.
pub const EVENT_SYSTEM: &str = "urn:prolo-audit:event";

const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";

/// A FHIR id from any of ours: only letters, digits, `-` and `.`, at most 64.
fn fhir_id(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// SNOMED CT laterality qualifiers.
fn laterality(side: &str) -> Option<(&'static str, &'static str)> {
    match side {
        "left" => Some(("7771000", "Left")),
        "right" => Some(("24028007", "Right")),
        "bilateral" => Some(("51440002", "Right and left")),
        _ => None,
    }
}

/// A site as a CodeableConcept: SNOMED CT where the catalogue has the
/// concept (or the `OTHER` site's own), the side as an extension.
fn body_site(site: &Value) -> Value {
    let key = text(&site["site_key"]);
    let parsed = SiteKey::ALL.iter().find(|k| k.as_str() == key);
    let info = parsed.map(|k| k.info());
    let display = info.map_or_else(|| key.clone(), |i| i.structure.to_owned());
    let snomed = info
        .and_then(|i| i.snomed.map(str::to_owned))
        .or_else(|| site["snomed_code"].as_str().map(str::to_owned));
    let mut concept = json!({"text": format!("{display} ({key})")});
    if let Some(code) = snomed {
        concept["coding"] = json!([{"system": SNOMED, "code": code, "display": display}]);
    }
    let side = text(&site["laterality"]);
    if let Some((code, name)) = laterality(&side) {
        concept["extension"] = json!([{
            "url": format!("{EXTENSIONS}laterality"),
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": name}]}
        }]);
    }
    concept
}

/// What the mapping needs about the practitioners it references.
#[derive(Debug, Clone, Default)]
pub struct PractitionerFacts {
    /// Credentials: (kind, first day, last day).
    pub credentials: Vec<(
        prolo_schemas::CredentialKind,
        chrono::NaiveDate,
        Option<chrono::NaiveDate>,
    )>,
    /// The `practitioner.credentialed` events, with when each was recorded.
    pub events: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>,
}

/// The event a resource was first made from: its id, when the stream
/// stored it, its recording service.
type Seen = (uuid::Uuid, chrono::DateTime<chrono::Utc>, String);

/// Collects resources, one per id.
#[derive(Default)]
pub struct Bundle {
    entries: BTreeMap<(String, String), Value>,
    order: Vec<(String, String)>,
    practitioners: BTreeSet<String>,
    patients: BTreeSet<String>,
    clinic: String,
    /// The event being mapped.
    current: Option<Seen>,
    /// For resources made from several events (Patient, Practitioner,
    /// Medication): the first event that named each.
    first_seen: BTreeMap<(String, String), Seen>,
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{id}")})
}

impl Bundle {
    /// An empty bundle of `clinic`'s records.
    pub fn new(clinic: &str) -> Self {
        Bundle {
            clinic: clinic.to_owned(),
            ..Bundle::default()
        }
    }

    fn add(&mut self, mut resource: Value) {
        let kind = text(&resource["resourceType"]);
        let id = text(&resource["id"]);
        resource["id"] = Value::String(id.clone());
        let key = (kind, id);
        if !self.entries.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.entries.insert(key, resource);
    }

    fn seen(&mut self, kind: &str, id: &str) {
        if let Some(current) = &self.current {
            self.first_seen
                .entry((kind.to_owned(), id.to_owned()))
                .or_insert_with(|| current.clone());
        }
    }

    fn patient_ref(&mut self, patient: &str) -> Value {
        self.patients.insert(patient.to_owned());
        self.seen("Patient", &fhir_id(patient));
        reference("Patient", &fhir_id(patient))
    }

    fn practitioner_ref(&mut self, practitioner: &str) -> Value {
        self.practitioners.insert(practitioner.to_owned());
        self.seen("Practitioner", &fhir_id(practitioner));
        reference("Practitioner", &fhir_id(practitioner))
    }

    /// The Provenance of a resource made from several events: the first
    /// that named it (or, for a practitioner, their credential events).
    fn reference_provenance(
        &mut self,
        kind: &str,
        id: &str,
        events: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>,
    ) {
        let seen = self
            .first_seen
            .get(&(kind.to_owned(), id.to_owned()))
            .cloned();
        let mut sources = events;
        if sources.is_empty() {
            sources.extend(seen.iter().map(|(e, at, _)| (*e, *at)));
        }
        let Some(recorded) = sources.iter().map(|(_, at)| *at).max() else {
            return;
        };
        let source = seen.map_or_else(|| "practitioners".to_owned(), |(_, _, s)| s);
        let entity: Vec<Value> = sources
            .iter()
            .map(|(e, _)| json!({"role": "source", "what": {"identifier": {"system": EVENT_SYSTEM, "value": e.to_string()}}}))
            .collect();
        self.add(json!({
            "resourceType": "Provenance",
            "id": fhir_id(&format!("prov-{}-{id}", kind.to_lowercase())),
            "target": [reference(kind, id)],
            "recorded": recorded.to_rfc3339(),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"}]},
            "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian"}]},
                       "who": {"display": format!("prolo-audit {source} service")}}],
            "entity": entity,
        }));
    }

    /// The practitioners referenced so far (to look their credentials up).
    pub fn practitioners(&self) -> Vec<String> {
        self.practitioners.iter().cloned().collect()
    }

    /// Adds the events of `views` (a patient's history, or a lot's
    /// injections and adverse events), each corrected as `history` shows.
    pub fn add_events(&mut self, views: &[EventView], history: &[EventView]) {
        let by_seq: BTreeMap<u64, &EventView> = history.iter().map(|v| (v.seq, v)).collect();
        let withdrawn: BTreeSet<String> = history
            .iter()
            .filter(|v| {
                v.event_type == EventType::ConsentWithdrawn
                    && v.standing != ViewStanding::EnteredInError
            })
            .map(|v| text(&v.payload["consent_event_id"]))
            .collect();
        // The latest update of each adverse event.
        let mut updates: BTreeMap<String, &EventView> = BTreeMap::new();
        for v in history
            .iter()
            .filter(|v| v.event_type == EventType::AdverseEventUpdated)
        {
            updates.insert(text(&v.payload["adverse_event_id"]), v);
        }
        for v in views {
            self.current = Some((v.event_id, v.stored_at, v.source.clone()));
            // As corrected: the latest correction's payload.
            let correction = v
                .marks
                .iter()
                .rev()
                .filter(|m| m.kind == EventType::RecordCorrected)
                .find_map(|m| by_seq.get(&m.seq).copied());
            let payload = correction
                .map(|c| c.payload["corrected_payload"].clone())
                .filter(|p| !p.is_null())
                .unwrap_or_else(|| v.payload.clone());
            let voided = v.standing == ViewStanding::EnteredInError;
            let made: Vec<(String, String)> = match v.event_type {
                EventType::InjectionGiven => self.injection(v, &payload, voided),
                EventType::ConsentGiven => {
                    let status = if voided {
                        "entered-in-error"
                    } else if withdrawn.contains(&v.event_id.to_string()) {
                        "inactive"
                    } else {
                        "active"
                    };
                    self.consent(v, &payload, status)
                }
                EventType::ExaminationDone => self.examination(v, &payload, voided),
                EventType::ImagingRecorded => self.imaging(v, &payload, voided),
                EventType::AdverseEventReported if !voided => {
                    let update = updates.get(&v.event_id.to_string()).copied();
                    self.adverse_event(v, &payload, update)
                }
                _ => Vec::new(),
            };
            for (kind, id) in made {
                self.provenance(v, correction, &kind, &id);
            }
        }
    }

    // The clinical resources of each event type are in `resources.rs`.

    /// Who recorded `target`, from which event (and which correction).
    fn provenance(&mut self, v: &EventView, correction: Option<&EventView>, kind: &str, id: &str) {
        let actor = v.actor.id.to_string();
        let who = if v.actor.role == ActorRole::Practitioner {
            self.practitioner_ref(&actor)
        } else {
            let role = prolo_schemas::names::name(&v.actor.role);
            json!({"display": format!("{actor} ({role})")})
        };
        let mut entity = vec![
            json!({"role": "source", "what": {"identifier": {"system": EVENT_SYSTEM, "value": v.event_id.to_string()}}}),
        ];
        if let Some(c) = correction {
            entity.push(json!({"role": "revision", "what": {"identifier": {"system": EVENT_SYSTEM, "value": c.event_id.to_string()}}}));
        }
        let activity = if correction.is_some() {
            "UPDATE"
        } else {
            "CREATE"
        };
        let recorded = correction.map_or(v.stored_at, |c| c.stored_at);
        let mut target = reference(kind, id);
        if correction.is_some() {
            target = json!({"reference": format!("{kind}/{id}/_history/2")});
        }
        self.add(json!({
            "resourceType": "Provenance",
            "id": format!("prov-{}", fhir_id(id)),
            "target": [target],
            "recorded": recorded.to_rfc3339(),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": activity}]},
            "agent": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]}, "who": who},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian"}]},
                 "who": {"display": format!("prolo-audit {} service", v.source)}}
            ],
            "entity": entity,
        }));
        if let Some(resource) = self.entries.get_mut(&(kind.to_owned(), id.to_owned())) {
            resource["meta"] = Self::meta(correction);
        }
    }

    /// The patient's reads, as AuditEvents (DICOM audit codes).
    pub fn add_access(&mut self, reads: &[EventView]) {
        for v in reads
            .iter()
            .filter(|v| v.event_type == EventType::AccessRecorded)
        {
            let mut entity = Vec::new();
            for patient in v.payload["exposed_patients"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let patient = text(&patient);
                if self.patients.contains(&patient) {
                    entity.push(json!({"what": reference("Patient", &fhir_id(&patient)),
                        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}}));
                }
            }
            self.add(json!({
                "resourceType": "AuditEvent",
                "id": v.event_id.to_string(),
                "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
                "subtype": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}],
                "action": "R",
                "recorded": v.stored_at.to_rfc3339(),
                "outcome": "0",
                "outcomeDesc": format!("{}: {} records", text(&v.payload["query"]), text(&v.payload["records_returned"])),
                "agent": [{"who": {"identifier": {"value": text(&v.payload["principal_id"])}}, "requestor": true,
                           "role": [{"text": text(&v.payload["role"])}]}],
                "source": {"site": "prolo-audit", "observer": {"display": "prolo-audit audit API"}},
                "entity": entity,
            }));
        }
    }

    /// The bundle: the Patients and Practitioners referenced, then the rest.
    pub fn finish(mut self, facts: &BTreeMap<String, PractitionerFacts>) -> Value {
        let clinic = self.clinic.clone();
        for patient in self.patients.clone() {
            self.add(json!({
                "resourceType": "Patient",
                "id": fhir_id(&patient),
                "identifier": [{"system": format!("urn:prolo-audit:clinic:{clinic}:patient"), "value": patient}],
            }));
        }
        for practitioner in self.practitioners.clone() {
            let qualification: Vec<Value> = facts
                .get(&practitioner)
                .map(|f| {
                    f.credentials
                        .iter()
                        .map(|(kind, from, until)| {
                            let mut period = json!({"start": from});
                            if let Some(until) = until {
                                period["end"] = json!(until);
                            }
                            json!({"code": {"text": kind}, "period": period})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut resource = json!({
                "resourceType": "Practitioner",
                "id": fhir_id(&practitioner),
                "identifier": [{"system": format!("urn:prolo-audit:clinic:{clinic}:practitioner"), "value": practitioner}],
            });
            if !qualification.is_empty() {
                resource["qualification"] = Value::Array(qualification);
            }
            self.add(resource);
        }
        // Every resource made from several events has its Provenance too.
        let shared: Vec<(String, String)> = self
            .order
            .iter()
            .filter(|(kind, _)| matches!(kind.as_str(), "Patient" | "Practitioner" | "Medication"))
            .cloned()
            .collect();
        for (kind, id) in shared {
            let events = if kind == "Practitioner" {
                facts
                    .iter()
                    .find(|(name, _)| fhir_id(name) == id)
                    .map(|(_, f)| f.events.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            self.reference_provenance(&kind, &id, events);
        }
        let entries: Vec<Value> = self
            .order
            .iter()
            .filter_map(|key| self.entries.get(key))
            .map(|resource| {
                json!({
                    "fullUrl": format!("{BASE}{}/{}", text(&resource["resourceType"]), text(&resource["id"])),
                    "resource": resource,
                })
            })
            .collect();
        json!({
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "entry": entries,
        })
    }
}
