//! linechat: a multi-client chat server spoken over plain text lines.
//!
//! The crate mirrors the server's architecture:
//! - [`common`]: the wire vocabulary shared by server and client (commands, replies, names, parser);
//! - [`connection`]: framing of one client's socket (line codec, telnet filtering, outbox);
//! - [`server`]: the accept loop, the per-connection session and the actors that own all state;
//! - [`settings`]: layered configuration (defaults, file, environment, flags).

pub mod common;
pub mod connection;
pub mod server;
pub mod settings;
