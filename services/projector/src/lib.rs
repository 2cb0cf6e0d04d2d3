//! The projector: folds the `CLINIC_EVENTS` stream into sled read models.
//!
//! - [`project`]: running the fold against the stream, exactly once: each
//!   batch is committed in one atomic sled batch together with the last
//!   applied stream sequence, flushed, and only then acknowledged; after a
//!   crash it resumes from the database's position;
//! - [`fold`]: one message at a time into a batch's writes: decoding, the
//!   facts each event adds to the read models, the rules and signals it
//!   triggers; a message that does not decode, validate or belong on its
//!   subject is quarantined with its bytes and the reason;
//! - [`rules`]: the policy as pure functions (which findings an event
//!   raises or resolves), the finding catalogue and the signal statistics;
//! - [`store`]: the sled database, its key layout (known only to the fold
//!   and to [`store::reads`], the typed questions the read side may ask),
//!   records in compressed blocks, event ids in sorted blocks;
//! - [`model`]: the read models' types;
//! - [`integrity`]: the hash chain, verification against the stream and its
//!   schedule, the database against its stream, rebuild, backup and restore.

pub mod error;
pub mod fold;
pub mod integrity;
pub mod model;
pub mod project;
pub mod rules;
pub mod seals;
pub mod store;

pub use error::ProjectorError;
pub use integrity::verification::run;
pub use integrity::verify::{VerifyReport, verify};
pub use project::ProjectorSettings;
pub use store::Store;
