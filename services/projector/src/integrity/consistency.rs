//! Whether the database still describes the stream it was folded from.
//!
//! A database folded from one stream says nothing true about another: a
//! stream deleted and created again (other creation time, sequences from 1
//! again), or one shorter than what was applied. Then `status` says
//! `diverged` with the reason, `verify` fails at once naming the first
//! sequence it cannot find, and the fold waits instead of folding a
//! different history into the same read models.

use async_nats::jetstream;
use prolo_bus::STREAM_NAME;
use serde::{Deserialize, Serialize};

use crate::{error::ProjectorError, store::Store};

/// Where the identity of the folded stream is kept.
pub const IDENTITY: &str = "stream_identity";

/// What identifies a stream across restarts: its creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StreamIdentity {
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
}

/// The database against the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Consistency {
    /// Same stream, at least as long as what was applied.
    Consistent,
    /// Not the history the database was folded from.
    Diverged {
        /// Why.
        reason: String,
        /// The first sequence of the database that the stream cannot
        /// confirm.
        first_missing_seq: u64,
    },
}

fn js_err(e: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::JetStream(e.to_string())
}

fn identity_of(info: &jetstream::stream::Info) -> StreamIdentity {
    StreamIdentity {
        created: info
            .created
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }
}

/// Remembers the stream the database is (about to be) folded from, when
/// the database does not know it yet.
pub async fn remember(js: &jetstream::Context, store: &Store) -> Result<(), ProjectorError> {
    if store.status_get::<StreamIdentity>(IDENTITY)?.is_some() {
        return Ok(());
    }
    store.status_put(IDENTITY, &identity_of(&stream_info(js).await?))?;
    Ok(())
}

/// The stream's current information.
async fn stream_info(js: &jetstream::Context) -> Result<jetstream::stream::Info, ProjectorError> {
    let mut stream = js.get_stream(STREAM_NAME).await.map_err(js_err)?;
    stream.info().await.cloned().map_err(js_err)
}

/// Compares the database with the stream as it is now.
pub async fn check(js: &jetstream::Context, store: &Store) -> Result<Consistency, ProjectorError> {
    judge(
        &stream_info(js).await?,
        store.applied_seq()?,
        store.status_get::<StreamIdentity>(IDENTITY)?,
    )
}

fn judge(
    info: &jetstream::stream::Info,
    applied: u64,
    known: Option<StreamIdentity>,
) -> Result<Consistency, ProjectorError> {
    let now = identity_of(info);
    if let Some(known) = known
        && known != now
    {
        return Ok(Consistency::Diverged {
            reason: format!(
                "the stream was recreated: {STREAM_NAME} was created {}, the database was folded from one created {}",
                now.created, known.created
            ),
            first_missing_seq: 1,
        });
    }
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    if applied > 0 && first > 1 {
        return Ok(Consistency::Diverged {
            reason: format!(
                "the stream now starts at sequence {first}: sequences 1 to {} are gone from it",
                first - 1
            ),
            first_missing_seq: 1,
        });
    }
    if last < applied {
        return Ok(Consistency::Diverged {
            reason: format!(
                "the stream ends at sequence {last}, but the database applied up to {applied}"
            ),
            first_missing_seq: last + 1,
        });
    }
    Ok(Consistency::Consistent)
}
