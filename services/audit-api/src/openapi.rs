//! The OpenAPI description served at `/openapi.json`, written here by hand
//! next to the routes it describes (`routes.rs`).

use serde_json::{Value, json};

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "description": description, "schema": schema})
}

fn list_params() -> Vec<Value> {
    vec![
        param(
            "type",
            "query",
            "Comma-separated event types, e.g. injection.given,adverse_event.reported",
            json!({"type": "string"}),
        ),
        param(
            "from",
            "query",
            "Clinical time from (RFC 3339, inclusive)",
            json!({"type": "string", "format": "date-time"}),
        ),
        param(
            "to",
            "query",
            "Clinical time to (RFC 3339, exclusive)",
            json!({"type": "string", "format": "date-time"}),
        ),
        param(
            "as_of",
            "query",
            "Answer as known at this time: only events JetStream stored up to it (stored_at, the stream's clock), and only the corrections known then",
            json!({"type": "string", "format": "date-time"}),
        ),
        param(
            "cursor",
            "query",
            "next_cursor of the previous page",
            json!({"type": "string"}),
        ),
        param(
            "limit",
            "query",
            "Page size, 1 to 1000 (default 100)",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        param(
            "format",
            "query",
            "json (paginated), jsonl or csv (the whole answer, streamed)",
            json!({"type": "string", "enum": ["json", "jsonl", "csv"]}),
        ),
    ]
}

fn path(name: &str, description: &str) -> Value {
    param(
        name,
        "path",
        description,
        json!({"type": "string", "pattern": prolo_schemas::ID_PATTERN}),
    )
}

fn op(summary: &str, roles: &str, parameters: Vec<Value>, audited: bool) -> Value {
    let mut description = format!("Roles: {roles}.");
    if audited {
        description.push_str(" Each successful call is recorded as an access.recorded event.");
    }
    json!({
        "get": {
            "summary": summary,
            "description": description,
            "security": [{"bearer": []}],
            "parameters": parameters,
            "responses": {
                "200": {"description": "The answer"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"}
            }
        }
    })
}

/// The document.
pub fn document() -> Value {
    let clinic = path("clinic", "Clinic id");
    let patient = path("patient", "Pseudonymous patient id");
    let mut history = vec![clinic.clone(), patient.clone()];
    history.extend(list_params());
    let mut practitioner = vec![clinic.clone(), path("practitioner", "Practitioner id")];
    practitioner.extend(list_params());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "prolo-audit query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The audit trail of reconstructive-therapy clinics, for compliance officers and safety reviewers. Answers are complete and in stream order. Reads of patient data are themselves recorded."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error with a stable code",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"error": {"type": "object", "properties": {
                            "code": {"type": "string", "enum": ["unauthorized", "forbidden", "bad_request", "not_found", "not_audited", "internal"]},
                            "message": {"type": "string"}
                        }}}
                    }}}
                }
            }
        },
        "paths": {
            "/v1/status": op("Stream position, projector lag, quarantine count, chain head, last verification", "compliance, safety, service", vec![], false),
            "/v1/events/{event_id}": op("One event by id, with its correction marks", "compliance, safety", vec![path("event_id", "Event id (UUID)")], true),
            "/v1/clinics/{clinic}/patients/{patient}/history": op("Every event of a patient in stream order, with both times, actor, source and correction marks", "compliance, safety", history, true),
            "/v1/clinics/{clinic}/patients/{patient}/summary": op("The patient's current view: consents, examinations, plan, injections per site, adverse events, corrections", "compliance, safety", vec![clinic.clone(), patient.clone()], true),
            "/v1/clinics/{clinic}/patients/{patient}/access-log": op("Who read this patient's data (access.recorded events)", "compliance", {
                let mut p = vec![clinic.clone(), patient.clone()];
                p.extend(list_params());
                p
            }, true),
            "/v1/clinics/{clinic}/adverse-events/{event_id}/investigation": op("An adverse event with its updates, the injection it follows, the consent and examinations before it, the patient's events around it, other injections and adverse events on the same lots, other injections by the same practitioner", "compliance, safety", vec![clinic.clone(), path("event_id", "The adverse_event.reported event id"), param("window_days", "query", "Days around the onset (default 14)", json!({"type": "integer"}))], true),
            "/v1/clinics/{clinic}/lots/{lot}/trace": op("Every injection with the lot (patient, site, date, practitioner), the adverse events after them, and the recall", "compliance, safety", vec![clinic.clone(), path("lot", "Lot number"), param("format", "query", "json, jsonl or csv (injection rows)", json!({"type": "string", "enum": ["json", "jsonl", "csv"]}))], true),
            "/v1/clinics/{clinic}/practitioners/{practitioner}/history": op("A practitioner's credentials, injections and the adverse events after them", "compliance, safety", practitioner, true),
            "/v1/clinics/{clinic}/findings": op("Compliance findings, each with its rule, severity, evidence event ids, and the event that resolved it", "compliance, safety", vec![
                clinic.clone(),
                param("rule", "query", "no_active_consent, site_outside_consent, no_valid_credential, no_examination_or_candidacy, series_without_follow_up_imaging, adverse_event_link_invalid, no_adverse_event_update, late_documentation, expired_or_recalled_lot, axial_site_by_palpation_only, serious_event_reported_late", json!({"type": "string"})),
                param("status", "query", "open or resolved", json!({"type": "string", "enum": ["open", "resolved"]})),
                param("patient", "query", "Patient id", json!({"type": "string"})),
                param("practitioner", "query", "Practitioner id", json!({"type": "string"})),
                param("from", "query", "Clinical time from", json!({"type": "string", "format": "date-time"})),
                param("to", "query", "Clinical time to", json!({"type": "string", "format": "date-time"})),
            ], true),
            "/v1/clinics/{clinic}/signals": op("Adverse events per 1,000 injections by lot, solution, site, practitioner and guidance, with 95% intervals, the clinic's baseline and the signals raised", "compliance, safety", vec![clinic.clone()], false)
        }
    })
}
