//! `rebuild`: fold the stream again from sequence 1 into a fresh database,
//! then swap it in. The stream is the truth; the read models can always be
//! made again from it.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use async_nats::jetstream;
use prolo_bus::STREAM_NAME;

use crate::{
    error::ProjectorError,
    fold::{Decoded, decode_off_runtime},
    project::{fold_decoded, read_stream},
    rules::findings::FindingSettings,
    store::Store,
};

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// Events folded (applied or quarantined).
    pub events: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Where the previous database was moved, if there was one.
    pub previous: Option<PathBuf>,
}

/// Rebuilds the database at `path` from the whole stream. The projector
/// must not be running on `path` meanwhile. `progress` is called after
/// each batch with (done, total, events/s).
pub async fn rebuild(
    js: &jetstream::Context,
    path: &Path,
    cache_bytes: u64,
    settings: &FindingSettings,
    mut progress: impl FnMut(u64, u64, f64),
) -> Result<RebuildReport, ProjectorError> {
    let mut stream = js
        .get_stream(STREAM_NAME)
        .await
        .map_err(|e| ProjectorError::JetStream(e.to_string()))?;
    let last = stream
        .info()
        .await
        .map_err(|e| ProjectorError::JetStream(e.to_string()))?
        .state
        .last_sequence;
    let fresh = sibling(path, "rebuild");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .map_err(|e| ProjectorError::JetStream(format!("removing {}: {e}", fresh.display())))?;
    }
    let started = Instant::now();
    {
        let store = Store::open(&fresh, cache_bytes)?;
        crate::integrity::consistency::remember(js, &store).await?;
        // Each batch is decoded (on the other core) while the one before
        // it is folded and committed.
        let mut decoding: Option<tokio::task::JoinHandle<Decoded>> = None;
        read_stream(js, 1, last, crate::project::FOLD_BATCH, |batch| {
            let store = store.clone();
            let settings = settings.clone();
            if let Some(m) = batch.last() {
                progress(
                    m.seq,
                    last,
                    m.seq as f64 / started.elapsed().as_secs_f64().max(1e-9),
                );
            }
            let previous = decoding.replace(decode_off_runtime(batch, settings.seals.clone()));
            async move {
                // Notifications were sent when the events were first folded.
                if let Some(previous) = previous {
                    fold(&store, previous, &settings).await?;
                }
                Ok(())
            }
        })
        .await?;
        if let Some(previous) = decoding {
            fold(&store, previous, settings).await?;
        }
    }
    let previous = if path.exists() {
        let old = sibling(
            path,
            &format!("old-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")),
        );
        std::fs::rename(path, &old).map_err(|e| {
            ProjectorError::JetStream(format!("moving {} aside: {e}", path.display()))
        })?;
        Some(old)
    } else {
        None
    };
    std::fs::rename(&fresh, path)
        .map_err(|e| ProjectorError::JetStream(format!("swapping in {}: {e}", fresh.display())))?;
    Ok(RebuildReport {
        events: last,
        seconds: started.elapsed().as_secs_f64(),
        previous,
    })
}

async fn fold(
    store: &Store,
    decoding: tokio::task::JoinHandle<Decoded>,
    settings: &FindingSettings,
) -> Result<(), ProjectorError> {
    let (batch, decoded) = decoding
        .await
        .map_err(|e| ProjectorError::JetStream(format!("decoding a batch failed: {e}")))?;
    fold_decoded(store, &batch, decoded, settings).await?;
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}
