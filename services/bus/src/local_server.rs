//! A nats-server of our own: started by `prolo-audit up` when no broker is
//! reachable, and by the tests (each its own, on a free port).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// The binary is missing.
    #[error(
        "`nats-server` was not found. Install it first: `apt-get install nats-server` on Debian/Ubuntu \
         (it installs /usr/sbin/nats-server), or set NATS_SERVER_BIN to its path"
    )]
    NotInstalled,
    /// Starting or reaching it failed.
    #[error("nats-server: {0}")]
    Failed(String),
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on PATH,
/// else Debian's `/usr/sbin/nats-server` (not on every user's PATH).
pub fn find_nats_server() -> Result<PathBuf, LocalServerError> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(bin.into());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(LocalServerError::NotInstalled)
}

/// Whether a NATS server answers at `url` (within two seconds).
pub async fn is_reachable(url: &str) -> bool {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url);
    matches!(
        tokio::time::timeout(Duration::from_secs(3), connect).await,
        Ok(Ok(_))
    )
}

/// A nats-server process with JetStream, listening on 127.0.0.1.
pub struct LocalNatsServer {
    child: Option<Child>,
    port: u16,
    probe_auth: Option<String>,
}

impl LocalNatsServer {
    /// Starts `nats-server -js` on 127.0.0.1:`port` with its store in
    /// `store_dir`, plus `extra_args`, and waits until JetStream answers.
    /// Its output goes to `log`, or nowhere.
    pub async fn start(
        port: u16,
        store_dir: &Path,
        extra_args: &[String],
        log: Option<&Path>,
    ) -> Result<Self, LocalServerError> {
        let mut server = Self::spawn(port, store_dir, extra_args, log)?;
        server.wait_ready(Duration::from_secs(20)).await?;
        Ok(server)
    }

    /// Starts the process without waiting for it (a cluster's nodes must
    /// all be started before any can elect a JetStream leader).
    pub fn spawn(
        port: u16,
        store_dir: &Path,
        extra_args: &[String],
        log: Option<&Path>,
    ) -> Result<Self, LocalServerError> {
        let bin = find_nats_server()?;
        let mut command = Command::new(&bin);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store_dir)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = log {
            command.arg("-l").arg(log);
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LocalServerError::NotInstalled,
            _ => LocalServerError::Failed(format!("spawn {}: {e}", bin.display())),
        })?;
        Ok(Self {
            child: Some(child),
            port,
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
                return Err(LocalServerError::Failed(format!(
                    "exited at start with {status} (port {} taken?)",
                    self.port
                )));
            }
            let options = match self.probe_auth.as_deref().and_then(|a| a.split_once(':')) {
                Some((user, password)) => async_nats::ConnectOptions::with_user_and_password(
                    user.to_owned(),
                    password.to_owned(),
                ),
                None => async_nats::ConnectOptions::new(),
            };
            match options.connect(self.url()).await {
                // Any JetStream API answer, even "no such stream", means it
                // is up. (`query_account` cannot be used: nats-server 2.9's
                // answer does not parse in this client version.)
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
