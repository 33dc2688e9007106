//! linechat's wire protocol: the commands a client sends, the replies and notices a server
//! sends, and the names both use, with their parsers and encodings. Shared by the server, the
//! bundled client and the load generator.

pub mod command;
pub mod name;
pub mod reply;
pub mod stamp;
#[cfg(test)]
mod strategies;

pub use command::{
    Bound, Command, ConnectionOption, HistoryPage, HistoryTarget, ParseError, Password,
    SearchWords, Verb, check_text, clean_text,
};
pub use name::{Name, NameError};
pub use reply::{CloseReason, Departure, ErrorCode, Notice, Reply, Topic};
pub use stamp::Stamp;
