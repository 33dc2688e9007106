//! Lines the server sends. Every line starts with an uppercase keyword so that a script can
//! switch on its first word.

use std::fmt;

use std::time::SystemTime;

use super::command::{HistoryTarget, ParseError, Verb};
use super::name::Name;

/// Stable error codes: bots switch on them, so a code is never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    UnknownCommand,
    BadArguments,
    BadName,
    BadText,
    LineTooLong,
    BadUtf8,
    NotLoggedIn,
    AlreadyLoggedIn,
    NameTaken,
    BadPassword,
    GuestsDisabled,
    NoSuchUser,
    NoSuchRoom,
    RoomExists,
    NotInRoom,
    AlreadyInRoom,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::BadArguments => "BAD_ARGUMENTS",
            ErrorCode::BadName => "BAD_NAME",
            ErrorCode::BadText => "BAD_TEXT",
            ErrorCode::LineTooLong => "LINE_TOO_LONG",
            ErrorCode::BadUtf8 => "BAD_UTF8",
            ErrorCode::NotLoggedIn => "NOT_LOGGED_IN",
            ErrorCode::AlreadyLoggedIn => "ALREADY_LOGGED_IN",
            ErrorCode::NameTaken => "NAME_TAKEN",
            ErrorCode::BadPassword => "BAD_PASSWORD",
            ErrorCode::GuestsDisabled => "GUESTS_DISABLED",
            ErrorCode::NoSuchUser => "NO_SUCH_USER",
            ErrorCode::NoSuchRoom => "NO_SUCH_ROOM",
            ErrorCode::RoomExists => "ROOM_EXISTS",
            ErrorCode::NotInRoom => "NOT_IN_ROOM",
            ErrorCode::AlreadyInRoom => "ALREADY_IN_ROOM",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&ParseError> for ErrorCode {
    fn from(error: &ParseError) -> Self {
        match error {
            ParseError::UnknownCommand(_) => ErrorCode::UnknownCommand,
            ParseError::MissingArgument(_)
            | ParseError::TooManyArguments(_)
            | ParseError::BadCount { .. } => ErrorCode::BadArguments,
            ParseError::BadName { .. } => ErrorCode::BadName,
            ParseError::ControlCharacter => ErrorCode::BadText,
        }
    }
}

/// Why the server is closing a connection, told to that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    LoginTimeout,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::LoginTimeout => "LOGIN_TIMEOUT",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            CloseReason::LoginTimeout => "no login in time",
        }
    }
}

/// How a user went offline, as others are told in `NOTICE OFFLINE <user> <how> [text]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Departure {
    /// `QUIT`, with the user's reason if they gave one.
    Quit(Option<String>),
    /// The client closed the connection.
    Closed,
    /// The connection failed.
    Lost,
    /// The client stopped reading and its outbox filled up.
    NotReading,
    Shutdown,
}

impl fmt::Display for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Departure::Quit(reason) => {
                f.write_str("QUIT")?;
                write_optional(f, reason)
            }
            Departure::Closed => f.write_str("CLOSED"),
            Departure::Lost => f.write_str("LOST"),
            Departure::NotReading => f.write_str("NOT_READING"),
            Departure::Shutdown => f.write_str("SHUTDOWN"),
        }
    }
}

/// Global notifications: lines starting with `NOTICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Online { user: Name },
    Offline { user: Name, how: Departure },
    RoomCreated { room: Name, by: Name },
    Shutdown,
    Closing { reason: CloseReason },
}

/// One line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The greeting sent on connect.
    Hello,
    Ok {
        verb: Verb,
        detail: Option<String>,
    },
    Err {
        code: ErrorCode,
        message: String,
    },
    Users(Vec<Name>),
    Rooms(Vec<Name>),
    RoomUsers {
        room: Name,
        users: Vec<Name>,
    },
    Pong(Option<String>),
    Help(Verb),
    Msg {
        from: Name,
        text: String,
    },
    Pm {
        from: Name,
        text: String,
    },
    Rm {
        room: Name,
        from: Name,
        text: String,
    },
    /// One message of a `HISTORY` answer.
    Hist {
        target: HistoryTarget,
        at: SystemTime,
        from: Name,
        text: String,
    },
    Joined {
        room: Name,
        user: Name,
    },
    Left {
        room: Name,
        user: Name,
    },
    Notice(Notice),
}

impl Reply {
    pub fn ok(verb: Verb) -> Self {
        Reply::Ok { verb, detail: None }
    }

    pub fn ok_with(verb: Verb, detail: impl fmt::Display) -> Self {
        Reply::Ok {
            verb,
            detail: Some(detail.to_string()),
        }
    }

    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Reply::Err {
            code,
            message: message.into(),
        }
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, names: &[Name]) -> fmt::Result {
    for name in names {
        write!(f, " {name}")?;
    }
    Ok(())
}

fn write_optional(f: &mut fmt::Formatter<'_>, text: &Option<String>) -> fmt::Result {
    match text {
        Some(text) => write!(f, " {text}"),
        None => Ok(()),
    }
}

/// The wire form of a reply, without the line ending.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Hello => write!(
                f,
                "HELLO linechat {} - log in with LOGIN <name> <password>, \
                 REGISTER <name> <password> or NICK <name>; HELP lists the commands",
                env!("CARGO_PKG_VERSION")
            ),
            Reply::Ok { verb, detail } => {
                write!(f, "OK {verb}")?;
                write_optional(f, detail)
            }
            Reply::Err { code, message } => write!(f, "ERR {code} {message}"),
            Reply::Users(users) => {
                f.write_str("USERS")?;
                write_names(f, users)
            }
            Reply::Rooms(rooms) => {
                f.write_str("LRS")?;
                write_names(f, rooms)
            }
            Reply::RoomUsers { room, users } => {
                write!(f, "LRU {room}")?;
                write_names(f, users)
            }
            Reply::Pong(token) => {
                f.write_str("PONG")?;
                write_optional(f, token)
            }
            Reply::Help(verb) => write!(f, "HELP {}", verb.usage()),
            Reply::Msg { from, text } => write!(f, "MSG {from} {text}"),
            Reply::Pm { from, text } => write!(f, "PM {from} {text}"),
            Reply::Rm { room, from, text } => write!(f, "RM {room} {from} {text}"),
            Reply::Hist {
                target,
                at,
                from,
                text,
            } => write!(
                f,
                "HIST {target} {} {from} {text}",
                humantime::format_rfc3339_millis(*at)
            ),
            Reply::Joined { room, user } => write!(f, "JR {room} {user}"),
            Reply::Left { room, user } => write!(f, "LR {room} {user}"),
            Reply::Notice(notice) => match notice {
                Notice::Online { user } => write!(f, "NOTICE ONLINE {user}"),
                Notice::Offline { user, how } => write!(f, "NOTICE OFFLINE {user} {how}"),
                Notice::RoomCreated { room, by } => write!(f, "NOTICE ROOM {room} {by}"),
                Notice::Shutdown => f.write_str("NOTICE SHUTDOWN the server is going down"),
                Notice::Closing { reason } => write!(
                    f,
                    "NOTICE CLOSING {} {}",
                    reason.as_str(),
                    reason.explanation()
                ),
            },
        }
    }
}
