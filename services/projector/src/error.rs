//! Why the projector stopped.

use crate::store::StoreError;

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// JetStream failed.
    #[error("JetStream: {0}")]
    JetStream(String),
}
