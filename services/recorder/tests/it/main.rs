//! The integration tests of prolo-recorder, in one test binary: each module was
//! a test binary of its own, and each linked the whole stack again. Run one
//! module with `cargo test -p <crate> --test it <module>::`.

mod hostile;
mod identity;
mod signals;
