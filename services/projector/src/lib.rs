//! The projector: folds the `CLINIC_EVENTS` stream into sled read models.
//!
//! - exactly once: each batch of events is committed in one atomic sled
//!   batch together with the last applied stream sequence, flushed, and only
//!   then acknowledged; after a crash it resumes from the database's
//!   position and skips what it had applied ([`project`]);
//! - nothing silently skipped: a message that does not decode, validate or
//!   belong on its subject is quarantined with its bytes and the reason
//!   ([`fold`]);
//! - tamper evidence: a hash chain over every sequence, verifiable against
//!   the stream, with checkpoints for other systems ([`chain`]);
//! - the read models ([`model`]) in one tree of prefixed key spaces ([`keys`]);
//! - findings and safety signals derived as it folds ([`findings`]);
//! - a database that no longer matches its stream is told, never folded
//!   further ([`consistency`]).

pub mod backup;
pub mod chain;
pub mod consistency;
pub mod disproportionality;
pub mod error;
pub mod event_ids;
pub mod findings;
pub mod fold;
pub mod keys;
pub mod model;
pub mod names;
pub mod payload_codec;
pub mod policy;
pub mod project;
pub mod reads;
pub mod rebuild;
pub mod records;
pub mod store;
pub mod verification;

pub use error::ProjectorError;
pub use project::{ProjectorSettings, VerifyReport, verify};
pub use store::Store;
pub use verification::run;
