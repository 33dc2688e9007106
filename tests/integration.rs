//! Every integration test of the server in one test binary, one module per front or part:
//! one build of `support/` and one link instead of one per binary, and the binary's tests run
//! side by side (cargo runs test binaries one after another), which took a third off the
//! suite's time.
//!
//! `cargo test --test integration cluster::` runs one part, `... server::storage::` one area.

/// Not in `support/mod.rs`, which the client's tests include too: it needs `libc`.
#[path = "support/postgres.rs"]
mod postgres_support;
mod support;

mod cluster;
mod irc;
mod server;
