//! Durable before acknowledged: every nats-server the project starts or
//! configures fsyncs before it acknowledges (`sync_interval: always`), read
//! back from the running server's `/varz` where it can be started here, and
//! from the configuration where it cannot (the cluster nodes need TLS
//! certificates of real hosts).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use prolo_bus::{Fsync, local_server::checked_nats_server};
use prolo_tests::{FsyncPolicy, NatsCluster, NatsServer, free_port, fsync_of, repo_root};

#[tokio::test]
async fn every_server_the_harness_starts_fsyncs_before_ack() {
    let single = NatsServer::start().await.unwrap();
    assert_eq!(
        fsync_of(&single.monitor_url().unwrap()).await,
        Fsync::Always
    );

    let cluster = NatsCluster::start(3).await.unwrap();
    let monitors = cluster.monitor_urls();
    assert_eq!(monitors.len(), 3);
    for monitor in monitors {
        assert_eq!(fsync_of(&monitor).await, Fsync::Always, "{monitor}");
    }

    // The lazy default, asked for only by benchmarks and durability
    // demonstrations, is told apart.
    let lazy = NatsServer::start_with_fsync(FsyncPolicy::ServerDefault)
        .await
        .unwrap();
    assert_eq!(
        fsync_of(&lazy.monitor_url().unwrap()).await,
        Fsync::Interval { every_ms: 120_000 }
    );
}

#[tokio::test]
async fn a_restarted_server_still_fsyncs_before_ack() {
    let mut nats = NatsServer::start().await.unwrap();
    nats.restart().await.unwrap();
    assert_eq!(fsync_of(&nats.monitor_url().unwrap()).await, Fsync::Always);
}

/// The password variables `deploy/nats/auth.conf` reads.
fn password_variables() -> BTreeSet<String> {
    let auth = std::fs::read_to_string(repo_root().join("deploy/nats/auth.conf")).unwrap();
    auth.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')))
        .filter_map(|word| word.strip_prefix('$'))
        .filter(|name| name.starts_with("PROLO_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_single_node_deployment_fsyncs_before_ack() {
    let (bin, _) = checked_nats_server().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, monitor) = (free_port(), free_port());
    // Only where it listens and stores moves (nats-server refuses the
    // command-line flags beside the file's own): the rest is as committed.
    let committed =
        std::fs::read_to_string(repo_root().join("deploy/nats/single-node.conf")).unwrap();
    let moved = [
        ("listen: ", format!("listen: 127.0.0.1:{port}")),
        ("http: ", format!("http: 127.0.0.1:{monitor}")),
        (
            "store_dir: ",
            format!("store_dir: \"{}\"", dir.path().join("store").display()),
        ),
    ];
    let config: Vec<String> = committed
        .lines()
        .map(|line| {
            moved
                .iter()
                .find(|(key, _)| line.trim_start().starts_with(key))
                .map_or_else(|| line.to_owned(), |(_, new)| new.clone())
        })
        .collect();
    std::fs::write(dir.path().join("single-node.conf"), config.join("\n")).unwrap();
    std::fs::copy(
        repo_root().join("deploy/nats/auth.conf"),
        dir.path().join("auth.conf"),
    )
    .unwrap();
    let mut command = Command::new(bin);
    command
        .arg("-c")
        .arg(dir.path().join("single-node.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let variables = password_variables();
    assert!(variables.len() >= 5, "{variables:?}");
    for variable in &variables {
        command.env(variable, "test-password");
    }
    let mut child = command.spawn().unwrap();
    let monitor_url = format!("http://127.0.0.1:{monitor}");
    let give_up = Instant::now() + Duration::from_secs(20);
    let fsync = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("single-node.conf did not start ({status}): {stderr}");
        }
        match prolo_bus::durability::varz_fsync(&monitor_url).await {
            Ok(fsync) => break fsync,
            Err(e) if Instant::now() > give_up => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fsync, Fsync::Always);
}

/// The `jetstream { … }` block of a configuration file.
fn jetstream_block(config: &str) -> String {
    let start = config.find("jetstream {").expect("a jetstream block");
    let end = config[start..].find('}').expect("closed") + start;
    config[start..end].to_owned()
}

#[test]
fn every_cluster_node_is_configured_to_fsync_before_ack() {
    let dir = repo_root().join("deploy/nats/cluster");
    let mut nodes = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        nodes += 1;
        let config = std::fs::read_to_string(&path).unwrap();
        let block = jetstream_block(&config);
        assert!(
            block.lines().any(|l| l.trim() == "sync_interval: always"),
            "{}: {block}",
            path.display()
        );
    }
    assert_eq!(nodes, 3);
    assert!(
        jetstream_block(
            &std::fs::read_to_string(repo_root().join("deploy/nats/single-node.conf")).unwrap()
        )
        .lines()
        .any(|l| l.trim() == "sync_interval: always")
    );
}

/// `nats-server -t` (parse and check, then exit) on `config`, with every
/// password variable and the hub's leaf URL set.
fn config_test(config: &std::path::Path) -> std::process::Output {
    let (bin, _) = checked_nats_server().unwrap();
    let mut command = std::process::Command::new(bin);
    command.arg("-t").arg("-c").arg(config);
    for variable in password_variables() {
        command.env(variable, "test-password");
    }
    command.env(
        "PROLO_HUB_LEAF_URL",
        "nats-leaf://edge-riverside:test-password@127.0.0.1:7422",
    );
    command.output().unwrap()
}

#[test]
fn the_clinic_edge_and_the_hub_with_leaf_nodes_are_configurations_nats_server_accepts() {
    let edge = repo_root().join("deploy/nats/edge/edge.conf");
    let out = config_test(&edge);
    assert!(
        out.status.success(),
        "edge.conf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block = jetstream_block(&std::fs::read_to_string(&edge).unwrap());
    assert!(
        block.lines().any(|l| l.trim() == "sync_interval: always"),
        "{block}"
    );
    assert!(
        block
            .lines()
            .any(|l| l.trim() == "domain: clinic-riverside"),
        "{block}"
    );
    // The hub: the single node with the leaf node block included.
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub.conf");
    let quoted = |p: &str| {
        let relative = prolo_bus::local_server::relative_to(dir.path(), &repo_root().join(p));
        serde_json::to_string(&relative.display().to_string()).unwrap()
    };
    std::fs::write(
        &hub,
        format!(
            "include {}\ninclude {}\n",
            quoted("deploy/nats/single-node.conf"),
            quoted("deploy/nats/edge/hub-leafnodes.conf")
        ),
    )
    .unwrap();
    let out = config_test(&hub);
    assert!(
        out.status.success(),
        "hub with leaf nodes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
