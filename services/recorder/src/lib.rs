//! The recording services.
//!
//! Clinic systems record what happened by sending a request to a command
//! subject (`prolo.cmd.<clinic>.<verb>`). The service validates it with the schemas
//! crate, stamps it (event id, recorded_at, source), publishes it to
//! JetStream with `Nats-Msg-Id` = event id, and replies
//! `{event_id, stream_seq, subject}` only once JetStream acknowledged it.
//!
//! A fact is recorded even when it breaks policy (an injection without
//! consent is still a fact); policy breaches become findings in the
//! projector. Only a malformed or implausible record is refused.
//!
//! Every service binary in `src/bin/` is one line over [`main_for`].

pub mod batch;
pub mod cli;
pub mod commands;
pub mod idempotency;
pub mod identity;
pub mod permissions;
pub mod policy;
mod prepared;
pub mod refusals;
pub mod reply;
pub mod request;
pub mod server;
pub mod signed;

pub use cli::main_for;
pub use commands::{ALL_SERVICES, Command, ServiceSpec, command_for};
pub use server::{ServeSettings, serve};
