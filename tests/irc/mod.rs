//! The IRC front-end's integration tests: a real IRC client (the `irc` crate) and hand-written
//! IRC lines against the in-process server's IRC listener, beside line-protocol clients on
//! its plain port, in the same rooms.

pub mod raw;

mod bad_input;
mod client;
mod closing;
mod held;
mod idle;
mod line_length;
mod messaging;
mod mixed;
mod numerics;
mod text_rules;
mod tls;
mod topics;
