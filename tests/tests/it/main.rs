//! The integration tests of prolo-tests, in one test binary: each module was
//! a test binary of its own, and each linked the whole stack again. Run one
//! module with `cargo test -p <crate> --test it <module>::`.

mod batch;
mod deploy;
mod docs;
mod durability;
mod edge;
mod power_loss;
mod recording;
mod stream;
mod subscriber;
