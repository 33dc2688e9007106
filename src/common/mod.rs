//! Types shared by the server and the bundled client.

pub mod command;
pub mod name;
pub mod reply;
#[cfg(test)]
mod strategies;

pub use command::{Command, HistoryTarget, ParseError, Password, Verb};
pub use name::{Name, NameError};
pub use reply::{CloseReason, Departure, ErrorCode, Notice, Reply};
