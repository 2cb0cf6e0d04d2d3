//! The HTTP API. Every handler authenticates, checks the role, answers,
//! records the read when it touches patient data, then serves it.

use std::collections::{BTreeMap, BTreeSet};

use async_nats::jetstream;
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use prolo_bus::STREAM_NAME;
use prolo_projector::{Store, VerifyReport, chain};
use prolo_query::{self as q, EventView};
use prolo_schemas::{ClinicId, EventType, LotNumber, PatientId, PractitionerId};
use serde::Deserialize;

use crate::{
    access::{AccessLog, Read},
    answer::{EdgeStatus, LotTracePage, Page, PractitionerHistory, Status, StreamConsistency},
    auth::{Principal, Principals, QueryKind},
    error::ApiError,
    openapi::{self, Endpoint, PathParam},
    render::{self, Format},
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
            handler: get(readyz),
            summary: "Ready to answer: NATS connected, the fold's consumer bound, the read models within the lag bound of the stream (503 and the failing checks otherwise; no authentication, no data)",
            query: None,
            path_params: &[],
            query_params: None,
            answer: a::<Readiness>,
            export: None,
        },
        Endpoint {
            path: "/v1/status",
            handler: get(status),
            summary: "Stream position, projector lag, quarantine count, chain head, last verification, the broker's fsync policy, the database against the stream",
            query: Some(QueryKind::Status),
            path_params: &[],
            query_params: None,
            answer: a::<Status>,
            export: None,
        },
        Endpoint {
            path: "/v1/events/{event_id}",
            handler: get(event_by_id),
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
            handler: get(patient_history),
            summary: "Every event of a patient in stream order, with both times, actor, source and correction marks",
            query: Some(QueryKind::PatientHistory),
            path_params: &[CLINIC, PATIENT],
            query_params: Some(p::<ListParams>),
            answer: a::<Page<EventView>>,
            export: Some("every event"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/summary",
            handler: get(patient_summary),
            summary: "The patient's current view: consents, examinations, plan, injections per site, adverse events, corrections",
            query: Some(QueryKind::PatientSummary),
            path_params: &[CLINIC, PATIENT],
            query_params: None,
            answer: a::<prolo_projector::model::PatientSummary>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/fhir",
            handler: get(patient_fhir),
            summary: "The patient's record as a FHIR R4 Bundle (collection, application/fhir+json): Consent, Procedure, MedicationAdministration and Medication per lot, Observation, ImagingStudy, AdverseEvent, Practitioner, Provenance of each, and AuditEvent of each read (compliance only)",
            query: Some(QueryKind::FhirExport),
            path_params: &[CLINIC, PATIENT],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/lots/{lot}/fhir",
            handler: get(lot_fhir),
            summary: "Everyone a lot reached as a FHIR R4 Bundle (collection, application/fhir+json): the lot's Medication, each injection's Procedure and MedicationAdministration, the adverse events after them, Patients, Practitioners and Provenance",
            query: Some(QueryKind::FhirExport),
            path_params: &[CLINIC, LOT],
            query_params: None,
            answer: a::<serde_json::Map<String, serde_json::Value>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/patients/{patient}/access-log",
            handler: get(access_log),
            summary: "Who read this patient's data (access.recorded events, an incomplete export's second event included)",
            query: Some(QueryKind::AccessLog),
            path_params: &[CLINIC, PATIENT],
            query_params: Some(p::<ListParams>),
            answer: a::<Page<EventView>>,
            export: Some("every access event"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/adverse-events/{event_id}/investigation",
            handler: get(investigation),
            summary: "An adverse event with its updates, the injection it follows, the consent and examinations before it, the patient's events around it, other injections and adverse events on the same lots, other injections by the same practitioner",
            query: Some(QueryKind::AdverseEventInvestigation),
            path_params: &[CLINIC, INVESTIGATED],
            query_params: Some(p::<InvestigationParams>),
            answer: a::<q::Investigation>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/lots/{lot}/trace",
            handler: get(lot_trace),
            summary: "Every injection with the lot (patient, site, date, practitioner), the adverse events after them, and the recall",
            query: Some(QueryKind::LotTrace),
            path_params: &[CLINIC, LOT],
            query_params: Some(p::<TraceParams>),
            answer: a::<LotTracePage>,
            export: Some("every injection with the lot"),
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/practitioners/{practitioner}/history",
            handler: get(practitioner_history),
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
            handler: get(findings),
            summary: "Compliance findings, each with its rule, severity, evidence event ids, and the event that resolved it",
            query: Some(QueryKind::Findings),
            path_params: &[CLINIC],
            query_params: Some(p::<FindingParams>),
            answer: a::<Page<prolo_projector::findings::Finding>>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/signals",
            handler: get(signals),
            summary: "Adverse events per 1,000 injections by lot, solution, site, practitioner and guidance, with 95% intervals, the clinic's baseline and the signals raised (counts only: no patient data)",
            query: Some(QueryKind::Signals),
            path_params: &[CLINIC],
            query_params: None,
            answer: a::<q::SignalReport>,
            export: None,
        },
        Endpoint {
            path: "/v1/clinics/{clinic}/access-refused",
            handler: get(access_refused),
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
            record_refusals,
        ))
        .layer(axum::middleware::from_fn(measure))
        .with_state(state)
        // A handler that panics answers 500 JSON and is logged; the
        // connection and the server stay up.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
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

/// Counts every answer by route template and status, and times it.
async fn measure(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let Some(metrics) = prolo_bus::metrics::active() else {
        return response;
    };
    metrics
        .http_requests
        .get_or_create(&prolo_bus::metrics::HttpLabels {
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .http_seconds
        .get_or_create(&prolo_bus::metrics::RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Records every 401 and 403 as `access.refused` (rate-limited per client
/// address), then sends the answer unchanged.
async fn record_refusals(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers().clone();
    let path = request.uri().path().to_owned();
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let response = next.run(request).await;
    let status = response.status();
    if status != axum::http::StatusCode::UNAUTHORIZED && status != axum::http::StatusCode::FORBIDDEN
    {
        return response;
    }
    if state.refusals.allow(source) {
        let reason = response
            .extensions()
            .get::<crate::error::Refused>()
            .map_or_else(|| "refused".to_owned(), |r| r.0.clone());
        let clinic = path
            .strip_prefix("/v1/clinics/")
            .or_else(|| path.strip_prefix("/console/"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|c| c.parse::<ClinicId>().ok())
            .or_else(|| crate::access::UNSCOPED.parse().ok());
        if let Some(clinic) = clinic {
            let refusal = crate::access::Refusal {
                principal: state.principals.authenticate(&headers).ok(),
                clinic,
                path,
                status: status.as_u16(),
                reason,
                source_address: source.map(|ip| ip.to_string()),
            };
            if let Err(e) = state.access.refused(refusal).await {
                tracing::warn!(error = %e, "a refused request could not be recorded");
            }
        }
    }
    response
}

/// The refused requests filed under a clinic (compliance only).
async fn access_refused(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::AccessRefused, &clinic)?;
    let params = params(query)?;
    let clinic: ClinicId = id(&clinic)?;
    let seqs = {
        let clinic = clinic.clone();
        off_worker(&state, move |store| q::access_refused(store, &clinic)).await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::AccessRefused,
        patient: None,
    };
    list_response(&state, asked, ListOf::Events, &params, seqs, page_answer).await
}

/// Runs a read of the read models on the blocking pool: sled reads block,
/// and must not hold up the async workers that serve other requests.
pub(crate) async fn off_worker<T, F>(state: &AppState, read: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&prolo_projector::Store) -> Result<T, prolo_query::QueryError> + Send + 'static,
{
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| ApiError::Internal(format!("a read of the store failed: {e}")))?
        .map_err(ApiError::from)
}

/// The answer to a request whose handler panicked.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    ApiError::Internal(format!("the handler failed ({what})")).into_response()
}

/// Query parameters: bounded (a value outside is refused with 400 naming
/// it), described in the OpenAPI document from the same type, and recorded
/// as given in the access log.
pub(crate) trait QueryParams: serde::de::DeserializeOwned + serde::Serialize {
    /// Refuses a value outside its bounds.
    fn check(&self) -> Result<(), ApiError>;
}

/// The parameters of a request, checked.
pub(crate) fn params<P: QueryParams>(
    query: Result<Query<P>, QueryRejection>,
) -> Result<P, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    params.check()?;
    Ok(params)
}

/// The parameters as given, for the access log.
fn logged<P: serde::Serialize>(params: &P) -> BTreeMap<String, String> {
    let serde_json::Value::Object(map) = serde_json::to_value(params).unwrap_or_default() else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect()
}

/// Query parameters of the event lists (histories, access logs).
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Comma-separated event types, e.g. `injection.given,adverse_event.reported`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) event_type: Option<String>,
    /// Clinical time from (RFC 3339, inclusive), within 100 years of today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// Clinical time to (RFC 3339, exclusive), within 100 years of today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<DateTime<Utc>>,
    /// Answer as known at this time: only events JetStream stored up to it
    /// (`stored_at`, the stream's clock), and only the corrections known then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
    /// `json` (paginated, the default), `jsonl` or `csv` (the whole answer, streamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = Format::NAMES))]
    pub(crate) format: Option<String>,
}

impl QueryParams for ListParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit)?;
        within_a_century("from", self.from)?;
        within_a_century("to", self.to)?;
        within_a_century("as_of", self.as_of)
    }
}

impl ListParams {
    pub(crate) fn filter(&self) -> Result<q::HistoryFilter, ApiError> {
        let event_types = match &self.event_type {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|t| {
                    t.trim()
                        .parse::<EventType>()
                        .map_err(|e| ApiError::BadRequest(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(q::HistoryFilter {
            event_types,
            from: self.from,
            to: self.to,
            as_of: self.as_of,
        })
    }
}

/// Query parameters of an adverse-event investigation.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationParams {
    /// Days around the onset, 1 to 365 (default 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_WINDOW_DAYS))]
    pub(crate) window_days: Option<i64>,
}

impl QueryParams for InvestigationParams {
    fn check(&self) -> Result<(), ApiError> {
        match self.window_days {
            Some(days) if !(1..=MAX_WINDOW_DAYS).contains(&days) => Err(ApiError::BadRequest(
                format!("window_days: {days} is not between 1 and {MAX_WINDOW_DAYS}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Query parameters of a lot trace.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    /// The `next_cursor` of the previous page of injections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<u64>,
    /// Injections per page, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
    /// `json` (paginated, the default), `jsonl` or `csv` (every injection, streamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = Format::NAMES))]
    pub(crate) format: Option<String>,
}

impl QueryParams for TraceParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit).map(|_| ())
    }
}

/// The page size when none is asked for.
const DEFAULT_LIMIT: usize = 100;
/// The largest page.
const MAX_LIMIT: usize = 1000;

/// The page size asked for (100 when absent), refused outside 1 to [`MAX_LIMIT`].
fn bounded_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::BadRequest(format!(
            "limit: {limit} is not between 1 and {MAX_LIMIT}"
        ))),
    }
}
/// The widest investigation window, days.
const MAX_WINDOW_DAYS: i64 = 365;

/// A time parameter must lie within 100 years of now: anything further is a
/// typo, and would overflow the arithmetic done with it.
fn within_a_century(name: &str, value: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let century = chrono::Duration::days(36_525);
    let now = Utc::now();
    if value < now - century || value > now + century {
        return Err(ApiError::BadRequest(format!(
            "{name}: {} is not within 100 years of today",
            value.to_rfc3339()
        )));
    }
    Ok(())
}

/// Who asks, allowed to run `query` in `clinic`: authenticated, in a role
/// that may, with the clinic in the token's scope.
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: QueryKind,
    clinic: &str,
) -> Result<Principal, ApiError> {
    let principal = state.principals.authenticate(headers)?;
    principal.may(query)?;
    principal.may_read(clinic)?;
    Ok(principal)
}

pub(crate) fn id<T: std::str::FromStr>(value: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ApiError::BadRequest(e.to_string()))
}

/// Who asked what, about whom: what the access log records.
pub(crate) struct Asked<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) clinic: &'a ClinicId,
    pub(crate) query: QueryKind,
    pub(crate) patient: Option<PatientId>,
}

impl Asked<'_> {
    /// The read as the access log records it; `exposed`: every patient
    /// whose data the answer carries (the patient asked about is added).
    fn read(
        &self,
        parameters: BTreeMap<String, String>,
        records: u64,
        mut exposed: BTreeSet<PatientId>,
    ) -> Read {
        exposed.extend(self.patient.clone());
        Read {
            query: self.query,
            parameters,
            patient_id: self.patient.clone(),
            exposed,
            records,
        }
    }

    /// Records the read of an answer sent whole.
    async fn record(
        self,
        state: &AppState,
        parameters: BTreeMap<String, String>,
        records: u64,
        exposed: BTreeSet<PatientId>,
    ) -> Result<(), ApiError> {
        let read = self.read(parameters, records, exposed);
        state
            .access
            .record(self.principal, self.clinic, &read)
            .await
            .map(|_| ())
    }

    /// Records the read of a streamed export; what its early end must record.
    async fn record_export(
        self,
        state: &AppState,
        parameters: BTreeMap<String, String>,
        records: u64,
        exposed: BTreeSet<PatientId>,
    ) -> Result<render::OnCut, ApiError> {
        let read = self.read(parameters, records, exposed);
        let first = state
            .access
            .record(self.principal, self.clinic, &read)
            .await?;
        Ok(on_cut(state, self.principal, self.clinic, read, first))
    }
}

/// What an export that ends early does: records the same read again,
/// marked incomplete with the rows sent and why, caused by the first record
/// (`first`). The body is already on its way, so this runs on its own task.
fn on_cut(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    read: Read,
    first: uuid::Uuid,
) -> render::OnCut {
    let (access, principal, clinic) = (state.access.clone(), principal.clone(), clinic.clone());
    Box::new(move |cut| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%first, "an incomplete export could not be recorded: no runtime");
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = access
                .record_cut(&principal, &clinic, read, first, cut)
                .await
            {
                tracing::error!(%first, error = %e, "an incomplete export could not be recorded");
            }
        });
    })
}

/// The patients named by rendered rows (views' and rows' `patient_id`).
fn patients_named<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<PatientId> {
    ids.into_iter().filter_map(|p| p.parse().ok()).collect()
}

/// A page of events as the JSON answer.
fn page_answer(page: Page<EventView>) -> Response {
    Json(page).into_response()
}

/// Whose data a list of events carries, for the access log of its export.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ListOf {
    /// One patient's history: the patient index holds only events filed
    /// under that patient, so the patient asked about is every patient it
    /// exposes, and no pass over the events is needed to name them.
    OnePatient,
    /// Any other list: each event's patient, read from the events.
    Events,
}

/// Answers a list of events: a JSON page (made the answer by `answer`), or
/// the whole list streamed.
async fn list_response(
    state: &AppState,
    asked: Asked<'_>,
    list: ListOf,
    params: &ListParams,
    seqs: Vec<u64>,
    answer: impl FnOnce(Page<EventView>) -> Response,
) -> Result<Response, ApiError> {
    let format = Format::parse(params.format.as_deref())?;
    let limit = bounded_limit(params.limit)?;
    if format != Format::Json {
        let exposed = match list {
            // `Asked::read` adds the patient asked about.
            ListOf::OnePatient if asked.patient.is_some() => BTreeSet::new(),
            _ => {
                let seqs = seqs.clone();
                off_worker(state, move |store| q::patients_of(store, &seqs)).await?
            }
        };
        let on_cut = asked
            .record_export(state, logged(params), seqs.len() as u64, exposed)
            .await?;
        return Ok(render::stream_events(
            state.store.clone(),
            seqs,
            params.as_of,
            format,
            on_cut,
        ));
    }
    Ok(answer(json_page(state, asked, params, seqs, limit).await?))
}

/// One page of a list of events, its read recorded: the JSON answer's,
/// and the console's.
async fn json_page(
    state: &AppState,
    asked: Asked<'_>,
    params: &ListParams,
    seqs: Vec<u64>,
    limit: usize,
) -> Result<Page<EventView>, ApiError> {
    let page = {
        let (cursor, as_of) = (params.cursor, params.as_of);
        off_worker(state, move |store| {
            q::event_page(store, &seqs, cursor, limit, as_of)
        })
        .await?
    };
    recorded_page(state, asked, params, page).await
}

/// A page made, its read recorded before it is answered.
async fn recorded_page(
    state: &AppState,
    asked: Asked<'_>,
    params: &ListParams,
    page: q::EventPage,
) -> Result<Page<EventView>, ApiError> {
    let exposed = patients_named(page.items.iter().filter_map(|v| v.patient_id.as_deref()));
    asked
        .record(state, logged(params), page.items.len() as u64, exposed)
        .await?;
    Ok(Page {
        total: page.total,
        items: page.items,
        next_cursor: page.next.map(|c| c.to_string()),
    })
}

/// A JSON page of a patient's history, its read recorded (the API's and
/// the console's timeline): each of the patient's events is decoded once,
/// also when a filter has to read all of them.
pub(crate) async fn history_page(
    state: &AppState,
    principal: &Principal,
    (clinic, patient): (&ClinicId, &PatientId),
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let page = {
        let (clinic, patient, filter) = (clinic.clone(), patient.clone(), params.filter()?);
        let (cursor, as_of) = (params.cursor, params.as_of);
        off_worker(state, move |store| {
            q::patient_history_page(store, (&clinic, &patient), &filter, cursor, limit, as_of)
        })
        .await?
    };
    let asked = Asked {
        principal,
        clinic,
        query: QueryKind::PatientHistory,
        patient: Some(patient.clone()),
    };
    recorded_page(state, asked, params, page).await
}

/// A page of a patient's access log, its read recorded (the console's).
pub(crate) async fn access_log_page(
    state: &AppState,
    principal: &Principal,
    (clinic, patient): (&ClinicId, &PatientId),
    params: &ListParams,
) -> Result<Page<EventView>, ApiError> {
    let seqs = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(state, move |store| q::access_log(store, &clinic, &patient)).await?
    };
    let asked = Asked {
        principal,
        clinic,
        query: QueryKind::AccessLog,
        patient: Some(patient.clone()),
    };
    json_page(state, asked, params, seqs, bounded_limit(params.limit)?).await
}

async fn patient_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::PatientHistory, &clinic)?;
    let params = params(query)?;
    let (clinic, patient): (ClinicId, PatientId) = (id(&clinic)?, id(&patient)?);
    if Format::parse(params.format.as_deref())? == Format::Json {
        let page = history_page(&state, &principal, (&clinic, &patient), &params).await?;
        return Ok(page_answer(page));
    }
    let seqs = {
        let (clinic, patient, filter) = (clinic.clone(), patient.clone(), params.filter()?);
        off_worker(&state, move |store| {
            q::patient_history(store, &clinic, &patient, &filter)
        })
        .await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::PatientHistory,
        patient: Some(patient),
    };
    list_response(
        &state,
        asked,
        ListOf::OnePatient,
        &params,
        seqs,
        page_answer,
    )
    .await
}

async fn practitioner_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, practitioner)): Path<(String, String)>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::PractitionerHistory, &clinic)?;
    let params = params(query)?;
    let (clinic, practitioner): (ClinicId, PractitionerId) = (id(&clinic)?, id(&practitioner)?);
    let (summary, seqs) = {
        let (clinic, practitioner, filter) =
            (clinic.clone(), practitioner.clone(), params.filter()?);
        off_worker(&state, move |store| {
            q::practitioner_history(store, &clinic, &practitioner, &filter)
        })
        .await?
    };
    let answer = move |page| Json(PractitionerHistory { page, summary }).into_response();
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::PractitionerHistory,
        patient: None,
    };
    list_response(&state, asked, ListOf::Events, &params, seqs, answer).await
}

async fn access_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::AccessLog, &clinic)?;
    let params = params(query)?;
    let (clinic, patient): (ClinicId, PatientId) = (id(&clinic)?, id(&patient)?);
    let seqs = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(&state, move |store| q::access_log(store, &clinic, &patient)).await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::AccessLog,
        patient: Some(patient),
    };
    list_response(&state, asked, ListOf::Events, &params, seqs, page_answer).await
}

/// A FHIR answer: the bundle as `application/fhir+json`.
fn fhir_answer(bundle: &serde_json::Value) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/fhir+json; charset=utf-8",
        )],
        serde_json::to_vec(bundle).unwrap_or_default(),
    )
        .into_response()
}

/// The credentials of the practitioners a bundle references.
fn practitioner_facts(
    store: &Store,
    clinic: &ClinicId,
    practitioners: &[String],
) -> Result<BTreeMap<String, crate::fhir::PractitionerFacts>, q::QueryError> {
    let mut facts = BTreeMap::new();
    for id in practitioners {
        let credentials = store
            .practitioner_summary(clinic.as_str(), id)?
            .map(|s| s.credentials)
            .unwrap_or_default();
        let stored = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        facts.insert(
            id.clone(),
            crate::fhir::PractitionerFacts {
                events: credentials
                    .iter()
                    .map(|c| (c.origin.event_id, stored(c.origin.recorded_at_ms)))
                    .collect(),
                credentials: credentials
                    .into_iter()
                    .map(|c| (c.credential, c.valid_from, c.valid_until))
                    .collect(),
            },
        );
    }
    Ok(facts)
}

async fn patient_fhir(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::FhirExport, &clinic)?;
    let (clinic, patient): (ClinicId, PatientId) = (id(&clinic)?, id(&patient)?);
    // Its reads are in it only for those who may read the access log.
    let with_reads = principal.may(QueryKind::AccessLog).is_ok();
    let (bundle, records) = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(&state, move |store| {
            let seqs = q::patient_history(store, &clinic, &patient, &q::HistoryFilter::default())?;
            let views = q::views(store, &seqs, None)?;
            let reads = if with_reads {
                let seqs = q::access_log(store, &clinic, &patient)?;
                q::views(store, &seqs, None)?
            } else {
                Vec::new()
            };
            let mut bundle = crate::fhir::Bundle::new(clinic.as_str());
            bundle.add_events(&views, &views);
            bundle.add_access(&reads);
            let facts = practitioner_facts(store, &clinic, &bundle.practitioners())?;
            Ok((bundle.finish(&facts), (views.len() + reads.len()) as u64))
        })
        .await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::FhirExport,
        patient: Some(patient),
    };
    asked
        .record(&state, BTreeMap::new(), records, BTreeSet::new())
        .await?;
    Ok(fhir_answer(&bundle))
}

async fn lot_fhir(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, lot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::FhirExport, &clinic)?;
    let (clinic, lot): (ClinicId, LotNumber) = (id(&clinic)?, id(&lot)?);
    let (bundle, records, exposed) = {
        let (clinic, lot) = (clinic.clone(), lot.clone());
        off_worker(&state, move |store| {
            let trace = q::lot_trace(store, &clinic, &lot)?;
            let exposed = trace_exposed(&trace);
            let mut seqs: Vec<u64> = trace.injections.iter().map(|r| r.seq).collect();
            seqs.extend(trace.adverse_events.iter().map(|r| r.seq));
            let views = q::views(store, &seqs, None)?;
            // Their corrections and the adverse events' follow-ups.
            let mut related: Vec<u64> = views
                .iter()
                .flat_map(|v| v.marks.iter().map(|m| m.seq))
                .collect();
            related.extend(
                trace
                    .adverse_events
                    .iter()
                    .flat_map(|r| r.state.updates.iter().map(|u| u.origin.seq)),
            );
            let mut history = views.clone();
            history.extend(q::views(store, &related, None)?);
            let mut bundle = crate::fhir::Bundle::new(clinic.as_str());
            bundle.add_events(&views, &history);
            let facts = practitioner_facts(store, &clinic, &bundle.practitioners())?;
            Ok((bundle.finish(&facts), views.len() as u64, exposed))
        })
        .await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::FhirExport,
        patient: None,
    };
    asked
        .record(&state, BTreeMap::new(), records, exposed)
        .await?;
    Ok(fhir_answer(&bundle))
}

async fn patient_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::PatientSummary, &clinic)?;
    let (clinic, patient): (ClinicId, PatientId) = (id(&clinic)?, id(&patient)?);
    let summary = {
        let (clinic, patient) = (clinic.clone(), patient.clone());
        off_worker(&state, move |store| {
            q::patient_summary(store, &clinic, &patient)
        })
        .await?
    };
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::PatientSummary,
        patient: Some(patient),
    };
    asked
        .record(&state, BTreeMap::new(), 1, BTreeSet::new())
        .await?;
    Ok(Json(summary).into_response())
}

async fn investigation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, event_id)): Path<(String, String)>,
    query: Result<Query<InvestigationParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(
        &state,
        &headers,
        QueryKind::AdverseEventInvestigation,
        &clinic,
    )?;
    let params = params(query)?;
    let clinic: ClinicId = id(&clinic)?;
    let event_id: uuid::Uuid = id(&event_id)?;
    let answer = investigation_answer(&state, &principal, &clinic, event_id, &params).await?;
    Ok(Json(answer).into_response())
}

/// An adverse event's investigation, its read recorded (the API's answer
/// and the console's page).
pub(crate) async fn investigation_answer(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    event_id: uuid::Uuid,
    params: &InvestigationParams,
) -> Result<q::Investigation, ApiError> {
    let answer = {
        let (clinic, window) = (clinic.clone(), params.window_days.unwrap_or(14));
        off_worker(state, move |store| {
            q::investigation(store, &clinic, &event_id, window)
        })
        .await?
    };
    let patient = answer.state.patient_id.parse().ok();
    let views = std::iter::once(&answer.report)
        .chain(&answer.updates)
        .chain(&answer.injection)
        .chain(&answer.consents_before)
        .chain(&answer.examinations_before)
        .chain(&answer.window)
        .filter_map(|v| v.patient_id.as_deref());
    let rows = answer
        .same_lot_injections
        .iter()
        .chain(&answer.same_practitioner_injections)
        .map(|r| r.patient_id.as_str());
    let adverse = answer
        .same_lot_adverse_events
        .iter()
        .map(|r| r.state.patient_id.as_str());
    let exposed = patients_named(
        views
            .chain(rows)
            .chain(adverse)
            .chain(std::iter::once(answer.state.patient_id.as_str())),
    );
    let asked = Asked {
        principal,
        clinic,
        query: QueryKind::AdverseEventInvestigation,
        patient,
    };
    asked
        .record(state, logged(params), answer.records(), exposed)
        .await?;
    Ok(answer)
}

async fn lot_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((clinic, lot)): Path<(String, String)>,
    query: Result<Query<TraceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::LotTrace, &clinic)?;
    let params = params(query)?;
    let format = Format::parse(params.format.as_deref())?;
    let (clinic, lot): (ClinicId, LotNumber) = (id(&clinic)?, id(&lot)?);
    // A JSON answer is a page of the injections (the adverse events and
    // recalls whole); an export streams every injection.
    if format == Format::Json {
        let page = lot_trace_page(&state, &principal, &clinic, &lot, &params).await?;
        return Ok(Json(page).into_response());
    }
    let trace = {
        let (clinic, lot) = (clinic.clone(), lot.clone());
        off_worker(&state, move |store| q::lot_trace(store, &clinic, &lot)).await?
    };
    let records = (trace.injections.len() + trace.adverse_events.len()) as u64;
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::LotTrace,
        patient: None,
    };
    let on_cut = asked
        .record_export(&state, logged(&params), records, trace_exposed(&trace))
        .await?;
    Ok(render::stream_injections(trace.injections, format, on_cut))
}

/// The patients a lot trace shows.
fn trace_exposed(trace: &q::LotTrace) -> BTreeSet<PatientId> {
    patients_named(
        trace
            .injections
            .iter()
            .map(|r| r.patient_id.as_str())
            .chain(
                trace
                    .adverse_events
                    .iter()
                    .map(|r| r.state.patient_id.as_str()),
            ),
    )
}

/// A page of a lot's injections with its adverse events and recalls, its
/// read recorded (the API's JSON answer and the console's page).
pub(crate) async fn lot_trace_page(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    lot: &LotNumber,
    params: &TraceParams,
) -> Result<LotTracePage, ApiError> {
    let mut trace = {
        let (clinic, lot) = (clinic.clone(), lot.clone());
        off_worker(state, move |store| q::lot_trace(store, &clinic, &lot)).await?
    };
    let total_injections = trace.injections.len();
    let seqs: Vec<u64> = trace.injections.iter().map(|r| r.seq).collect();
    let (page, next) = q::page(&seqs, params.cursor, bounded_limit(params.limit)?);
    let kept: BTreeSet<u64> = page.iter().copied().collect();
    trace.injections.retain(|r| kept.contains(&r.seq));
    let records = (trace.injections.len() + trace.adverse_events.len()) as u64;
    let asked = Asked {
        principal,
        clinic,
        query: QueryKind::LotTrace,
        patient: None,
    };
    asked
        .record(state, logged(params), records, trace_exposed(&trace))
        .await?;
    Ok(LotTracePage {
        trace,
        total_injections,
        next_cursor: next.map(|c| c.to_string()),
    })
}

async fn event_by_id(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let principal = state.principals.authenticate(&headers)?;
    principal.may(QueryKind::EventById)?;
    let event_id: uuid::Uuid = id(&event_id)?;
    let not_found = || ApiError::NotFound(format!("event {event_id}"));
    let view = off_worker(&state, move |store| match q::seq_of(store, &event_id)? {
        Some(seq) => q::event_view(store, seq, None),
        None => Ok(None),
    })
    .await?
    .ok_or_else(not_found)?;
    principal.may_read(&view.clinic_id)?;
    let clinic: ClinicId = id(&view.clinic_id)?;
    let patient: Option<PatientId> = view.patient_id.as_deref().and_then(|p| p.parse().ok());
    let parameters = BTreeMap::from([("event_id".to_owned(), event_id.to_string())]);
    let asked = Asked {
        principal: &principal,
        clinic: &clinic,
        query: QueryKind::EventById,
        patient,
    };
    asked.record(&state, parameters, 1, BTreeSet::new()).await?;
    Ok(Json(view).into_response())
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let principal = state.principals.authenticate(&headers)?;
    principal.may(QueryKind::Status)?;
    Ok(Json(status_answer(&state).await?).into_response())
}

/// Whether the API is ready to answer, check by check.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// The NATS connection is up.
    pub nats_connected: bool,
    /// The fold's durable consumer exists on the stream.
    pub consumer_bound: bool,
    /// Sequences the read models are behind the stream, when known.
    pub lag: Option<u64>,
    /// The most they may be behind and be ready.
    pub lag_bound: u64,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let nats_connected =
        state.js.client().connection_state() == async_nats::connection::State::Connected;
    let (mut consumer_bound, mut lag) = (false, None);
    if nats_connected {
        let wait = std::time::Duration::from_secs(2);
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(wait, state.js.get_stream(STREAM_NAME)).await
        {
            consumer_bound = matches!(
                tokio::time::timeout(wait, stream.consumer_info(&state.consumer)).await,
                Ok(Ok(_))
            );
            if let Ok(Ok(info)) = tokio::time::timeout(wait, stream.info()).await {
                let applied = state.store.applied_seq().unwrap_or(0);
                lag = Some(info.state.last_sequence.saturating_sub(applied));
            }
        }
    }
    let ready = nats_connected && consumer_bound && lag.is_some_and(|l| l <= state.ready_lag);
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let answer = Readiness {
        ready,
        nats_connected,
        consumer_bound,
        lag,
        lag_bound: state.ready_lag,
    };
    (status, Json(answer)).into_response()
}

/// Stream position, lag, quarantine, chain head, last verification.
pub(crate) async fn status_answer(state: &AppState) -> Result<Status, ApiError> {
    let applied = state.store.applied_seq()?;
    let stream_last = match state.js.get_stream(STREAM_NAME).await {
        Ok(mut stream) => stream.info().await.ok().map(|i| i.state.last_sequence),
        Err(_) => None,
    };
    let edges = edge_status(
        prolo_bus::edge::source_lags(&state.js)
            .await
            .unwrap_or_default(),
        state.store.edge_chains()?,
    );
    let head = state.store.chain_head()?;
    let verify: Option<VerifyReport> = state.store.status_get("last_verify")?;
    let quarantined = state.store.quarantined()?;
    // No stream yet (nothing recorded) or the broker away: say so, not 500.
    let consistency = match prolo_projector::consistency::check(&state.js, &state.store).await {
        Ok(consistency) => consistency.into(),
        Err(e) => StreamConsistency::Unknown {
            reason: e.to_string(),
        },
    };
    Ok(Status {
        stream: STREAM_NAME,
        stream_last_seq: stream_last,
        applied_seq: applied,
        lag: stream_last.map(|last| last.saturating_sub(applied)),
        quarantined,
        chain_head: chain::hex(&head),
        last_verification: verify,
        broker: state.broker.clone(),
        stream_consistency: consistency,
        edges,
    })
}

/// Each clinic edge by its sourcing lag and its recomputed chain.
fn edge_status(
    lags: Vec<prolo_bus::edge::SourceLag>,
    chains: Vec<prolo_projector::model::EdgeChain>,
) -> Vec<EdgeStatus> {
    let mut edges: Vec<EdgeStatus> = lags
        .into_iter()
        .map(|lag| EdgeStatus {
            clinic: lag.clinic,
            sourcing_lag: Some(lag.lag),
            active_ms: lag.active_ms,
            chain: None,
        })
        .collect();
    for chain in chains {
        match edges.iter_mut().find(|e| e.clinic == chain.clinic) {
            Some(edge) => edge.chain = Some(chain),
            None => edges.push(EdgeStatus {
                clinic: chain.clinic.clone(),
                sourcing_lag: None,
                active_ms: None,
                chain: Some(chain),
            }),
        }
    }
    edges.sort_by(|a, b| a.clinic.cmp(&b.clinic));
    edges
}

/// Whether a finding is still open.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Not resolved by a later event.
    Open,
    /// Resolved by a later event (`resolved_by`).
    Resolved,
}

impl FindingStatus {
    /// As the query library names it.
    fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

/// Query parameters of the findings query.
#[derive(Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    /// Only this rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule: Option<prolo_projector::findings::Rule>,
    /// Only open or only resolved findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<FindingStatus>,
    /// Only about this patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patient: Option<String>,
    /// Only about this practitioner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) practitioner: Option<String>,
    /// Clinical time of the event a finding is about, from (RFC 3339, inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// … to (RFC 3339, exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<usize>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub(crate) limit: Option<usize>,
}

impl QueryParams for FindingParams {
    fn check(&self) -> Result<(), ApiError> {
        bounded_limit(self.limit)?;
        within_a_century("from", self.from)?;
        within_a_century("to", self.to)
    }
}

async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
    query: Result<Query<FindingParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, QueryKind::Findings, &clinic)?;
    let params = params(query)?;
    let clinic: ClinicId = id(&clinic)?;
    let page = findings_page(&state, &principal, &clinic, &params).await?;
    Ok(Json(page).into_response())
}

/// A page of a clinic's findings, its read recorded (the API's answer and
/// the console's page).
pub(crate) async fn findings_page(
    state: &AppState,
    principal: &Principal,
    clinic: &ClinicId,
    params: &FindingParams,
) -> Result<Page<prolo_projector::findings::Finding>, ApiError> {
    let limit = bounded_limit(params.limit)?;
    let patient: Option<PatientId> = params.patient.as_deref().map(id).transpose()?;
    let filter = q::FindingFilter {
        rule: params.rule,
        status: params.status.map(|s| s.as_str().to_owned()),
        patient: patient.clone(),
        practitioner: params.practitioner.as_deref().map(id).transpose()?,
        from: params.from,
        to: params.to,
    };
    let start = params.cursor.unwrap_or(0);
    let (total, found) = {
        let clinic = clinic.clone();
        off_worker(state, move |store| {
            // By rule and status alone, the fold's counts give the total
            // and only the page is read; other filters read every match.
            let counted = filter.patient.is_none()
                && filter.practitioner.is_none()
                && filter.from.is_none()
                && filter.to.is_none();
            if !counted {
                let all = q::findings(store, &clinic, &filter)?;
                let total = all.len();
                return Ok((total, all.into_iter().skip(start).take(limit).collect()));
            }
            let total: u64 = store
                .finding_counts(clinic.as_str())?
                .iter()
                .filter(|(rule, _)| filter.rule.is_none_or(|r| r.code() == *rule))
                .map(|(_, c)| match filter.status.as_deref() {
                    Some("open") => c.open(),
                    Some(_) => c.resolved,
                    None => c.raised,
                })
                .sum();
            let page = q::findings_range(store, &clinic, &filter, start, limit)?;
            Ok((total as usize, page))
        })
        .await?
    };
    let end = (start + found.len()).min(total);
    let next_cursor = (end < total && !found.is_empty()).then_some(end);
    state
        .access
        .record(
            principal,
            clinic,
            &Read {
                query: QueryKind::Findings,
                parameters: logged(params),
                patient_id: patient,
                exposed: patients_named(found.iter().filter_map(|f| f.patient_id.as_deref())),
                records: found.len() as u64,
            },
        )
        .await?;
    Ok(Page {
        total,
        items: found,
        next_cursor: next_cursor.map(|c| c.to_string()),
    })
}

async fn signals(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(clinic): Path<String>,
) -> Result<Response, ApiError> {
    admit(&state, &headers, QueryKind::Signals, &clinic)?;
    let clinic: ClinicId = id(&clinic)?;
    Ok(Json(signals_answer(&state, clinic).await?).into_response())
}

/// A clinic's rates and signals. Rates per group hold no patient data: not
/// an access to record.
pub(crate) async fn signals_answer(
    state: &AppState,
    clinic: ClinicId,
) -> Result<q::SignalReport, ApiError> {
    off_worker(state, move |store| {
        // The fold's raising rule (its settings are the defaults).
        let criteria = prolo_projector::findings::FindingSettings::default().signal_criteria;
        q::signals(store, &clinic, &criteria)
    })
    .await
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
