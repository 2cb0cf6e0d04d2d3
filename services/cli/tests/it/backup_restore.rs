//! `prolo-audit backup` and `restore`, the real binary against real
//! nats-servers: a backup names what it holds, a restore into a fresh
//! server checks its chain, and a second restore is refused with a clear
//! error (exit 1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::{prolo_audit, succeeded};
use prolo_tests::{NatsServer, stream_of};

async fn run(url: &str, args: &[&str]) -> std::process::Output {
    prolo_audit(args, &[("NATS_URL", url)]).await
}

#[tokio::test]
async fn backup_then_restore_through_the_command_line() {
    let (original, _, _) = stream_of(300, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let out = out.to_str().unwrap();

    let backed = run(&original.url(), &["backup", "--out", out]).await;
    let said = succeeded(&backed);
    assert!(
        said.starts_with("backed up 300 messages (sequences 1 to 300"),
        "{said}"
    );

    let fresh = NatsServer::start().await.unwrap();
    let restored = run(&fresh.url(), &["restore", "--from", out]).await;
    let said = succeeded(&restored);
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
