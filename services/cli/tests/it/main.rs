//! The integration tests of prolo-audit (cli), in one test binary: each module was
//! a test binary of its own, and each linked the whole stack again. Run one
//! module with `cargo test -p <crate> --test it <module>::`.

mod backfill;
mod backup_restore;
mod common;
mod up;
