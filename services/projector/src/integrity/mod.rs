//! Tamper evidence and recovery: the hash chain over every stream sequence,
//! verification of the read models against the stream (and its schedule),
//! whether the database still matches its stream, rebuild, backup and
//! restore.

pub mod backup;
pub mod chain;
pub mod consistency;
pub mod rebuild;
pub mod verification;
pub mod verify;
