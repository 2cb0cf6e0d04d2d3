//! The JetStream side of prolo-audit, shared by every service.
//!
//! - [`stream`]: the `CLINIC_EVENTS` stream, defined once, created when
//!   absent and refused when it could lose or rewrite events.
//! - [`publish`]: recording an event exactly once (`Nats-Msg-Id` = event id,
//!   retried with the same id until a deadline).
//! - [`connect`]: connecting with reconnects forever and logged state changes.

pub mod connect;
pub mod publish;
pub mod stream;

pub use connect::connect;
pub use publish::{PublishError, Publisher, Recorded};
pub use stream::{STREAM_NAME, StreamError, StreamSettings, ensure_stream};
