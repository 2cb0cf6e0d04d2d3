//! `prolo-audit backup` and `restore`, the real binary against real
//! nats-servers: a backup names what it holds, a restore into a fresh
//! server checks its chain, and a second restore is refused with a clear
//! error (exit 1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use prolo_bus::{StreamSettings, ensure_stream};
use prolo_tests::{NatsServer, publish_all, synthetic_events};

async fn run(url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_prolo-audit"))
        .args(args)
        .env("NATS_URL", url)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn backup_then_restore_through_the_command_line() {
    let original = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(original.client().await.unwrap());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish_all(&js, synthetic_events(300, 10), 64).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let out = out.to_str().unwrap();

    let backed = run(&original.url(), &["backup", "--out", out]).await;
    let said = String::from_utf8_lossy(&backed.stdout);
    assert!(
        backed.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&backed.stderr)
    );
    assert!(
        said.starts_with("backed up 300 messages (sequences 1 to 300"),
        "{said}"
    );

    let fresh = NatsServer::start().await.unwrap();
    let restored = run(&fresh.url(), &["restore", "--from", out]).await;
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(
        said.contains("restored 300 messages up to sequence 300")
            && said.contains("matches the backup"),
        "{said}"
    );

    let again = run(&fresh.url(), &["restore", "--from", out]).await;
    assert_eq!(again.status.code(), Some(1));
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("never overwrites"), "{error}");
}
