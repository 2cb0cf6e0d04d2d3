//! What the API's tests share: the API on its own database, started on a
//! real nats-server, with a compliance token for every clinic and a safety
//! token for riverside.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly by design

use std::time::Duration;

use prolo_audit_api::{ApiSettings, Principals};
use prolo_projector::ProjectorSettings;
use prolo_tests::NatsServer;

/// Every clinic, compliance role.
pub const COMPLIANCE: &str = "console-compliance-token-0123";
/// Riverside only, safety role.
pub const SAFETY: &str = "console-safety-token-0123456";

/// The audit API on its own database; its address.
pub async fn api(nats: &NatsServer) -> (String, tempfile::TempDir) {
    let (base, db, trigger) = api_with(nats, "audit-api").await;
    std::mem::forget(trigger);
    (base, db)
}

/// The audit API folding with its own durable `consumer`; its address,
/// its database, and what stops it.
pub async fn api_with(
    nats: &NatsServer,
    consumer: &str,
) -> (String, tempfile::TempDir, prolo_bus::Trigger) {
    let principals = Principals::parse(&format!(
        r#"{{"tokens":[
            {{"token":"{COMPLIANCE}","principal":"officer-lee","role":"compliance","clinics":["*"]}},
            {{"token":"{SAFETY}","principal":"reviewer-ng","role":"safety","clinics":["riverside"]}}]}}"#
    ))
    .unwrap();
    let db = tempfile::tempdir().unwrap();
    let settings = ApiSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: db.path().join("api.sled"),
        cache_bytes: 32 << 20,
        projector: ProjectorSettings {
            consumer: consumer.into(),
            idle_wait: Duration::from_millis(50),
            ..ProjectorSettings::default()
        },
        broker: None,
        max_in_flight: prolo_audit_api::DEFAULT_MAX_IN_FLIGHT,
    };
    let (trigger, shutdown) = prolo_bus::Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let client = nats.client().await.unwrap();
    tokio::spawn(async move {
        prolo_audit_api::run(client, principals, settings, shutdown, |addr| {
            let _ = tx.send(addr);
        })
        .await
        .unwrap();
    });
    (format!("http://{}", rx.await.unwrap()), db, trigger)
}

/// Waits until the API at `base` is ready and has folded `seq`.
pub async fn caught_up(base: &str, seq: u64) {
    let http = reqwest::Client::new();
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200;
        let status: serde_json::Value = http
            .get(format!("{base}/v1/status"))
            .bearer_auth(COMPLIANCE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready && status["applied_seq"].as_u64() >= Some(seq) {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "{base} never caught up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
