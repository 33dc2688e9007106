//! Client commands and the `nom` parser that reads them from a line.

use std::fmt;

use nom::bytes::complete::take_till1;
use nom::character::complete::{space0, space1};
use nom::combinator::rest;
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
    History,
    Ping,
    Pong,
    Help,
    Quit,
}

impl Verb {
    pub const ALL: [Verb; 17] = [
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
        Verb::History,
        Verb::Ping,
        Verb::Pong,
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
            Verb::History => "HISTORY",
            Verb::Ping => "PING",
            Verb::Pong => "PONG",
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
            Verb::History => {
                "HISTORY <*|room|user> [count] - past messages: global, a room you are in, or your private talk with a user"
            }
            Verb::Ping => "PING [token] - the server answers PONG [token]",
            Verb::Pong => "PONG [token] - answer to the server's PING; it gets no reply",
            Verb::Help => "HELP [verb] - this help",
            Verb::Quit => "QUIT [reason] - leave the server",
        }
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
    Register {
        name: Name,
        password: Password,
    },
    Login {
        name: Name,
        password: Password,
    },
    Nick {
        name: Name,
    },
    Msg {
        text: String,
    },
    Pm {
        to: Name,
        text: String,
    },
    Users,
    CreateRoom {
        room: Name,
    },
    JoinRoom {
        room: Name,
    },
    LeaveRoom {
        room: Name,
    },
    ListRooms,
    ListRoomUsers {
        room: Name,
    },
    RoomMessage {
        room: Name,
        text: String,
    },
    History {
        target: HistoryTarget,
        count: Option<u32>,
    },
    Ping {
        token: Option<String>,
    },
    Pong {
        token: Option<String>,
    },
    Help {
        verb: Option<Verb>,
    },
    Quit {
        reason: Option<String>,
    },
}

/// What `HISTORY` reads: `*` for global messages, or a name: a room you are in, else the
/// private conversation with that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryTarget {
    Global,
    Named(Name),
}

impl fmt::Display for HistoryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryTarget::Global => f.write_str("*"),
            HistoryTarget::Named(name) => write!(f, "{name}"),
        }
    }
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
    #[error("invisible or direction-changing character U+{:04X} is not allowed", u32::from(*.0))]
    InvisibleCharacter(char),
    #[error("{count:?} is not a count: use a whole number from 1; usage: {}", verb.usage())]
    BadCount { count: String, verb: Verb },
}

impl Command {
    /// Parses one line (without its line ending). Blank lines are `Ok(None)`: they are ignored,
    /// not errors, so a stray Enter in telnet costs nothing.
    pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
        // Printable ASCII and tabs, most lines, hold no control or invisible character: one
        // quick pass over the bytes instead of a check of every character.
        let plain = line.bytes().all(|b| matches!(b, b' '..=b'~' | b'\t'));
        let mut rest = if plain { "" } else { line };
        while let Some(c) = rest.chars().next() {
            if c.is_control() && c != '\t' {
                return Err(ParseError::ControlCharacter);
            }
            rest = &rest[c.len_utf8()..];
            if c == BLACK_FLAG {
                rest = skip_subdivision_flag_tags(rest);
            } else if is_invisible(c) {
                return Err(ParseError::InvisibleCharacter(c));
            }
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
            Verb::History => {
                let (target, count) = args.history()?;
                Command::History { target, count }
            }
            Verb::Ping => Command::Ping {
                token: args.optional_text(),
            },
            Verb::Pong => Command::Pong {
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
            Command::History { .. } => Verb::History,
            Command::Ping { .. } => Verb::Ping,
            Command::Pong { .. } => Verb::Pong,
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
            Command::History {
                target,
                count: None,
            } => write!(f, "{verb} {target}"),
            Command::History {
                target,
                count: Some(count),
            } => write!(f, "{verb} {target} {count}"),
            Command::Ping { token: None }
            | Command::Pong { token: None }
            | Command::Quit { reason: None }
            | Command::Help { verb: None } => write!(f, "{verb}"),
            Command::Ping { token: Some(text) }
            | Command::Pong { token: Some(text) }
            | Command::Quit { reason: Some(text) } => {
                write!(f, "{verb} {text}")
            }
            Command::Help { verb: Some(topic) } => write!(f, "{verb} {topic}"),
        }
    }
}

/// Whether `c` is refused in a line although it is not a control character: it shows as
/// nothing, or it changes the direction of the text around it, so a line holding it may show
/// something else than it says (a "Trojan Source" reversal, a blank-looking message, a name
/// in a text padded to look like another, text hidden in tag characters). These are the bidi
/// embeddings, overrides, isolates and marks; the zero-width and fillers that render as
/// nothing (including Hangul fillers and the soft hyphen); the Unicode line and paragraph
/// separators; and the tag characters.
///
/// Kept: U+200D (zero-width joiner) and the variation selectors U+FE0E/U+FE0F, which emoji
/// sequences need, and U+200C (zero-width non-joiner), which Persian and Indic scripts need
/// to be spelt right. Right-to-left letters themselves are of course fine. The parser also
/// lets through the tags of the three subdivision flag emoji (England, Scotland, Wales).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                     // soft hyphen
            | '\u{061C}'               // Arabic letter mark
            | '\u{115F}' | '\u{1160}' // Hangul choseong and jungseong fillers
            | '\u{180E}'               // Mongolian vowel separator
            | '\u{200B}'               // zero-width space
            | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{3164}'               // Hangul filler
            | '\u{FEFF}'               // zero-width no-break space (byte order mark)
            | '\u{FFA0}'               // halfwidth Hangul filler
            | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// The base of the flags of subdivisions (England, Scotland, Wales): U+1F3F4 followed by tag
/// characters spelling the region, then U+E007F.
const BLACK_FLAG: char = '\u{1F3F4}';

/// The regions whose flags are emoji (Unicode's recommended set): the only tag sequences
/// allowed, so that tag characters cannot carry hidden text.
const FLAG_REGIONS: [&str; 3] = ["gbeng", "gbsct", "gbwls"];

/// After a U+1F3F4, skips the tags of one of [`FLAG_REGIONS`] and its cancel tag; anything
/// else is left for the caller to check (and refuse, if it is a tag).
fn skip_subdivision_flag_tags(after_flag: &str) -> &str {
    const CANCEL_TAG: char = '\u{E007F}';
    let tags_end = after_flag
        .char_indices()
        .find(|&(_, c)| !('\u{E0020}'..='\u{E007E}').contains(&c))
        .map_or(after_flag.len(), |(at, _)| at);
    let (tags, rest) = after_flag.split_at(tags_end);
    // Tag characters U+E0020..U+E007E mirror ASCII U+0020..U+007E.
    let region: String = tags
        .chars()
        .filter_map(|c| char::from_u32(u32::from(c) - 0xE0000))
        .collect();
    match rest.strip_prefix(CANCEL_TAG) {
        Some(rest) if FLAG_REGIONS.contains(&region.as_str()) => rest,
        _ => after_flag,
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

    fn history(&self) -> Result<(HistoryTarget, Option<u32>), ParseError> {
        let Ok((rest, target)) = word(self.rest) else {
            return Err(ParseError::MissingArgument(self.verb));
        };
        let target = match target {
            "*" => HistoryTarget::Global,
            name => HistoryTarget::Named(parse_name(name)?),
        };
        let count = match word(rest) {
            Err(_) => None,
            Ok(("", count)) => match count.parse::<u32>() {
                Ok(count) if count > 0 => Some(count),
                _ => {
                    let (count, verb) = (count.into(), self.verb);
                    return Err(ParseError::BadCount { count, verb });
                }
            },
            Ok(_) => return Err(ParseError::TooManyArguments(self.verb)),
        };
        Ok((target, count))
    }

    fn optional_verb(&self) -> Result<Option<Verb>, ParseError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        match word(self.rest) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::MAX_NAME_LEN;
    use proptest::prelude::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    /// Parses a line that must hold a command.
    fn parse(line: &str) -> Command {
        match Command::parse(line) {
            Ok(Some(command)) => command,
            other => panic!("{line:?} parsed to {other:?}"),
        }
    }

    fn parse_err(line: &str) -> ParseError {
        match Command::parse(line) {
            Err(error) => error,
            other => panic!("{line:?} should fail, parsed to {other:?}"),
        }
    }

    fn bad_name(raw: &str, error: NameError) -> ParseError {
        ParseError::BadName {
            name: raw.into(),
            error,
        }
    }

    #[test]
    fn parses_every_verb_with_its_arguments() {
        let cases = [
            (
                "REGISTER alice s3cret",
                Command::Register {
                    name: name("alice"),
                    password: Password::new("s3cret"),
                },
            ),
            (
                "LOGIN alice s3cret",
                Command::Login {
                    name: name("alice"),
                    password: Password::new("s3cret"),
                },
            ),
            ("NICK bob", Command::Nick { name: name("bob") }),
            (
                "MSG hello",
                Command::Msg {
                    text: "hello".into(),
                },
            ),
            (
                "PM bob hi",
                Command::Pm {
                    to: name("bob"),
                    text: "hi".into(),
                },
            ),
            ("USERS", Command::Users),
            (
                "CR lobby",
                Command::CreateRoom {
                    room: name("lobby"),
                },
            ),
            (
                "JR lobby",
                Command::JoinRoom {
                    room: name("lobby"),
                },
            ),
            (
                "LR lobby",
                Command::LeaveRoom {
                    room: name("lobby"),
                },
            ),
            ("LRS", Command::ListRooms),
            (
                "LRU lobby",
                Command::ListRoomUsers {
                    room: name("lobby"),
                },
            ),
            (
                "RM lobby hi",
                Command::RoomMessage {
                    room: name("lobby"),
                    text: "hi".into(),
                },
            ),
            ("PING", Command::Ping { token: None }),
            ("HELP", Command::Help { verb: None }),
            ("QUIT", Command::Quit { reason: None }),
            (
                "PONG x1",
                Command::Pong {
                    token: Some("x1".into()),
                },
            ),
            (
                "HISTORY *",
                Command::History {
                    target: HistoryTarget::Global,
                    count: None,
                },
            ),
            (
                "HISTORY Dev 20",
                Command::History {
                    target: HistoryTarget::Named(Name::parse("Dev").unwrap()),
                    count: Some(20),
                },
            ),
        ];
        let mut seen = Vec::new();
        for (line, expected) in cases {
            let command = parse(line);
            assert_eq!(command, expected, "{line:?}");
            assert_eq!(command.to_string(), line, "canonical form of {line:?}");
            seen.push(command.verb());
        }
        for verb in Verb::ALL {
            assert!(seen.contains(&verb), "no case for {verb}");
        }
    }

    #[test]
    fn verbs_ignore_case_and_one_leading_colon_or_slash() {
        for verb in Verb::ALL {
            let upper = verb.as_str();
            let lower = upper.to_ascii_lowercase();
            for word in [
                upper.to_owned(),
                lower.clone(),
                format!(":{upper}"),
                format!("/{lower}"),
            ] {
                assert_eq!(Verb::lookup(&word), Some(verb), "{word:?}");
            }
            assert_eq!(Verb::lookup(&format!("::{upper}")), None);
            assert_eq!(Verb::lookup(&format!("/:{upper}")), None);
        }
        assert_eq!(parse("nick bob"), Command::Nick { name: name("bob") });
        assert_eq!(parse("NiCk bob"), Command::Nick { name: name("bob") });
        assert_eq!(parse(":nick bob"), Command::Nick { name: name("bob") });
        assert_eq!(parse("/NICK bob"), Command::Nick { name: name("bob") });
        assert_eq!(parse("/lrs"), Command::ListRooms);
        assert_eq!(parse(":Users"), Command::Users);
        assert_eq!(
            parse("/pm bob hi"),
            Command::Pm {
                to: name("bob"),
                text: "hi".into(),
            }
        );
    }

    #[test]
    fn display_is_the_canonical_upper_case_form() {
        assert_eq!(parse("/nick   Bob").to_string(), "NICK Bob");
        assert_eq!(parse("help :pm").to_string(), "HELP PM");
        assert_eq!(parse(" rm\tLobby  a  b ").to_string(), "RM Lobby a  b");
    }

    #[test]
    fn text_is_the_rest_of_the_line_with_inner_spaces_kept() {
        assert_eq!(
            parse("MSG hello   big \t world"),
            Command::Msg {
                text: "hello   big \t world".into()
            }
        );
        assert_eq!(
            parse("PM bob  a  b  c"),
            Command::Pm {
                to: name("bob"),
                text: "a  b  c".into(),
            }
        );
        assert_eq!(
            parse("RM lobby :) see /you at 5:00"),
            Command::RoomMessage {
                room: name("lobby"),
                text: ":) see /you at 5:00".into(),
            }
        );
        assert_eq!(
            parse("REGISTER alice correct horse  battery"),
            Command::Register {
                name: name("alice"),
                password: Password::new("correct horse  battery"),
            }
        );
        assert_eq!(
            parse("MSG héllo wörld ✓"),
            Command::Msg {
                text: "héllo wörld ✓".into()
            }
        );
    }

    #[test]
    fn separators_may_be_several_spaces_or_tabs() {
        assert_eq!(parse("NICK \t  bob"), Command::Nick { name: name("bob") });
        assert_eq!(parse("NICK\tbob"), Command::Nick { name: name("bob") });
        assert_eq!(
            parse("PM\t\tbob \t hi there"),
            Command::Pm {
                to: name("bob"),
                text: "hi there".into(),
            }
        );
        assert_eq!(
            parse("LOGIN   alice\tpw"),
            Command::Login {
                name: name("alice"),
                password: Password::new("pw"),
            }
        );
        assert_eq!(
            parse("HELP \t rm"),
            Command::Help {
                verb: Some(Verb::Rm)
            }
        );
    }

    #[test]
    fn leading_and_trailing_whitespace_is_ignored() {
        assert_eq!(parse("  USERS  "), Command::Users);
        assert_eq!(parse("\tLRS\t"), Command::ListRooms);
        assert_eq!(
            parse(" \t NICK bob \t "),
            Command::Nick { name: name("bob") }
        );
        assert_eq!(
            parse("  RM lobby  hi  there \t"),
            Command::RoomMessage {
                room: name("lobby"),
                text: "hi  there".into(),
            }
        );
        assert_eq!(
            parse("PING  tok \t"),
            Command::Ping {
                token: Some("tok".into())
            }
        );
    }

    #[test]
    fn blank_lines_are_none() {
        for line in ["", " ", "   ", "\t", " \t \t "] {
            assert_eq!(Command::parse(line), Ok(None), "{line:?}");
        }
    }

    #[test]
    fn unknown_verbs_are_errors() {
        assert_eq!(parse_err("FOO"), ParseError::UnknownCommand("FOO".into()));
        assert_eq!(
            parse_err("hello there"),
            ParseError::UnknownCommand("hello".into())
        );
        assert_eq!(
            parse_err("NICKY bob"),
            ParseError::UnknownCommand("NICKY".into())
        );
        assert_eq!(
            parse_err("::nick bob"),
            ParseError::UnknownCommand("::nick".into())
        );
        assert_eq!(parse_err(":"), ParseError::UnknownCommand(":".into()));
        assert_eq!(parse_err("/"), ParseError::UnknownCommand("/".into()));
        assert_eq!(parse_err("é"), ParseError::UnknownCommand("é".into()));
    }

    #[test]
    fn missing_arguments_are_errors() {
        let cases = [
            ("REGISTER", Verb::Register),
            ("REGISTER alice", Verb::Register),
            ("REGISTER alice   ", Verb::Register),
            ("LOGIN", Verb::Login),
            ("LOGIN alice", Verb::Login),
            ("NICK", Verb::Nick),
            ("NICK \t ", Verb::Nick),
            ("MSG", Verb::Msg),
            ("MSG   ", Verb::Msg),
            ("PM", Verb::Pm),
            ("PM bob", Verb::Pm),
            ("PM bob\t", Verb::Pm),
            ("CR", Verb::Cr),
            ("JR", Verb::Jr),
            ("LR", Verb::Lr),
            ("LRU", Verb::Lru),
            ("RM", Verb::Rm),
            ("RM lobby", Verb::Rm),
        ];
        for (line, verb) in cases {
            assert_eq!(
                parse_err(line),
                ParseError::MissingArgument(verb),
                "{line:?}"
            );
        }
    }

    #[test]
    fn too_many_arguments_are_errors() {
        let cases = [
            ("USERS x", Verb::Users),
            ("LRS x", Verb::Lrs),
            ("NICK a b", Verb::Nick),
            ("NICK a\tb", Verb::Nick),
            ("CR a b", Verb::Cr),
            ("JR a b", Verb::Jr),
            ("LR a b", Verb::Lr),
            ("LRU a b", Verb::Lru),
            ("HELP pm x", Verb::Help),
        ];
        for (line, verb) in cases {
            assert_eq!(
                parse_err(line),
                ParseError::TooManyArguments(verb),
                "{line:?}"
            );
        }
    }

    #[test]
    fn bad_names_are_errors() {
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            parse_err("NICK a.b"),
            bad_name("a.b", NameError::BadCharacter)
        );
        assert_eq!(
            parse_err(&format!("NICK {too_long}")),
            bad_name(&too_long, NameError::TooLong)
        );
        assert_eq!(parse_err("PM é hi"), bad_name("é", NameError::BadCharacter));
        assert_eq!(
            parse_err("RM #lobby hi"),
            bad_name("#lobby", NameError::BadCharacter)
        );
        assert_eq!(
            parse_err("REGISTER a:b pw"),
            bad_name("a:b", NameError::BadCharacter)
        );
        assert_eq!(
            parse_err("JR lobby!"),
            bad_name("lobby!", NameError::BadCharacter)
        );
        let longest = "a".repeat(MAX_NAME_LEN);
        assert_eq!(
            parse(&format!("CR {longest}")),
            Command::CreateRoom {
                room: name(&longest)
            }
        );
    }

    #[test]
    fn control_characters_are_errors() {
        for line in [
            "MSG a\0b",
            "MSG a\rb",
            "MSG a\nb",
            "MSG bell\u{7}",
            "NICK bob\u{7f}",
            "\u{1b}[31mMSG red",
            "MSG next\u{85}line",
            "\0",
            "PM bob \u{1}",
            "LOGIN alice pw\u{8}",
        ] {
            assert_eq!(parse_err(line), ParseError::ControlCharacter, "{line:?}");
        }
        // A tab is a separator, not a control character, even inside text.
        assert_eq!(
            parse("MSG a\tb"),
            Command::Msg {
                text: "a\tb".into()
            }
        );
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_errors() {
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}', // embeddings, overrides
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}', // isolates
            '\u{200E}',
            '\u{200F}',
            '\u{061C}', // direction marks
            '\u{200B}',
            '\u{2060}',
            '\u{2061}',
            '\u{2062}',
            '\u{2063}',
            '\u{2064}',
            '\u{FEFF}',
            '\u{180E}',
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{00AD}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0000}',
            '\u{E0041}',
            '\u{E007F}',
        ] {
            for line in [
                format!("MSG a{c}b"),
                format!("PM bob {c}"),
                format!("{c}MSG hi"),
            ] {
                assert_eq!(
                    parse_err(&line),
                    ParseError::InvisibleCharacter(c),
                    "{line:?}"
                );
            }
        }
        // Tags are allowed only as the flag of England, Scotland or Wales: not to hide text
        // after a black flag, nor left open.
        for (line, refused) in [
            ("MSG \u{1F3F4}\u{E0068}\u{E0069}\u{E007F}", '\u{E0068}'),
            (
                "MSG \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}",
                '\u{E0067}',
            ),
            ("MSG \u{1F3F4}\u{E007F}", '\u{E007F}'),
            (
                "MSG \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}\u{E007F}",
                '\u{E007F}',
            ),
        ] {
            assert_eq!(
                parse_err(line),
                ParseError::InvisibleCharacter(refused),
                "{line:?}"
            );
        }
        // The message names the character, so that a user can find it.
        assert_eq!(
            ParseError::InvisibleCharacter('\u{202E}').to_string(),
            "invisible or direction-changing character U+202E is not allowed"
        );
        assert!(
            ParseError::InvisibleCharacter('\u{E0041}')
                .to_string()
                .contains(" U+E0041 ")
        );
    }

    #[test]
    fn emoji_sequences_and_joining_marks_stay_allowed() {
        for text in [
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", // family: zero-width joiners
            "\u{2764}\u{FE0F}",                            // emoji presentation selector
            "\u{2764}\u{FE0E}",                            // text presentation selector
            "\u{1F3F4}\u{200D}\u{2620}\u{FE0F}",           // pirate flag
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} and \u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}", // England, Wales
            "\u{1F3F4}", // a black flag alone
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0645}", // Persian: zero-width non-joiner
            "\u{05E9}\u{05DC}\u{05D5}\u{05DD} and \u{0645}\u{0631}\u{062D}\u{0628}\u{0627}", // right-to-left letters
        ] {
            assert_eq!(
                parse(&format!("MSG {text}")),
                Command::Msg { text: text.into() },
                "{text:?}"
            );
        }
    }

    #[test]
    fn help_takes_an_optional_verb() {
        assert_eq!(parse("HELP"), Command::Help { verb: None });
        assert_eq!(
            parse("HELP pm"),
            Command::Help {
                verb: Some(Verb::Pm)
            }
        );
        assert_eq!(
            parse("help LRU"),
            Command::Help {
                verb: Some(Verb::Lru)
            }
        );
        assert_eq!(
            parse("HELP :quit"),
            Command::Help {
                verb: Some(Verb::Quit)
            }
        );
        assert_eq!(
            parse("HELP /Nick"),
            Command::Help {
                verb: Some(Verb::Nick)
            }
        );
        for verb in Verb::ALL {
            assert_eq!(
                parse(&format!("HELP {verb}")),
                Command::Help { verb: Some(verb) }
            );
        }
    }

    #[test]
    fn help_with_an_unknown_verb_is_an_error() {
        assert_eq!(
            parse_err("HELP foo"),
            ParseError::UnknownCommand("foo".into())
        );
        assert!(matches!(
            parse_err("HELP :foo"),
            ParseError::UnknownCommand(_)
        ));
    }

    /// `HELP :` names one (unknown) verb, exactly as the line `:` does; it is not "too many
    /// arguments". `prefixed_word` eats the `:` and then finds no word.
    #[test]
    fn help_with_a_bare_prefix_is_an_unknown_verb() {
        for line in ["HELP :", "HELP /"] {
            assert!(
                matches!(parse_err(line), ParseError::UnknownCommand(_)),
                "{line:?} gave {:?}",
                Command::parse(line)
            );
        }
    }

    /// `Verb::lookup` allows one leading `:` or `/`, and `::nick` is an unknown command; but
    /// `HELP` strips a prefix in `prefixed_word` and then again in `lookup`, so it accepts two.
    #[test]
    fn help_allows_only_one_prefix_like_a_verb() {
        for line in ["HELP ::pm", "HELP /:pm", "HELP //pm"] {
            assert!(
                matches!(parse_err(line), ParseError::UnknownCommand(_)),
                "{line:?} gave {:?}",
                Command::parse(line)
            );
        }
    }

    #[test]
    fn ping_and_quit_take_optional_text() {
        assert_eq!(parse("PING"), Command::Ping { token: None });
        assert_eq!(
            parse("PING 42"),
            Command::Ping {
                token: Some("42".into())
            }
        );
        assert_eq!(
            parse("PING a  b"),
            Command::Ping {
                token: Some("a  b".into())
            }
        );
        assert_eq!(parse("QUIT"), Command::Quit { reason: None });
        assert_eq!(parse("QUIT  "), Command::Quit { reason: None });
        assert_eq!(
            parse("QUIT gone  fishing"),
            Command::Quit {
                reason: Some("gone  fishing".into())
            }
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        for line in ["LOGIN alice hunter2", "REGISTER alice hunter2"] {
            let command = parse(line);
            let debug = format!("{command:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(debug.contains("alice"), "{debug}");
            let pretty = format!("{command:#?}");
            assert!(!pretty.contains("hunter2"), "{pretty}");
        }
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(..)");
        // Nor does an error about a login line.
        let error = parse_err("LOGIN al.ice hunter2");
        assert!(!format!("{error:?} {error}").contains("hunter2"));
    }

    // Property tests.

    fn name_strategy() -> impl Strategy<Value = Name> {
        crate::strategies::name()
    }

    /// Non-empty text without control characters that neither starts nor ends with
    /// whitespace; runs of inner spaces are common.
    fn text_strategy() -> impl Strategy<Value = String> {
        crate::strategies::free_text()
            .prop_map(|text| text.trim().to_owned())
            .prop_filter("non-empty", |text| !text.is_empty())
    }

    fn password_strategy() -> impl Strategy<Value = Password> {
        text_strategy().prop_map(Password::new)
    }

    fn verb_strategy() -> impl Strategy<Value = Verb> {
        proptest::sample::select(Verb::ALL.to_vec())
    }

    fn command_strategy() -> impl Strategy<Value = Command> {
        prop_oneof![
            (name_strategy(), password_strategy())
                .prop_map(|(name, password)| Command::Register { name, password }),
            (name_strategy(), password_strategy())
                .prop_map(|(name, password)| Command::Login { name, password }),
            name_strategy().prop_map(|name| Command::Nick { name }),
            text_strategy().prop_map(|text| Command::Msg { text }),
            (name_strategy(), text_strategy()).prop_map(|(to, text)| Command::Pm { to, text }),
            Just(Command::Users),
            name_strategy().prop_map(|room| Command::CreateRoom { room }),
            name_strategy().prop_map(|room| Command::JoinRoom { room }),
            name_strategy().prop_map(|room| Command::LeaveRoom { room }),
            Just(Command::ListRooms),
            name_strategy().prop_map(|room| Command::ListRoomUsers { room }),
            (name_strategy(), text_strategy())
                .prop_map(|(room, text)| Command::RoomMessage { room, text }),
            proptest::option::of(text_strategy()).prop_map(|token| Command::Ping { token }),
            proptest::option::of(text_strategy()).prop_map(|token| Command::Pong { token }),
            proptest::option::of(verb_strategy()).prop_map(|verb| Command::Help { verb }),
            proptest::option::of(text_strategy()).prop_map(|reason| Command::Quit { reason }),
            (
                proptest::option::of(name_strategy()),
                proptest::option::of(1u32..),
            )
                .prop_map(|(name, count)| Command::History {
                    target: name.map_or(HistoryTarget::Global, HistoryTarget::Named),
                    count,
                }),
        ]
    }

    #[test]
    fn history_takes_a_target_and_an_optional_positive_count() {
        for bad in [
            "HISTORY * 0",
            "HISTORY * -1",
            "HISTORY * ten",
            "HISTORY * 99999999999",
        ] {
            assert!(
                matches!(Command::parse(bad), Err(ParseError::BadCount { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            Command::parse("HISTORY"),
            Err(ParseError::MissingArgument(Verb::History))
        );
        assert_eq!(
            Command::parse("HISTORY * 1 2"),
            Err(ParseError::TooManyArguments(Verb::History))
        );
        assert!(matches!(
            Command::parse("HISTORY #dev"),
            Err(ParseError::BadName { .. })
        ));
    }

    /// Lines that look like commands: a verb, maybe prefixed, then pieces that are likely to
    /// trip a parser (separators, prefixes, control characters, non-ASCII).
    fn command_like_line() -> impl Strategy<Value = String> {
        let verb = (
            proptest::sample::select(vec!["", ":", "/", "::"]),
            verb_strategy(),
            any::<bool>(),
        )
            .prop_map(|(prefix, verb, lower)| {
                let verb = verb.as_str();
                let verb = if lower {
                    verb.to_ascii_lowercase()
                } else {
                    verb.to_owned()
                };
                format!("{prefix}{verb}")
            });
        let piece = prop_oneof![
            proptest::sample::select(vec![
                " ",
                "\t",
                ":",
                "/",
                "a",
                "bob",
                "é",
                "\0",
                "\r",
                "\n",
                "\u{7f}",
                "\u{85}",
                "\u{3000}",
                "\u{feff}",
                "_",
                "-",
                "pm",
                "\u{1F600}",
            ])
            .prop_map(str::to_owned),
            "[A-Za-z0-9_-]{30,34}",
            any::<String>(),
        ];
        ("[ \t]{0,2}", verb, proptest::collection::vec(piece, 0..8))
            .prop_map(|(lead, verb, pieces)| format!("{lead}{verb}{}", pieces.concat()))
    }

    /// A successful parse must be stable: its canonical form parses back to the same command.
    fn check_reparses(line: &str) -> Result<(), TestCaseError> {
        if let Ok(Some(command)) = Command::parse(line) {
            let canonical = command.to_string();
            prop_assert_eq!(
                Command::parse(&canonical),
                Ok(Some(command)),
                "{:?}",
                canonical
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(line in any::<String>()) {
            let _ = Command::parse(&line);
            check_reparses(&line)?;
        }

        #[test]
        fn parse_never_panics_on_command_like_lines(line in command_like_line()) {
            let _ = Command::parse(&line);
            check_reparses(&line)?;
        }

        #[test]
        fn valid_commands_survive_display_then_parse(command in command_strategy()) {
            let line = command.to_string();
            let parsed = Command::parse(&line);
            prop_assert_eq!(parsed.as_ref(), Ok(&Some(command.clone())), "{:?}", line);
            // Names compare without regard to case, so check that case survives too.
            prop_assert_eq!(parsed.unwrap().unwrap().to_string(), line);
        }
    }
}
