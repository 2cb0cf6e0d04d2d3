//! Clinics that keep recording while their line to the hub is down.
//!
//! Real nats-servers on loopback ports: a hub (JetStream domain `hub`, a
//! leaf node port) and clinic edges (each a leaf node of the hub with its
//! own domain and its own `CLINIC_EVENTS` of its clinic's subjects), each
//! edge reaching the hub through a [`Link`] the test can cut. The hub's
//! stream sources every edge's stream (`prolo_bus::edge::attach`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::Duration,
};

use async_nats::jetstream;
use futures::StreamExt;
use prolo_bus::{
    StreamSettings, edge, ensure_stream,
    local_server::{ServerOptions, free_port},
};
use prolo_projector::{
    Store,
    integrity::chain,
    project::{fold_batch, read_stream},
    rules::findings::FindingSettings,
    store::reads::Index,
};
use prolo_tests::{NatsServer, Recorders, example_request, link::Link, record_ok};
use serde_json::Value;

const ADMIN: &str = prolo_tests::edge::HUB_ADMIN;

async fn start_hub(dir: &Path, leaf_port: u16, clinics: &[&str]) -> NatsServer {
    prolo_tests::edge::start_hub(dir, leaf_port, clinics)
        .await
        .unwrap()
}

/// A clinic's edge server, a leaf node of the hub through `link`, with its
/// stream of the clinic's subjects.
async fn start_edge(dir: &Path, clinic: &str, link: &Link) -> NatsServer {
    let conf = dir.join(format!("edge-{clinic}.conf"));
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ user: local, password: \"local-pw\" }} ] }}\n{}\n",
            edge::leaf_remote(&format!(
                "nats-leaf://edge-{clinic}:pw-{clinic}@127.0.0.1:{}",
                link.port()
            ))
        ),
    )
    .unwrap();
    let options = ServerOptions {
        include: Some(conf),
        jetstream_domain: Some(edge::edge_domain(clinic)),
        ..ServerOptions::default()
    };
    let server = NatsServer::start_with(options, Some("local:local-pw"))
        .await
        .unwrap();
    let js = jetstream::new(connect(&server, "local:local-pw").await);
    let settings = StreamSettings {
        clinic: Some(clinic.to_owned()),
        ..StreamSettings::default()
    };
    ensure_stream(&js, &settings).await.unwrap();
    server
}

async fn connect(server: &NatsServer, user_password: &str) -> async_nats::Client {
    let (user, password) = user_password.split_once(':').unwrap();
    prolo_bus::connect(
        &format!("nats://{user}:{password}@127.0.0.1:{}", server.port()),
        "edge-test",
    )
    .await
    .unwrap()
}

fn url(server: &NatsServer, user_password: &str) -> String {
    format!("nats://{user_password}@127.0.0.1:{}", server.port())
}

/// The last sequence of `CLINIC_EVENTS` on `js`'s server.
async fn last_seq(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(prolo_bus::STREAM_NAME).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

/// Every message of `CLINIC_EVENTS` on `js`'s server: (subject, payload).
async fn messages(js: &jetstream::Context) -> Vec<(String, Vec<u8>)> {
    let last = last_seq(js).await;
    let mut out = Vec::new();
    read_stream(js, 1, last, 1_000, |batch| {
        out.extend(batch.into_iter().map(|m| (m.subject, m.payload.to_vec())));
        async { Ok(()) }
    })
    .await
    .unwrap();
    out
}

/// Each patient's event ids in stream order.
fn per_patient(messages: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, payload) in messages {
        let event: Value = serde_json::from_slice(payload).unwrap();
        out.entry(event["patient_id"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(event["event_id"].as_str().unwrap().to_owned());
    }
    out
}

/// The edge's own hash chain head over its stream, as its fold computes it.
fn chain_head(messages: &[(String, Vec<u8>)]) -> String {
    let mut head = chain::GENESIS;
    for (i, (_, payload)) in messages.iter().enumerate() {
        head = chain::link(&head, i as u64 + 1, payload);
    }
    chain::hex(&head)
}

async fn held(js: &jetstream::Context) -> u64 {
    prolo_tests::stream_messages(js).await
}

async fn wait_until_held(js: &jetstream::Context, count: u64, within: Duration) {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        let now = held(js).await;
        if now >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the hub holds {now} of {count} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records a patient's round (consent, examination, three injections) at
/// `clinic` through the recording services on `client`.
async fn record_patients(client: &async_nats::Client, clinic: &str, patients: usize) -> usize {
    use prolo_schemas::EventType;
    let round = [
        EventType::ConsentGiven,
        EventType::ExaminationDone,
        EventType::InjectionGiven,
        EventType::InjectionGiven,
        EventType::InjectionGiven,
    ];
    let mut recorded = 0;
    for event_type in round {
        for p in 0..patients {
            let mut request = example_request(event_type.as_str());
            request["clinic_id"] = clinic.into();
            request["patient_id"] = format!("{clinic}-P{p:03}").into();
            record_ok(client, event_type, &request).await;
            recorded += 1;
        }
    }
    recorded
}

/// Folds the hub's stream into a fresh read model, as its projector does.
async fn fold_hub(js: &jetstream::Context, dir: &Path) -> Store {
    let store = Store::open(&dir.join("hub.sled"), 64 << 20).unwrap();
    let last = last_seq(js).await;
    let settings = FindingSettings::default();
    read_stream(js, 1, last, 1_000, |batch| {
        let (store, settings) = (&store, &settings);
        async move {
            fold_batch(store, &batch, settings).await?;
            Ok(())
        }
    })
    .await
    .unwrap();
    store
}

#[tokio::test]
async fn a_clinic_records_offline_and_the_hub_gets_every_event_once_in_order() {
    const PATIENTS: usize = 100; // × 5 events = 500 per clinic
    let dir = tempfile::tempdir().unwrap();
    let leaf_port = free_port();
    let hub = start_hub(dir.path(), leaf_port, &["north", "south"]).await;
    let (link_north, link_south) = (
        Link::start(leaf_port).await.unwrap(),
        Link::start(leaf_port).await.unwrap(),
    );
    let north = start_edge(dir.path(), "north", &link_north).await;
    let south = start_edge(dir.path(), "south", &link_south).await;
    let hub_client = connect(&hub, ADMIN).await;
    let hub_js = jetstream::new(hub_client.clone());
    ensure_stream(&hub_js, &StreamSettings::default())
        .await
        .unwrap();
    for clinic in ["north", "south"] {
        let attached = edge::attach(&hub_js, clinic, &edge::edge_domain(clinic))
            .await
            .unwrap();
        assert_eq!(attached, edge::Attached::Added);
    }
    assert_eq!(
        edge::attach(&hub_js, "north", &edge::edge_domain("north"))
            .await
            .unwrap(),
        edge::Attached::AlreadyAttached
    );
    // A clinic id that is not one subject token would widen the filter.
    for hostile in ["", "north.>", "*", "a b", &"x".repeat(65)] {
        let refused = edge::attach(&hub_js, hostile, "clinic-x").await;
        assert!(refused.is_err(), "{hostile:?} attached");
    }

    // North's line goes down; both clinics record through their own services.
    link_north.cut();
    let north_recorders = Recorders::start(&url(&north, "local:local-pw"))
        .await
        .unwrap();
    let south_recorders = Recorders::start(&url(&south, "local:local-pw"))
        .await
        .unwrap();
    let north_client = connect(&north, "local:local-pw").await;
    let south_client = connect(&south, "local:local-pw").await;
    let (recorded_north, recorded_south) = tokio::join!(
        record_patients(&north_client, "north", PATIENTS),
        record_patients(&south_client, "south", PATIENTS),
    );
    assert_eq!((recorded_north, recorded_south), (500, 500));
    wait_until_held(&hub_js, 500, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        held(&hub_js).await,
        500,
        "only south's events reach the hub while north's line is down"
    );
    let lags = edge::source_lags(&hub_js).await.unwrap();
    assert_eq!(
        lags.iter().map(|l| l.clinic.as_str()).collect::<Vec<_>>(),
        ["north", "south"],
        "{lags:?}"
    );
    assert_eq!(lags[0].active_ms, None, "north's link is down: {lags:?}");

    // The line returns: what north recorded offline flows in once.
    // The hub retries a source it lost with a backoff of 10 s more per
    // failure, at most 2 minutes.
    link_north.restore();
    let restored = std::time::Instant::now();
    wait_until_held(&hub_js, 1_000, Duration::from_secs(150)).await;
    eprintln!(
        "north's 500 offline events at the hub {:.1} s after the line returned",
        restored.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_hub = messages(&hub_js).await;
    assert_eq!(
        at_hub.len(),
        1_000,
        "nothing doubled after the line returned"
    );
    let ids: HashSet<&[u8]> = at_hub.iter().map(|(_, p)| &p[..]).collect();
    assert_eq!(ids.len(), 1_000, "every event once");
    let north_js = jetstream::new(north_client.clone());
    let south_js = jetstream::new(south_client.clone());
    let (at_north, at_south) = (messages(&north_js).await, messages(&south_js).await);
    assert_eq!((at_north.len(), at_south.len()), (500, 500));
    let hub_order = per_patient(&at_hub);
    for (clinic, at_edge) in [("north", &at_north), ("south", &at_south)] {
        for (patient, order) in per_patient(at_edge) {
            assert_eq!(
                hub_order.get(&patient),
                Some(&order),
                "{clinic}'s patient {patient} in the order recorded"
            );
        }
    }

    // The hub's read model has them all, with the edge's recorded time.
    let store = fold_hub(&hub_js, dir.path()).await;
    assert_eq!(store.applied_seq().unwrap(), 1_000);
    assert_eq!(store.quarantined().unwrap(), 0);
    for clinic in ["north", "south"] {
        for p in 0..PATIENTS {
            let patient = format!("{clinic}-P{p:03}");
            let events = store.index(Index::Patient {
                clinic,
                patient: &patient,
            });
            assert_eq!(events.unwrap().len(), 5, "{patient}");
        }
        let counts = store.finding_counts(clinic).unwrap();
        assert!(
            !counts
                .iter()
                .any(|(rule, _)| rule == "recorded_at_mismatch"),
            "offline events raise no recorded_at_mismatch: {counts:?}"
        );
    }
    let mut offline_delays = Vec::new();
    for seq in 1..=1_000 {
        let record = store.event(seq).unwrap().unwrap();
        let sourced = store
            .sourced(seq)
            .unwrap()
            .expect("every event was sourced");
        assert!(record.stored_at_ms <= sourced.arrived_at_ms);
        if record.subject.starts_with("clinic.north.") {
            offline_delays.push(sourced.arrived_at_ms - record.stored_at_ms);
        }
    }
    assert!(
        offline_delays.iter().all(|&d| d >= 1_000),
        "north's events keep the time the edge recorded them, not their arrival: {:?}",
        offline_delays.iter().min()
    );
    // Each edge's chain, recomputed at the hub, equals the edge's own.
    let chains = store.edge_chains().unwrap();
    for (clinic, at_edge) in [("north", &at_north), ("south", &at_south)] {
        let chain = chains.iter().find(|c| c.clinic == clinic).unwrap();
        assert_eq!(
            (chain.through, chain.gaps, chain::hex(&chain.head)),
            (500, 0, chain_head(at_edge)),
            "{clinic}"
        );
    }

    // North's credentials carry nothing but north's sourcing.
    let as_client =
        async_nats::ConnectOptions::with_user_and_password("edge-north".into(), "pw-north".into())
            .connect(hub.url())
            .await;
    assert!(as_client.is_err(), "a leaf user is not a client of the hub");
    let mut watch = hub_client.subscribe("clinic.>").await.unwrap();
    let mut watch_south = hub_client
        .subscribe("prolo.edge.south.deliver.S.forged")
        .await
        .unwrap();
    let mut control = hub_client
        .subscribe("prolo.edge.north.deliver.probe")
        .await
        .unwrap();
    hub_client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // interest reaches the leaf
    let mut forged = example_request("injection.given");
    forged["clinic_id"] = "south".into();
    forged["patient_id"] = "south-P000".into();
    let forged_id = uuid::Uuid::now_v7().to_string();
    forged["event_id"] = forged_id.clone().into();
    let body = serde_json::to_vec(&forged).unwrap();
    for subject in [
        "clinic.south.patient.south-P000.injection.given",
        "prolo.edge.south.deliver.S.forged",
        "prolo.edge.north.deliver.probe",
    ] {
        north_client
            .publish(subject, body.clone().into())
            .await
            .unwrap();
    }
    north_client.flush().await.unwrap();
    let probe = tokio::time::timeout(Duration::from_secs(5), control.next()).await;
    assert!(
        matches!(probe, Ok(Some(_))),
        "north's own delivery prefix crosses the link (so the refusals below are the permissions')"
    );
    for watch in [&mut watch, &mut watch_south] {
        let leaked = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
        assert!(leaked.is_err(), "north published into the hub: {leaked:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = messages(&hub_js).await;
    assert_eq!(after.len(), 1_000);
    assert!(
        !after
            .iter()
            .any(|(_, p)| String::from_utf8_lossy(p).contains(&forged_id)),
        "a forged event of south reached the hub's stream"
    );
    north_recorders.stop().await;
    south_recorders.stop().await;
}

#[tokio::test]
async fn the_hub_killed_mid_sourcing_loses_and_doubles_nothing() {
    const EVENTS: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let leaf_port = free_port();
    let mut hub = start_hub(dir.path(), leaf_port, &["riverside"]).await;
    let link = Link::start(leaf_port).await.unwrap();
    let riverside = start_edge(dir.path(), "riverside", &link).await;
    let hub_js = jetstream::new(connect(&hub, ADMIN).await);
    ensure_stream(&hub_js, &StreamSettings::default())
        .await
        .unwrap();
    // The clinic records before the hub sources it (as after a long outage);
    // then the hub is attached and killed while it catches up.
    let edge_js = jetstream::new(connect(&riverside, "local:local-pw").await);
    let stored =
        prolo_tests::publish_all(&edge_js, prolo_tests::synthetic_events(EVENTS, 500), 256).await;
    assert_eq!(stored, EVENTS as u64);
    assert_eq!(held(&hub_js).await, 0);

    edge::attach(&hub_js, "riverside", &edge::edge_domain("riverside"))
        .await
        .unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let at_kill = loop {
        let now = held(&hub_js).await;
        if now > 0 {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "sourcing never began"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    hub.kill();
    assert!(
        at_kill < EVENTS as u64,
        "the hub was killed after sourcing had finished ({at_kill}); nothing was tested"
    );
    hub.restart().await.unwrap();
    let restarted = std::time::Instant::now();
    let hub_js = jetstream::new(connect(&hub, ADMIN).await);
    let after_restart = held(&hub_js).await;
    assert!(after_restart >= at_kill, "{after_restart} < {at_kill}");
    // The hub sets its source up again on NATS's retry backoff (at most 2 min).
    wait_until_held(&hub_js, EVENTS as u64, Duration::from_secs(150)).await;
    let caught_up = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_hub = messages(&hub_js).await;
    assert_eq!(at_hub.len(), EVENTS, "nothing doubled");
    let ids: HashSet<&[u8]> = at_hub.iter().map(|(_, p)| &p[..]).collect();
    assert_eq!(ids.len(), EVENTS, "nothing lost");
    let at_edge = messages(&edge_js).await;
    assert_eq!(
        at_hub.iter().map(|(_, p)| p).collect::<Vec<_>>(),
        at_edge.iter().map(|(_, p)| p).collect::<Vec<_>>(),
        "in the edge's order"
    );
    let store = fold_hub(&hub_js, dir.path()).await;
    assert_eq!(store.applied_seq().unwrap(), EVENTS as u64);
    assert_eq!(store.quarantined().unwrap(), 0);
    let chains = store.edge_chains().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(
        (
            chains[0].through,
            chains[0].gaps,
            chain::hex(&chains[0].head)
        ),
        (EVENTS as u64, 0, chain_head(&at_edge))
    );
    eprintln!(
        "hub killed with {at_kill} of {EVENTS} sourced, {after_restart} held after restart, all {EVENTS} {:.1} s after it",
        caught_up.as_secs_f64()
    );
}
