//! The AsyncAPI 3.0 description of the NATS interface, made from the event
//! catalogue, the recording commands and the derived channels (one place,
//! like the JSON Schemas): every event channel with its subject parameters
//! and payload schema, every command with its request and its replies, the
//! batch command, findings, signals, chain checkpoints and the services
//! API. Served at `/asyncapi.json` and committed as `schemas/asyncapi.json`
//! (a test fails when that file is stale).

use prolo_schemas::{EntityKind, EventType, json_schema};
use serde_json::{Map, Value, json};

/// Fields the recording service stamps: not in a request.
const STAMPED: &[&str] = &[
    "event_id",
    "event_type",
    "schema_version",
    "recorded_at",
    "source",
];

/// Rewrites a schema's local references (`#/$defs/X`) to the document's
/// shared schemas (`#/components/schemas/X`).
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// Adds a schema document's body as `name` and its `$defs` beside it.
/// Definitions of the same name must agree (they are the same Rust type).
fn add_schema(schemas: &mut Map<String, Value>, name: &str, mut schema: Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let defs = object
        .remove("$defs")
        .or_else(|| object.remove("definitions"));
    for key in ["$schema", "$id", "title"] {
        object.remove(key);
    }
    if let Some(Value::Object(defs)) = defs {
        for (def, mut body) in defs {
            rewrite_refs(&mut body);
            match schemas.get(&def) {
                Some(existing) if *existing != body => {
                    panic!("two different schemas named {def} in the AsyncAPI document")
                }
                _ => {
                    schemas.insert(def, body);
                }
            }
        }
    }
    rewrite_refs(&mut schema);
    schemas.insert(name.to_owned(), schema);
}

/// The address of an event type's channel, with its parameters.
fn event_address(t: EventType) -> (String, Vec<(&'static str, &'static str)>) {
    let (entity, parameter, description) = match t.entity_kind() {
        EntityKind::Patient | EntityKind::TargetOf => (
            "patient",
            "patient_id",
            "Pseudonymous patient id (a correction is filed under its target's patient)",
        ),
        EntityKind::Practitioner => ("practitioner", "practitioner_id", "Practitioner id"),
        EntityKind::Lot => ("lot", "lot", "Lot number"),
        EntityKind::Principal => (
            "principal",
            "principal_id",
            "Who read (or was refused) the trail",
        ),
    };
    (
        format!(
            "clinic.{{clinic_id}}.{entity}.{{{parameter}}}.{}",
            t.as_str()
        ),
        vec![("clinic_id", "Clinic id"), (parameter, description)],
    )
}

fn parameters(list: &[(&str, &str)]) -> Value {
    Value::Object(
        list.iter()
            .map(|(name, description)| ((*name).to_owned(), json!({"description": description})))
            .collect(),
    )
}

fn message(name: &str, title: &str, schema: &str) -> Value {
    json!({
        "name": name,
        "title": title,
        "contentType": "application/json",
        "payload": {"$ref": format!("#/components/schemas/{schema}")},
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    for (file, content) in json_schema::files() {
        let name = file.trim_end_matches(".schema.json");
        let schema: Value = serde_json::from_str(&content).unwrap_or_default();
        add_schema(&mut schemas, name, schema);
    }
    for (name, schema) in [
        (
            "Finding",
            serde_json::to_value(schemars::schema_for!(
                prolo_projector::rules::findings::Finding
            )),
        ),
        (
            "Signal",
            serde_json::to_value(schemars::schema_for!(
                prolo_projector::rules::signals::Signal
            )),
        ),
        (
            "Checkpoint",
            serde_json::to_value(schemars::schema_for!(
                prolo_projector::integrity::chain::Checkpoint
            )),
        ),
    ] {
        add_schema(&mut schemas, name, schema.unwrap_or_default());
    }
    schemas.insert(
        "Recorded".into(),
        json!({
            "type": "object",
            "description": "Sent only after JetStream acknowledged the event (stored with fsync before the acknowledgement).",
            "required": ["event_id", "stream_seq", "subject", "duplicate"],
            "properties": {
                "event_id": {"type": "string", "format": "uuid"},
                "stream_seq": {"type": "integer", "minimum": 1},
                "subject": {"type": "string"},
                "duplicate": {"type": "boolean", "description": "JetStream had it already: a retry of a stored event."}
            }
        }),
    );
    schemas.insert(
        "ErrorReply".into(),
        json!({
            "type": "object",
            "description": "Also in the NATS services error headers Nats-Service-Error and Nats-Service-Error-Code.",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "status", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ["invalid_request", "request_too_large", "idempotency_conflict", "not_stored_retry", "unknown_command", "internal"]},
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "event_type": {"type": "string"},
                    "problems": {"type": "array", "items": {"type": "object", "properties": {
                        "path": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}}
                }
            }}
        }),
    );
    schemas.insert(
        "BatchRequest".into(),
        json!({
            "type": "object",
            "description": "Up to 1,000 recording requests of one clinic, stored together or not at all (then each on its own); an idempotency key each is advised.",
            "required": ["events"],
            "properties": {"events": {"type": "array", "maxItems": prolo_bus::batch::MAX_BATCH, "items": {
                "type": "object",
                "required": ["command", "request"],
                "properties": {"command": {"type": "string", "description": "A command verb, e.g. injection.give"}, "request": {"type": "object"}}
            }}}
        }),
    );
    schemas.insert(
        "BatchReply".into(),
        json!({"type": "object", "description": "One result per event, in order: what it recorded, or why it was refused."}),
    );
    schemas.insert(
        "ServiceInfo".into(),
        json!({"type": "object", "description": "The NATS services API's answer (io.nats.micro.v1 ping, info or stats)."}),
    );

    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for t in EventType::ALL {
        let (address, params) = event_address(*t);
        let id = format!("event.{}", t.as_str());
        messages.insert(
            t.as_str().to_owned(),
            message(
                t.as_str(),
                &format!("{} (schema version {})", t.as_str(), t.current_version()),
                t.as_str(),
            ),
        );
        channels.insert(
            id.clone(),
            json!({
                "address": address,
                "title": t.as_str(),
                "description": format!("`{}` events, stored in the CLINIC_EVENTS stream (JetStream; subjects clinic.>), never edited or deleted.", t.as_str()),
                "parameters": parameters(&params),
                "messages": {t.as_str(): {"$ref": format!("#/components/messages/{}", t.as_str())}},
            }),
        );
        operations.insert(
            format!("receive.{}", t.as_str()),
            json!({"action": "receive", "channel": {"$ref": format!("#/channels/{id}")},
                   "summary": format!("Follow {} events (a JetStream consumer on the stream, filtered by subject)", t.as_str())}),
        );
    }
    messages.insert(
        "recorded".into(),
        message("recorded", "Recorded", "Recorded"),
    );
    messages.insert("error".into(), message("error", "Refused", "ErrorReply"));
    for spec in prolo_recorder::ALL_SERVICES {
        for command in spec.commands {
            let t = command.event_type;
            let request = format!("{}.request", t.as_str());
            if !schemas.contains_key(&request) {
                let mut schema = schemas.get(t.as_str()).cloned().unwrap_or_default();
                if let Some(object) = schema.as_object_mut() {
                    if let Some(Value::Object(properties)) = object.get_mut("properties") {
                        STAMPED.iter().for_each(|k| {
                            properties.remove(*k);
                        });
                        properties.insert(
                            "idempotency_key".into(),
                            json!({"type": "string", "description": "Makes a retry safe: the same key and request record once; the same key with another request is refused (idempotency_conflict)."}),
                        );
                    }
                    if let Some(Value::Array(required)) = object.get_mut("required") {
                        required.retain(|r| !STAMPED.contains(&r.as_str().unwrap_or_default()));
                    }
                }
                schemas.insert(request.clone(), schema);
                messages.insert(
                    request.clone(),
                    message(&request, &format!("Record {}", t.as_str()), &request),
                );
            }
            let id = format!("command.{}", command.verb);
            channels.insert(
                id.clone(),
                json!({
                    "address": format!("prolo.cmd.{{clinic_id}}.{}", command.verb),
                    "title": format!("{} ({} service)", command.verb, spec.name),
                    "description": format!("Request/reply: records one `{}` event. The reply comes after the event is stored.", t.as_str()),
                    "parameters": parameters(&[("clinic_id", "Clinic id (a clinic's systems may only send their own clinic's commands)")]),
                    "messages": {request.clone(): {"$ref": format!("#/components/messages/{request}")}},
                }),
            );
            channels.insert(
                format!("{id}.reply"),
                json!({
                    "address": null,
                    "description": "The requester's inbox (the NATS reply subject).",
                    "messages": {
                        "recorded": {"$ref": "#/components/messages/recorded"},
                        "error": {"$ref": "#/components/messages/error"}
                    },
                }),
            );
            operations.insert(
                format!("send.{}", command.verb),
                json!({
                    "action": "send",
                    "channel": {"$ref": format!("#/channels/{id}")},
                    "summary": format!("Record {} through the {} service", t.as_str(), spec.name),
                    "reply": {"channel": {"$ref": format!("#/channels/{id}.reply")}},
                }),
            );
        }
    }
    messages.insert(
        "batch.request".into(),
        message("batch.request", "Batch", "BatchRequest"),
    );
    messages.insert(
        "batch.reply".into(),
        message("batch.reply", "Batch results", "BatchReply"),
    );
    channels.insert(
        "command.batch".into(),
        json!({
            "address": format!("prolo.cmd.{{clinic_id}}.{}", prolo_recorder::commands::BATCH_VERB),
            "title": "batch (back-fill and migration)",
            "description": "Request/reply: a declared back-fill (events recorded with source batch), stored as one atomic JetStream batch.",
            "parameters": parameters(&[("clinic_id", "Clinic id")]),
            "messages": {"batch.request": {"$ref": "#/components/messages/batch.request"}},
        }),
    );
    channels.insert(
        "command.batch.reply".into(),
        json!({"address": null, "messages": {"batch.reply": {"$ref": "#/components/messages/batch.reply"}, "error": {"$ref": "#/components/messages/error"}}}),
    );
    operations.insert(
        "send.batch".into(),
        json!({"action": "send", "channel": {"$ref": "#/channels/command.batch"}, "reply": {"channel": {"$ref": "#/channels/command.batch.reply"}}}),
    );

    let rules: Vec<String> = prolo_projector::rules::findings::Rule::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    for (id, address, message_name, schema, params, summary) in [
        (
            "findings",
            "prolo.finding.{clinic_id}.{rule}.{transition}",
            "finding",
            "Finding",
            json!({"clinic_id": {"description": "Clinic id"}, "rule": {"enum": rules, "description": "The rule"}, "transition": {"enum": ["raised", "resolved"]}}),
            "A finding raised or resolved (core NATS, after the fold committed it; derived, not stored in the stream)",
        ),
        (
            "signals",
            "prolo.signal.{clinic_id}.{transition}",
            "signal",
            "Signal",
            json!({"clinic_id": {"description": "Clinic id"}, "transition": {"enum": ["raised", "cleared"]}}),
            "A safety signal raised or cleared",
        ),
        (
            "checkpoints",
            prolo_projector::integrity::chain::CHECKPOINT_SUBJECT,
            "checkpoint",
            "Checkpoint",
            json!({}),
            "The hash chain's head at a sequence, for other systems to keep",
        ),
    ] {
        messages.insert(message_name.into(), message(message_name, summary, schema));
        let mut channel = json!({
            "address": address,
            "description": summary,
            "messages": {message_name: {"$ref": format!("#/components/messages/{message_name}")}},
        });
        if params.as_object().is_some_and(|p| !p.is_empty()) {
            channel["parameters"] = params;
        }
        channels.insert(id.into(), channel);
        operations.insert(
            format!("receive.{id}"),
            json!({"action": "receive", "channel": {"$ref": format!("#/channels/{id}")}, "summary": summary}),
        );
    }
    let services: Vec<&str> = prolo_recorder::ALL_SERVICES
        .iter()
        .map(|s| s.name)
        .collect();
    messages.insert(
        "service.info".into(),
        message("service.info", "Service information", "ServiceInfo"),
    );
    for verb in ["PING", "INFO", "STATS"] {
        let id = format!("services.{}", verb.to_lowercase());
        channels.insert(
            id.clone(),
            json!({
                "address": format!("$SRV.{verb}.{{service}}"),
                "description": format!("The NATS services API ({verb}) of each recording service"),
                "parameters": {"service": {"enum": services, "description": "Recording service"}},
                "messages": {"service.info": {"$ref": "#/components/messages/service.info"}},
            }),
        );
        operations.insert(
            format!("request.services.{}", verb.to_lowercase()),
            json!({"action": "send", "channel": {"$ref": format!("#/channels/{id}")}}),
        );
    }

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "prolo-audit event interface",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Immutable clinical audit events of reconstructive-therapy clinics on NATS JetStream: what other clinic systems send (commands, request/reply) and what they can follow (events, findings, signals, chain checkpoints). Made from the event catalogue; the JSON Schemas under schemas/json are the same payloads.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "A local install (`prolo-audit up`); NATS_URL names yours.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    })
}

/// The committed form of [`document`]: pretty JSON with a final newline.
pub fn rendered() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}
