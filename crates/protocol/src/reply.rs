//! Lines the server sends. Every line starts with an uppercase keyword so that a script can
//! switch on its first word.

use std::fmt;

use std::time::SystemTime;

use super::command::{HistoryTarget, ParseError, Verb};
use super::name::Name;

/// Stable error codes: bots switch on them, so a code is never renamed or reused. On the wire
/// each is its variant's name in upper snake case (`BadUtf8` is `BAD_UTF8`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
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
    /// The line was over the connection's rate limit and was dropped.
    Flood,
    /// Too many failed logins from this address or for this account; wait and retry.
    TooManyAttempts,
    /// The server or this address has as many connections as allowed.
    TooManyConnections,
    RoomFull,
    TooManyRooms,
    Internal,
    /// A write the command needs could not be stored (e.g. the disk is full); nothing of
    /// the command took effect.
    Storage,
    /// The command keeps something for an account (read markers), and a guest has none.
    NotRegistered,
}

/// `ALL`, `as_str` and `lookup` for a keyword enum whose wire names strum derives.
macro_rules! wire_names {
    ($keyword:ident) => {
        impl $keyword {
            /// Every one, in declaration order.
            pub const ALL: &'static [$keyword] = <$keyword as strum::VariantArray>::VARIANTS;

            /// Its name on the wire.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The one with this wire name (exact, upper case).
            pub fn lookup(word: &str) -> Option<$keyword> {
                word.parse().ok()
            }
        }
    };
}

wire_names!(ErrorCode);
wire_names!(CloseReason);

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
            | ParseError::BadCount { .. }
            | ParseError::BadOption(_)
            | ParseError::BadHistoryPage(_)
            | ParseError::BadBound { .. } => ErrorCode::BadArguments,
            ParseError::BadName { .. } => ErrorCode::BadName,
            ParseError::ControlCharacter | ParseError::InvisibleCharacter(_) => ErrorCode::BadText,
        }
    }
}

/// Why the server is closing a connection, told to that connection: on the wire, the
/// variant's name in upper snake case, then the explanation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumMessage,
    strum::VariantArray,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CloseReason {
    #[strum(message = "no login in time")]
    LoginTimeout,
    /// No line came back after the server's `PING`.
    #[strum(message = "no answer to PING in time")]
    IdleTimeout,
    /// The client kept sending over its rate limit.
    #[strum(message = "too many lines over the rate limit")]
    Flood,
    /// The user logged in to their account on another connection, which took over.
    #[strum(message = "you logged in on another connection")]
    Replaced,
    /// The user's server was cut off from the rest of a cluster for so long that the others
    /// freed the user's name, and someone else took it meanwhile.
    #[strum(message = "this server was cut off from the others and your name was taken meanwhile")]
    NameLost,
}

impl CloseReason {
    /// Why the connection is closed, in words for the user: the text after the code in
    /// `NOTICE CLOSING <CODE> <explanation>`, which other protocols word their own way.
    pub fn explanation(self) -> &'static str {
        strum::EnumMessage::get_message(&self).unwrap_or_default()
    }
}

/// How a user went offline, as others are told in `NOTICE OFFLINE <user> <how> [text]`. It
/// also travels between a cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Departure {
    /// `QUIT`, with the user's reason if they gave one.
    Quit(Option<String>),
    /// The client closed the connection.
    Closed,
    /// The connection failed.
    Lost,
    /// The client stopped reading and its outbox filled up.
    NotReading,
    /// The client did not answer the server's `PING`.
    TimedOut,
    /// The client kept sending over its rate limit.
    Flooding,
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
            Departure::TimedOut => f.write_str("TIMED_OUT"),
            Departure::Flooding => f.write_str("FLOODING"),
            Departure::Shutdown => f.write_str("SHUTDOWN"),
        }
    }
}

/// Global notifications: lines starting with `NOTICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Online {
        user: Name,
    },
    Offline {
        user: Name,
        how: Departure,
    },
    RoomCreated {
        room: Name,
        by: Name,
    },
    /// `by`, a member of `room`, set its topic to `text`, or cleared it (`None`, from IRC).
    Topic {
        room: Name,
        by: Name,
        text: Option<String>,
    },
    Shutdown,
    Closing {
        reason: CloseReason,
    },
}

/// A room's topic: its text, who set it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub text: String,
    pub by: Name,
    pub at: SystemTime,
}

/// One line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The greeting sent on connect; it names `NICK` only where guests may log in.
    Hello {
        guests: bool,
    },
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
    /// The answer to `TOPIC <room>`: the room's topic, if it has one.
    Topic {
        room: Name,
        topic: Option<Topic>,
    },
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
    /// One conversation of an `UNREAD` answer: `count` messages came after the read marker,
    /// which is at the message `marker`.
    Unread {
        target: HistoryTarget,
        count: u64,
        marker: i64,
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
    /// The server checks that a silent client is still there; answer `PONG [token]`.
    Ping(String),
}

impl Reply {
    /// How to log in, as the greeting and `NOT_LOGGED_IN` say it.
    pub fn login_commands(guests: bool) -> &'static str {
        if guests {
            "LOGIN <name> <password>, REGISTER <name> <password> or NICK <name>"
        } else {
            "LOGIN <name> <password> or REGISTER <name> <password>"
        }
    }

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
            Reply::Hello { guests } => write!(
                f,
                "HELLO linechat {} - log in with {}; HELP lists the commands",
                env!("CARGO_PKG_VERSION"),
                Reply::login_commands(*guests)
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
            Reply::Ping(token) => write!(f, "PING {token}"),
            Reply::Pong(token) => {
                f.write_str("PONG")?;
                write_optional(f, token)
            }
            Reply::Topic { room, topic } => {
                write!(f, "TOPIC {room}")?;
                match topic {
                    Some(Topic { text, by, at }) => {
                        write!(f, " {by} {} {text}", humantime::format_rfc3339_millis(*at))
                    }
                    None => Ok(()),
                }
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
            Reply::Unread {
                target,
                count,
                marker,
            } => write!(f, "UNREAD {target} {count} {marker}"),
            Reply::Joined { room, user } => write!(f, "JR {room} {user}"),
            Reply::Left { room, user } => write!(f, "LR {room} {user}"),
            Reply::Notice(notice) => match notice {
                Notice::Online { user } => write!(f, "NOTICE ONLINE {user}"),
                Notice::Offline { user, how } => write!(f, "NOTICE OFFLINE {user} {how}"),
                Notice::RoomCreated { room, by } => write!(f, "NOTICE ROOM {room} {by}"),
                Notice::Topic { room, by, text } => {
                    write!(f, "NOTICE TOPIC {room} {by}")?;
                    write_optional(f, text)
                }
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

// ---------------------------------------------------------------------------------------------
// Reading server lines back: the client's side of the wire format written above.
// ---------------------------------------------------------------------------------------------

/// A server line that is not one of the lines [`Reply`]'s `Display` writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a server line ({reason}): {line:?}")]
pub struct ReplyParseError {
    pub line: String,
    pub reason: &'static str,
}

impl ReplyParseError {
    fn new(line: &str, reason: &'static str) -> Self {
        Self {
            line: line.into(),
            reason,
        }
    }
}

impl Reply {
    /// Parses one server line (without its line ending): the inverse of `Display`. A
    /// message's stamp in front of it (`OPTION ids on`) is read past: [`crate::Stamp::split`]
    /// reads it.
    pub fn parse(line: &str) -> Result<Reply, ReplyParseError> {
        let Some((_, unstamped)) = crate::Stamp::split(line) else {
            return Err(ReplyParseError::new(line, "a broken stamp"));
        };
        match reply_parser::reply(unstamped) {
            Ok(("", reply)) => Ok(reply),
            Ok(_) => Err(ReplyParseError::new(line, "unexpected text at the end")),
            Err(_) => Err(ReplyParseError::new(line, "unknown keyword or bad fields")),
        }
    }

    /// Whether this is the final line of a command (protocol.md §2): every client line gets
    /// exactly one, in the order the lines were sent.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Reply::Ok { .. }
                | Reply::Err { .. }
                | Reply::Users(_)
                | Reply::Rooms(_)
                | Reply::RoomUsers { .. }
                | Reply::Pong(_)
                | Reply::Topic { .. }
        )
    }
}

impl std::str::FromStr for Reply {
    type Err = ReplyParseError;

    fn from_str(line: &str) -> Result<Self, ReplyParseError> {
        Reply::parse(line)
    }
}

/// The `nom` parsers behind [`Reply::parse`]. Fields are separated by exactly one space, as
/// `Display` writes them; free text is the rest of the line, kept as is.
mod reply_parser {
    use std::time::SystemTime;

    use nom::branch::alt;
    use nom::bytes::complete::{tag, take_till1};
    use nom::character::complete::char;
    use nom::combinator::{eof, map, map_opt, map_res, rest, value};
    use nom::multi::many0;
    use nom::sequence::preceded;
    use nom::{IResult, Parser};

    use super::{CloseReason, Departure, ErrorCode, Notice, Reply, Topic};
    use crate::command::{HistoryTarget, Verb};
    use crate::name::Name;

    fn word(input: &str) -> IResult<&str, &str> {
        take_till1(|c| c == ' ').parse(input)
    }

    /// One space, then a field.
    fn field(input: &str) -> IResult<&str, &str> {
        preceded(char(' '), word).parse(input)
    }

    fn name(input: &str) -> IResult<&str, Name> {
        map_res(field, Name::parse).parse(input)
    }

    /// One space, then the rest of the line (possibly empty).
    fn text(input: &str) -> IResult<&str, String> {
        map(preceded(char(' '), rest), str::to_owned).parse(input)
    }

    /// Either nothing, or a space and the rest of the line.
    fn optional_text(input: &str) -> IResult<&str, Option<String>> {
        alt((value(None, eof), map(text, Some))).parse(input)
    }

    fn names(input: &str) -> IResult<&str, Vec<Name>> {
        many0(name).parse(input)
    }

    fn verb(input: &str) -> IResult<&str, Verb> {
        map_opt(word, |word| {
            Verb::ALL.into_iter().find(|verb| verb.as_str() == word)
        })
        .parse(input)
    }

    fn history_target(input: &str) -> IResult<&str, HistoryTarget> {
        map_res(field, |word| match word {
            "*" => Ok(HistoryTarget::Global),
            name => Name::parse(name).map(HistoryTarget::Named),
        })
        .parse(input)
    }

    fn time(input: &str) -> IResult<&str, SystemTime> {
        map_res(field, humantime::parse_rfc3339).parse(input)
    }

    fn departure(input: &str) -> IResult<&str, Departure> {
        preceded(
            char(' '),
            alt((
                map(preceded(tag("QUIT"), optional_text), Departure::Quit),
                value(Departure::Closed, tag("CLOSED")),
                value(Departure::Lost, tag("LOST")),
                value(Departure::NotReading, tag("NOT_READING")),
                value(Departure::TimedOut, tag("TIMED_OUT")),
                value(Departure::Flooding, tag("FLOODING")),
                value(Departure::Shutdown, tag("SHUTDOWN")),
            )),
        )
        .parse(input)
    }

    fn notice(input: &str) -> IResult<&str, Notice> {
        alt((
            map(preceded(tag(" ONLINE"), name), |user| Notice::Online {
                user,
            }),
            map(
                preceded(tag(" OFFLINE"), (name, departure)),
                |(user, how)| Notice::Offline { user, how },
            ),
            map(preceded(tag(" ROOM"), (name, name)), |(room, by)| {
                Notice::RoomCreated { room, by }
            }),
            map(
                preceded(tag(" TOPIC"), (name, name, optional_text)),
                |(room, by, text)| Notice::Topic { room, by, text },
            ),
            value(Notice::Shutdown, (tag(" SHUTDOWN"), optional_text)),
            map(
                preceded(
                    tag(" CLOSING"),
                    (map_opt(field, CloseReason::lookup), optional_text),
                ),
                |(reason, _)| Notice::Closing { reason },
            ),
        ))
        .parse(input)
    }

    pub(super) fn reply(line: &str) -> IResult<&str, Reply> {
        let (input, keyword) = word(line)?;
        match keyword {
            "HELLO" => map(rest, |text: &str| Reply::Hello {
                guests: text.contains(" NICK "),
            })
            .parse(input),
            "OK" => map(
                preceded(char(' '), (verb, optional_text)),
                |(verb, detail)| Reply::Ok { verb, detail },
            )
            .parse(input),
            "ERR" => map(
                (map_opt(field, ErrorCode::lookup), optional_text),
                |(code, message)| Reply::Err {
                    code,
                    message: message.unwrap_or_default(),
                },
            )
            .parse(input),
            "USERS" => map(names, Reply::Users).parse(input),
            "LRS" => map(names, Reply::Rooms).parse(input),
            "LRU" => map((name, names), |(room, users)| Reply::RoomUsers {
                room,
                users,
            })
            .parse(input),
            "PONG" => map(optional_text, Reply::Pong).parse(input),
            "TOPIC" => map(
                (
                    name,
                    alt((
                        value(None, eof),
                        map((name, time, text), |(by, at, text)| {
                            Some(Topic { text, by, at })
                        }),
                    )),
                ),
                |(room, topic)| Reply::Topic { room, topic },
            )
            .parse(input),
            "PING" => map(text, Reply::Ping).parse(input),
            // `HELP <usage>`: the usage starts with the verb.
            "HELP" => map((preceded(char(' '), verb), rest), |(verb, _)| {
                Reply::Help(verb)
            })
            .parse(input),
            "HIST" => map(
                (history_target, time, name, text),
                |(target, at, from, text)| Reply::Hist {
                    target,
                    at,
                    from,
                    text,
                },
            )
            .parse(input),
            "UNREAD" => map(
                (
                    history_target,
                    map_res(field, str::parse),
                    map_res(field, str::parse),
                ),
                |(target, count, marker)| Reply::Unread {
                    target,
                    count,
                    marker,
                },
            )
            .parse(input),
            "MSG" => map((name, text), |(from, text)| Reply::Msg { from, text }).parse(input),
            "PM" => map((name, text), |(from, text)| Reply::Pm { from, text }).parse(input),
            "RM" => map((name, name, text), |(room, from, text)| Reply::Rm {
                room,
                from,
                text,
            })
            .parse(input),
            "JR" => map((name, name), |(room, user)| Reply::Joined { room, user }).parse(input),
            "LR" => map((name, name), |(room, user)| Reply::Left { room, user }).parse(input),
            "NOTICE" => map(notice, Reply::Notice).parse(input),
            _ => Err(nom::Err::Error(nom::error::Error::new(
                line,
                nom::error::ErrorKind::Tag,
            ))),
        }
    }
}

#[cfg(test)]
mod parse_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    /// Display, then parse: the same reply, spelled the same way.
    fn round_trip(reply: &Reply) {
        let line = reply.to_string();
        let parsed = Reply::parse(&line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&parsed, reply, "{line:?}");
        assert_eq!(parsed.to_string(), line);
    }

    #[test]
    fn every_kind_of_line_round_trips() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_624_800_123);
        let replies = [
            Reply::Hello { guests: true },
            Reply::Hello { guests: false },
            Reply::ok(Verb::Msg),
            Reply::ok_with(Verb::CreateRoom, "lobby"),
            Reply::ok_with(Verb::Pm, "bob queued"),
            Reply::err(ErrorCode::NoSuchRoom, "there is no room x; CR creates it"),
            Reply::Users(vec![name("alice"), name("Bob")]),
            Reply::Users(vec![]),
            Reply::Rooms(vec![]),
            Reply::Rooms(vec![name("dev"), name("lobby")]),
            Reply::RoomUsers {
                room: name("dev"),
                users: vec![],
            },
            Reply::RoomUsers {
                room: name("dev"),
                users: vec![name("a"), name("b")],
            },
            Reply::Pong(None),
            Reply::Pong(Some("a  b".into())),
            Reply::Ping("idle".into()),
            Reply::Help(Verb::History),
            Reply::Msg {
                from: name("bob"),
                text: "hello   all ".into(),
            },
            Reply::Pm {
                from: name("bob"),
                text: "日本語 ok".into(),
            },
            Reply::Rm {
                room: name("dev"),
                from: name("bob"),
                text: "deploy done".into(),
            },
            Reply::Hist {
                target: HistoryTarget::Global,
                at,
                from: name("bob"),
                text: "old news".into(),
            },
            Reply::Hist {
                target: HistoryTarget::Named(name("dev")),
                at,
                from: name("bob"),
                text: "x".into(),
            },
            Reply::Unread {
                target: HistoryTarget::Named(name("dev")),
                count: 12,
                marker: 4321,
            },
            Reply::Joined {
                room: name("dev"),
                user: name("bob"),
            },
            Reply::Left {
                room: name("dev"),
                user: name("bob"),
            },
            Reply::Notice(Notice::Online { user: name("bob") }),
            Reply::Notice(Notice::Offline {
                user: name("bob"),
                how: Departure::Quit(None),
            }),
            Reply::Notice(Notice::Offline {
                user: name("bob"),
                how: Departure::Quit(Some("gone  fishing".into())),
            }),
            Reply::Notice(Notice::Offline {
                user: name("bob"),
                how: Departure::NotReading,
            }),
            Reply::Notice(Notice::RoomCreated {
                room: name("dev"),
                by: name("bob"),
            }),
            Reply::Notice(Notice::Shutdown),
            Reply::Notice(Notice::Closing {
                reason: CloseReason::LoginTimeout,
            }),
            Reply::Topic {
                room: name("dev"),
                topic: None,
            },
            Reply::Topic {
                room: name("dev"),
                topic: Some(Topic {
                    text: "release  on Friday".into(),
                    by: name("bob"),
                    at,
                }),
            },
            Reply::Notice(Notice::Topic {
                room: name("dev"),
                by: name("bob"),
                text: Some("release on Friday".into()),
            }),
            Reply::Notice(Notice::Topic {
                room: name("dev"),
                by: name("bob"),
                text: None,
            }),
        ];
        for reply in &replies {
            round_trip(reply);
        }
        for &code in ErrorCode::ALL {
            round_trip(&Reply::err(code, "why"));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
        }
        for &reason in CloseReason::ALL {
            round_trip(&Reply::Notice(Notice::Closing { reason }));
        }
        for verb in Verb::ALL {
            round_trip(&Reply::Help(verb));
            round_trip(&Reply::ok(verb));
        }
    }

    #[test]
    fn parses_the_lines_of_the_protocol_document() {
        assert_eq!(
            "HIST dev 2026-11-25T16:40:00.123Z alice hi".parse::<Reply>(),
            Ok(Reply::Hist {
                target: HistoryTarget::Named(name("dev")),
                at: humantime::parse_rfc3339("2026-11-25T16:40:00.123Z").unwrap(),
                from: name("alice"),
                text: "hi".into(),
            })
        );
        // A greeting from another version is still a greeting.
        assert_eq!(
            Reply::parse("HELLO linechat 9.9.9 - hi"),
            Ok(Reply::Hello { guests: false })
        );
        assert_eq!(
            Reply::parse("ERR NO_SUCH_USER bob is not online"),
            Ok(Reply::err(ErrorCode::NoSuchUser, "bob is not online"))
        );
        assert!(Reply::parse("OK PM bob").unwrap().is_final());
        assert!(!Reply::parse("PM bob hi").unwrap().is_final());
    }

    #[test]
    fn rejects_lines_that_are_not_replies() {
        for line in [
            "",
            "BOGUS x",
            "OK",
            "OK NOPE",
            "ERR NOPE oops",
            "USERS a  b",
            "USERS a.b",
            "RM dev",
            "JR dev",
            "JR dev bob extra",
            "HIST * yesterday bob hi",
            "NOTICE WHAT",
            "NOTICE OFFLINE bob GONE",
            "TOPIC dev bob",
            "TOPIC dev bob yesterday hi",
            "NOTICE TOPIC dev",
            "ok MSG",
        ] {
            assert!(Reply::parse(line).is_err(), "{line:?}");
        }
    }

    use crate::strategies::{free_text as text_strategy, name as name_strategy};

    fn names_strategy() -> impl Strategy<Value = Vec<Name>> {
        proptest::collection::vec(name_strategy(), 0..5)
    }

    fn verb_strategy() -> impl Strategy<Value = Verb> {
        proptest::sample::select(Verb::ALL.to_vec())
    }

    /// Each variant once: the `match` fails to compile when one is added, so that the
    /// strategies below (and the parser) are updated with it.
    fn departure_strategy() -> impl Strategy<Value = Departure> {
        let all = |quit: Option<String>| {
            let departures = [
                Departure::Quit(quit),
                Departure::Closed,
                Departure::Lost,
                Departure::NotReading,
                Departure::TimedOut,
                Departure::Flooding,
                Departure::Shutdown,
            ];
            for departure in &departures {
                match departure {
                    Departure::Quit(_)
                    | Departure::Closed
                    | Departure::Lost
                    | Departure::NotReading
                    | Departure::TimedOut
                    | Departure::Flooding
                    | Departure::Shutdown => {}
                }
            }
            departures
        };
        (proptest::option::of(text_strategy()), 0..7usize)
            .prop_map(move |(quit, index)| all(quit)[index].clone())
    }

    fn notice_strategy() -> impl Strategy<Value = Notice> {
        prop_oneof![
            name_strategy().prop_map(|user| Notice::Online { user }),
            (name_strategy(), departure_strategy())
                .prop_map(|(user, how)| Notice::Offline { user, how }),
            (name_strategy(), name_strategy())
                .prop_map(|(room, by)| Notice::RoomCreated { room, by }),
            (
                name_strategy(),
                name_strategy(),
                proptest::option::of(text_strategy())
            )
                .prop_map(|(room, by, text)| Notice::Topic { room, by, text }),
            Just(Notice::Shutdown),
            proptest::sample::select(CloseReason::ALL.to_vec())
                .prop_map(|reason| Notice::Closing { reason }),
        ]
    }

    fn reply_strategy() -> impl Strategy<Value = Reply> {
        // HIST times are written to the millisecond, from 1970 to 9999.
        let time = (0u64..253_402_300_799_999)
            .prop_map(|millis| UNIX_EPOCH + Duration::from_millis(millis));
        let target = proptest::option::of(name_strategy())
            .prop_map(|name| name.map_or(HistoryTarget::Global, HistoryTarget::Named));
        prop_oneof![
            any::<bool>().prop_map(|guests| Reply::Hello { guests }),
            (verb_strategy(), proptest::option::of(text_strategy()))
                .prop_map(|(verb, detail)| Reply::Ok { verb, detail }),
            (
                proptest::sample::select(ErrorCode::ALL.to_vec()),
                text_strategy()
            )
                .prop_map(|(code, message)| Reply::Err { code, message }),
            names_strategy().prop_map(Reply::Users),
            names_strategy().prop_map(Reply::Rooms),
            (name_strategy(), names_strategy())
                .prop_map(|(room, users)| Reply::RoomUsers { room, users }),
            proptest::option::of(text_strategy()).prop_map(Reply::Pong),
            (
                name_strategy(),
                proptest::option::of((text_strategy(), name_strategy(), time.clone()))
            )
                .prop_map(|(room, topic)| Reply::Topic {
                    room,
                    topic: topic.map(|(text, by, at)| Topic { text, by, at }),
                }),
            text_strategy().prop_map(Reply::Ping),
            verb_strategy().prop_map(Reply::Help),
            (name_strategy(), text_strategy()).prop_map(|(from, text)| Reply::Msg { from, text }),
            (name_strategy(), text_strategy()).prop_map(|(from, text)| Reply::Pm { from, text }),
            (name_strategy(), name_strategy(), text_strategy())
                .prop_map(|(room, from, text)| Reply::Rm { room, from, text }),
            (target, time, name_strategy(), text_strategy()).prop_map(
                |(target, at, from, text)| Reply::Hist {
                    target,
                    at,
                    from,
                    text
                }
            ),
            (
                proptest::option::of(name_strategy()),
                any::<u64>(),
                any::<i64>()
            )
                .prop_map(|(name, count, marker)| Reply::Unread {
                    target: name.map_or(HistoryTarget::Global, HistoryTarget::Named),
                    count,
                    marker,
                }),
            (name_strategy(), name_strategy())
                .prop_map(|(room, user)| Reply::Joined { room, user }),
            (name_strategy(), name_strategy()).prop_map(|(room, user)| Reply::Left { room, user }),
            notice_strategy().prop_map(Reply::Notice),
        ]
    }

    /// Fails to compile when a kind of line is added, so that the strategy above and the
    /// parser are updated with it.
    fn kind(reply: &Reply) -> &'static str {
        match reply {
            Reply::Hello { .. } => "HELLO",
            Reply::Ok { .. } => "OK",
            Reply::Err { .. } => "ERR",
            Reply::Users(_) => "USERS",
            Reply::Rooms(_) => "LRS",
            Reply::RoomUsers { .. } => "LRU",
            Reply::Pong(_) => "PONG",
            Reply::Topic { .. } => "TOPIC",
            Reply::Ping(_) => "PING",
            Reply::Help(_) => "HELP",
            Reply::Msg { .. } => "MSG",
            Reply::Pm { .. } => "PM",
            Reply::Rm { .. } => "RM",
            Reply::Hist { .. } => "HIST",
            Reply::Unread { .. } => "UNREAD",
            Reply::Joined { .. } => "JR",
            Reply::Left { .. } => "LR",
            Reply::Notice(
                Notice::Online { .. }
                | Notice::Offline { .. }
                | Notice::RoomCreated { .. }
                | Notice::Topic { .. }
                | Notice::Shutdown
                | Notice::Closing { .. },
            ) => "NOTICE",
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_gives_the_same_reply(reply in reply_strategy()) {
            let line = reply.to_string();
            prop_assert!(line.starts_with(kind(&reply)), "{:?}", line);
            let parsed = Reply::parse(&line);
            prop_assert_eq!(parsed.as_ref(), Ok(&reply), "{:?}", line);
            // Names compare without regard to case: check that the spelling survives too.
            prop_assert_eq!(parsed.unwrap().to_string(), line);
        }

        #[test]
        fn parse_never_panics(line in any::<String>()) {
            let _ = Reply::parse(&line);
        }
    }
}
