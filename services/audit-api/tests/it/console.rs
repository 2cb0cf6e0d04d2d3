//! The web console in a real browser (headless Chromium over the DevTools
//! protocol) against a real stack seeded with a small clinic: sign in, a
//! patient's timeline with a correction beside its original, an
//! investigation, the signals page with the planted lot marked in the
//! SVG, 403 pages for the wrong role and clinic, and an access event for
//! every page that showed patient data. Screenshots of each page are saved
//! under the test target's temporary directory; with
//! `PROLO_UPDATE_SCREENSHOTS=1`, those the README shows are copied to
//! `docs/console/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{path::PathBuf, time::Duration};

use prolo_schemas::EventType;
use prolo_tests::{
    NatsServer, Recorders, Stack,
    browser::Browser,
    example_request, record_ok,
    scenario::{corrected_injection, record_examples},
};
use serde_json::{Value, json};

use crate::common::{COMPLIANCE, SAFETY, answer_when, api, get_json};
const PLANTED: &str = "DX-PLANT-7";
/// How many form controls of the page have no label.
const UNLABELLED: &str = "Array.from(document.querySelectorAll('input:not([type=hidden]), select')).filter(e => e.labels.length === 0).length";

/// A small clinic: the example patient (with a corrected injection), 80
/// patients injected from two dextrose lots, four infections after the
/// planted lot; one event of another clinic.
async fn seed(client: &async_nats::Client) -> (uuid::Uuid, Vec<uuid::Uuid>) {
    record_examples(
        client,
        &[
            EventType::PractitionerCredentialed,
            EventType::ExaminationDone,
            EventType::CandidacyAssessed,
            EventType::ConsentGiven,
            EventType::TreatmentPlanned,
        ],
    )
    .await;
    let (injected, _) = corrected_injection(client).await;
    let mut given = Vec::new();
    for n in 0..80 {
        let lot = if n < 20 { PLANTED } else { "DX-CLEAN-1" };
        let patient = format!("P-{}", 2000 + n);
        let mut injection = example_request("injection.given");
        injection["patient_id"] = json!(patient);
        injection["payload"]["solution"]["components"][0]["lot"] = json!(lot);
        injection["payload"]["solution"]["components"][0]["vial"] = Value::Null;
        injection["payload"]["treatment_plan_event_id"] = Value::Null;
        let recorded = record_ok(client, EventType::InjectionGiven, &injection).await;
        given.push((patient, recorded.event_id));
    }
    // Four infections after the planted lot, once every injection is in.
    let mut infections = Vec::new();
    for (patient, injection) in &given[..4] {
        let mut infection = example_request("adverse_event.reported");
        infection["patient_id"] = json!(patient);
        infection["payload"]["linked_injection"]["event_id"] = json!(injection);
        let reported = record_ok(client, EventType::AdverseEventReported, &infection).await;
        infections.push(reported.event_id);
    }
    let mut elsewhere = example_request("examination.done");
    elsewhere["clinic_id"] = json!("northside");
    record_ok(client, EventType::ExaminationDone, &elsewhere).await;
    (injected, infections)
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

/// The screenshots the README shows.
const DOCUMENTED: &[&str] = &["timeline", "investigation", "signals", "findings", "lot"];

/// Copies the documented screenshots to `docs/console/` when asked.
fn publish_screenshots(from: &std::path::Path) {
    if !std::env::var("PROLO_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        return;
    }
    let docs = prolo_tests::repo_root().join("docs/console");
    std::fs::create_dir_all(&docs).unwrap();
    for name in DOCUMENTED {
        let file = format!("{name}.png");
        std::fs::copy(from.join(&file), docs.join(&file)).unwrap();
    }
}

/// The access events recorded for `patient`, as (principal, query).
async fn reads_of(api: &str, patient: &str) -> Vec<(String, String)> {
    let path = format!("/v1/clinics/riverside/patients/{patient}/access-log?limit=1000");
    let page = get_json(api, COMPLIANCE, &path).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["payload"]["principal_id"].as_str().unwrap().to_owned(),
                v["payload"]["query"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until `patient`'s access log holds a read of `query` by `principal`.
async fn read_recorded(api: &str, patient: &str, principal: &str, query: &str) {
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reads = reads_of(api, patient).await;
        if reads.iter().any(|(p, q)| p == principal && q == query) {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "no {query} by {principal} on {patient}'s access log: {reads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_reviewer_signs_in_reads_a_timeline_an_investigation_and_the_signals_and_each_read_is_logged()
 {
    let (nats, recorders, client) = Stack::start().await.parts();
    let (api, _db) = api(&nats).await;
    let (injected, infections) = seed(&client).await;
    // The fold has everything (the planted lot is signalled).
    answer_when(
        &api,
        "/v1/clinics/riverside/signals",
        Duration::from_secs(30),
        |signals| signals["signals"].as_array().is_some_and(|s| !s.is_empty()),
    )
    .await;
    let shots = screenshots();
    let mut browser = Browser::start(1280, 900).await.unwrap();

    // Signing in.
    browser.open(&format!("{api}/")).await.unwrap();
    assert!(browser.text().await.unwrap().contains("Access token"));
    browser
        .screenshot(&shots.join("sign-in.png"))
        .await
        .unwrap();
    browser.fill("#token", COMPLIANCE).await.unwrap();
    browser
        .click("form.card button", &format!("{api}/"))
        .await
        .unwrap();
    let home = browser.text().await.unwrap();
    assert!(home.contains("officer-lee"), "{home}");
    // The cookie is not readable by script.
    assert_eq!(browser.eval("document.cookie").await.unwrap(), "");

    // The timeline: the corrected injection struck through, the correction beside it.
    browser
        .open(&format!("{api}/console/riverside/patients/P-1042"))
        .await
        .unwrap();
    let row = format!("#e-{injected}");
    let struck = browser
        .eval(&format!(
            "[document.querySelector('{row}').className, document.querySelector('{row} del')?.innerText, document.querySelector('{row} ins')?.innerText]"
        ))
        .await
        .unwrap();
    assert_eq!(struck[0], "corrected", "{struck}");
    assert!(struck[1].as_str().unwrap().contains("2.5 mL"), "{struck}");
    assert!(struck[2].as_str().unwrap().contains("1.5 mL"), "{struck}");
    browser
        .screenshot(&shots.join("timeline.png"))
        .await
        .unwrap();
    // Every control has a label; the first stop of the keyboard skips to the content.
    assert_eq!(browser.eval(UNLABELLED).await.unwrap(), 0);
    assert_eq!(
        browser
            .eval("document.querySelector('a[href], button, input, select').getAttribute('href')")
            .await
            .unwrap(),
        "#main"
    );

    // An investigation.
    browser
        .open(&format!(
            "{api}/console/riverside/adverse-events/{}",
            infections[0]
        ))
        .await
        .unwrap();
    let text = browser.text().await.unwrap();
    assert!(
        text.contains("Same-lot exposure") && text.contains(PLANTED),
        "{text}"
    );
    browser
        .screenshot(&shots.join("investigation.png"))
        .await
        .unwrap();

    // The signals: the planted lot marked in the SVG.
    browser
        .open(&format!("{api}/console/riverside/signals"))
        .await
        .unwrap();
    let marked = browser
        .eval(
            "Array.from(document.querySelectorAll('svg g.row.signalled')).map(g => [g.dataset.dimension, g.dataset.group, g.dataset.kind])",
        )
        .await
        .unwrap();
    assert_eq!(marked, json!([["lot", PLANTED, "infection"]]));
    browser
        .screenshot(&shots.join("signals.png"))
        .await
        .unwrap();

    // Findings, the lot, the access log, the status.
    browser
        .open(&format!("{api}/console/riverside/findings"))
        .await
        .unwrap();
    assert!(browser.text().await.unwrap().contains("Findings by rule"));
    assert_eq!(browser.eval(UNLABELLED).await.unwrap(), 0);
    browser
        .screenshot(&shots.join("findings.png"))
        .await
        .unwrap();
    browser
        .open(&format!("{api}/console/riverside/lots/{PLANTED}"))
        .await
        .unwrap();
    assert!(browser.text().await.unwrap().contains("P-2000"));
    browser.screenshot(&shots.join("lot.png")).await.unwrap();
    browser
        .open(&format!(
            "{api}/console/riverside/patients/P-1042/access-log"
        ))
        .await
        .unwrap();
    assert!(browser.text().await.unwrap().contains("patient_history"));
    browser
        .screenshot(&shots.join("access-log.png"))
        .await
        .unwrap();
    browser
        .open(&format!("{api}/console/status"))
        .await
        .unwrap();
    assert!(browser.text().await.unwrap().contains("Chain head"));
    browser.screenshot(&shots.join("status.png")).await.unwrap();

    // Every page that showed patient data is on that patient's access log.
    read_recorded(&api, "P-1042", "officer-lee", "patient_history").await;
    read_recorded(&api, "P-2000", "officer-lee", "adverse_event_investigation").await;
    read_recorded(&api, "P-2000", "officer-lee", "lot_trace").await;
    read_recorded(&api, "P-1042", "officer-lee", "access_log").await;
    read_recorded(&api, "P-1042", "officer-lee", "findings").await;

    // A tablet-width page still works.
    let mut tablet = Browser::start(768, 1024).await.unwrap();
    tablet.open(&format!("{api}/")).await.unwrap();
    tablet.fill("#token", SAFETY).await.unwrap();
    tablet
        .click("form.card button", &format!("{api}/"))
        .await
        .unwrap();
    // The wrong role: a safety reviewer may not read the access log.
    tablet
        .open(&format!(
            "{api}/console/riverside/patients/P-1042/access-log"
        ))
        .await
        .unwrap();
    let text = tablet.text().await.unwrap();
    assert!(text.contains("Not allowed"), "{text}");
    tablet
        .screenshot(&shots.join("forbidden-role.png"))
        .await
        .unwrap();
    // The wrong clinic.
    tablet
        .open(&format!("{api}/console/northside/findings"))
        .await
        .unwrap();
    let text = tablet.text().await.unwrap();
    assert!(
        text.contains("Not allowed") && text.contains("northside"),
        "{text}"
    );
    tablet
        .open(&format!("{api}/console/riverside/patients/P-1042"))
        .await
        .unwrap();
    tablet
        .screenshot(&shots.join("timeline-tablet.png"))
        .await
        .unwrap();
    tablet.close().await;
    browser.close().await;
    publish_screenshots(&shots);
    recorders.stop().await;
}

/// The console's answers carry the security headers; a page's status is
/// the API's (401 without a session, 403 for the wrong clinic); the session
/// cookie is HttpOnly and SameSite=Strict.
#[tokio::test]
async fn console_pages_carry_a_strict_policy_and_the_apis_statuses() {
    let nats = NatsServer::start().await.unwrap();
    // The recording services make the stream the access log is written to.
    let _recorders = Recorders::start(&nats.url()).await.unwrap();
    let (api, _db) = api(&nats).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{api}/")).send().await.unwrap();
    let headers = page.headers().clone();
    assert_eq!(page.status(), 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "no script is allowed at all: {csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let body = page.text().await.unwrap();
    assert!(!body.contains("<script"), "no script in the page");

    let signed = http
        .post(format!("{api}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={SAFETY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(SAFETY),
        "the token is not in the cookie as sent: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let status = |path: &'static str, cookie: Option<String>| {
        let http = http.clone();
        let api = api.clone();
        async move {
            let mut request = http.get(format!("{api}{path}"));
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status("/console/riverside/findings", None).await, 401);
    assert_eq!(
        status("/console/riverside/findings", Some(session.clone())).await,
        200
    );
    assert_eq!(
        status("/console/northside/findings", Some(session.clone())).await,
        403
    );
    assert_eq!(
        status(
            "/console/riverside/patients/P-1042/access-log",
            Some(session.clone())
        )
        .await,
        403
    );
    assert_eq!(
        status(
            "/console/riverside/patients/..%2F..%2Fetc",
            Some(session.clone())
        )
        .await,
        400
    );
    // Hostile parameters are refused with 400, never a 5xx.
    for hostile in [
        "/console/riverside/patients/P-1042?from=not-a-date",
        "/console/riverside/patients/P-1042?as_of=2026-13-45",
        "/console/riverside/patients/P-1042?type=no.such.event",
        "/console/riverside/adverse-events/not-a-uuid",
        "/console/riverside/lots/%00%0A",
        "/console/riverside/findings?rule=nonsense",
        "/console/riverside/findings?status=maybe",
        "/console/riverside/open?patient=%3Cscript%3E",
        "/go?clinic=..%2F..",
    ] {
        assert_eq!(
            status(hostile, Some(session.clone())).await,
            400,
            "{hostile}"
        );
    }
    let wrong = http
        .post(format!("{api}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    // A sign-in posted from another site is not taken.
    let forged = http
        .post(format!("{api}/sign-in"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={SAFETY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(forged.headers().get("set-cookie").is_none());
}
