//! What the user types: a `:command`, or text for the current conversation.
//!
//! A `:command` is a protocol command with its verb written after a `:` (`:pm bob hi` is
//! `PM bob hi`), so it is read by the library's own parser, [`Command::parse`], which accepts
//! a leading `:` on a verb. Only the few commands that mean something else in the client are
//! handled here.

use linechat_protocol::{Command, Name, NameError, ParseError, Verb};

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
    /// `:help` without a verb: the client's own help.
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error(":{} is not available here: you are already logged in", .0.as_str().to_ascii_lowercase())]
    LoginCommand(Verb),
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
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
    match Verb::lookup(word) {
        Some(Verb::Help) if args.is_empty() => return Ok(Input::Help),
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
        Some(verb @ (Verb::Login | Verb::Register | Verb::Nick)) => {
            return Err(InputError::LoginCommand(verb));
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

/// The client's `:help`: its commands, one per line.
pub const COMMANDS_HELP: &[&str] = &[
    "A line without a command goes to the current room (the one joined last), else to everyone.",
    ":pm <user> <text>     private message",
    ":msg <text>           message everyone",
    ":rm <room> <text>     message a room",
    ":users                who is online",
    ":cr <room>            create a room and join it",
    ":jr <room>            join a room",
    ":lr <room>            leave a room",
    ":lrs                  list the rooms",
    ":lru <room>           list a room's members",
    ":history [<*|room|user> [count]]   past messages; alone: the current conversation",
    ":ping                 the round-trip time to the server",
    ":help [verb]          this help, or the server's help on one verb",
    ":quit [reason]        leave",
    "::text                send text that starts with ':'",
];

#[cfg(test)]
mod tests {
    use super::*;
    use linechat_protocol::{HistoryTarget, NameError};

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
                count: Some(5)
            }
        );
        assert_eq!(
            send(":history bob"),
            Command::History {
                target: HistoryTarget::Named(name("bob")),
                count: None
            }
        );
        assert_eq!(
            send(":help pm"),
            Command::Help {
                verb: Some(Verb::Pm)
            }
        );
    }

    #[test]
    fn client_side_commands() {
        assert_eq!(parse(":help"), Ok(Input::Help));
        assert_eq!(parse("  :HELP  "), Ok(Input::Help));
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
