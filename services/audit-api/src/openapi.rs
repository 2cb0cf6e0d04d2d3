//! The OpenAPI 3.1 description served at `/openapi.json`, generated from the
//! routes table (`endpoints` in [`crate::routes`]): each endpoint's handler sits
//! beside its path, its query-parameter type and its answer type, and the
//! schemas come from those Rust types (schemars, as for the event contract).
//! The roles come from the authorisation rules themselves
//! ([`QueryKind::allowed`]). The API tests check every answer against it.

use axum::routing::MethodRouter;
use prolo_schemas::AccessRole;
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::{answer::ErrorAnswer, auth::QueryKind};

/// Makes the schema of a type.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a reference to it under `#/components/schemas`).
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The inline schema of a query-parameter type (its properties become
/// the parameters).
pub fn params<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// A path segment.
#[derive(Debug, Clone, Copy)]
pub struct PathParam {
    /// Its name in the path template.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// A UUID (else an identifier of the contract's form).
    pub uuid: bool,
}

/// One route: where, what handles it (with the router's state `S`), what
/// it takes and answers.
pub struct Endpoint<S> {
    /// The path template, e.g. `/v1/clinics/{clinic}/findings`.
    pub path: &'static str,
    /// Its GET handler.
    pub handler: MethodRouter<S>,
    /// One line.
    pub summary: &'static str,
    /// The query it runs (roles, audit); `None` for the public document.
    pub query: Option<QueryKind>,
    /// Its path segments.
    pub path_params: &'static [PathParam],
    /// Its query-parameter type.
    pub query_params: Option<SchemaFn>,
    /// Its JSON answer.
    pub answer: SchemaFn,
    /// What a `jsonl` or `csv` export streams, when it offers them.
    pub export: Option<&'static str>,
}

impl QueryKind {
    /// Whether a successful call is recorded as an `access.recorded` event.
    /// Status and signals carry no patient data (signals: counts only).
    pub fn audited(self) -> bool {
        !matches!(self, QueryKind::Status | QueryKind::Signals)
    }
}

const ROLES: [(AccessRole, &str); 3] = [
    (AccessRole::Compliance, "compliance"),
    (AccessRole::Safety, "safety"),
    (AccessRole::Service, "service"),
];

/// A schema made fit for a query parameter: the `null` of an `Option` has
/// no meaning in a query string.
fn without_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(choices) = schema.get(key).and_then(Value::as_array) {
            let kept: Vec<Value> = choices
                .iter()
                .filter(|c| c.get("type") != Some(&json!("null")))
                .cloned()
                .collect();
            if let [only] = kept.as_slice() {
                let mut merged = only.clone();
                if let (Some(merged), Some(description)) =
                    (merged.as_object_mut(), schema.get("description"))
                {
                    merged.insert("description".into(), description.clone());
                }
                return merged;
            }
        }
    }
    schema
}

fn query_parameters(params: SchemaFn, generator: &mut SchemaGenerator) -> Vec<Value> {
    let schema = params(generator).to_value();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = without_null(property.clone());
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"))
                .unwrap_or_default();
            json!({
                "name": name,
                "in": "query",
                "required": false,
                "description": description,
                "schema": property,
            })
        })
        .collect()
}

fn operation<S>(endpoint: &Endpoint<S>, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = endpoint
        .path_params
        .iter()
        .map(|p| {
            let schema = if p.uuid {
                json!({"type": "string", "format": "uuid"})
            } else {
                json!({"type": "string", "pattern": prolo_schemas::ID_PATTERN})
            };
            json!({"name": p.name, "in": "path", "required": true, "description": p.description, "schema": schema})
        })
        .collect();
    if let Some(params) = endpoint.query_params {
        parameters.extend(query_parameters(params, generator));
    }
    let mut content = Map::new();
    // The FHIR exports answer FHIR's own media type, the metrics theirs.
    let media = if endpoint.path.ends_with("/fhir") {
        "application/fhir+json"
    } else if endpoint.path == "/metrics" {
        "application/openmetrics-text"
    } else {
        "application/json"
    };
    content.insert(
        media.into(),
        json!({"schema": (endpoint.answer)(generator).to_value()}),
    );
    if let Some(rows) = endpoint.export {
        let streamed = |what: &str| json!({"schema": {"type": "string", "description": what}});
        content.insert(
            "application/x-ndjson".into(),
            streamed(&format!(
                "format=jsonl: {rows}, one JSON object per line, streamed"
            )),
        );
        content.insert(
            "text/csv".into(),
            streamed(&format!(
                "format=csv: {rows}, a header row then one row each, streamed; cells a spreadsheet would take for a formula begin with '"
            )),
        );
    }
    let error = json!({"$ref": "#/components/responses/Error"});
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "The answer", "content": content}),
    );
    let description = match endpoint.query {
        None => {
            responses.insert(
                "503".into(),
                json!({"description": "The request was not answered within 30 s"}),
            );
            "Public.".to_owned()
        }
        Some(query) => {
            for status in ["400", "401", "403", "404", "500", "503"] {
                responses.insert(status.into(), error.clone());
            }
            let roles: Vec<&str> = ROLES
                .iter()
                .filter(|(role, _)| query.allowed(*role))
                .map(|(_, name)| *name)
                .collect();
            let mut text = format!("Roles: {}.", roles.join(", "));
            if query.audited() {
                text.push_str(
                    " Each successful call is recorded as an access.recorded event, naming every patient the answer carries, before the answer is sent (503 not_audited when it cannot be).",
                );
            }
            text
        }
    };
    let mut operation = json!({
        "summary": endpoint.summary,
        "description": description,
        "operationId": endpoint.query.map_or("openapi", QueryKind::name),
        "parameters": parameters,
        "responses": responses,
    });
    operation["security"] = match endpoint.query {
        Some(_) => json!([{"bearer": []}]),
        None => json!([]),
    };
    json!({ "get": operation })
}

/// The document describing `endpoints`.
pub fn document<S>(endpoints: &[Endpoint<S>]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let error = schema::<ErrorAnswer>(&mut generator).to_value();
    let mut paths = Map::new();
    for endpoint in endpoints {
        paths.insert(endpoint.path.into(), operation(endpoint, &mut generator));
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "prolo-audit query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The audit trail of reconstructive-therapy clinics, for compliance officers and safety reviewers. Answers are complete and in stream order. Reads of patient data are themselves recorded; refused requests (401, 403) are recorded as access.refused. Generated from the handlers' parameter and answer types."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error with a stable code",
                    "content": {"application/json": {"schema": error}}
                }
            },
            "schemas": schemas,
        },
        "paths": paths,
    })
}
