//! linechat: a multi-client chat server spoken over plain text lines.
//!
//! The crate mirrors the server's architecture:
//! - [`connection`]: framing of one client's socket (line codec, telnet filtering, outbox);
//! - [`server`]: the accept loop, the per-connection session and the actors that own all state;
//! - [`settings`]: layered configuration (defaults, file, environment, flags).
//!
//! The wire vocabulary (commands, replies, names and their parser) is the `linechat-protocol`
//! crate, shared with the bundled client and the load generator.

pub mod connection;
pub mod server;
pub mod settings;
