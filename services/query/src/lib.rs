//! The questions compliance officers and safety reviewers ask of the trail,
//! answered from the projector's read models.
//!
//! Every answer is complete and in stream order. A query first finds its
//! answer as a list of stream sequences (index reads only), so that its size
//! is known before anything is rendered; items are then rendered one by one,
//! which lets the API stream exports instead of building them in memory.

mod answers;
mod view;

pub use answers::*;
pub use view::{EventView, Mark, ViewStanding, event_view};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The read models could not be read.
    #[error(transparent)]
    Store(#[from] prolo_projector::store::StoreError),
    /// Nothing matches (an unknown adverse event or event id).
    #[error("{0} not found")]
    NotFound(String),
    /// A parameter is not usable.
    #[error("{0}")]
    BadRequest(String),
}
