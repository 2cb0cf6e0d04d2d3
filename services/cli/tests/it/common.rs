//! Running the real `prolo-audit` binary, shared by the modules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{ffi::OsStr, process::Output};

/// Runs `prolo-audit args` with `env` set, without blocking the runtime
/// the services under test run on; its output, whatever its exit.
pub async fn prolo_audit<A: AsRef<OsStr>>(args: &[A], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_prolo-audit"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// What a run that must succeed printed on stdout; panics with its stderr.
pub fn succeeded(out: &Output) -> String {
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}
