//! Client commands and the `nom` parser that reads them from a line.

use std::fmt;

use nom::bytes::complete::take_till1;
use nom::character::complete::{one_of, space0, space1};
use nom::combinator::{opt, rest};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use super::name::{Name, NameError};

/// The verbs a client may send. Verbs are matched without regard to case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Register,
    Login,
    Nick,
    Msg,
    Pm,
    Users,
    Cr,
    Jr,
    Lr,
    Lrs,
    Lru,
    Rm,
    Ping,
    Help,
    Quit,
}

impl Verb {
    pub const ALL: [Verb; 15] = [
        Verb::Register,
        Verb::Login,
        Verb::Nick,
        Verb::Msg,
        Verb::Pm,
        Verb::Users,
        Verb::Cr,
        Verb::Jr,
        Verb::Lr,
        Verb::Lrs,
        Verb::Lru,
        Verb::Rm,
        Verb::Ping,
        Verb::Help,
        Verb::Quit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Register => "REGISTER",
            Verb::Login => "LOGIN",
            Verb::Nick => "NICK",
            Verb::Msg => "MSG",
            Verb::Pm => "PM",
            Verb::Users => "USERS",
            Verb::Cr => "CR",
            Verb::Jr => "JR",
            Verb::Lr => "LR",
            Verb::Lrs => "LRS",
            Verb::Lru => "LRU",
            Verb::Rm => "RM",
            Verb::Ping => "PING",
            Verb::Help => "HELP",
            Verb::Quit => "QUIT",
        }
    }

    /// Finds a verb by name, ignoring case and one leading `:` or `/`.
    pub fn lookup(word: &str) -> Option<Verb> {
        let word = word
            .strip_prefix(':')
            .or_else(|| word.strip_prefix('/'))
            .unwrap_or(word);
        Verb::ALL
            .into_iter()
            .find(|verb| verb.as_str().eq_ignore_ascii_case(word))
    }

    /// One line of usage, as `HELP` prints it.
    pub fn usage(self) -> &'static str {
        match self {
            Verb::Register => "REGISTER <name> <password> - create an account and log in",
            Verb::Login => "LOGIN <name> <password> - log in to your account",
            Verb::Nick => "NICK <name> - log in as a guest",
            Verb::Msg => "MSG <text> - message everyone online",
            Verb::Pm => "PM <user> <text> - private message",
            Verb::Users => "USERS - list who is online",
            Verb::Cr => "CR <room> - create a room and join it",
            Verb::Jr => "JR <room> - join a room",
            Verb::Lr => "LR <room> - leave a room",
            Verb::Lrs => "LRS - list rooms",
            Verb::Lru => "LRU <room> - list a room's members",
            Verb::Rm => "RM <room> <text> - message a room you are in",
            Verb::Ping => "PING [token] - the server answers PONG [token]",
            Verb::Help => "HELP [verb] - this help",
            Verb::Quit => "QUIT [reason] - leave the server",
        }
    }

    /// Verbs that work before logging in.
    pub fn allowed_before_login(self) -> bool {
        matches!(
            self,
            Verb::Register | Verb::Login | Verb::Nick | Verb::Ping | Verb::Help | Verb::Quit
        )
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A password as typed by the user. Its `Debug` never shows it, so it cannot end up in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// One parsed client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register { name: Name, password: Password },
    Login { name: Name, password: Password },
    Nick { name: Name },
    Msg { text: String },
    Pm { to: Name, text: String },
    Users,
    CreateRoom { room: Name },
    JoinRoom { room: Name },
    LeaveRoom { room: Name },
    ListRooms,
    ListRoomUsers { room: Name },
    RoomMessage { room: Name, text: String },
    Ping { token: Option<String> },
    Help { verb: Option<Verb> },
    Quit { reason: Option<String> },
}

/// Why a line is not a command. Each maps to one stable error code on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown command {0:?}; HELP lists the commands")]
    UnknownCommand(String),
    #[error("missing argument; usage: {}", .0.usage())]
    MissingArgument(Verb),
    #[error("too many arguments; usage: {}", .0.usage())]
    TooManyArguments(Verb),
    #[error("bad name {name:?}: {error}")]
    BadName { name: String, error: NameError },
    #[error("control characters are not allowed")]
    ControlCharacter,
}

impl Command {
    /// Parses one line (without its line ending). Blank lines are `Ok(None)`: they are ignored,
    /// not errors, so a stray Enter in telnet costs nothing.
    pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::ControlCharacter);
        }
        let line = line.trim_matches(is_separator);
        if line.is_empty() {
            return Ok(None);
        }
        let (args, word) = word(line).expect("a non-blank line starts with a word");
        let verb = Verb::lookup(word).ok_or_else(|| ParseError::UnknownCommand(word.into()))?;
        let args = Args { verb, rest: args };
        let command = match verb {
            Verb::Register => {
                let (name, password) = args.name_and_text()?;
                Command::Register {
                    name,
                    password: Password::new(password),
                }
            }
            Verb::Login => {
                let (name, password) = args.name_and_text()?;
                Command::Login {
                    name,
                    password: Password::new(password),
                }
            }
            Verb::Nick => Command::Nick { name: args.name()? },
            Verb::Msg => Command::Msg { text: args.text()? },
            Verb::Pm => {
                let (to, text) = args.name_and_text()?;
                Command::Pm { to, text }
            }
            Verb::Users => args.none(Command::Users)?,
            Verb::Cr => Command::CreateRoom { room: args.name()? },
            Verb::Jr => Command::JoinRoom { room: args.name()? },
            Verb::Lr => Command::LeaveRoom { room: args.name()? },
            Verb::Lrs => args.none(Command::ListRooms)?,
            Verb::Lru => Command::ListRoomUsers { room: args.name()? },
            Verb::Rm => {
                let (room, text) = args.name_and_text()?;
                Command::RoomMessage { room, text }
            }
            Verb::Ping => Command::Ping {
                token: args.optional_text(),
            },
            Verb::Help => Command::Help {
                verb: args.optional_verb()?,
            },
            Verb::Quit => Command::Quit {
                reason: args.optional_text(),
            },
        };
        Ok(Some(command))
    }

    pub fn verb(&self) -> Verb {
        match self {
            Command::Register { .. } => Verb::Register,
            Command::Login { .. } => Verb::Login,
            Command::Nick { .. } => Verb::Nick,
            Command::Msg { .. } => Verb::Msg,
            Command::Pm { .. } => Verb::Pm,
            Command::Users => Verb::Users,
            Command::CreateRoom { .. } => Verb::Cr,
            Command::JoinRoom { .. } => Verb::Jr,
            Command::LeaveRoom { .. } => Verb::Lr,
            Command::ListRooms => Verb::Lrs,
            Command::ListRoomUsers { .. } => Verb::Lru,
            Command::RoomMessage { .. } => Verb::Rm,
            Command::Ping { .. } => Verb::Ping,
            Command::Help { .. } => Verb::Help,
            Command::Quit { .. } => Verb::Quit,
        }
    }
}

/// Writes the command in its canonical wire form, which [`Command::parse`] reads back.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        match self {
            Command::Register { name, password } | Command::Login { name, password } => {
                write!(f, "{verb} {name} {}", password.expose())
            }
            Command::Nick { name } => write!(f, "{verb} {name}"),
            Command::Msg { text } => write!(f, "{verb} {text}"),
            Command::Pm { to, text } => write!(f, "{verb} {to} {text}"),
            Command::Users | Command::ListRooms => write!(f, "{verb}"),
            Command::CreateRoom { room }
            | Command::JoinRoom { room }
            | Command::LeaveRoom { room }
            | Command::ListRoomUsers { room } => write!(f, "{verb} {room}"),
            Command::RoomMessage { room, text } => write!(f, "{verb} {room} {text}"),
            Command::Ping { token: None }
            | Command::Quit { reason: None }
            | Command::Help { verb: None } => write!(f, "{verb}"),
            Command::Ping { token: Some(text) } | Command::Quit { reason: Some(text) } => {
                write!(f, "{verb} {text}")
            }
            Command::Help { verb: Some(topic) } => write!(f, "{verb} {topic}"),
        }
    }
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A word, and the input after the separators that follow it.
fn word(input: &str) -> IResult<&str, &str> {
    let (input, word) = take_till1(is_separator).parse(input)?;
    let (input, _) = space0(input)?;
    Ok((input, word))
}

/// A word with a `:` or `/` prefix allowed, as the verb of `HELP :pm`.
fn prefixed_word(input: &str) -> IResult<&str, &str> {
    preceded(opt(one_of(":/")), take_till1(is_separator)).parse(input)
}

/// A name followed by at least one separator and the rest of the line.
fn name_then_text(input: &str) -> IResult<&str, (&str, &str)> {
    (take_till1(is_separator), preceded(space1, rest)).parse(input)
}

/// The arguments after a verb, trimmed at both ends.
struct Args<'a> {
    verb: Verb,
    rest: &'a str,
}

impl Args<'_> {
    fn none(&self, command: Command) -> Result<Command, ParseError> {
        if self.rest.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::TooManyArguments(self.verb))
        }
    }

    fn name(&self) -> Result<Name, ParseError> {
        match word(self.rest) {
            Ok(("", name)) => parse_name(name),
            Ok(_) => Err(ParseError::TooManyArguments(self.verb)),
            Err(_) => Err(ParseError::MissingArgument(self.verb)),
        }
    }

    fn name_and_text(&self) -> Result<(Name, String), ParseError> {
        let (_, (name, text)) =
            name_then_text(self.rest).map_err(|_| ParseError::MissingArgument(self.verb))?;
        Ok((parse_name(name)?, text.to_owned()))
    }

    fn text(&self) -> Result<String, ParseError> {
        self.optional_text()
            .ok_or(ParseError::MissingArgument(self.verb))
    }

    fn optional_text(&self) -> Option<String> {
        (!self.rest.is_empty()).then(|| self.rest.to_owned())
    }

    fn optional_verb(&self) -> Result<Option<Verb>, ParseError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        match prefixed_word(self.rest) {
            Ok(("", topic)) => Verb::lookup(topic)
                .map(Some)
                .ok_or_else(|| ParseError::UnknownCommand(topic.into())),
            _ => Err(ParseError::TooManyArguments(self.verb)),
        }
    }
}

fn parse_name(raw: &str) -> Result<Name, ParseError> {
    Name::parse(raw).map_err(|error| ParseError::BadName {
        name: raw.into(),
        error,
    })
}
