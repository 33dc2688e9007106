//! The harness the integration tests share: a server to talk to, in this process
//! ([`TestServer`]) or as the real binary ([`ServerProcess`]), and clients that talk to it
//! over TCP on 127.0.0.1 as a user would.
//!
//! The client's tests use it too (`crates/client/tests`), through a `#[path]` module.
// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod client;
mod process;
mod server;
pub mod tls;

use std::time::Duration;

pub use client::Client;
pub use process::ServerProcess;
pub use server::{TestServer, settings};

/// How long a test waits for a line it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);
