//! The server's integration tests, one module per area. Each module drives the server over
//! real sockets on 127.0.0.1, in-process or as the real binary (`tests/support/`).

mod away;
mod budget_log;
mod commands;
mod durability;
mod edge;
pub(crate) mod front_end;
mod history_pages;
mod hops;
mod identity;
mod limits;
mod memory;
mod postgres;
mod read_markers;
mod robustness;
mod room_creation;
mod search;
mod settings;
mod shell_bot;
mod smoke;
mod stamps;
mod storage;
mod topics;
mod user_timeout;
