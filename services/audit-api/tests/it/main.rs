//! The integration tests of prolo-audit-api, in one test binary: each module was
//! a test binary of its own, and each linked the whole stack again. Run one
//! module with `cargo test -p <crate> --test it <module>::`.

mod api;
mod asyncapi;
mod backup;
mod common;
mod console;
mod fhir;
mod health;
mod hostile;
mod metrics;
mod sealed;
mod upgrade;
