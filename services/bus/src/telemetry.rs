//! Tracing set up once for every binary: level from `RUST_LOG` (default
//! `info`), plain text to stderr so that stdout stays free for command output.

use std::{fs::File, path::Path};

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// The NATS client logs every connection at info: warnings only, unless asked.
fn filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},async_nats=warn")))
}

/// Installs the global subscriber with `default_level` unless `RUST_LOG`
/// says otherwise (services: `info`; the CLI: `warn`, so that its output is
/// what was asked for). Safe to call more than once (later calls do nothing),
/// so tests and `up` can run several services in one process.
pub fn init_tracing(default_level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default_level))
        .with_writer(std::io::stderr)
        .try_init();
}

/// For a command that talks to a person while services run beside it
/// (`prolo-audit up`): the services' log at `info` is appended to `log`
/// (created readable by its owner only), and stderr shows warnings only,
/// so that the command's own lines on stdout do not scroll away. `RUST_LOG`,
/// when set, chooses the level of both.
pub fn init_tracing_to_file(log: &Path) -> std::io::Result<()> {
    let file = open_private_append(log)?;
    let to_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .with_filter(filter("info"));
    let to_stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter("warn"));
    let _ = tracing_subscriber::registry()
        .with(to_file)
        .with(to_stderr)
        .try_init();
    Ok(())
}

/// Opens `path` for appending, mode 0600 whatever the umask (an older file
/// keeps its mode on open, so it is set again).
fn open_private_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}
