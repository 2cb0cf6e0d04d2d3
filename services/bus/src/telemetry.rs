//! Tracing set up once for every binary: level from `RUST_LOG` (default
//! `info`), plain text to stderr so that stdout stays free for command output.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `default_level` unless `RUST_LOG`
/// says otherwise (services: `info`; the CLI: `warn`, so that its output is
/// what was asked for). Safe to call more than once (later calls do nothing),
/// so tests and `up` can run several services in one process.
pub fn init_tracing(default_level: &str) {
    // The NATS client logs every connection at info: warnings only, unless asked.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},async_nats=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
