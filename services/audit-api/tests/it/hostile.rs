//! Hostile requests, generated: more than 5,000 random path segments and
//! query strings against every route of a running API (real nats-server,
//! fold, HTTP). No answer is a 5xx other than the documented 503s
//! (`not_audited`, and `/readyz` not ready), and no connection is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use prolo_schemas::EventType::*;
use prolo_tests::{Stack, example_request, record_example, record_ok};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use crate::common::{ApiOptions, start_api};

const TOKEN: &str = "hostile-compliance-token-0123";

/// Text for a path segment or a query value: valid ids, odd Unicode,
/// separators, traversal, huge numbers, dates out of range.
fn text() -> impl Strategy<Value = String> {
    prolo_tests::hostile::text_of(5, ".{0,30}", 3000)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "from",
            "to",
            "as_of",
            "cursor",
            "limit",
            "format",
            "window_days",
            "rule",
            "status",
            "patient",
            "practitioner",
        ])
        .prop_map(str::to_owned),
        text(),
    ]
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn generated_paths_and_queries_never_get_a_5xx_or_a_dropped_connection() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (nats, recorders, base, _db) = rt.block_on(async {
        let (nats, recorders, client) = Stack::start().await.parts();
        let injection = record_example(&client, InjectionGiven).await;
        let mut report = example_request("adverse_event.reported");
        report["payload"]["linked_injection"]["event_id"] = injection.event_id.to_string().into();
        record_ok(&client, AdverseEventReported, &report).await;
        let options = ApiOptions {
            tokens: format!(
                r#"{{"tokens":[{{"token":"{TOKEN}","principal":"officer-lee","role":"compliance","clinics":["*"]}}]}}"#
            ),
            cache_bytes: 16 << 20,
            ..ApiOptions::default()
        };
        let api = start_api(&nats, options).await;
        (nats, recorders, api.base.clone(), api)
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Every route the API documents (generated from its routes table), with
    // its path segments as `{a}` and `{b}`.
    let routes: Vec<String> = prolo_audit_api::routes::openapi()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|template| {
            let mut n = 0;
            template
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        n += 1;
                        if n == 1 { "{a}" } else { "{b}" }.to_owned()
                    } else {
                        segment.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert_eq!(routes.len(), 19, "{routes:?}");
    let strategy = (
        prop::sample::select(routes),
        text(),
        text(),
        prop::collection::vec((key(), text()), 0..5),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 5_500,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(&strategy, |(route, a, b, query, authorized)| {
            let path = route
                .replace("{a}", &escape(&a))
                .replace("{b}", &escape(&b));
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect();
            let url = format!("{base}{path}?{}", query.join("&"));
            let mut request = http.get(&url);
            if authorized {
                request = request.bearer_auth(TOKEN);
            }
            let response = rt.block_on(async { request.send().await });
            let response = response.map_err(|e| {
                TestCaseError::fail(format!("{url}: no answer (connection dropped?): {e}"))
            })?;
            let status = response.status().as_u16();
            let body = rt.block_on(response.text()).unwrap_or_default();
            *statuses.borrow_mut().entry(status).or_default() += 1;
            prop_assert!(
                status < 500
                    || (status == 503 && body.contains("not_audited"))
                    || (status == 503 && body.contains("\"ready\":false")),
                "{url}: {status} {body}"
            );
            Ok(())
        })
        .unwrap();
    let statuses = statuses.into_inner();
    eprintln!("statuses over 5,500 generated requests: {statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&400).copied().unwrap_or(0) > 0, "{statuses:?}");
    rt.block_on(recorders.stop());
    drop(nats);
}
