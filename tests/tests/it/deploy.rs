//! The deployment as configured in `deploy/`: the least-privilege users of
//! `deploy/nats/auth.conf` on a real server, and a three-node JetStream
//! cluster that loses a node mid-run without losing an acknowledged event.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use futures::StreamExt;
use prolo_bus::{STREAM_NAME, Shutdown, StreamSettings, ensure_stream};
use prolo_projector::{ProjectorSettings, Store};
use prolo_schemas::{Envelope, EventType};
use prolo_tests::{
    NatsCluster, NatsServer, Recorders, example_request, record_example, record_ok, stream_messages,
};

const USERS: &[&str] = &[
    "PRACTITIONERS",
    "CONSENT",
    "EXAMINATION",
    "TREATMENT",
    "SAFETY",
    "CORRECTIONS",
    "BATCH",
    "PROJECTOR",
    "AUDIT_API",
    "EHR_RIVERSIDE",
    "EHR_NORTHSIDE",
    "READER",
    "ADMIN",
];

fn password(user: &str) -> String {
    format!("pw-{}", user.to_lowercase())
}

/// A server configuration that includes the committed `deploy/nats/auth.conf`
/// with test passwords in place of the environment variables.
fn auth_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut auth = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats/auth.conf"
    ))
    .unwrap();
    for user in USERS {
        auth = auth.replace(
            &format!("$PROLO_{user}_PASSWORD"),
            &format!("\"{}\"", password(user)),
        );
    }
    assert!(
        !auth
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("$PROLO_")),
        "every password variable is known to the test"
    );
    let path = dir.join("auth.conf");
    std::fs::write(&path, auth).unwrap();
    path
}

fn url_as(server: &NatsServer, user: &str) -> String {
    format!(
        "nats://{}:{}@127.0.0.1:{}",
        user.to_lowercase().replace('_', "-"),
        password(user),
        server.port()
    )
}

/// A client that remembers the errors the server sends it.
async fn watched(url: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let (user, password) = prolo_bus::connect::credentials(url).unwrap();
    let client = async_nats::ConnectOptions::with_user_and_password(user.clone(), password)
        .custom_inbox_prefix(prolo_bus::connect::inbox_prefix(&user))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .unwrap();
    (client, errors)
}

#[tokio::test]
async fn each_user_can_do_its_job_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path());
    let admin_auth = format!("admin:{}", password("ADMIN"));
    let nats = NatsServer::start_with_config(&config, Some(&admin_auth))
        .await
        .unwrap();
    let admin = jetstream::new(
        prolo_bus::connect(&url_as(&nats, "ADMIN"), "admin")
            .await
            .unwrap(),
    );
    ensure_stream(&admin, &StreamSettings::default())
        .await
        .unwrap();

    // The consent service runs with its own credentials and records a consent for the EHR.
    let consent_client = prolo_bus::connect(&url_as(&nats, "CONSENT"), "consent")
        .await
        .unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let service = tokio::spawn(prolo_recorder::serve(
        consent_client,
        &prolo_recorder::commands::CONSENT,
        Default::default(),
        shutdown.clone(),
    ));
    let admin_client = prolo_bus::connect(&url_as(&nats, "ADMIN"), "admin")
        .await
        .unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while admin_client
        .request("$SRV.PING.consent", "".into())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < give_up,
            "consent never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ehr = prolo_bus::connect(&url_as(&nats, "EHR_RIVERSIDE"), "ehr")
        .await
        .unwrap();
    let reader = prolo_bus::connect(&url_as(&nats, "READER"), "reader")
        .await
        .unwrap();
    let mut following = reader.subscribe("clinic.>").await.unwrap();
    reader.flush().await.unwrap();
    let recorded = record_example(&ehr, EventType::ConsentGiven).await;
    assert_eq!(stream_messages(&admin).await, 1);
    // The outside subscriber sees it live.
    let seen = tokio::time::timeout(Duration::from_secs(5), following.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Envelope::from_json(&seen.payload).unwrap().event_id,
        recorded.event_id
    );

    // The consent service's credentials cannot publish an injection event.
    let (consent_raw, consent_errors) = watched(&url_as(&nats, "CONSENT")).await;
    let injection = Envelope::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/injection.given.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let js = jetstream::new(consent_raw.clone());
    let attempt = tokio::time::timeout(Duration::from_secs(2), async {
        js.publish(
            injection.subject().unwrap().to_string(),
            injection.to_json().into(),
        )
        .await?
        .await
    })
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "the injection was acknowledged: {attempt:?}"
    );
    consent_raw.flush().await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        consent_errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Permissions Violation for Publish")),
        "{:?}",
        consent_errors.lock().unwrap()
    );

    // The outside subscriber cannot publish at all.
    let (reader_raw, reader_errors) = watched(&url_as(&nats, "READER")).await;
    let consent = Envelope::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/consent.given.json"
        ))
        .unwrap(),
    )
    .unwrap();
    reader_raw
        .publish(
            consent.subject().unwrap().to_string(),
            consent.to_json().into(),
        )
        .await
        .unwrap();
    reader_raw
        .publish("prolo.cmd.riverside.consent.give", "{}".into())
        .await
        .unwrap();
    reader_raw.flush().await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        reader_errors
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains("Permissions Violation for Publish"))
            .count(),
        2,
        "{:?}",
        reader_errors.lock().unwrap()
    );
    assert_eq!(
        stream_messages(&admin).await,
        1,
        "nothing but the recorded consent is stored"
    );
    drop(admin_client);

    // An idempotency key works under the consent service's permissions
    // (its claims bucket), and a retry is the same event.
    let mut keyed = example_request("consent.given");
    keyed["idempotency_key"] = "deploy-form-1".into();
    let first = record_ok(&ehr, EventType::ConsentGiven, &keyed).await;
    let again = record_ok(&ehr, EventType::ConsentGiven, &keyed).await;
    assert_eq!((again.event_id, again.duplicate), (first.event_id, true));
    assert_eq!(stream_messages(&admin).await, 2);

    // The batch service, with its own credentials, stores events of several
    // types for the EHR in one atomic batch.
    let batch_client = prolo_bus::connect(&url_as(&nats, "BATCH"), "batch")
        .await
        .unwrap();
    let batch_service = tokio::spawn(prolo_recorder::serve(
        batch_client,
        &prolo_recorder::commands::BATCH,
        Default::default(),
        shutdown.clone(),
    ));
    let events = serde_json::json!({"events": [
        {"command": "consent.give", "request": example_request("consent.given")},
        {"command": "injection.give", "request": example_request("injection.given")},
    ]});
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    let reply: prolo_recorder::batch::BatchReply = loop {
        match ehr
            .request(
                prolo_recorder::commands::batch_subject("riverside"),
                serde_json::to_vec(&events).unwrap().into(),
            )
            .await
        {
            Ok(reply) => break serde_json::from_slice(&reply.payload).unwrap(),
            // Not registered yet.
            Err(_) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("batch never answered: {e}"),
        }
    };
    assert_eq!((reply.recorded, reply.refused), (2, 0), "{reply:?}");
    assert_eq!(stream_messages(&admin).await, 4);

    // The riverside EHR cannot send northside's commands, and a riverside
    // command naming northside is refused by the service.
    let (ehr_raw, ehr_errors) = watched(&url_as(&nats, "EHR_RIVERSIDE")).await;
    let mut northside = example_request("consent.given");
    northside["clinic_id"] = "northside".into();
    let body = bytes::Bytes::from(serde_json::to_vec(&northside).unwrap());
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        ehr_raw.request("prolo.cmd.northside.consent.give", body.clone()),
    )
    .await;
    assert!(!matches!(refused, Ok(Ok(_))), "{refused:?}");
    let reply = ehr_raw
        .request("prolo.cmd.riverside.consent.give", body)
        .await
        .unwrap();
    let error: prolo_recorder::reply::ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error.error.problems[0].path, "clinic_id");
    assert!(
        ehr_errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Permissions Violation for Publish to \"prolo.cmd.northside")),
        "{:?}",
        ehr_errors.lock().unwrap()
    );
    assert_eq!(stream_messages(&admin).await, 4);

    // Nobody but admin reads _INBOX.>, or another user's inbox.
    for user in USERS.iter().filter(|u| **u != "ADMIN") {
        let (client, errors) = watched(&url_as(&nats, user)).await;
        let _everyone = client.subscribe("_INBOX.>").await.unwrap();
        let _consents = client.subscribe("_INBOX_consent.>").await.unwrap();
        client.flush().await.ok();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let denied = errors
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains("Permissions Violation for Subscription"))
            .count();
        let expected = if *user == "CONSENT" { 1 } else { 2 };
        assert_eq!(denied, expected, "{user}: {:?}", errors.lock().unwrap());
    }

    // Only the projector publishes findings, signals and checkpoints.
    let (api_raw, api_errors) = watched(&url_as(&nats, "AUDIT_API")).await;
    for subject in [
        "prolo.finding.riverside.x.raised",
        "prolo.signal.riverside.raised",
        "prolo.chain.checkpoint",
    ] {
        api_raw.publish(subject, "{}".into()).await.unwrap();
    }
    api_raw.flush().await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        api_errors
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains("Permissions Violation for Publish"))
            .count(),
        3,
        "{:?}",
        api_errors.lock().unwrap()
    );

    // The projector's credentials suffice to consume the stream.
    let db = tempfile::tempdir().unwrap();
    let store = Store::open(db.path(), 16 << 20).unwrap();
    let (stop_projector, projector_shutdown) = Shutdown::new();
    let (projector_client, projector_errors) = watched(&url_as(&nats, "PROJECTOR")).await;
    let projector = tokio::spawn(prolo_projector::run(
        projector_client,
        store.clone(),
        ProjectorSettings::default(),
        projector_shutdown,
    ));
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.applied_seq().unwrap() < 1 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the projector could not consume: {:?}",
            projector_errors.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_projector.fire();
    projector.await.unwrap().unwrap();
    trigger.fire();
    service.await.unwrap().unwrap();
    batch_service.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_three_node_cluster_loses_a_node_mid_run_and_no_acknowledged_event() {
    const REQUESTS: usize = 300;
    let mut cluster = NatsCluster::start(3).await.unwrap();
    let urls = cluster.urls();
    let admin = prolo_bus::connect(&urls, "admin").await.unwrap();
    let js = jetstream::new(admin.clone());
    // The JetStream leader election takes a moment after the nodes start.
    let settings = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ensure_stream(&js, &settings).await {
            Ok(_) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < give_up, "no stream: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);

    let recorders = Recorders::start(&urls).await.unwrap();
    let db = tempfile::tempdir().unwrap();
    let store = Store::open(db.path(), 16 << 20).unwrap();
    let (stop_projector, projector_shutdown) = Shutdown::new();
    let projector_client = prolo_bus::connect(&urls, "projector").await.unwrap();
    let projector = tokio::spawn(prolo_projector::run(
        projector_client,
        store.clone(),
        ProjectorSettings::default(),
        projector_shutdown,
    ));

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let client = prolo_bus::connect(&urls, "clinic").await.unwrap();
    let (_, command) = prolo_recorder::command_for(EventType::InjectionGiven).unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..8 {
        let (client, acknowledged, subject) = (
            client.clone(),
            acknowledged.clone(),
            command.subject("riverside"),
        );
        callers.spawn(async move {
            for i in (c..REQUESTS).step_by(8) {
                let mut request = example_request("injection.given");
                request["idempotency_key"] = format!("cluster-{i}").into();
                let body = bytes::Bytes::from(serde_json::to_vec(&request).unwrap());
                let give_up = tokio::time::Instant::now() + Duration::from_secs(90);
                loop {
                    assert!(
                        tokio::time::Instant::now() < give_up,
                        "request {i} never stored"
                    );
                    if let Ok(Ok(reply)) = tokio::time::timeout(
                        Duration::from_secs(3),
                        client.request(subject.clone(), body.clone()),
                    )
                    .await
                        && reply.headers.is_none()
                    {
                        let recorded: prolo_bus::Recorded =
                            serde_json::from_slice(&reply.payload).unwrap();
                        acknowledged.lock().unwrap().push(recorded.event_id);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    while acknowledged.lock().unwrap().len() < REQUESTS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.kill(0);
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let acknowledged: HashSet<uuid::Uuid> = acknowledged.lock().unwrap().iter().copied().collect();
    assert_eq!(acknowledged.len(), REQUESTS);

    // Every acknowledged event is in the stream, on the surviving nodes…
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        REQUESTS as u64,
        "each once"
    );
    // …and in the projector's read model.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.applied_seq().unwrap() < last {
        assert!(!projector.is_finished(), "the projector stopped");
        assert!(
            tokio::time::Instant::now() < give_up,
            "projector stuck at {}",
            store.applied_seq().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &acknowledged {
        assert!(
            store.seq_of(id).unwrap().is_some(),
            "{id} missing from the read model"
        );
    }
    stop_projector.fire();
    projector.await.unwrap().unwrap();
    recorders.stop().await;
}
