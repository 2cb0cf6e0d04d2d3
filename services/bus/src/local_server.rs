//! A nats-server of our own: started by `prolo-audit up` when no broker is
//! reachable, and by the tests (each its own, on a free port).
//!
//! Every server started here runs the pinned version (or a later one) with
//! JetStream fsyncing before it acknowledges (`sync_interval: always`), and a
//! monitoring endpoint on loopback from which that can be read back
//! (`/varz`). Only benchmarks and the durability tests ask for the lazy
//! server default, to measure or show what it costs.

use std::{
    net::TcpListener,
    path::{Component, Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::durability::ServerVersion;

/// The pin file shared with `deploy/install-nats-server.sh`.
const PIN: &str = include_str!("../../../deploy/nats/nats-server.pin");

/// The lowest server version started or accepted: `sync_interval: always`
/// and atomic batch publish need 2.12.
pub const MIN_VERSION: ServerVersion = ServerVersion(2, 12, 0);

/// The version `deploy/install-nats-server.sh` installs (from the pin file).
pub fn pinned_version() -> &'static str {
    PIN.lines()
        .find_map(|line| line.strip_prefix("version="))
        .map_or("unknown", str::trim)
}

/// Where `deploy/install-nats-server.sh` puts the pinned binary, when this
/// program was built from a checkout of the repository.
pub fn pinned_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools")
        .join(format!("nats-server-{}", pinned_version()))
        .join("nats-server")
}

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// The binary is missing.
    #[error(
        "`nats-server` was not found. Install the pinned version first: `deploy/install-nats-server.sh` \
         (nats-server {pinned} into .tools/), or set NATS_SERVER_BIN to a nats-server {min} or later",
        pinned = pinned_version(),
        min = MIN_VERSION
    )]
    NotInstalled,
    /// The binary is older than [`MIN_VERSION`] (e.g. Debian's 2.9.10).
    #[error(
        "{path} is nats-server {found}, which cannot fsync before it acknowledges (`sync_interval: always` \
         needs {min} or later). Run `deploy/install-nats-server.sh` (installs {pinned} into .tools/) or set \
         NATS_SERVER_BIN",
        min = MIN_VERSION,
        pinned = pinned_version()
    )]
    TooOld {
        /// The binary.
        path: String,
        /// What it said its version was.
        found: String,
    },
    /// The process exited while starting: most often its port was taken.
    #[error(
        "nats-server exited at start with {status} (port {port} or monitoring port {monitor_port} taken?)"
    )]
    ExitedAtStart {
        /// The exit status.
        status: String,
        /// The client port asked for.
        port: u16,
        /// The monitoring port asked for.
        monitor_port: u16,
    },
    /// Starting or reaching it failed.
    #[error("nats-server: {0}")]
    Failed(String),
}

/// The nats-server binary: `NATS_SERVER_BIN`, else the pinned one under
/// `.tools/`, else `nats-server` on PATH, else `/usr/sbin` and
/// `/usr/local/sbin` (not on every user's PATH). Not checked for its version:
/// see [`checked_nats_server`].
pub fn find_nats_server() -> Result<PathBuf, LocalServerError> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(bin.into());
    }
    let pinned = pinned_binary();
    if pinned.is_file() {
        return Ok(pinned.canonicalize().unwrap_or(pinned));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(LocalServerError::NotInstalled)
}

/// [`find_nats_server`], refusing a binary older than [`MIN_VERSION`].
/// Returns the path and the version it reports.
pub fn checked_nats_server() -> Result<(PathBuf, ServerVersion), LocalServerError> {
    let bin = find_nats_server()?;
    let output = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LocalServerError::NotInstalled,
            _ => LocalServerError::Failed(format!("{} --version: {e}", bin.display())),
        })?;
    let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let version = said
        .rsplit(['v', ' '])
        .next()
        .and_then(ServerVersion::parse)
        .ok_or_else(|| {
            LocalServerError::Failed(format!(
                "{} --version said {said:?}, not a version",
                bin.display()
            ))
        })?;
    if version < MIN_VERSION {
        return Err(LocalServerError::TooOld {
            path: bin.display().to_string(),
            found: version.to_string(),
        });
    }
    Ok((bin, version))
}

/// A free TCP port on 127.0.0.1 (free when asked; a server started on it may
/// still find it taken, so starts retry, see [`LocalServerError::ExitedAtStart`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Whether a NATS server answers at `url` (within two seconds), with the
/// `user:password@` the URL carries. One that refuses those credentials
/// answers too: it is there, and starting another on its port would fail.
pub async fn is_reachable(url: &str) -> bool {
    match probe_connect(url).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => matches!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication
        ),
        Err(_) => false,
    }
}

/// The version the NATS server at `url` announces, when it accepts the
/// URL's credentials (within two seconds); `None` when it cannot be asked.
pub async fn server_version(url: &str) -> Option<ServerVersion> {
    let client = probe_connect(url).await.ok()?.ok()?;
    ServerVersion::parse(&client.server_info().version)
}

/// One connection attempt to the first server of `url`, with the
/// `user:password@` it carries, given up after three seconds.
async fn probe_connect(
    url: &str,
) -> Result<Result<async_nats::Client, async_nats::ConnectError>, tokio::time::error::Elapsed> {
    let first = url.split(',').next().unwrap_or(url).trim();
    let mut options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2));
    if let Some((user, password)) = crate::connect::credentials(first) {
        options = options.user_and_password(user, password);
    }
    tokio::time::timeout(Duration::from_secs(3), options.connect(first)).await
}

/// When JetStream writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `sync_interval: always`: fsync before every acknowledgement. What
    /// every server the project starts or configures uses.
    #[default]
    Always,
    /// The server's default (every two minutes): an acknowledged write can
    /// be lost on power failure. Only for benchmarks and for showing the loss.
    ServerDefault,
}

/// How to start a server, beyond its port and store.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// When JetStream fsyncs.
    pub fsync: FsyncPolicy,
    /// A configuration file to include (e.g. users and permissions).
    pub include: Option<PathBuf>,
    /// Further command-line arguments (e.g. cluster routes).
    pub args: Vec<String>,
    /// Where its log goes (nowhere when absent).
    pub log: Option<PathBuf>,
    /// The JetStream domain (a clinic's edge server has its own, see
    /// [`crate::edge`]); none by default.
    pub jetstream_domain: Option<String>,
    /// JetStream's file store limit in bytes (by default the server takes
    /// 75% of the free space it sees, which some file systems misreport).
    pub max_file_store: Option<u64>,
}

/// A nats-server process with JetStream, listening on 127.0.0.1.
pub struct LocalNatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    version: ServerVersion,
    probe_auth: Option<String>,
}

impl LocalNatsServer {
    /// Starts a server on 127.0.0.1:`port` with its store in `store_dir` and
    /// waits until JetStream answers.
    pub async fn start(
        port: u16,
        store_dir: &Path,
        options: &ServerOptions,
    ) -> Result<Self, LocalServerError> {
        let mut server = Self::spawn(port, store_dir, options)?;
        server.wait_ready(Duration::from_secs(20)).await?;
        Ok(server)
    }

    /// Starts the process without waiting for it (a cluster's nodes must
    /// all be started before any can elect a JetStream leader). Its
    /// configuration is written to `store_dir/prolo-nats-server.conf`.
    pub fn spawn(
        port: u16,
        store_dir: &Path,
        options: &ServerOptions,
    ) -> Result<Self, LocalServerError> {
        let (bin, version) = checked_nats_server()?;
        let monitor_port = free_port();
        let config = store_dir.join("prolo-nats-server.conf");
        std::fs::write(&config, config_text(store_dir, monitor_port, options))
            .map_err(|e| LocalServerError::Failed(format!("writing {}: {e}", config.display())))?;
        let mut command = Command::new(&bin);
        command
            .arg("-c")
            .arg(&config)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = &options.log {
            command.arg("-l").arg(log);
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LocalServerError::NotInstalled,
            _ => LocalServerError::Failed(format!("spawn {}: {e}", bin.display())),
        })?;
        Ok(Self {
            child: Some(child),
            port,
            monitor_port,
            version,
            probe_auth: None,
        })
    }

    /// Probes readiness as `user:password` (for servers that require auth).
    pub fn with_probe_auth(mut self, user_password: &str) -> Self {
        self.probe_auth = Some(user_password.to_owned());
        self
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring endpoint (`/varz`, `/jsz`), on loopback.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The version the binary reported.
    pub fn version(&self) -> ServerVersion {
        self.version
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit before SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let give_up = Instant::now() + grace;
        while Instant::now() < give_up {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until a client can connect and JetStream answers.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LocalServerError> {
        let give_up = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < give_up {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(LocalServerError::ExitedAtStart {
                    status: status.to_string(),
                    port: self.port,
                    monitor_port: self.monitor_port,
                });
            }
            let options = match self.probe_auth.as_deref().and_then(|a| a.split_once(':')) {
                Some((user, password)) => async_nats::ConnectOptions::with_user_and_password(
                    user.to_owned(),
                    password.to_owned(),
                ),
                None => async_nats::ConnectOptions::new(),
            };
            match options.connect(self.url()).await {
                // Any JetStream API answer, even "no such stream", means it is up.
                Ok(client) => match async_nats::jetstream::new(client)
                    .get_stream("READY_PROBE")
                    .await
                {
                    Err(e)
                        if !matches!(
                            e.kind(),
                            async_nats::jetstream::context::GetStreamErrorKind::JetStream(_)
                        ) =>
                    {
                        last = e.to_string()
                    }
                    _ => return Ok(()),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LocalServerError::Failed(format!(
            "not ready after {timeout:?}: {last}"
        )))
    }
}

impl Drop for LocalNatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The configuration file of a server we start: JetStream with its store
/// and fsync policy, monitoring on loopback, and the file to include.
fn config_text(store_dir: &Path, monitor_port: u16, options: &ServerOptions) -> String {
    let quoted = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let sync = match options.fsync {
        FsyncPolicy::Always => {
            "    # fsync before every acknowledgement (the server default is every 2 minutes)\n    sync_interval: always\n"
        }
        FsyncPolicy::ServerDefault => {
            "    # the server default: fsync every 2 minutes (benchmarks and durability tests only)\n"
        }
    };
    let limit = options
        .max_file_store
        .map(|bytes| format!("    max_file_store: {bytes}\n"))
        .unwrap_or_default();
    let domain = options
        .jetstream_domain
        .as_deref()
        .map(|d| {
            format!(
                "    domain: {}\n",
                serde_json::to_string(d).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut text = format!(
        "# Written by prolo-audit for a nats-server it starts; rewritten at every start.\n\
         http: \"127.0.0.1:{monitor_port}\"\n\
         jetstream {{\n    store_dir: {}\n{sync}{limit}{domain}}}\n",
        quoted(store_dir)
    );
    if let Some(include) = &options.include {
        // nats-server resolves an include relative to the including file.
        text.push_str(&format!(
            "include {}\n",
            quoted(&relative_to(store_dir, include))
        ));
    }
    text
}

/// `target` as a path relative to the directory `from` (both absolute, or
/// both relative to the same directory): how a nats-server configuration
/// names a file it includes, since the server resolves an include relative
/// to the including file even when it is absolute.
pub fn relative_to(from: &Path, target: &Path) -> PathBuf {
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    };
    let (from, target) = (absolute(from), absolute(target));
    let mut path: PathBuf = from
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .map(|_| Component::ParentDir)
        .collect();
    path.extend(
        target
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_))),
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_names_a_version_at_least_the_minimum() {
        let pinned = ServerVersion::parse(pinned_version()).expect("a version");
        assert!(pinned >= MIN_VERSION, "{pinned} < {MIN_VERSION}");
    }

    #[test]
    fn an_include_is_written_relative_to_the_config() {
        let rel = relative_to(Path::new("/tmp/a/b"), Path::new("/etc/prolo/auth.conf"));
        assert_eq!(rel, PathBuf::from("../../../etc/prolo/auth.conf"));
    }

    #[test]
    fn the_config_asks_for_fsync_before_ack_unless_told_otherwise() {
        let always = config_text(Path::new("/s"), 8222, &ServerOptions::default());
        assert!(always.contains("sync_interval: always"), "{always}");
        assert!(always.contains("http: \"127.0.0.1:8222\""), "{always}");
        let lazy = config_text(
            Path::new("/s"),
            8222,
            &ServerOptions {
                fsync: FsyncPolicy::ServerDefault,
                ..Default::default()
            },
        );
        assert!(!lazy.contains("sync_interval: always"), "{lazy}");
    }
}
