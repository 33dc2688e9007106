//! Client commands: the table that declares them, and the parser that reads them from a line.
//!
//! Every command is declared once, in [`command_table!`]: its verb on the wire, its
//! arguments, its usage and its help. The [`Verb`] and [`Command`] types, the parser, the
//! canonical form and the `HELP` lines are generated from it here; the server generates its
//! dispatch to one module per command from the same table (`src/server/cmd/`).

mod args;
mod text;

use std::fmt;

pub use args::{Bound, ConnectionOption, HistoryPage, HistoryTarget, Password, SearchWords};
pub use text::{check_text, clean_text, is_invisible};

use crate::name::{Name, NameError};

/// The commands a client may send, one entry each:
///
/// `Variant(module) "VERB" ["ALIAS", ...] { field: Type, ... } usage "<usage>", help "help";`
///
/// - `module` names the server's module that runs it (`src/server/cmd/<module>.rs`);
/// - the aliases are words people type for it elsewhere (IRC, habit): an unknown command
///   that is one of them gets a suggestion;
/// - each field's type says how it is read (see `args.rs`): a `Name` or a count is one
///   word, `String` and `Password` are the rest of the line, `Option` is optional;
/// - usage and help make the `HELP` line: `VERB <usage> - help`.
///
/// Calls `$callback! { entries }`; the callback matches the entries it needs.
#[macro_export]
macro_rules! command_table {
    ($callback:ident) => {
        $callback! {
            Register(register) "REGISTER" ["SIGNUP"] { name: Name, password: Password }
                usage "<name> <password>", help "create an account and log in";
            Login(login) "LOGIN" ["IDENTIFY"] { name: Name, password: Password }
                usage "<name> <password>", help "log in to your account";
            Nick(nick) "NICK" [] { name: Name }
                usage "<name>", help "log in as a guest";
            Msg(msg) "MSG" ["SAY", "ALL"] { text: String }
                usage "<text>", help "message everyone online";
            Pm(pm) "PM" ["PRIVMSG", "QUERY", "WHISPER", "TELL", "DM"] { to: Name, text: String }
                usage "<user> <text>", help "private message";
            Away(away) "AWAY" [] { message: Option<String> }
                usage "[message]",
                help "mark yourself away (those who PM you see the message); without one, back";
            Users(users) "USERS" ["WHO", "ONLINE"] {}
                help "list who is online";
            CreateRoom(create_room) "CR" ["CREATE", "NEW"] { room: Name }
                usage "<room>", help "create a room and join it";
            JoinRoom(join_room) "JR" ["JOIN", "J"] { room: Name }
                usage "<room>", help "join a room";
            LeaveRoom(leave_room) "LR" ["PART", "LEAVE"] { room: Name }
                usage "<room>", help "leave a room";
            ListRooms(list_rooms) "LRS" ["LIST", "ROOMS"] {}
                help "list rooms";
            ListRoomUsers(list_room_users) "LRU" ["NAMES", "MEMBERS"] { room: Name }
                usage "<room>", help "list a room's members";
            RoomMessage(room_message) "RM" [] { room: Name, text: String }
                usage "<room> <text>", help "message a room you are in";
            Topic(topic) "TOPIC" [] { room: Name, text: Option<String> }
                usage "<room> [text]", help "a room's topic; with text, set it (members only)";
            History(history) "HISTORY" ["LOG", "BACKLOG", "HIST"]
                { target: HistoryTarget, page: HistoryPage, count: Option<u32> }
                usage "<*|room|user> [LATEST|BEFORE <bound>|AFTER <bound>|BETWEEN <bound> <bound>] [count]",
                help "past messages: global, a room you are in, or your private talk with a user; \
                      a bound is a message id or a time (2026-12-08T10:15:00.123Z)";
            Search(search) "SEARCH" ["FIND", "GREP"] { target: HistoryTarget, query: SearchWords }
                usage "<*|room|user> <words> [LIMIT <count>]",
                help "the messages of a conversation with all these words, newest first: \
                      a word, \"a phrase\" or prefix*";
            MarkRead(mark_read) "MARKREAD" [] { target: HistoryTarget, up_to: Option<Bound> }
                usage "<*|room|user> [id|time]",
                help "your read marker in a conversation; with a message id or a time, move it \
                      there (it only moves forward)";
            Mentions(mentions) "MENTIONS" [] { count: Option<u32> }
                usage "[count]",
                help "messages in your rooms that name you, since your read marker there, newest first";
            Unread(unread) "UNREAD" [] {}
                help "the conversations with messages after your read marker, and how many";
            SetOption(set_option) "OPTION" [] { option: ConnectionOption }
                usage "ids <on|off>",
                help "this connection's options: ids on starts message lines with their id and time";
            Ping(ping) "PING" [] { token: Option<String> }
                usage "[token]", help "the server answers PONG [token]";
            Pong(pong) "PONG" [] { token: Option<String> }
                usage "[token]", help "answer to the server's PING; it gets no reply";
            Help(help) "HELP" ["COMMANDS", "H", "?"] { verb: Option<Verb> }
                usage "[verb]", help "this help";
            Quit(quit) "QUIT" ["EXIT", "BYE", "LOGOUT", "Q"] { reason: Option<String> }
                usage "[reason]", help "leave the server";
        }
    };
}

/// Generates [`Verb`], [`Command`], parsing and the canonical form from the table.
macro_rules! define_commands {
    ($(
        $variant:ident($module:ident) $wire:literal [$($alias:literal),*]
            { $($field:ident: $type:ty),* }
            $(usage $usage:literal,)? help $help:literal;
    )*) => {
        /// The verbs a client may send. Verbs are matched without regard to case.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Verb {
            $($variant,)*
        }

        impl Verb {
            pub const ALL: [Verb; [$($wire),*].len()] = [$(Verb::$variant,)*];

            /// The verb as it is written on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Verb::$variant => $wire,)*
                }
            }

            /// One line of usage, as `HELP` prints it.
            pub fn usage(self) -> &'static str {
                match self {
                    $(Verb::$variant => concat!($wire, $(" ", $usage,)? " - ", $help),)*
                }
            }

            /// Its arguments, as usage shows them (`<room> <text>`); empty for none.
            pub fn arguments(self) -> &'static str {
                match self {
                    $(Verb::$variant => concat!($($usage)?),)*
                }
            }

            /// What it does, in a few words.
            pub fn help(self) -> &'static str {
                match self {
                    $(Verb::$variant => $help,)*
                }
            }

            /// The words people type elsewhere for this verb.
            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Verb::$variant => &[$($alias),*],)*
                }
            }
        }

        /// One parsed client line.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Command {
            $($variant { $($field: $type),* },)*
        }

        impl Command {
            pub fn verb(&self) -> Verb {
                match self {
                    $(Command::$variant { .. } => Verb::$variant,)*
                }
            }

            /// Reads the arguments of `verb` from `args`.
            fn with_arguments(verb: Verb, args: &mut args::Args<'_>) -> Result<Command, ParseError> {
                use args::Arg;
                Ok(match verb {
                    $(Verb::$variant => Command::$variant {
                        $($field: <$type as Arg>::take(args)?,)*
                    },)*
                })
            }
        }

        /// Writes the command in its canonical wire form, which [`Command::parse`] reads back.
        impl fmt::Display for Command {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                #[allow(unused_imports)]
                use args::Arg;
                match self {
                    $(Command::$variant { $($field),* } => {
                        f.write_str($wire)?;
                        $(Arg::write($field, f)?;)*
                        Ok(())
                    })*
                }
            }
        }
    };
}

command_table!(define_commands);

impl Verb {
    /// Finds a verb by name, ignoring case and one leading `:` or `/`.
    pub fn lookup(word: &str) -> Option<Verb> {
        let word = without_prefix(word);
        Verb::ALL
            .into_iter()
            .find(|verb| verb.as_str().eq_ignore_ascii_case(word))
    }

    /// The verb an unknown command was probably meant as: `JOIN` or `/join` is `JR`.
    pub fn suggest(word: &str) -> Option<Verb> {
        let word = without_prefix(word);
        Verb::ALL.into_iter().find(|verb| {
            verb.aliases()
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(word))
        })
    }
}

fn without_prefix(word: &str) -> &str {
    word.strip_prefix(':')
        .or_else(|| word.strip_prefix('/'))
        .unwrap_or(word)
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line is not a command. Each maps to one stable error code on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown command {:?}; {}", .0, suggestion(.0))]
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
    #[error("{:?} is not an option setting; usage: {}", .0, Verb::SetOption.usage())]
    BadOption(String),
    #[error("{:?} is not LATEST, BEFORE, AFTER or BETWEEN; usage: {}", .0, Verb::History.usage())]
    BadHistoryPage(String),
    #[error(
        "{bound:?} is not a message id (a whole number from 1) or a time in UTC \
         (2026-12-08T10:15:00.123Z); usage: {}",
        verb.usage()
    )]
    BadBound { bound: String, verb: Verb },
}

/// What to try after an unknown command.
fn suggestion(word: &str) -> String {
    match Verb::suggest(word) {
        Some(verb) => format!("did you mean {verb}? usage: {}", verb.usage()),
        None => "HELP lists the commands".into(),
    }
}

impl Command {
    /// Parses one line (without its line ending). Blank lines are `Ok(None)`: they are ignored,
    /// not errors, so a stray Enter in telnet costs nothing.
    pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
        text::check_text(line)?;
        let line = args::trim(line);
        if line.is_empty() {
            return Ok(None);
        }
        let (rest, word) = args::word(line).expect("a non-blank line starts with a word");
        let verb = Verb::lookup(word).ok_or_else(|| ParseError::UnknownCommand(word.into()))?;
        let mut args = args::Args::new(verb, rest);
        let command = Command::with_arguments(verb, &mut args)?;
        args.finish()?;
        Ok(Some(command))
    }
}

#[cfg(test)]
mod tests;
