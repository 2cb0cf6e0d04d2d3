//! `prolo-audit up` and the broker's durability: the server `up` starts
//! fsyncs before it acknowledges, and a lazy server it finds is reported
//! loudly. The real binary, against real nats-servers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{process::Stdio, time::Duration};

use crate::common::{prolo_audit, succeeded};
use prolo_bus::Fsync;
use prolo_tests::{FsyncPolicy, NatsServer, free_port, fsync_of};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

/// A running `prolo-audit up`, sent SIGTERM when dropped (a test that
/// fails midway must not leave the nats-server `up` started behind, as a
/// SIGKILL would).
struct Up(Option<Child>);

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take()
            && let Some(pid) = child.id()
        {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < give_up {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.start_kill();
        }
    }
}

impl Up {
    fn stdout(&mut self) -> ChildStdout {
        self.0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout taken once")
    }
}

/// `prolo-audit up` with NATS_URL `nats_url`, its data in a temporary
/// directory, the API on a free port.
fn up(nats_url: &str, monitor_url: Option<&str>, data: &std::path::Path) -> Up {
    up_with(nats_url, monitor_url, data, &[])
}

/// [`up`] with more arguments (e.g. `--demo`).
fn up_with(
    nats_url: &str,
    monitor_url: Option<&str>,
    data: &std::path::Path,
    extra: &[&str],
) -> Up {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prolo-audit"));
    // From a directory with nothing of the repository in it, and no tokens
    // file: `up` must need neither.
    command
        .current_dir(data)
        .arg("up")
        .arg("--data-dir")
        .arg(data.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("NATS_URL", nats_url)
        .env_remove("NATS_MONITOR_URL")
        .env_remove("PROLO_API_TOKENS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(monitor_url) = monitor_url {
        command.env("NATS_MONITOR_URL", monitor_url);
    }
    Up(Some(command.spawn().unwrap()))
}

/// Reads lines until one starts with one of `prefixes`; returns it and the
/// lines before it.
async fn line_starting_with(
    lines: &mut Lines<BufReader<ChildStdout>>,
    prefixes: &[&str],
) -> (String, Vec<String>) {
    line_starting_with_within(lines, prefixes, Duration::from_secs(60)).await
}

/// [`line_starting_with`], waiting at most `wait`.
async fn line_starting_with_within(
    lines: &mut Lines<BufReader<ChildStdout>>,
    prefixes: &[&str],
    wait: Duration,
) -> (String, Vec<String>) {
    let mut before = Vec::new();
    let found = tokio::time::timeout(wait, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if prefixes.iter().any(|p| line.starts_with(p)) {
                return Some(line);
            }
            before.push(line);
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => (line, before),
        _ => panic!("no line starting with {prefixes:?}; printed: {before:#?}"),
    }
}

/// The audit API's address, from the line `up` prints when it listens.
async fn api_url_of(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    let (line, _) = line_starting_with(lines, &["audit API:"]).await;
    api_url(&[line])
}

/// The audit API's address, from the last of `printed` (the line `up`
/// prints when it listens).
fn api_url(printed: &[String]) -> String {
    let line = printed.last().expect("a line");
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line}"))
        .to_owned()
}

/// SIGTERM, as ctrl-c would, and the exit status.
async fn stop(mut up: Up) -> std::process::ExitStatus {
    let mut child = up.0.take().expect("running");
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("up stops within 30 s")
        .unwrap()
}

#[tokio::test]
async fn up_warns_loudly_about_a_lazy_server_it_did_not_start() {
    let lazy = NatsServer::start_with_fsync(FsyncPolicy::ServerDefault)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut child = up(&lazy.url(), lazy.monitor_url().as_deref(), data.path());
    let mut lines = BufReader::new(child.stdout()).lines();
    let (line, before) = line_starting_with(&mut lines, &["WARNING:", "durability:"]).await;
    assert!(
        before
            .iter()
            .any(|l| l.contains("using the NATS server at")),
        "{before:#?}"
    );
    assert!(line.starts_with("WARNING:"), "{line}");
    assert!(
        line.contains("acknowledges events before they are on disk")
            && line.contains("every 120 s")
            && line.contains("sync_interval: always"),
        "{line}"
    );
    assert!(stop(child).await.success());
}

#[tokio::test]
async fn up_warns_when_it_cannot_check_the_server() {
    let nats = NatsServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    // No monitoring endpoint answers there.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut child = up(&nats.url(), Some(&nowhere), data.path());
    let mut lines = BufReader::new(child.stdout()).lines();
    let (line, _) = line_starting_with(&mut lines, &["WARNING:", "durability:"]).await;
    assert!(line.starts_with("WARNING:"), "{line}");
    assert!(line.contains("could not be checked"), "{line}");
    assert!(stop(child).await.success());
}

#[tokio::test]
async fn the_server_up_starts_fsyncs_before_ack_and_answers_only_to_its_credentials() {
    let data = tempfile::tempdir().unwrap();
    // Nothing answers here, so up starts its own server on this port.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let mut child = up(&url, None, data.path());
    let mut lines = BufReader::new(child.stdout()).lines();
    let (started, _) = line_starting_with(&mut lines, &["started a local nats-server"]).await;
    let monitor = started
        .split("monitoring ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no monitoring URL in {started}"));
    assert_eq!(fsync_of(monitor).await, Fsync::Always, "{started}");
    let (generated, _) = line_starting_with(&mut lines, &["generated API tokens in"]).await;
    assert!(generated.contains("api-token-compliance"), "{generated}");
    let (line, _) = line_starting_with(&mut lines, &["WARNING:", "durability:"]).await;
    assert!(
        line.starts_with("durability:") && line.contains("fsyncs before it acknowledges"),
        "{line}"
    );

    // Nothing answers without the generated credentials…
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&url);
    match tokio::time::timeout(Duration::from_secs(5), anonymous).await {
        Ok(Err(e)) => assert!(
            e.to_string().to_lowercase().contains("authorization"),
            "{e}"
        ),
        Ok(Ok(_)) => panic!("an anonymous client connected"),
        Err(_) => panic!("no answer to an anonymous connect"),
    }
    // …which are the owner's alone…
    use std::os::unix::fs::PermissionsExt;
    for file in [
        "nats-passwords.json",
        "nats-auth.conf",
        "nats-url",
        "nats-reader-url",
        "nats-admin-url",
        "api-tokens.json",
        "api-token-compliance",
    ] {
        let mode = std::fs::metadata(data.path().join("data").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // …and what the services in `up` use.
    let with_credentials = std::fs::read_to_string(data.path().join("data/nats-url")).unwrap();
    let client = prolo_bus::connect(&with_credentials, "up-test")
        .await
        .unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while client
        .request("$SRV.PING.consent", "".into())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the consent service in up never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stop(child).await.success());
}

/// Debian's own nats-server (2.9.10 on bookworm): what a machine may
/// already run at NATS_URL. `.ci/run` installs it when it is missing.
const DEBIAN_NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A process of ours, killed (by its PID) when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn up_starts_its_own_server_when_the_one_it_finds_is_too_old() {
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let _old = Killed(
        std::process::Command::new(DEBIAN_NATS_SERVER)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{DEBIAN_NATS_SERVER}: {e} (Debian's nats-server; .ci/run installs it)")
            }),
    );
    let url = format!("nats://127.0.0.1:{port}");
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while !prolo_bus::local_server::is_reachable(&url).await {
        assert!(
            std::time::Instant::now() < give_up,
            "{DEBIAN_NATS_SERVER} did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = prolo_bus::local_server::server_version(&url).await.unwrap();
    assert!(found < prolo_bus::local_server::MIN_VERSION, "{found}");

    let data = tempfile::tempdir().unwrap();
    let mut child = up(&url, None, data.path());
    let mut lines = BufReader::new(child.stdout()).lines();
    let (started, before) = line_starting_with(
        &mut lines,
        &["started a local nats-server", "using the NATS server"],
    )
    .await;
    assert!(
        started.starts_with("started a local nats-server"),
        "{started}"
    );
    assert!(
        !started.contains(&format!(":{port} ")),
        "it must not take the old server's port: {started}"
    );
    let said = before.join("\n");
    assert!(
        said.contains(&format!(
            "the NATS server at {url} is nats-server {found}, older than 2.12.0"
        )) && said.contains("starting the pinned nats-server on a free port instead"),
        "{said}"
    );
    let (line, _) = line_starting_with(&mut lines, &["WARNING:", "durability:"]).await;
    assert!(line.contains("fsyncs before it acknowledges"), "{line}");
    // Its services answer on its own server…
    let own = std::fs::read_to_string(data.path().join("data/nats-url")).unwrap();
    let client = prolo_bus::connect(own.trim(), "up-test").await.unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while client
        .request("$SRV.PING.consent", "".into())
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < give_up, "no consent service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …and nothing of prolo-audit went to the old one.
    use futures::StreamExt;
    let old = async_nats::connect(&url).await.unwrap();
    let streams: Vec<String> = async_nats::jetstream::new(old)
        .stream_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(streams.is_empty(), "{streams:?}");
    assert!(stop(child).await.success());
}

/// A query through the CLI against the API at `api`, as JSON.
async fn ask(api: &str, token: &str, args: &[&str]) -> serde_json::Value {
    let env = [("PROLO_API_URL", api), ("PROLO_API_TOKEN", token)];
    let said = succeeded(&prolo_audit(args, &env).await);
    serde_json::from_str(&said).unwrap()
}

/// The demo clinic, as a safety reviewer and a compliance officer first
/// see it: `signals` shows the planted lot's infections and no other
/// signal, and fewer than 5% of its events are late documentation.
#[tokio::test]
async fn the_demo_clinic_signals_its_planted_lot_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port());
    let mut child = up_with(&url, None, data.path(), &["--demo"]);
    let mut lines = BufReader::new(child.stdout()).lines();
    let (listening, mut printed) = line_starting_with(&mut lines, &["audit API:"]).await;
    printed.push(listening);
    let api = api_url(&printed);
    let (seeded, before) =
        line_starting_with_within(&mut lines, &["seeded "], Duration::from_secs(900)).await;
    printed.extend(before);
    printed.push(seeded.clone());
    let events: u64 = seeded.split_whitespace().nth(1).unwrap().parse().unwrap();
    let token = std::fs::read_to_string(data.path().join("data/api-token-compliance")).unwrap();
    let token = token.trim();
    // The fold catches up with the stream.
    let give_up = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let status = ask(&api, token, &["status"]).await;
        if status["lag"] == 0 && status["applied_seq"].as_u64() >= Some(events) {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "{status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = ask(&api, token, &["signals", "--clinic", "riverside"]).await;
    let signals: Vec<(&str, &str, &str, bool)> = report["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["dimension"].as_str().unwrap(),
                s["group"].as_str().unwrap(),
                s["kind"].as_str().unwrap(),
                s["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(signals, [("lot", "DX50-2026-114", "infection", true)]);
    let total = |rule: &'static str| {
        let (api, token) = (api.clone(), token.to_owned());
        async move {
            ask(
                &api,
                &token,
                &["findings", "--clinic", "riverside", "--rule", rule],
            )
            .await["total"]
                .as_u64()
                .unwrap()
        }
    };
    let late = total("late_documentation").await;
    println!("demo: {events} events, {late} late_documentation, signals {signals:?}");
    assert!(late * 20 < events, "{late} of {events} events late");
    assert_eq!(total("backfill_after_go_live").await, 0);
    assert!(stop(child).await.success());
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line);
    }
    assert_prints_the_documented_lines(&printed);
}

/// `up --demo`'s standard output as the README documents it: the fenced
/// block after the `<!-- up --demo stdout -->` marker, one line per line
/// printed, `<…>` standing for text that differs per run.
fn documented_up_demo_lines() -> Vec<String> {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(readme).unwrap();
    let (_, after) = readme
        .split_once("<!-- up --demo stdout -->")
        .expect("the README marks up's documented output");
    let block = after.trim_start().strip_prefix("```text\n").unwrap();
    let (block, _) = block.split_once("\n```").unwrap();
    block.lines().map(str::to_owned).collect()
}

/// Whether `line` reads as `template`: its literal pieces in order, each
/// `<…>` placeholder standing for some non-empty text.
fn reads_as(template: &str, line: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        literals.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    literals.push(rest);
    let (first, last) = (literals[0], literals[literals.len() - 1]);
    if literals.len() == 1 {
        return line == first;
    }
    let Some(mut at) = line.strip_prefix(first) else {
        return false;
    };
    for literal in &literals[1..literals.len() - 1] {
        // Each placeholder holds at least one character before the next literal.
        match at.get(1..).and_then(|tail| tail.find(literal)) {
            Some(found) => at = &at[1 + found + literal.len()..],
            None => return false,
        }
    }
    at.len() > last.len() && at.ends_with(last)
}

/// Asserts `printed` is the README's documented output, line for line.
fn assert_prints_the_documented_lines(printed: &[String]) {
    let documented = documented_up_demo_lines();
    let mismatch = documented.len() != printed.len()
        || documented
            .iter()
            .zip(printed)
            .any(|(template, line)| !reads_as(template, line));
    assert!(
        !mismatch,
        "up --demo printed\n{}\n\nthe README documents\n{}",
        printed.join("\n"),
        documented.join("\n")
    );
}

#[test]
fn a_line_reads_as_its_template_only_when_every_literal_is_there() {
    assert!(reads_as(
        "audit API: http://<a> (x)",
        "audit API: http://1.2.3.4:5 (x)"
    ));
    assert!(!reads_as(
        "audit API: http://<a> (x)",
        "audit API: http:// (x)"
    ));
    assert!(!reads_as(
        "audit API: http://<a> (x)",
        "2026 INFO audit API: http://h (x)"
    ));
    assert!(reads_as(
        "seeded <n> events. Try:",
        "seeded 4416 events. Try:"
    ));
    assert!(!reads_as("seeded <n> events. Try:", "seeded 4416 events."));
    assert!(reads_as("stop: ctrl-c", "stop: ctrl-c"));
    assert!(!reads_as("stop: ctrl-c", "stop: ctrl-c "));
}

#[tokio::test]
async fn up_edge_records_for_its_clinic_and_the_hub_sources_it() {
    let dir = tempfile::tempdir().unwrap();
    let leaf_port = free_port();
    let hub = prolo_tests::edge::start_hub(dir.path(), leaf_port, &["north"])
        .await
        .unwrap();
    let hub_url = format!(
        "nats://{}@127.0.0.1:{}",
        prolo_tests::edge::HUB_ADMIN,
        hub.port()
    );
    let hub_js = async_nats::jetstream::new(prolo_bus::connect(&hub_url, "test").await.unwrap());
    prolo_bus::ensure_stream(&hub_js, &prolo_bus::StreamSettings::default())
        .await
        .unwrap();
    let attach = ["edge", "attach", "--clinic", "north"];
    let attached = succeeded(&prolo_audit(&attach, &[("NATS_URL", &hub_url)]).await);
    assert!(attached.contains("now sources clinic north"), "{attached}");
    let again = succeeded(&prolo_audit(&attach, &[("NATS_URL", &hub_url)]).await);
    assert!(again.contains("already sources"), "{again}");

    // The clinic's machine: `up --edge`, its own server on a free port.
    let edge_url = format!("nats://127.0.0.1:{}", free_port());
    let hub_leaf = format!("nats-leaf://edge-north:pw-north@127.0.0.1:{leaf_port}");
    let mut child = up_with(
        &edge_url,
        None,
        dir.path(),
        &["--edge", "--hub", &hub_leaf, "--clinic", "north"],
    );
    let mut lines = BufReader::new(child.stdout()).lines();
    let (edge_line, _) = line_starting_with(&mut lines, &["clinic edge:"]).await;
    assert!(edge_line.contains("domain clinic-north"), "{edge_line}");
    let edge_api = api_url_of(&mut lines).await;
    let with_credentials = std::fs::read_to_string(dir.path().join("data/nats-url")).unwrap();
    let client = prolo_bus::connect(&with_credentials, "up-test")
        .await
        .unwrap();
    // The consent's practitioner, proven by the edge's development provider.
    let data = dir.path().join("data");
    let mint = ["token", "mint", "--person", "dr-hale", "--data-dir"];
    let mint = mint
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([data.as_os_str()]);
    let hale = succeeded(&prolo_audit(&mint.collect::<Vec<_>>(), &[]).await);
    let consent = prolo_schemas::EventType::ConsentGiven;
    let mut request = prolo_tests::example_request("consent.given");
    request["clinic_id"] = "north".into();
    // Recorded through the CLI, with the minted token.
    let file = dir.path().join("consent.json");
    std::fs::write(&file, serde_json::to_vec(&request).unwrap()).unwrap();
    let record = ["record", "consent.given", "--file", file.to_str().unwrap()];
    let env = [
        ("NATS_URL", with_credentials.trim()),
        ("PROLO_TOKEN", hale.trim()),
    ];
    let recorded = succeeded(&prolo_audit(&record, &env).await);
    assert!(recorded.starts_with("recorded "), "{recorded}");
    // Without the token: refused (401).
    let unproven = prolo_tests::record_with_token(&client, consent, &request, None).await;
    assert_eq!(unproven.unwrap_err().error.status, 401);
    // Another clinic's event has no stream here: refused, not stored.
    request["clinic_id"] = "south".into();
    let elsewhere =
        prolo_tests::record_with_token(&client, consent, &request, Some(hale.trim())).await;
    assert!(elsewhere.is_err(), "{elsewhere:?}");

    // The consent and the refused command (401, on the trail as access.refused).
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while prolo_tests::stream_messages(&hub_js).await < 2 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the hub never sourced the edge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lag = succeeded(&prolo_audit(&["edge", "lag"], &[("NATS_URL", &hub_url)]).await);
    assert!(
        lag.contains("clinic north") && lag.contains("behind by        0"),
        "{lag}"
    );
    assert_eq!(prolo_tests::stream_messages(&hub_js).await, 2);

    // The hub's own audit API (an `up` at the hub) shows the edge in its status.
    let hub_dir = tempfile::tempdir().unwrap();
    let mut at_hub = up(&hub_url, hub.monitor_url().as_deref(), hub_dir.path());
    let mut hub_lines = BufReader::new(at_hub.stdout()).lines();
    let hub_api = api_url_of(&mut hub_lines).await;
    let hub_token =
        std::fs::read_to_string(hub_dir.path().join("data/api-token-compliance")).unwrap();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = ask(&hub_api, hub_token.trim(), &["status"]).await;
        if status["edges"][0]["chain"]["through"] == 2 {
            break status;
        }
        assert!(tokio::time::Instant::now() < give_up, "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let edge = &status["edges"][0];
    assert_eq!(edge["clinic"], "north", "{status}");
    assert_eq!(edge["sourcing_lag"], 0, "{status}");
    assert_eq!(edge["chain"]["gaps"], 0, "{status}");
    assert!(stop(at_hub).await.success());

    // The line to the hub goes (the hub stops): the clinic still records,
    // and its own audit API answers for it.
    drop(hub);
    request["clinic_id"] = "north".into();
    prolo_tests::record_with_token(&client, consent, &request, Some(hale.trim()))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("data/api-token-compliance")).unwrap();
    let patient = request["patient_id"].as_str().unwrap().to_owned();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let history = ask(
            &edge_api,
            token.trim(),
            &["history", "--clinic", "north", "--patient", &patient],
        )
        .await;
        if history["total"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "{history}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stop(child).await.success());
}

#[tokio::test]
async fn up_edge_refuses_a_clinic_or_domain_that_is_not_one_subject_token() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port());
    for (args, named) in [
        (vec!["--clinic", "north.>"], "--clinic"),
        (vec!["--clinic", ""], "--clinic"),
        (
            vec!["--clinic", "north", "--domain", "clinic north"],
            "--domain",
        ),
        (vec!["--clinic", "north", "--domain", "hub.>"], "--domain"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_prolo-audit"))
            .current_dir(data.path())
            .args(["up", "--edge", "--hub", "nats-leaf://e:p@127.0.0.1:1"])
            .args(&args)
            .env("NATS_URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert!(!data.path().join("data").exists(), "nothing written");
}

/// Publishes the example injection, altered, straight onto its stream
/// subject as `url`'s user; whether JetStream acknowledged it.
async fn publish_forged(url: &str) -> bool {
    let client = prolo_bus::connect(url, "forger").await.unwrap();
    let mut forged = prolo_tests::example_envelope("injection.given");
    forged.event_id = uuid::Uuid::now_v7();
    let js = async_nats::jetstream::new(client);
    let attempt = tokio::time::timeout(Duration::from_secs(3), async {
        js.publish(
            forged.subject().unwrap().to_string(),
            forged.to_json().into(),
        )
        .await?
        .await
    })
    .await;
    matches!(attempt, Ok(Ok(_)))
}

/// Only the recording services write the trail: neither the URL `up`
/// hands to clinic systems and the CLI nor its reader's may publish on
/// the stream (the server refuses), and what the operator's may publish
/// anyway, unsealed, is quarantined and raises `unproven_publisher`.
#[tokio::test]
async fn what_up_hands_out_cannot_write_the_trail_and_the_operators_forgery_is_quarantined() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port());
    let mut child = up(&url, None, data.path());
    let mut lines = BufReader::new(child.stdout()).lines();
    let api = api_url_of(&mut lines).await;
    let token = std::fs::read_to_string(data.path().join("data/api-token-compliance")).unwrap();
    let read = |file: &str| {
        std::fs::read_to_string(data.path().join("data").join(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    for handed_out in ["nats-url", "nats-reader-url"] {
        assert!(
            !publish_forged(&read(handed_out)).await,
            "{handed_out} published on the stream"
        );
    }
    let status = ask(&api, token.trim(), &["status"]).await;
    assert_eq!(status["stream_last_seq"], 0, "{status}");
    assert_eq!(status["seals"]["checked"], true, "{status}");

    assert!(publish_forged(&read("nats-admin-url")).await);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let findings = loop {
        let findings = ask(
            &api,
            token.trim(),
            &[
                "findings",
                "--clinic",
                "riverside",
                "--rule",
                "unproven_publisher",
            ],
        )
        .await;
        if findings["total"] == 1 {
            break findings;
        }
        assert!(tokio::time::Instant::now() < give_up, "{findings}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let detail = findings["items"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not sealed by a recording service"),
        "{detail}"
    );
    let status = ask(&api, token.trim(), &["status"]).await;
    assert_eq!(status["quarantined"], 1, "{status}");
    assert!(stop(child).await.success());
}
