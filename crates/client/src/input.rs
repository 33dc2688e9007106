//! What the user types: a `:command`, or text for the current conversation.
//!
//! A `:command` is a protocol command with its verb written after a `:` (`:pm bob hi` is
//! `PM bob hi`), so it is read by the library's own parser, [`Command::parse`], which accepts
//! a leading `:` on a verb. Only the few commands that mean something else in the client are
//! handled here.

use linechat_protocol::{Command, Name, NameError, ParseError, Verb};
use std::borrow::Cow;

/// One line of user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A blank line.
    Nothing,
    /// A line without a command: goes to the current conversation.
    Text(String),
    /// A command for the server.
    Send(Command),
    /// `:history` without a target: the current conversation's history.
    History,
    /// `:pm <user>` without text: open the private conversation with `user` (TUI).
    Open(Name),
    /// `:help`: the client's own help, on every command or on one.
    Help(Option<Verb>),
}

/// Why a line cannot be sent, in the client's terms: the library's [`ParseError`] names
/// protocol verbs (`HELP lists the commands`, `usage: CR <room>`), which the user of this
/// client types as `:help` and `:cr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{}", parse_error(.0))]
    Parse(#[from] ParseError),
    #[error("{} is not available here: you are already logged in", spelled(*.0))]
    LoginCommand(Verb),
    #[error(":pong is not available here: the client answers the server's pings itself")]
    Pong,
}

/// A verb as the user types it: `:jr`.
pub fn spelled(verb: Verb) -> String {
    format!(":{}", verb.as_str().to_ascii_lowercase())
}

/// A [`ParseError`] in the client's words.
fn parse_error(error: &ParseError) -> String {
    let usage = |verb: Verb| match help_on(verb) {
        Some(help) => help.usage.into_owned(),
        None => spelled(verb),
    };
    match error {
        ParseError::UnknownCommand(word) => match suggestion(word) {
            Some(verb) => format!(
                "unknown command {word:?} (did you mean {}?); :help lists the commands",
                usage(verb)
            ),
            None => format!("unknown command {word:?}; :help lists the commands"),
        },
        ParseError::MissingArgument(verb) => format!("missing argument; usage: {}", usage(*verb)),
        ParseError::TooManyArguments(verb) => {
            format!("too many arguments; usage: {}", usage(*verb))
        }
        ParseError::BadCount { count, verb } => format!(
            "{count:?} is not a count: use a whole number from 1; usage: {}",
            usage(*verb)
        ),
        ParseError::BadHistoryPage(word) => format!(
            "{word:?} is not latest, before, after or between; usage: {}",
            usage(Verb::History)
        ),
        ParseError::BadBound { bound, verb } => format!(
            "{bound:?} is not a message id or a time (2026-12-08T10:15:00Z); usage: {}",
            usage(*verb)
        ),
        // The others name no command.
        other => other.to_string(),
    }
}

/// The command meant by a word from other chat programs (`:join`, `:/part`), or by one of
/// ours written with a `/` (`:/jr`).
fn suggestion(word: &str) -> Option<Verb> {
    let word = word.trim_start_matches([':', '/']).to_ascii_lowercase();
    // The protocol knows the words other programs use for its verbs.
    let verb = Verb::lookup(&word).or_else(|| Verb::suggest(&word))?;
    help_on(verb).map(|help| help.verb)
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether the user may type a verb in this client: the login verbs were used before the
/// session began, and the client answers the server's `PING` itself.
fn available(verb: Verb) -> Result<(), InputError> {
    match verb {
        Verb::Login | Verb::Register | Verb::Nick => Err(InputError::LoginCommand(verb)),
        Verb::Pong => Err(InputError::Pong),
        _ => Ok(()),
    }
}

/// Reads one line of input. `::text` sends text that starts with `:`.
pub fn parse(line: &str) -> Result<Input, InputError> {
    let line = line.trim_matches(is_separator);
    if line.is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(text) = line.strip_prefix("::") {
        return Ok(Input::Text(format!(":{text}")));
    }
    if !line.starts_with(':') {
        return Ok(Input::Text(line.to_owned()));
    }
    let (word, args) = match line.find(is_separator) {
        Some(end) => (&line[..end], line[end..].trim_matches(is_separator)),
        None => (line, ""),
    };
    let verb = Verb::lookup(word);
    if let Some(verb) = verb {
        available(verb)?;
    }
    match verb {
        Some(Verb::Help) if args.is_empty() => return Ok(Input::Help(None)),
        Some(Verb::Help) if !args.contains(is_separator) => {
            let verb = Verb::lookup(args).ok_or_else(|| {
                let word = args.strip_prefix(':').unwrap_or(args);
                ParseError::UnknownCommand(format!(":{word}"))
            })?;
            available(verb)?;
            return Ok(Input::Help(Some(verb)));
        }
        Some(Verb::History) if args.is_empty() => return Ok(Input::History),
        Some(Verb::Pm) if !args.is_empty() && !args.contains(is_separator) => {
            return Name::parse(args).map(Input::Open).map_err(|error| {
                ParseError::BadName {
                    name: args.into(),
                    error,
                }
                .into()
            });
        }
        _ => {}
    }
    match Command::parse(line)? {
        Some(command) => Ok(Input::Send(command)),
        None => Ok(Input::Nothing),
    }
}

/// Where text without a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Everyone,
    Room(Name),
    User(Name),
}

impl Target {
    /// The command that says `text` to this target, checked by the library's parser (so a
    /// control character is refused here, as the server would).
    pub fn command(&self, text: &str) -> Result<Command, ParseError> {
        let line = match self {
            Target::Everyone => format!("MSG {text}"),
            Target::Room(room) => format!("RM {room} {text}"),
            Target::User(user) => format!("PM {user} {text}"),
        };
        Command::parse(&line)?.ok_or(ParseError::MissingArgument(Verb::Msg))
    }

    pub fn label(&self) -> String {
        match self {
            Target::Everyone => "*".into(),
            Target::Room(room) => format!("#{room}"),
            Target::User(user) => format!("@{user}"),
        }
    }
}

/// Validates a name typed by the user (the login prompt, `--user`).
pub fn name(raw: &str) -> Result<Name, NameError> {
    Name::parse(raw.trim())
}

/// Which front end reads the input: where a line without a command goes, and what `:pm <user>`
/// alone does, differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The full-screen interface: lines go to the selected conversation.
    Tui,
    /// Line mode: lines go to the room joined last.
    Lines,
}

/// One of the client's commands, as `:help` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help {
    pub verb: Verb,
    /// How it is typed.
    pub usage: Cow<'static, str>,
    /// What it does.
    pub what: Cow<'static, str>,
}

impl Help {
    /// The line `:help` shows.
    pub fn line(&self) -> String {
        format!("{:<21} {}", self.usage, self.what)
    }
}

const fn help(verb: Verb, usage: &'static str, what: &'static str) -> Help {
    Help {
        verb,
        usage: Cow::Borrowed(usage),
        what: Cow::Borrowed(what),
    }
}

/// Every command the user can type, in the order `:help` lists them.
pub const COMMANDS: &[Help] = &[
    help(Verb::Pm, ":pm <user> <text>", "private message"),
    help(Verb::Msg, ":msg <text>", "message everyone online"),
    help(
        Verb::RoomMessage,
        ":rm <room> <text>",
        "message a room you are in",
    ),
    help(Verb::Users, ":users", "who is online"),
    help(Verb::CreateRoom, ":cr <room>", "create a room and join it"),
    help(Verb::JoinRoom, ":jr <room>", "join a room"),
    help(Verb::LeaveRoom, ":lr <room>", "leave a room"),
    help(Verb::ListRooms, ":lrs", "list the rooms"),
    help(Verb::ListRoomUsers, ":lru <room>", "list a room's members"),
    help(
        Verb::History,
        ":history [<*|room|user> [page] [count]]",
        "past messages: everyone's (*), a room you are in, or your private messages with \
         user; page: latest, before <bound>, after <bound> or between <bound> <bound>, a bound \
         being a message id or a time; alone: where a line without a command goes",
    ),
    help(
        Verb::Away,
        ":away [message]",
        "mark yourself away (whoever PMs you sees the message); alone: back",
    ),
    help(
        Verb::MarkRead,
        ":markread <*|room|user> [id|time]",
        "your read marker in a conversation; with a message id or a time, move it there",
    ),
    help(
        Verb::Unread,
        ":unread",
        "the conversations with messages after your read marker",
    ),
    help(
        Verb::Search,
        ":search <*|room|user> <words> [limit <count>]",
        "find messages of a conversation holding all the words (\"a phrase\", prefix*)",
    ),
    help(
        Verb::Mentions,
        ":mentions [count]",
        "messages in your rooms that name you, since your read marker there",
    ),
    help(Verb::Ping, ":ping", "the round-trip time to the server"),
    help(
        Verb::Help,
        ":help [command]",
        "this help, or the help on one command",
    ),
    help(Verb::Quit, ":quit [reason]", "leave the server and quit"),
];

/// `:pm <user>` alone, in the TUI.
const OPEN_HELP: Help = help(
    Verb::Pm,
    ":pm <user>",
    "open the private conversation with user",
);

/// The help on one verb, if the user can type it: the client's own words, or, for a server
/// command the client has no words of its own for, the server's.
pub fn help_on(verb: Verb) -> Option<Help> {
    if let Some(help) = COMMANDS.iter().find(|help| help.verb == verb) {
        return Some(help.clone());
    }
    available(verb).ok()?;
    let usage = format!(
        ":{} {}",
        verb.as_str().to_ascii_lowercase(),
        verb.arguments()
    );
    Some(Help {
        verb,
        usage: Cow::Owned(usage.trim_end().to_owned()),
        what: Cow::Borrowed(verb.help()),
    })
}

/// The server commands the client has no words of its own for, as `:help` lists them.
fn other_commands() -> impl Iterator<Item = Help> {
    Verb::ALL
        .into_iter()
        .filter(|verb| COMMANDS.iter().all(|help| help.verb != *verb))
        .filter_map(help_on)
}

/// The lines of `:help` on one command.
pub fn verb_help(verb: Verb, mode: Mode) -> Vec<String> {
    let mut lines: Vec<String> = help_on(verb).map(|help| help.line()).into_iter().collect();
    if verb == Verb::Pm && mode == Mode::Tui {
        lines.push(OPEN_HELP.line());
    }
    lines
}

/// The lines of `:help`: where a line goes, then the commands.
pub fn commands_help(mode: Mode) -> Vec<String> {
    let mut lines = vec![match mode {
        Mode::Tui => "A line without a command goes to the selected conversation (the input box \
                      says which; Tab changes it)."
            .to_owned(),
        Mode::Lines => "A line without a command goes to the room you joined last (of those you \
                        are still in), else to everyone."
            .to_owned(),
    }];
    for help in COMMANDS {
        lines.push(help.line());
        if help.verb == Verb::Pm && mode == Mode::Tui {
            lines.push(OPEN_HELP.line());
        }
    }
    lines.extend(other_commands().map(|help| help.line()));
    lines.push(format!(
        "{:<21} {}",
        "::text", "send text that starts with ':'"
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::names_a_protocol_verb;
    use linechat_protocol::{Bound, HistoryPage, HistoryTarget, NameError};

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn send(line: &str) -> Command {
        match parse(line) {
            Ok(Input::Send(command)) => command,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_seed_command_maps_to_its_protocol_command() {
        assert_eq!(send(":quit"), Command::Quit { reason: None });
        assert_eq!(
            send(":quit  gone fishing "),
            Command::Quit {
                reason: Some("gone fishing".into())
            }
        );
        assert_eq!(send(":ping"), Command::Ping { token: None });
        assert_eq!(
            send(":pm bob hi  there"),
            Command::Pm {
                to: name("bob"),
                text: "hi  there".into()
            }
        );
        assert_eq!(send(":users"), Command::Users {});
        assert_eq!(send(":cr dev"), Command::CreateRoom { room: name("dev") });
        assert_eq!(send(":JR dev"), Command::JoinRoom { room: name("dev") });
        assert_eq!(send(":lr dev"), Command::LeaveRoom { room: name("dev") });
        assert_eq!(send(":lrs"), Command::ListRooms {});
        assert_eq!(
            send(":lru dev"),
            Command::ListRoomUsers { room: name("dev") }
        );
        assert_eq!(
            send(":rm dev deploy done"),
            Command::RoomMessage {
                room: name("dev"),
                text: "deploy done".into()
            }
        );
        assert_eq!(
            send(":msg hello all"),
            Command::Msg {
                text: "hello all".into()
            }
        );
        assert_eq!(
            send(":history * 5"),
            Command::History {
                target: HistoryTarget::Global,
                page: HistoryPage::Latest,
                count: Some(5)
            }
        );
        assert_eq!(
            send(":history bob"),
            Command::History {
                target: HistoryTarget::Named(name("bob")),
                page: HistoryPage::Latest,
                count: None
            }
        );
        assert_eq!(
            send(":history bob after 2026-12-08T10:15:00Z 3"),
            Command::History {
                target: HistoryTarget::Named(name("bob")),
                page: HistoryPage::After(Bound::parse("2026-12-08T10:15:00Z").unwrap()),
                count: Some(3)
            }
        );
    }

    #[test]
    fn client_side_commands() {
        assert_eq!(parse(":help"), Ok(Input::Help(None)));
        assert_eq!(parse("  :HELP  "), Ok(Input::Help(None)));
        assert_eq!(parse(":help pm"), Ok(Input::Help(Some(Verb::Pm))));
        assert_eq!(parse(":help :JR"), Ok(Input::Help(Some(Verb::JoinRoom))));
        assert_eq!(
            parse(":help frob"),
            Err(InputError::Parse(ParseError::UnknownCommand(
                ":frob".into()
            )))
        );
        assert_eq!(
            parse(":help nick"),
            Err(InputError::LoginCommand(Verb::Nick))
        );
        assert_eq!(parse(":help pong"), Err(InputError::Pong));
        assert!(matches!(
            parse(":help pm jr"),
            Err(InputError::Parse(ParseError::TooManyArguments(Verb::Help)))
        ));
        assert_eq!(parse(":history"), Ok(Input::History));
        assert_eq!(parse(":pm bob"), Ok(Input::Open(name("bob"))));
        assert_eq!(
            parse(":pm b.b"),
            Err(InputError::Parse(ParseError::BadName {
                name: "b.b".into(),
                error: NameError::BadCharacter
            }))
        );
    }

    #[test]
    fn text_and_blank_lines() {
        assert_eq!(parse(""), Ok(Input::Nothing));
        assert_eq!(parse(" \t "), Ok(Input::Nothing));
        assert_eq!(
            parse("hello  world "),
            Ok(Input::Text("hello  world".into()))
        );
        assert_eq!(parse("/me waves"), Ok(Input::Text("/me waves".into())));
        assert_eq!(parse("::-) smile"), Ok(Input::Text(":-) smile".into())));
        assert_eq!(parse("日本語"), Ok(Input::Text("日本語".into())));
    }

    #[test]
    fn errors_come_from_the_shared_parser() {
        assert_eq!(
            parse(":frob x"),
            Err(InputError::Parse(ParseError::UnknownCommand(
                ":frob".into()
            )))
        );
        assert_eq!(
            parse(":cr"),
            Err(InputError::Parse(ParseError::MissingArgument(
                Verb::CreateRoom
            )))
        );
        assert_eq!(
            parse(":users now"),
            Err(InputError::Parse(ParseError::TooManyArguments(Verb::Users)))
        );
        assert_eq!(
            parse(":rm dev"),
            Err(InputError::Parse(ParseError::MissingArgument(
                Verb::RoomMessage
            )))
        );
        assert!(matches!(
            parse(":history * zero"),
            Err(InputError::Parse(ParseError::BadCount { .. }))
        ));
        assert!(matches!(parse(":"), Err(InputError::Parse(_))));
        assert!(matches!(
            parse(":msg bell\u{7}"),
            Err(InputError::Parse(ParseError::ControlCharacter))
        ));
    }

    #[test]
    fn login_commands_are_refused() {
        for (line, verb) in [
            (":login a b", Verb::Login),
            (":register a b", Verb::Register),
            (":nick a", Verb::Nick),
        ] {
            let error = parse(line).unwrap_err();
            assert_eq!(error, InputError::LoginCommand(verb));
            assert!(!error.to_string().contains(" b"), "no password in {error}");
        }
    }

    #[test]
    fn pong_is_refused_as_the_client_answers_pings() {
        // The server does not answer a PONG: sent, it would wait for ever for its answer.
        assert_eq!(parse(":pong"), Err(InputError::Pong));
        assert_eq!(parse(":PONG x"), Err(InputError::Pong));
    }

    #[test]
    fn errors_name_the_clients_commands() {
        let cases = [
            (
                ":frob x",
                "unknown command \":frob\"; :help lists the commands",
            ),
            (
                ":join dev",
                "unknown command \":join\" (did you mean :jr <room>?); :help lists the commands",
            ),
            (
                ":PART dev",
                "unknown command \":PART\" (did you mean :lr <room>?); :help lists the commands",
            ),
            (
                ":/jr dev",
                "unknown command \":/jr\" (did you mean :jr <room>?); :help lists the commands",
            ),
            (
                ":/nick al",
                "unknown command \":/nick\"; :help lists the commands",
            ),
            (
                ":help frob",
                "unknown command \":frob\"; :help lists the commands",
            ),
            (":cr", "missing argument; usage: :cr <room>"),
            (":rm dev", "missing argument; usage: :rm <room> <text>"),
            (":users now", "too many arguments; usage: :users"),
            (
                ":history * zero",
                "\"zero\" is not a count: use a whole number from 1; usage: \
                 :history [<*|room|user> [page] [count]]",
            ),
            (
                ":history dev befor 5 2",
                "\"befor\" is not latest, before, after or between; usage: \
                 :history [<*|room|user> [page] [count]]",
            ),
            (
                ":history dev after soon",
                "\"soon\" is not a message id or a time (2026-12-08T10:15:00Z); usage: \
                 :history [<*|room|user> [page] [count]]",
            ),
            (
                ":nick al",
                ":nick is not available here: you are already logged in",
            ),
            (
                ":pong",
                ":pong is not available here: the client answers the server's pings itself",
            ),
        ];
        for (line, expected) in cases {
            let error = parse(line).unwrap_err().to_string();
            assert_eq!(error, expected, "{line}");
            assert!(!names_a_protocol_verb(&error), "{error}");
        }
        // Every verb's usage, as an argument error shows it.
        for verb in Verb::ALL {
            let error = InputError::Parse(ParseError::MissingArgument(verb)).to_string();
            if help_on(verb).is_some() {
                assert!(!names_a_protocol_verb(&error), "{error}");
            }
        }
    }

    /// A line that uses a command as its help shows it, with example arguments.
    fn example(usage: &str) -> String {
        usage
            .split(' ')
            .map(|word| match word {
                "<user>" => "bob",
                "<room>" => "dev",
                "<text>" => "hello there",
                "[<*|room|user>" => "*",
                "[page]" => "before 5",
                "[count]]" => "5",
                "[reason]" | "[command]" => "pm",
                "<*|room|user>" => "dev",
                "[id|time]" => "12",
                "[message]" => "at lunch",
                "[count]" => "5",
                word => word,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_help_lists_what_can_be_typed() {
        // Each command of the help parses, as its usage shows it, to its verb.
        for help in COMMANDS {
            let line = example(&help.usage);
            let verb = match parse(&line) {
                Ok(Input::Send(command)) => command.verb(),
                Ok(Input::Help(Some(_))) => Verb::Help,
                other => panic!("{line:?} gave {other:?}"),
            };
            assert_eq!(verb, help.verb, "{line}");
            assert!(help.usage.starts_with(&spelled(help.verb)), "{help:?}");
            assert!(!names_a_protocol_verb(&help.line()), "{help:?}");
        }
        assert_eq!(
            parse(&example(&OPEN_HELP.usage)),
            Ok(Input::Open(name("bob")))
        );
        assert_eq!(parse(":history"), Ok(Input::History));
        assert_eq!(parse("::x"), Ok(Input::Text(":x".into())));
        // Every verb that can be typed is listed, in the client's words or, for a server
        // command it has none for, the server's...
        let listed = commands_help(Mode::Lines);
        for verb in Verb::ALL {
            if let Some(help) = help_on(verb) {
                assert!(listed.contains(&help.line()), "{verb} is not listed");
            }
        }
        // ...and each verb that it does not list is refused.
        for verb in Verb::ALL {
            if help_on(verb).is_none() {
                assert!(parse(&format!("{} x", spelled(verb))).is_err(), "{verb}");
            }
        }
    }

    #[test]
    fn the_help_says_where_a_line_goes_in_each_mode() {
        let tui = commands_help(Mode::Tui);
        assert!(tui[0].contains("the selected conversation"), "{}", tui[0]);
        let opens = |line: &String| line.starts_with(":pm <user>   ");
        assert!(tui.iter().any(opens));
        let lines = commands_help(Mode::Lines);
        assert!(
            lines[0].contains("the room you joined last"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("else to everyone"), "{}", lines[0]);
        // `:pm <user>` alone opens a conversation only in the TUI.
        assert!(!lines.iter().any(opens));
        assert_eq!(verb_help(Verb::Pm, Mode::Tui).len(), 2);
        assert_eq!(verb_help(Verb::Pm, Mode::Lines).len(), 1);
        assert!(verb_help(Verb::Pong, Mode::Lines).is_empty());
    }

    #[test]
    fn targets_build_checked_commands() {
        assert_eq!(
            Target::Everyone.command("hi"),
            Ok(Command::Msg { text: "hi".into() })
        );
        assert_eq!(
            Target::Room(name("dev")).command("a  b"),
            Ok(Command::RoomMessage {
                room: name("dev"),
                text: "a  b".into()
            })
        );
        assert_eq!(
            Target::User(name("bob")).command("yo"),
            Ok(Command::Pm {
                to: name("bob"),
                text: "yo".into()
            })
        );
        assert_eq!(
            Target::Everyone.command("a\u{1b}b"),
            Err(ParseError::ControlCharacter)
        );
        assert_eq!(Target::Room(name("dev")).label(), "#dev");
        assert_eq!(Target::User(name("bob")).label(), "@bob");
    }
}
