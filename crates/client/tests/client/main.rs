//! The client binary run as a real process against the server in this process: in line mode
//! (pipes) and in its terminal interface (a pty). One test binary, one link.

#[path = "../../../../tests/support/mod.rs"]
mod support;

mod lines;
mod tui;
