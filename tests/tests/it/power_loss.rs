//! A power cut, simulated with Jepsen's LazyFS (a FUSE file system that
//! keeps writes in its own cache until they are fsynced, and drops what was
//! not fsynced on `lazyfs::clear-cache`): with the server's default fsync,
//! acknowledged events are lost; with `sync_interval: always`, none are.
//!
//! LazyFS is not a package: build it from its public source
//! (github.com/dsrhaslab/lazyfs; Debian's libfuse3-dev, libspdlog-dev and
//! libtoml11-dev stand in for the libraries its CMake files download) and
//! run, as a user who may mount FUSE file systems:
//!
//! ```sh
//! LAZYFS_BIN=/path/to/lazyfs/build/lazyfs cargo test -p prolo-tests --test it power_loss:: -- --ignored
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use prolo_bus::{
    STREAM_NAME, StreamSettings, ensure_stream,
    local_server::{FsyncPolicy, LocalNatsServer, ServerOptions},
};
use prolo_tests::{free_port, publish_all, synthetic_events};

/// A LazyFS mount: `mount` shows what `root` holds plus the unsynced writes
/// LazyFS keeps in its cache.
struct LazyFs {
    process: Option<Child>,
    mount: PathBuf,
    fifo: PathBuf,
    _dir: tempfile::TempDir,
}

impl LazyFs {
    fn mount(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (root, mount) = (dir.path().join("root"), dir.path().join("mnt"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&mount).unwrap();
        let fifo = dir.path().join("faults.fifo");
        let config = dir.path().join("lazyfs.toml");
        std::fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{}\"\n[cache]\napply_eviction=false\n\
                 [cache.simple]\ncustom_size=\"1gb\"\nblocks_per_page=1\n\
                 [filesystem]\nlog_all_operations=false\nlogfile=\"\"\n",
                fifo.display()
            ),
        )
        .unwrap();
        let process = Command::new(bin)
            .arg(&mount)
            .arg("--config-path")
            .arg(&config)
            .args(["-o", "modules=subdir", "-o"])
            .arg(format!("subdir={}", root.display()))
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .contains(&mount.display().to_string())
        {
            assert!(Instant::now() < give_up, "LazyFS did not mount");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            process: Some(process),
            mount,
            fifo,
            _dir: dir,
        }
    }

    /// Loses every write that was not fsynced, as a power cut would.
    fn lose_unsynced_writes(&self) {
        std::fs::write(&self.fifo, "lazyfs::clear-cache\n").unwrap();
        // The command is applied asynchronously by LazyFS's fault worker.
        std::thread::sleep(Duration::from_secs(1));
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let unmounted = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Records `n` events (every one acknowledged) on a server storing on
/// LazyFS with `fsync`, cuts the power, restarts it, and returns how many
/// acknowledged events it still holds.
async fn survivors_of_a_power_cut(lazyfs_bin: &Path, fsync: FsyncPolicy, n: usize) -> (u64, u64) {
    let fs = LazyFs::mount(lazyfs_bin);
    let store = fs.mount.join("nats");
    std::fs::create_dir_all(&store).unwrap();
    let options = ServerOptions {
        fsync,
        // LazyFS reports no free space, from which JetStream would take 0.
        max_file_store: Some(1 << 30),
        ..ServerOptions::default()
    };
    let port = free_port();
    let mut server = LocalNatsServer::start(port, &store, &options)
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let acknowledged = publish_all(&js, synthetic_events(n, 50), 64).await;
    assert_eq!(acknowledged, n as u64, "every event acknowledged");

    // Power cut: the process dies and what was not fsynced is gone.
    server.kill();
    fs.lose_unsynced_writes();

    let server = LocalNatsServer::start(port, &store, &options)
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let held = match js.get_stream(STREAM_NAME).await {
        Ok(mut stream) => stream.info().await.unwrap().state.messages,
        // The stream's own metadata was lost too.
        Err(_) => 0,
    };
    drop(server);
    (acknowledged, held)
}

#[tokio::test]
#[ignore = "needs Jepsen's LazyFS: set LAZYFS_BIN and run with --ignored"]
async fn acknowledged_events_survive_a_power_cut_only_with_fsync_before_ack() {
    let bin =
        PathBuf::from(std::env::var_os("LAZYFS_BIN").expect("LAZYFS_BIN names the lazyfs binary"));
    let n = 2_000;
    let (acked, held) = survivors_of_a_power_cut(&bin, FsyncPolicy::ServerDefault, n).await;
    eprintln!("server default fsync: {acked} acknowledged, {held} after the power cut");
    assert!(
        held < acked,
        "the lazy default was expected to lose acknowledged events ({held} of {acked} kept)"
    );
    let (acked, held) = survivors_of_a_power_cut(&bin, FsyncPolicy::Always, n).await;
    eprintln!("sync_interval: always: {acked} acknowledged, {held} after the power cut");
    assert_eq!(
        held, acked,
        "fsync before ack keeps every acknowledged event"
    );
}
