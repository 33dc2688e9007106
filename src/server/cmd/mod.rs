//! What each command does on the server: one module per command, named in the protocol's
//! command table (`linechat_protocol::command_table!`), which also generates the dispatch
//! below. A new command is an entry in that table and a module here with its `apply`.
//!
//! Each module's `apply` takes the session and the command's fields, in the table's order,
//! and says what comes next ([`Step`]).

use linechat_protocol::{Command, ErrorCode, Name, Reply};

use super::room::{MAX_TOPIC_BYTES, RoomError};
use super::session::{InFlight, Session};
use super::user::MAX_AWAY_BYTES;
use crate::connection::Delivery;

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

pub(super) use away::set_away;
pub(super) use create_room::create;
pub(super) use history::recall;
pub(super) use join_room::join;
pub(super) use leave_room::leave;
pub(super) use list_room_users::members;
pub(super) use list_rooms::summaries;
pub use login::LoginError;
pub(super) use login::{log_in, new_presence};
pub(super) use msg::{broadcast, msg_answer};
pub(super) use nick::guest;
pub(super) use pm::{Straight, pm_answer, pm_sent, straight, through_directory};
pub(super) use room_message::{room_message_sent, say};
pub(super) use topic::{set_topic, topic};
pub(super) use users::online;

/// Sends `reply` now, after what was queued before it.
pub(super) fn send(session: &Session, reply: Reply) {
    // A full outbox closes the connection; the session loop sees that and ends.
    let _ = session.outbox().send(reply);
}

/// Sends a final reply after those of the commands before it, without waiting for them.
/// Not an `async fn`: that would keep the reply in the session's task beside the line
/// encoded from it, in the state of every loop that awaits this.
pub(super) fn reply_in_order(session: &mut Session, reply: Reply) -> impl Future<Output = ()> + '_ {
    session.pipeline(InFlight::Ready(Delivery::new(reply)))
}

/// What a client is told when an actor it needed has gone away.
pub(in crate::server) fn unavailable() -> Reply {
    Reply::err(ErrorCode::Internal, "the server is unavailable; try again")
}

/// The answer to a command that needs a logged-in user, from a session without one.
pub(super) fn not_logged_in(session: &Session) -> Reply {
    let how = Reply::login_commands(session.settings().allow_guests);
    Reply::err(ErrorCode::NotLoggedIn, format!("log in first: {how}"))
}

/// Why a command was refused before or by the actors: what the session checks itself, and
/// what the room table or a room answered. The line protocol words it in [`refused`]; IRC
/// words it as numerics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("log in first")]
    NotLoggedIn,
    /// A name the command would create is longer than `max_name_length`.
    #[error("bad name \"{name}\": a name is at most {max} characters here")]
    NameTooLong { name: Name, max: usize },
    /// Past the connection's own limit of rooms created per minute.
    #[error(
        "rooms are created at most {per_minute} per minute per connection; the line was dropped"
    )]
    Flood { per_minute: u32 },
    #[error("a topic is at most {MAX_TOPIC_BYTES} bytes; this one is {0}")]
    TopicTooLong(usize),
    #[error("an away message is at most {MAX_AWAY_BYTES} bytes; this one is {0}")]
    AwayTooLong(usize),
    #[error(transparent)]
    Room(#[from] RoomError),
    /// A registered user's membership of `room` could not be stored (`doing`: joining or
    /// leaving it).
    #[error("{doing} {room}: {reason}")]
    Membership {
        doing: &'static str,
        room: Name,
        reason: String,
    },
    /// The directory is gone (the server is shutting down).
    #[error("the server is unavailable")]
    Unavailable,
}

/// Whether `name`, which a command would create, fits `max_name_length`, which may be
/// stricter than the protocol's 32 characters; existing names are accepted as they are.
pub(in crate::server) fn check_new_name(
    session: &Session,
    name: &Name,
) -> Result<(), CommandError> {
    let max = session.settings().max_name_length;
    if name.as_str().len() > max {
        let name = name.clone();
        return Err(CommandError::NameTooLong { name, max });
    }
    Ok(())
}

/// A command's refusal, as the line protocol words it: with a hint at the command that
/// helps, where one does.
pub(super) fn refused(session: &Session, error: CommandError) -> Reply {
    let code = match &error {
        CommandError::NotLoggedIn => return not_logged_in(session),
        CommandError::NameTooLong { .. } => ErrorCode::BadName,
        CommandError::Flood { .. } => ErrorCode::Flood,
        CommandError::TopicTooLong(_) | CommandError::AwayTooLong(_) => ErrorCode::BadArguments,
        CommandError::Room(error) => return room_refused(error),
        CommandError::Membership { .. } => ErrorCode::Storage,
        CommandError::Unavailable => return unavailable(),
    };
    Reply::err(code, error.to_string())
}

/// A refusal of the room table or of a room, as the line protocol words it.
pub(super) fn room_refused(error: &RoomError) -> Reply {
    let code = match error {
        RoomError::NoSuchRoom(_) => {
            return Reply::err(ErrorCode::NoSuchRoom, format!("{error}; CR creates it"));
        }
        RoomError::Exists(_) => {
            return Reply::err(ErrorCode::RoomExists, format!("{error}; JR joins it"));
        }
        RoomError::NotMember(_) => ErrorCode::NotInRoom,
        RoomError::AlreadyMember(_) => ErrorCode::AlreadyInRoom,
        RoomError::Full { .. } => ErrorCode::RoomFull,
        RoomError::TooMany(_) | RoomError::TooManyCreated { .. } => ErrorCode::TooManyRooms,
        RoomError::Storage(_) => ErrorCode::Storage,
        RoomError::Unavailable => return unavailable(),
    };
    Reply::err(code, error.to_string())
}

impl Step {
    /// The line protocol's answer to a command's typed outcome: `ok` words a success.
    fn of<T>(
        session: &Session,
        outcome: Result<T, CommandError>,
        ok: impl FnOnce(T) -> Reply,
    ) -> Step {
        match outcome {
            Ok(done) => ok(done).into(),
            Err(error) => refused(session, error).into(),
        }
    }
}
