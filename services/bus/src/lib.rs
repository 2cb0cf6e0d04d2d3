//! The JetStream side of prolo-audit, shared by every service.
//!
//! - [`stream`]: the `CLINIC_EVENTS` stream, defined once, created when
//!   absent and refused when it could lose or rewrite events.
//! - [`publish`]: recording an event exactly once (`Nats-Msg-Id` = event id,
//!   retried with the same id until a deadline).
//! - [`batch`]: atomic batch publish, many events for one fsync.
//! - [`edge`]: a clinic's own nats-server, a leaf node of the hub; the
//!   hub's stream sources the clinic's.
//! - [`connect`]: connecting with reconnects forever and logged state changes.
//! - [`local_server`]: a nats-server of our own, for `up` and the tests.
//! - [`durability`]: whether the broker fsyncs before it acknowledges.
//! - [`shutdown`], [`telemetry`]: graceful stop and tracing, the same in every binary.

pub mod batch;
pub mod connect;
pub mod durability;
pub mod edge;
pub mod local_server;
pub mod metrics;
pub mod per_minute;
pub mod publish;
pub mod seal;
pub mod shutdown;
pub mod stream;
pub mod telemetry;

pub use connect::connect;
pub use durability::{BrokerDurability, Fsync};
pub use publish::{PublishError, Publisher, Recorded};
pub use seal::{Keyring, SealKey};
pub use shutdown::{Shutdown, Trigger};
pub use stream::{STREAM_NAME, StreamError, StreamSettings, ensure_stream};
pub use telemetry::init_tracing;
