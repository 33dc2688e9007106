//! What each command does on the server: one module per command, named in the protocol's
//! command table (`linechat_protocol::command_table!`), which also generates the dispatch
//! below. A new command is an entry in that table and a module here with its `apply`.
//!
//! Each module's `apply` takes the session and the command's fields, in the table's order,
//! and says what comes next ([`Step`]).

use linechat_protocol::{Command, ErrorCode, Reply};

use super::session::Session;

pub(super) mod wording;

/// What a command came to.
pub(super) enum Step {
    /// Its final line, to send now (after the lines of the commands before it).
    Reply(Reply),
    /// Answered already, or to be answered by what it handed on.
    Done,
    /// `QUIT`, with the user's reason.
    Quit(Option<String>),
}

impl From<Reply> for Step {
    fn from(reply: Reply) -> Self {
        Step::Reply(reply)
    }
}

macro_rules! dispatch {
    ($(
        $variant:ident($module:ident) $wire:literal [$($alias:literal),*]
            { $($field:ident: $type:ty),* }
            $(usage $usage:literal,)? help $help:literal;
    )*) => {
        $(mod $module;)*

        /// Runs one command.
        pub(super) async fn apply(session: &mut Session, command: Command) -> Step {
            match command {
                $(Command::$variant { $($field),* } => $module::apply(session, $($field),*).await,)*
            }
        }
    };
}

linechat_protocol::command_table!(dispatch);

pub(super) use pm::{Straight, straight};

/// The answer to a command that needs a logged-in user, from a session without one.
pub(super) fn not_logged_in(session: &Session) -> Reply {
    let how = Reply::login_commands(session.context.settings.allow_guests);
    Reply::err(ErrorCode::NotLoggedIn, format!("log in first: {how}"))
}
