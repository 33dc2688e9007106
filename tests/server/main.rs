//! The server's integration tests, one module per area, in one test binary: one link instead
//! of one per file, which was most of the suite's build time. Each module drives the server
//! over real sockets on 127.0.0.1, in-process or as the real binary (`tests/support/`).

/// Not in `support/mod.rs`, which the client's tests include too: it needs `libc`.
#[path = "../support/postgres.rs"]
mod postgres_support;
#[path = "../support/mod.rs"]
mod support;

mod commands;
mod durability;
mod edge;
mod hops;
mod identity;
mod limits;
mod memory;
mod postgres;
mod robustness;
mod settings;
mod shell_bot;
mod smoke;
mod storage;
mod topics;
