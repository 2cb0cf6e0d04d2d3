//! Backup and restore of the trail itself: the stream is the only copy of
//! the truth (read models rebuild from it; nothing rebuilds it).
//!
//! A backup is JetStream's own stream snapshot (what `nats stream backup`
//! takes: every message with its sequence, timestamp and headers, in the
//! server's compressed format, written as the server sends it) plus a
//! manifest: the stream's configuration and state, its first and last
//! sequence, the message count, the snapshot's SHA-256, and the hash chain
//! head at the last sequence. A restore refuses a server that already has
//! the stream, sends the snapshot back through JetStream's restore API, and
//! then recomputes the chain over the restored stream and compares it with
//! the manifest.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use async_nats::jetstream;
use futures::StreamExt;
use prolo_bus::STREAM_NAME;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{ProjectorError, integrity::chain, project::read_stream};

/// The snapshot's file in a backup directory.
pub const SNAPSHOT_FILE: &str = "stream.snapshot";
/// The manifest's file in a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

const CHUNK: usize = 128 * 1024;
const WAIT: Duration = Duration::from_secs(30);

/// What a backup holds, to restore it and to check the restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The stream.
    pub stream: String,
    /// Its configuration, as the server gave it.
    pub config: Value,
    /// Its state when the snapshot was taken.
    pub state: Value,
    /// First sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Messages.
    pub messages: u64,
    /// The hash chain's head at `last_seq`, hex.
    pub chain_head: String,
    /// The snapshot's bytes.
    pub snapshot_bytes: u64,
    /// Its SHA-256, hex.
    pub snapshot_sha256: String,
    /// When it was taken (this machine's clock).
    pub taken_at: chrono::DateTime<chrono::Utc>,
}

fn failed(what: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::JetStream(what.to_string())
}

fn io(path: &Path, e: std::io::Error) -> ProjectorError {
    ProjectorError::JetStream(format!("{}: {e}", path.display()))
}

/// The chain head over the stream's sequences `1..=last`.
pub async fn chain_head(js: &jetstream::Context, last: u64) -> Result<String, ProjectorError> {
    let mut head = chain::GENESIS;
    read_stream(js, 1, last, 1000, |batch| {
        for m in &batch {
            head = chain::link(&head, m.seq, &m.payload);
        }
        std::future::ready(Ok(()))
    })
    .await?;
    Ok(chain::hex(&head))
}

/// A JetStream API call: the JSON answer, or its error.
async fn api(
    client: &async_nats::Client,
    subject: String,
    body: Value,
) -> Result<Value, ProjectorError> {
    let reply = tokio::time::timeout(
        WAIT,
        client.request(subject.clone(), body.to_string().into()),
    )
    .await
    .map_err(|_| failed(format!("{subject}: no answer")))?
    .map_err(|e| failed(format!("{subject}: {e}")))?;
    let answer: Value = serde_json::from_slice(&reply.payload).map_err(failed)?;
    if let Some(error) = answer.get("error") {
        return Err(failed(format!("{subject}: {error}")));
    }
    Ok(answer)
}

/// Takes a backup of the stream into `dir` (which must not exist or be
/// empty); `progress` is told the bytes received so far.
pub async fn backup(
    client: &async_nats::Client,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, ProjectorError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .next()
            .is_some()
    {
        return Err(failed(format!(
            "{} is not empty: a backup goes into a new directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let inbox = client.new_inbox();
    let mut chunks = client.subscribe(inbox.clone()).await.map_err(failed)?;
    let answer = api(
        client,
        format!("$JS.API.STREAM.SNAPSHOT.{STREAM_NAME}"),
        json!({"deliver_subject": inbox, "no_consumers": true, "chunk_size": CHUNK, "jsck": true}),
    )
    .await?;
    let path = dir.join(SNAPSHOT_FILE);
    let mut file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
    let (mut bytes, mut digest) = (0u64, Sha256::new());
    loop {
        let chunk = tokio::time::timeout(WAIT, chunks.next())
            .await
            .map_err(|_| failed("the snapshot stopped arriving"))?
            .ok_or_else(|| failed("the snapshot's subscription closed"))?;
        if chunk.payload.is_empty() {
            // The end; a status header on it says the snapshot failed.
            if let Some(status) = chunk.status.filter(|s| s.as_u16() >= 400) {
                return Err(failed(format!(
                    "the server ended the snapshot with {status}: {:?}",
                    chunk.description
                )));
            }
            break;
        }
        file.write_all(&chunk.payload).map_err(|e| io(&path, e))?;
        digest.update(&chunk.payload);
        bytes += chunk.payload.len() as u64;
        progress(bytes);
        // Flow control: the server waits for this before sending more.
        if let Some(reply) = chunk.reply {
            client.publish(reply, "".into()).await.map_err(failed)?;
        }
    }
    file.sync_all().map_err(|e| io(&path, e))?;
    let state = answer["state"].clone();
    let last_seq = state["last_seq"].as_u64().unwrap_or(0);
    let js = jetstream::new(client.clone());
    let manifest = Manifest {
        stream: STREAM_NAME.to_owned(),
        config: answer["config"].clone(),
        first_seq: state["first_seq"].as_u64().unwrap_or(0),
        last_seq,
        messages: state["messages"].as_u64().unwrap_or(0),
        state,
        chain_head: chain_head(&js, last_seq).await?,
        snapshot_bytes: bytes,
        snapshot_sha256: chain::hex(&digest.finalize().into()),
        taken_at: chrono::Utc::now(),
    };
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).map_err(failed)?)
        .map_err(|e| io(&path, e))?;
    Ok(manifest)
}

/// What a restore found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The restored stream's last sequence.
    pub last_seq: u64,
    /// The chain head recomputed over the restored stream.
    pub chain_head: String,
}

impl Restored {
    /// Whether the restored stream is the one backed up.
    pub fn verified(&self) -> bool {
        self.last_seq == self.manifest.last_seq && self.chain_head == self.manifest.chain_head
    }
}

/// Restores the backup in `dir` into the server `client` talks to, which
/// must not have the stream; then recomputes its chain.
pub async fn restore(
    client: &async_nats::Client,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Restored, ProjectorError> {
    let path = dir.join(MANIFEST_FILE);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&path).map_err(|e| io(&path, e))?)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let snapshot: PathBuf = dir.join(SNAPSHOT_FILE);
    let mut file = std::fs::File::open(&snapshot).map_err(|e| io(&snapshot, e))?;
    let mut digest = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    loop {
        let n = file.read(&mut buffer).map_err(|e| io(&snapshot, e))?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    if chain::hex(&digest.finalize().into()) != manifest.snapshot_sha256 {
        return Err(failed(format!(
            "{} does not match its manifest's SHA-256",
            snapshot.display()
        )));
    }
    let js = jetstream::new(client.clone());
    if js.get_stream(&manifest.stream).await.is_ok() {
        return Err(failed(format!(
            "the server already has a stream {}: a restore never overwrites one",
            manifest.stream
        )));
    }
    let answer = api(
        client,
        format!("$JS.API.STREAM.RESTORE.{}", manifest.stream),
        json!({"config": manifest.config, "state": manifest.state}),
    )
    .await?;
    let deliver = answer["deliver_subject"]
        .as_str()
        .ok_or_else(|| failed("the restore gave no subject to send to"))?
        .to_owned();
    let mut file = std::fs::File::open(&snapshot).map_err(|e| io(&snapshot, e))?;
    let mut sent = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| io(&snapshot, e))?;
        if n == 0 {
            break;
        }
        tokio::time::timeout(
            WAIT,
            client.request(deliver.clone(), buffer[..n].to_vec().into()),
        )
        .await
        .map_err(|_| failed("the server stopped taking the restore"))?
        .map_err(failed)?;
        sent += n as u64;
        progress(sent);
    }
    // An empty message ends it; the answer is the stream's, or an error.
    let end = tokio::time::timeout(Duration::from_secs(120), client.request(deliver, "".into()))
        .await
        .map_err(|_| failed("the restore did not finish"))?
        .map_err(failed)?;
    let finished: Value = serde_json::from_slice(&end.payload).map_err(failed)?;
    if let Some(error) = finished.get("error") {
        return Err(failed(format!("the restore failed: {error}")));
    }
    let last_seq = finished["state"]["last_seq"].as_u64().unwrap_or(0);
    Ok(Restored {
        chain_head: chain_head(&js, last_seq).await?,
        last_seq,
        manifest,
    })
}
