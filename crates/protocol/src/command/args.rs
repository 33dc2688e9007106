//! A command's arguments: how each kind is read from the rest of a line and written back.
//!
//! The command table ([`super::command_table`]) gives each command its fields; their types say
//! how they are read, through [`Arg`]. A name or a count is one word; text (`String`, a
//! password) is the rest of the line, so it comes last; `Option` makes an argument optional.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Which messages of a conversation `HISTORY` reads: the last ones, or those on one side of a
/// bound, or between two. Bounds are exclusive: the message a bound names is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The last messages (`LATEST`, or no keyword at all).
    Latest,
    /// The messages just before the bound.
    Before(Bound),
    /// The messages just after the bound.
    After(Bound),
    /// The messages between the two bounds, taken next to the first: after it if it is the
    /// older, before it if it is the newer.
    Between(Bound, Bound),
}

/// The canonical form: nothing for [`HistoryPage::Latest`], which is what a `HISTORY` without
/// a keyword reads, else the keyword and its bounds.
impl fmt::Display for HistoryPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryPage::Latest => Ok(()),
            HistoryPage::Before(bound) => write!(f, "BEFORE {bound}"),
            HistoryPage::After(bound) => write!(f, "AFTER {bound}"),
            HistoryPage::Between(first, second) => write!(f, "BETWEEN {first} {second}"),
        }
    }
}

/// Where a page of history starts or ends: a message, by the id `OPTION ids on` shows, or a
/// time, as `HIST` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A message id: a whole number from 1.
    Id(i64),
    /// A time: RFC 3339 in UTC (`2026-12-08T10:15:00.123Z`), from 1970 on; the fraction of a
    /// second is optional, and may be finer than the milliseconds history keeps.
    Time(SystemTime),
}

impl Bound {
    /// Reads a bound: all digits is an id, anything else must be a time.
    pub fn parse(raw: &str) -> Option<Bound> {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            return raw.parse().ok().filter(|&id| id > 0).map(Bound::Id);
        }
        is_utc_time(raw)
            .then(|| humantime::parse_rfc3339(raw).ok())
            .flatten()
            .map(Bound::Time)
    }
}

/// Whether `raw` has the shape `YYYY-MM-DDTHH:MM:SS[.f]Z`, with 1 to 9 digits of fraction:
/// the form `HIST` writes, without the offsets and the fractions of any length that
/// `humantime` also reads.
fn is_utc_time(raw: &str) -> bool {
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let bytes = raw.as_bytes();
    let Some((head, tail)) = bytes.split_at_checked(SHAPE.len()) else {
        return false;
    };
    let head_fits = head.iter().zip(SHAPE).all(|(&b, &shape)| match shape {
        b'd' => b.is_ascii_digit(),
        _ => b == shape,
    });
    let tail_fits = match tail {
        [b'Z'] => true,
        [b'.', fraction @ .., b'Z'] => {
            (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    head_fits && tail_fits
}

/// The canonical form: an id in decimal; a time to the second when it is a whole one, else
/// to the millisecond when it is a whole one, else to the nanosecond, so that it reads back
/// the same.
impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Bound::Id(id) => write!(f, "{id}"),
            Bound::Time(at) => {
                let nanos = at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .subsec_nanos();
                if nanos == 0 {
                    write!(f, "{}", humantime::format_rfc3339_seconds(at))
                } else if nanos % 1_000_000 == 0 {
                    write!(f, "{}", humantime::format_rfc3339_millis(at))
                } else {
                    write!(f, "{}", humantime::format_rfc3339_nanos(at))
                }
            }
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

    /// The next word, if any, and whether it is the last one, without taking it.
    fn peek(&self) -> Option<(&'a str, bool)> {
        let (rest, word) = word(self.rest).ok()?;
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

/// An optional page keyword and its bounds, before the count: `LATEST`, `BEFORE <bound>`,
/// `AFTER <bound>` or `BETWEEN <bound> <bound>`, without regard to case. No keyword is
/// [`HistoryPage::Latest`]; the word that follows is then the count, unless it is neither
/// a number nor the last word, which makes it a keyword misspelt.
impl Arg for HistoryPage {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let Some((keyword, last)) = args.peek() else {
            return Ok(HistoryPage::Latest);
        };
        let bound = |args: &mut Args<'_>| {
            let (raw, _) = args.word().ok_or_else(|| args.missing())?;
            Bound::parse(raw).ok_or_else(|| ParseError::BadBound {
                bound: raw.into(),
                verb: args.verb,
            })
        };
        let page = match keyword.to_ascii_uppercase().as_str() {
            "LATEST" => {
                args.word();
                HistoryPage::Latest
            }
            "BEFORE" => {
                args.word();
                HistoryPage::Before(bound(args)?)
            }
            "AFTER" => {
                args.word();
                HistoryPage::After(bound(args)?)
            }
            "BETWEEN" => {
                args.word();
                HistoryPage::Between(bound(args)?, bound(args)?)
            }
            _ if last || keyword.bytes().all(|b| b.is_ascii_digit()) => HistoryPage::Latest,
            _ => return Err(ParseError::BadHistoryPage(keyword.into())),
        };
        Ok(page)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryPage::Latest => Ok(()),
            page => write!(f, " {page}"),
        }
    }
}

/// An optional bound, the last argument (where `MARKREAD` moves a read marker to).
impl Arg for Option<Bound> {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let Some(raw) = args.last_word()? else {
            return Ok(None);
        };
        Bound::parse(raw)
            .map(Some)
            .ok_or_else(|| ParseError::BadBound {
                bound: raw.into(),
                verb: args.verb,
            })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(bound) => write!(f, " {bound}"),
            None => Ok(()),
        }
    }
}

/// What `SEARCH` looks for: its words (the rest of the line, read by the server's query
/// language), and the count of messages asked for, from a trailing `LIMIT <count>`. The
/// words `limit` and a number at the end of a query are searched for by quoting them
/// (`"limit 5"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWords {
    pub words: String,
    pub limit: Option<u32>,
}

/// The rest of the line, less a trailing `LIMIT <count>` (the keyword in any case); words
/// must be left before it.
impl Arg for SearchWords {
    fn take(args: &mut Args<'_>) -> Result<Self, ParseError> {
        let verb = args.verb;
        let text = args
            .rest_of_line()
            .ok_or(ParseError::MissingArgument(verb))?;
        let words: Vec<&str> = text.rsplitn(3, is_separator).collect();
        // `rsplitn` gives the last word first: [count, LIMIT, words before] when there are.
        let limit = match words.as_slice() {
            [count, keyword, ..] if keyword.eq_ignore_ascii_case("LIMIT") => {
                match count.parse::<u32>() {
                    Ok(count) if count > 0 => Some(count),
                    _ => {
                        return Err(ParseError::BadCount {
                            count: (*count).into(),
                            verb,
                        });
                    }
                }
            }
            [count, ..] if count.eq_ignore_ascii_case("LIMIT") => {
                return Err(ParseError::MissingArgument(verb));
            }
            _ => None,
        };
        let words = match limit {
            Some(_) => trim(words.get(2).copied().unwrap_or_default()).to_owned(),
            None => text.to_owned(),
        };
        if words.is_empty() {
            return Err(ParseError::MissingArgument(verb));
        }
        Ok(SearchWords { words, limit })
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {}", self.words)?;
        match self.limit {
            Some(count) => write!(f, " LIMIT {count}"),
            None => Ok(()),
        }
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
