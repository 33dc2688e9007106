//! A command's arguments: how each kind is read from the rest of a line and written back.
//!
//! The command table ([`super::command_table`]) gives each command its fields; their types say
//! how they are read, through [`Arg`]. A name or a count is one word; text (`String`, a
//! password) is the rest of the line, so it comes last; `Option` makes an argument optional.

use std::fmt;

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_till1;
use nom::character::complete::space0;

use super::{ParseError, Verb};
use crate::name::Name;

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

/// The arguments after a verb, read from left to right.
pub(super) struct Args<'a> {
    verb: Verb,
    rest: &'a str,
}

impl<'a> Args<'a> {
    /// `rest` is the line after the verb and its separators, with no trailing separator.
    pub(super) fn new(verb: Verb, rest: &'a str) -> Self {
        Self { verb, rest }
    }

    /// After the last argument: nothing may be left.
    pub(super) fn finish(self) -> Result<(), ParseError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.too_many())
        }
    }

    fn missing(&self) -> ParseError {
        ParseError::MissingArgument(self.verb)
    }

    fn too_many(&self) -> ParseError {
        ParseError::TooManyArguments(self.verb)
    }

    /// The next word, if any, and whether it was the last one.
    fn word(&mut self) -> Option<(&'a str, bool)> {
        let (rest, word) = word(self.rest).ok()?;
        self.rest = rest;
        Some((word, rest.is_empty()))
    }

    /// The last word: the only one left.
    fn last_word(&mut self) -> Result<Option<&'a str>, ParseError> {
        match self.word() {
            None => Ok(None),
            Some((word, true)) => Ok(Some(word)),
            Some(_) => Err(self.too_many()),
        }
    }

    /// The rest of the line, if any: text keeps its inner spaces.
    fn rest_of_line(&mut self) -> Option<&'a str> {
        let rest = std::mem::take(&mut self.rest);
        (!rest.is_empty()).then_some(rest)
    }
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A word, and the input after the separators that follow it.
pub(super) fn word(input: &str) -> IResult<&str, &str> {
    let (input, word) = take_till1(is_separator).parse(input)?;
    let (input, _) = space0(input)?;
    Ok((input, word))
}

/// Trims separators at both ends of a line.
pub(super) fn trim(line: &str) -> &str {
    line.trim_matches(is_separator)
}

/// One kind of argument: how it is read and how it is written back, after a space.
pub trait Arg: Sized {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError>;
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// A name: one word, which must be a valid name.
impl Arg for Name {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let (raw, _) = args.word().ok_or_else(|| args.missing())?;
        parse_name(raw)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {self}")
    }
}

/// Text: the rest of the line, which must not be empty.
impl Arg for String {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let text = args.rest_of_line().ok_or_else(|| args.missing())?;
        Ok(text.to_owned())
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {self}")
    }
}

/// Optional text: the rest of the line, if any.
impl Arg for Option<String> {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        Ok(args.rest_of_line().map(str::to_owned))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(text) => text.write(f),
            None => Ok(()),
        }
    }
}

/// A password: the rest of the line, spaces included.
impl Arg for Password {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        String::take(args).map(Password)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {}", self.0)
    }
}

/// `*` or a name.
impl Arg for HistoryTarget {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        match args.word().ok_or_else(|| args.missing())? {
            ("*", _) => Ok(HistoryTarget::Global),
            (name, _) => parse_name(name).map(HistoryTarget::Named),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {self}")
    }
}

/// A setting of one connection's own (`OPTION ids on`): it lasts as long as the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionOption {
    /// Whether message lines (`MSG`, `PM`, `RM`, `HIST`) start with the message's id and time
    /// ([`crate::Stamp`]).
    Ids(bool),
}

impl fmt::Display for ConnectionOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionOption::Ids(on) => write!(f, "ids {}", if *on { "on" } else { "off" }),
        }
    }
}

/// An option's name and its value, the last two words; both read without regard to case.
impl Arg for ConnectionOption {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let (name, _) = args.word().ok_or_else(|| args.missing())?;
        let value = args.last_word()?.ok_or_else(|| args.missing())?;
        let on = match value.to_ascii_lowercase().as_str() {
            "on" => true,
            "off" => false,
            _ => return Err(ParseError::BadOption(format!("{name} {value}"))),
        };
        if name.eq_ignore_ascii_case("ids") {
            Ok(ConnectionOption::Ids(on))
        } else {
            Err(ParseError::BadOption(format!("{name} {value}")))
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {self}")
    }
}

/// An optional count, the last argument: a whole number from 1.
impl Arg for Option<u32> {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let Some(count) = args.last_word()? else {
            return Ok(None);
        };
        match count.parse::<u32>() {
            Ok(count) if count > 0 => Ok(Some(count)),
            _ => Err(ParseError::BadCount {
                count: count.into(),
                verb: args.verb,
            }),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(count) => write!(f, " {count}"),
            None => Ok(()),
        }
    }
}

/// An optional verb, the last argument (what `HELP` explains).
impl Arg for Option<Verb> {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let Some(topic) = args.last_word()? else {
            return Ok(None);
        };
        Verb::lookup(topic)
            .map(Some)
            .ok_or_else(|| ParseError::UnknownCommand(topic.into()))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(verb) => write!(f, " {verb}"),
            None => Ok(()),
        }
    }
}

fn parse_name(raw: &str) -> Result<Name, ParseError> {
    Name::parse(raw).map_err(|error| ParseError::BadName {
        name: raw.into(),
        error,
    })
}
