//! Query latency at scale: 1,000,000 events over 100,000 patients, then
//! p50/p99 of the history of a 50-event patient, an adverse-event
//! investigation and a lot trace over 1,000 injections — through the query
//! library (answer + JSON) and through HTTP end to end (which also records
//! each read as an access event). Run: `cargo bench -p prolo-audit-api --bench queries`.
//!
//! Settings (environment): `BENCH_EVENTS` (1000000), `BENCH_PATIENTS` (100000), `BENCH_RUNS` (300).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::time::{Duration, Instant};

use prolo_projector::{ProjectorSettings, Store};
use prolo_query as q;
use prolo_schemas::{Envelope, LinkedInjection, Payload};
use prolo_tests::{publish_all, stream_only, synthetic_events};

/// The tests' way of starting the API, shared.
#[path = "../tests/it/common/mod.rs"]
mod common;

/// The allocator the service binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A compliance officer's token for every clinic (the tests' default tokens).
const TOKEN: &str = common::COMPLIANCE;

use prolo_tests::example_envelope as example;

fn fresh(mut e: Envelope, patient: &str) -> Envelope {
    e.event_id = uuid::Uuid::now_v7();
    e.patient_id = Some(patient.parse().unwrap());
    e
}

fn injection(patient: &str, lot: &str) -> Envelope {
    let mut e = fresh(example("injection.given"), patient);
    if let Payload::InjectionGiven(p) = &mut e.payload {
        for c in &mut p.solution.components {
            c.lot = lot.parse().unwrap();
        }
    }
    e
}

/// The targeted data: a 50-event patient with an adverse event after one of
/// its injections, and a lot given in 1,000 injections.
fn targeted() -> (Vec<Envelope>, uuid::Uuid) {
    let mut events = Vec::new();
    for t in [
        "consent.given",
        "examination.done",
        "imaging.recorded",
        "candidacy.assessed",
        "treatment.planned",
    ] {
        events.push(fresh(example(t), "P-BENCH50"));
    }
    for _ in 0..43 {
        events.push(injection("P-BENCH50", "AE-LOT"));
    }
    let linked = events[10].clone();
    let mut ae = fresh(example("adverse_event.reported"), "P-BENCH50");
    if let Payload::AdverseEventReported(p) = &mut ae.payload {
        p.linked_injection = Some(LinkedInjection {
            event_id: linked.event_id,
            occurred_at: linked.occurred_at,
        });
    }
    let ae_id = ae.event_id;
    events.push(ae);
    let mut update = fresh(example("adverse_event.updated"), "P-BENCH50");
    if let Payload::AdverseEventUpdated(p) = &mut update.payload {
        p.adverse_event_id = ae_id;
    }
    events.push(update);
    for i in 0..20 {
        events.push(injection(&format!("P-AE{i}"), "AE-LOT"));
    }
    for i in 0..1000 {
        events.push(injection(&format!("P-T{i:04}"), "TRACE-LOT"));
    }
    (events, ae_id)
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

async fn measure<F, Fut>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..runs / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    percentiles(samples)
}

#[tokio::main]
async fn main() {
    let n: usize = prolo_tests::env_or("BENCH_EVENTS", 1_000_000);
    let patients: usize = prolo_tests::env_or("BENCH_PATIENTS", 100_000);
    let runs: usize = prolo_tests::env_or("BENCH_RUNS", 300);
    let (nats, _, js) = stream_only().await;

    let (targeted, ae_id) = targeted();
    eprintln!(
        "publishing {n} events over {patients} patients, plus {} targeted…",
        targeted.len()
    );
    let half = n / 2;
    publish_all(&js, synthetic_events(half, patients), 512).await;
    // In order, one at a time: the adverse event must follow the injection
    // it links to (`publish_all` with more in flight may reorder them, and
    // the investigation then has no linked injection to look around).
    publish_all(&js, targeted.into_iter(), 1).await;
    publish_all(&js, synthetic_events(n - half, patients), 512).await;

    eprintln!("folding…");
    let options = common::ApiOptions {
        consumer: "bench".into(),
        cache_bytes: 512 << 20,
        idle_wait: ProjectorSettings::default().idle_wait,
        ..common::ApiOptions::default()
    };
    let common::StartedApi {
        base,
        store,
        db: _dir,
        trigger,
        task: api,
    } = common::start_api(&nats, options).await;
    let store = Some(store);
    let http = reqwest::Client::new();
    let total = (n + 1070) as u64;
    common::caught_up_within(&base, total, Duration::from_secs(4 * 3600)).await;

    let clinic: prolo_schemas::ClinicId = "riverside".parse().unwrap();
    let patient: prolo_schemas::PatientId = "P-BENCH50".parse().unwrap();
    let lot: prolo_schemas::LotNumber = "TRACE-LOT".parse().unwrap();
    println!(
        "query benchmark: {total} events, {patients} patients; {runs} runs each; milliseconds"
    );
    println!();
    println!(
        "| query | answer size | library p50 | library p99 | HTTP p50 | HTTP p99 | target p99 |"
    );
    println!("|---|---|---|---|---|---|---|");

    let history_path = format!("{base}/v1/clinics/riverside/patients/P-BENCH50/history");
    let inv_path = format!("{base}/v1/clinics/riverside/adverse-events/{ae_id}/investigation");
    let trace_path = format!("{base}/v1/clinics/riverside/lots/TRACE-LOT/trace");
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    };

    let lib = |f: &dyn Fn(&Store) -> usize| -> Option<(f64, f64, usize)> {
        let store = store.as_ref()?;
        let size = f(store);
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            f(store);
            samples.push(start.elapsed());
        }
        let (p50, p99) = percentiles(samples);
        Some((p50, p99, size))
    };
    let fmt = |x: Option<(f64, f64, usize)>| {
        x.map_or(("-".to_owned(), "-".to_owned()), |(a, b, _)| {
            (format!("{a:.2}"), format!("{b:.2}"))
        })
    };

    let history = lib(&|s| {
        let seqs = q::patient_history(s, &clinic, &patient, &q::HistoryFilter::default()).unwrap();
        let views = q::views(s, &seqs[..seqs.len().min(100)], None).unwrap();
        serde_json::to_vec(&views).unwrap();
        views.len()
    });
    let (h50, h99) = measure(runs, || get(history_path.clone())).await;
    let (l50, l99) = fmt(history);
    println!(
        "| history of a 50-event patient | {} events | {l50} | {l99} | {h50:.2} | {h99:.2} | 5 |",
        history.map_or(50, |h| h.2)
    );

    // A filtered page: the patient's 43 injections. Before: filtering
    // decoded every event, then the page decoded its events again; now one
    // pass decodes each once (`patient_history_page`).
    let injections = q::HistoryFilter {
        event_types: vec![prolo_schemas::EventType::InjectionGiven],
        ..q::HistoryFilter::default()
    };
    let twice = lib(&|s| {
        let seqs = q::patient_history(s, &clinic, &patient, &injections).unwrap();
        let views = q::views(s, &seqs[..seqs.len().min(100)], None).unwrap();
        serde_json::to_vec(&views).unwrap();
        views.len()
    });
    let once = lib(&|s| {
        let page =
            q::patient_history_page(s, (&clinic, &patient), &injections, None, 100, None).unwrap();
        serde_json::to_vec(&page.items).unwrap();
        page.items.len()
    });
    let filtered_path = format!("{history_path}?type=injection.given");
    let (h50, h99) = measure(runs, || get(filtered_path.clone())).await;
    let ((t50, t99), (l50, l99)) = (fmt(twice), fmt(once));
    println!(
        "| history filtered to its injections (each event decoded twice: {t50} / {t99}) | {} events | {l50} | {l99} | {h50:.2} | {h99:.2} | 5 |",
        once.map_or(0, |h| h.2)
    );

    let investigation = lib(&|s| {
        let answer = q::investigation(s, &clinic, &ae_id, 14).unwrap();
        serde_json::to_vec(&answer).unwrap();
        answer.records() as usize
    });
    let (h50, h99) = measure(runs, || get(inv_path.clone())).await;
    let (l50, l99) = fmt(investigation);
    println!(
        "| adverse-event investigation | {} records | {l50} | {l99} | {h50:.2} | {h99:.2} | 10 |",
        investigation.map_or(0, |h| h.2)
    );

    let trace = lib(&|s| {
        let answer = q::lot_trace(s, &clinic, &lot).unwrap();
        serde_json::to_vec(&answer).unwrap();
        answer.injections.len()
    });
    let (h50, h99) = measure(runs / 3, || get(trace_path.clone())).await;
    let (l50, l99) = fmt(trace);
    println!(
        "| lot trace over 1,000 injections | {} injections | {l50} | {l99} | {h50:.2} | {h99:.2} | 50 |",
        trace.map_or(1000, |h| h.2)
    );
    println!();
    println!(
        "HTTP includes authentication, the access event (a JetStream publish awaited before the answer) and JSON over loopback."
    );

    // The web console's pages, signed in by the session cookie, end to end.
    println!();
    println!("| console page | HTTP p50 | HTTP p99 | target p99 |");
    println!("|---|---|---|---|");
    let cookie = format!(
        "{}={}",
        prolo_audit_api::auth::SESSION_COOKIE,
        prolo_audit_api::auth::to_hex(TOKEN)
    );
    let page = |url: String| {
        let (http, cookie) = (http.clone(), cookie.clone());
        async move {
            let r = http.get(url).header("cookie", cookie).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap();
        }
    };
    let mut worst: f64 = 0.0;
    for (name, path, page_runs) in [
        (
            "patient timeline (50 events)",
            "patients/P-BENCH50".to_owned(),
            runs,
        ),
        (
            "adverse-event investigation",
            format!("adverse-events/{ae_id}"),
            runs,
        ),
        (
            "lot trace (first 100 of 1,000 injections)",
            "lots/TRACE-LOT".to_owned(),
            runs / 3,
        ),
        (
            "findings (counts of every finding, first 100 listed)",
            "findings".to_owned(),
            runs / 10,
        ),
        (
            "signals (forest plots and tables)",
            "signals".to_owned(),
            runs / 3,
        ),
    ] {
        let url = format!("{base}/console/riverside/{path}");
        let (p50, p99) = measure(page_runs.max(10), || page(url.clone())).await;
        worst = worst.max(p99);
        println!("| {name} | {p50:.2} | {p99:.2} | 300 |");
    }
    println!();
    println!("slowest console page p99: {worst:.1} ms (target 300 ms)");
    trigger.fire();
    let _ = api.await;
}
