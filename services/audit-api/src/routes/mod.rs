//! The HTTP API: the endpoint table, from which both the router and the
//! OpenAPI document are made, and one module per resource. Every handler
//! is admitted by an extractor ([`admit`]: token, role, clinic scope),
//! answers, and records the read when it touches patient data before it
//! serves it ([`audited`]).

pub mod admit;
mod adverse_events;
mod audited;
mod events;
mod fhir;
mod findings;
mod lots;
mod middleware;
pub mod params;
mod patients;
mod practitioners;
mod quarantine;
mod signals;
mod status;

use async_nats::jetstream;
use axum::{Json, Router, routing::get};
use prolo_projector::Store;
use prolo_query::{self as q, EventView};

pub(crate) use self::{
    adverse_events::investigation_answer,
    findings::findings_page,
    lots::lot_trace_page,
    patients::{access_log_page, history_page},
    quarantine::quarantine_page,
    signals::signals_answer,
    status::status_answer,
};
pub use self::{
    params::{
        FindingParams, FindingStatus, InvestigationParams, ListParams, PageParams, TraceParams,
    },
    status::Readiness,
};
use crate::{
    access::AccessLog,
    answer::{LotTracePage, Page, PractitionerHistory, Status},
    auth::{Principals, QueryKind},
    openapi::{self, Endpoint, PathParam},
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The read models.
    pub store: Store,
    /// Who may ask.
    pub principals: Principals,
    /// Where reads are recorded.
    pub access: AccessLog,
    /// For the stream position.
    pub js: jetstream::Context,
    /// The broker's fsync policy, as found at start.
    pub broker: Option<prolo_bus::BrokerDurability>,
    /// How many refusals each client address may still have recorded.
    pub refusals: std::sync::Arc<crate::access::RefusalLimiter>,
    /// The fold's durable consumer (`/readyz` checks it is bound).
    pub consumer: String,
    /// How far behind the stream the read models may be and be ready.
    pub ready_lag: u64,
    /// The recording services' keys the fold checks seals against.
    pub seals: Option<std::sync::Arc<prolo_bus::Keyring>>,
}

const CLINIC: PathParam = PathParam {
    name: "clinic",
    description: "Clinic id",
    uuid: false,
};

const LOT: PathParam = PathParam {
    name: "lot",
    description: "Lot number",
    uuid: false,
};

const PATIENT: PathParam = PathParam {
    name: "patient",
    description: "Pseudonymous patient id",
    uuid: false,
};

/// The OpenAPI document of the API (made once, from [`endpoints`]).
pub fn openapi() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::document(&endpoints()))
}

/// The AsyncAPI document of the NATS interface (made once).
pub fn asyncapi() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(crate::asyncapi::document)
}

/// Every route: its handler beside its parameter and answer types. The
/// router and the OpenAPI document are both made from this table.
pub fn endpoints() -> Vec<Endpoint<AppState>> {
    use openapi::{params as p, schema as a};
    vec![
        Endpoint {
            path: "/openapi.json",
            handler: get(|| async { Json(openapi()) }),
            summary: "This document",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/asyncapi.json",
            handler: get(|| async { Json(asyncapi()) }),
            summary: "The AsyncAPI 3.0 description of the NATS interface (events, commands, findings, signals)",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/metrics",
            handler: get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        prolo_bus::metrics::CONTENT_TYPE,
                    )],
                    prolo_bus::metrics::render(),
                )
            }),
            summary: "Prometheus metrics of this process (OpenMetrics text; no token, no patient data)",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<String>,
            export: None,
        },
        Endpoint {
            path: "/healthz",
            handler: get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            summary: "The process answers (no authentication, no data)",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/readyz",
            handler: get(status::readyz),
            summary: "Ready to answer: NATS connected, the fold's consumer bound, the read models within the lag bound of the stream (503 and the failing checks otherwise; no authentication, no data)",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<Readiness>,
            export: None,
        },
        Endpoint {
            path: "/v1/status",
            handler: get(status::status),
            summary: "Stream position, projector lag, quarantine count, chain head, last verification, the broker's fsync policy, the database against the stream",
            query: Some(QueryKind::Status),
            path_params: &[],
            query_params: None,
            answer: a::<Status>,
            export: None,
        },
        Endpoint {
            path: "/v1/events/{event_id}",
            handler: get(events::event_by_id),
            summary: "One event by id, with its correction marks (403 when its clinic is not the token's)",
            query: Some(QueryKind::EventById),
            path_params: &[PathParam {
                name: "event_id",
                description: "Event id (UUID)",
                uuid: true,
            }],
            query_params: None,
            answer: a::<EventView>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/history",
            handler: get(patients::patient_history),
            summary: "Every event of a patient in stream order, with both times, actor, source and correction marks",
            query: Some(QueryKind::PatientHistory),
            path_params: &[CLINIC, PATIENT],
            query_params: Some(p::<ListParams>),
            answer: a::<Page<EventView>>,
            export: Some("every event"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/summary",
            handler: get(patients::patient_summary),
            summary: "The patient's current view: consents, examinations, plan, injections per site, adverse events, corrections",
            query: Some(QueryKind::PatientSummary),
            path_params: &[CLINIC, PATIENT],
            query_params: None,
            answer: a::<prolo_projector::model::PatientSummary>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/fhir",
            handler: get(fhir::patient_fhir),
            summary: "The patient's record as a FHIR R4 Bundle (collection, application/fhir+json): Consent, Procedure, MedicationAdministration and Medication per lot, Observation, ImagingStudy, AdverseEvent, Practitioner, Provenance of each, and AuditEvent of each read (compliance only)",
            query: Some(QueryKind::FhirExport),
            path_params: &[CLINIC, PATIENT],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/lots/{lot}/fhir",
            handler: get(fhir::lot_fhir),
            summary: "Everyone a lot reached as a FHIR R4 Bundle (collection, application/fhir+json): the lot's Medication, each injection's Procedure and MedicationAdministration, the adverse events after them, Patients, Practitioners and Provenance",
            query: Some(QueryKind::FhirExport),
            path_params: &[CLINIC, LOT],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/access-log",
            handler: get(patients::access_log),
            summary: "Who read this patient's data (access.recorded events, an incomplete export's second event included)",
            query: Some(QueryKind::AccessLog),
            path_params: &[CLINIC, PATIENT],
            query_params: Some(p::<ListParams>),
            answer: a::<Page<EventView>>,
            export: Some("every access event"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/adverse-events/{event_id}/investigation",
            handler: get(adverse_events::investigation),
            summary: "An adverse event with its updates, the injection it follows, the consent and examinations before it, the patient's events around it, other injections and adverse events on the same lots, other injections by the same practitioner",
            query: Some(QueryKind::AdverseEventInvestigation),
            path_params: &[CLINIC, INVESTIGATED],
            query_params: Some(p::<InvestigationParams>),
            answer: a::<q::Investigation>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/lots/{lot}/trace",
            handler: get(lots::lot_trace),
            summary: "Every injection with the lot (patient, site, date, practitioner), the adverse events after them, and the recall",
            query: Some(QueryKind::LotTrace),
            path_params: &[CLINIC, LOT],
            query_params: Some(p::<TraceParams>),
            answer: a::<LotTracePage>,
            export: Some("every injection with the lot"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/practitioners/{practitioner}/history",
            handler: get(practitioners::practitioner_history),
            summary: "A practitioner's credentials, injections and the adverse events after them",
            query: Some(QueryKind::PractitionerHistory),
            path_params: &[
                CLINIC,
                PathParam {
                    name: "practitioner",
                    description: "Practitioner id",
                    uuid: false,
                },
            ],
            query_params: Some(p::<ListParams>),
            answer: a::<PractitionerHistory>,
            export: Some("every event"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/findings",
            handler: get(findings::findings),
            summary: "Compliance findings, each with its rule, severity, evidence event ids, and the event that resolved it",
            query: Some(QueryKind::Findings),
            path_params: &[CLINIC],
            query_params: Some(p::<FindingParams>),
            answer: a::<Page<prolo_projector::rules::findings::Finding>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/signals",
            handler: get(signals::signals),
            summary: "Adverse events per 1,000 injections by lot, solution, site, practitioner and guidance, with 95% intervals, the clinic's baseline and the signals raised (counts only: no patient data)",
            query: Some(QueryKind::Signals),
            path_params: &[CLINIC],
            query_params: None,
            answer: a::<q::SignalReport>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/quarantine",
            handler: get(quarantine::quarantine),
            summary: "Messages on the clinic's subjects the fold quarantined instead of applying, with their reasons: malformed ones, and any no recording service sealed (each of those also raised unproven_publisher)",
            query: Some(QueryKind::Quarantine),
            path_params: &[CLINIC],
            query_params: Some(p::<PageParams>),
            answer: a::<Page<q::QuarantinedMessage>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/access-refused",
            handler: get(events::access_refused),
            summary: "Refused requests (401, 403) filed under the clinic (those naming no clinic under _unscoped), as access.refused events",
            query: Some(QueryKind::AccessRefused),
            path_params: &[CLINIC],
            query_params: Some(p::<ListParams>),
            answer: a::<Page<EventView>>,
            export: Some("every refusal"),
        },
    ]
}

const INVESTIGATED: PathParam = PathParam {
    name: "event_id",
    description: "The adverse_event.reported event id",
    uuid: true,
};

/// The API's routes, answering at most `max_in_flight` requests at once.
pub fn router(state: AppState, max_in_flight: usize, pages: Router<AppState>) -> Router {
    endpoints()
        .into_iter()
        .fold(Router::new(), |router, endpoint| {
            router.route(endpoint.path, endpoint.handler)
        })
        // The web console's pages, under the same layers.
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::record_refusals,
        ))
        .layer(axum::middleware::from_fn(middleware::measure))
        .with_state(state)
        // A handler that panics answers 500 JSON and is logged; the
        // connection and the server stay up.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panicked,
        ))
        // One budget for all routes: a burst waits its turn instead of
        // taking every blocking thread and the memory of its answers. The
        // permit is held until the answer starts (a streamed body is not
        // counted).
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            max_in_flight.max(1),
        ))
        // No request holds a worker for ever: an answer not started within
        // 30 s is 503. (A streamed export, once started, is not cut.)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            std::time::Duration::from_secs(30),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_parameters_and_answer() {
        let doc = openapi();
        let paths = doc["paths"].as_object().map(|p| p.len()).unwrap_or(0);
        assert_eq!(paths, endpoints().len());
        let history = &doc["paths"]["/v1/clinics/{clinic}/patients/{patient}/history"]["get"];
        let names: Vec<&str> = history["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "clinic", "patient", "as_of", "cursor", "format", "from", "limit", "to", "type"
            ]
        );
        let limit = history["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "limit")
            .cloned()
            .unwrap_or_default();
        assert_eq!(limit["schema"]["maximum"], 1000, "{limit}");
        assert_eq!(limit["schema"]["type"], "integer", "{limit}");
        assert!(
            history["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Roles: compliance, safety.")),
            "{history}"
        );
        let access_log = &doc["paths"]["/v1/clinics/{clinic}/patients/{patient}/access-log"]["get"];
        assert!(
            access_log["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Roles: compliance."))
        );
        // Every reference resolves.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }
}
