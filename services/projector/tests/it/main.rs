//! The integration tests of prolo-projector, in one test binary: each module was
//! a test binary of its own, and each linked the whole stack again. Run one
//! module with `cargo test -p <crate> --test it <module>::`.

mod common;
mod crash;
mod findings;
mod integrity;
mod scenario;
mod signal_simulation;
mod sourced;
mod verification;
