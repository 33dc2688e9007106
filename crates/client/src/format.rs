//! Readable text for what the server says, shared by line mode and the TUI.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local};
use linechat_protocol::{Command, Departure, ErrorCode, Name, Notice, Topic, Verb};

use crate::input;
use crate::session::Pending;

/// `HH:MM:SS`, local time: when a delivery arrived.
pub fn clock(at: DateTime<Local>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// `YYYY-MM-DD HH:MM:SS`, local time: when a message of the history was sent.
pub fn date_time(at: SystemTime) -> String {
    DateTime::<Local>::from(at)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn local(at: SystemTime) -> DateTime<Local> {
    DateTime::<Local>::from(at)
}

/// A round-trip time in milliseconds.
pub fn round_trip(elapsed: Duration) -> String {
    format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)
}

pub fn names(names: &[Name]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(" ")
}

/// Text as it is shown: no tab or control character can upset the layout.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// A `NOTICE`, in words.
pub fn notice(notice: &Notice) -> String {
    match notice {
        Notice::Online { user } => format!("{user} is online"),
        Notice::Offline { user, how } => {
            let how = match how {
                Departure::Quit(None) => "quit".to_owned(),
                Departure::Quit(Some(reason)) => format!("quit: {}", printable(reason)),
                Departure::Closed => "closed the connection".into(),
                Departure::Lost => "connection lost".into(),
                Departure::NotReading => "stopped reading".into(),
                Departure::TimedOut => "timed out".into(),
                Departure::Flooding => "flooding".into(),
                Departure::Shutdown => "server shutdown".into(),
            };
            format!("{user} went offline ({how})")
        }
        Notice::RoomCreated { room, by } => format!("{by} created room #{room}"),
        Notice::Topic {
            room,
            by,
            text: Some(text),
        } => format!("{by} set the topic of #{room}: {}", printable(text)),
        Notice::Topic {
            room,
            by,
            text: None,
        } => format!("{by} cleared the topic of #{room}"),
        Notice::Shutdown => "the server is shutting down".into(),
        Notice::Closing { reason } => {
            format!("the server is closing the connection ({})", reason.as_str())
        }
    }
}

/// The answer to `TOPIC <room>`, in words.
pub fn topic(room: &Name, topic: Option<&Topic>) -> String {
    match topic {
        Some(Topic { text, by, at }) => format!(
            "#{room} topic: {} (set by {by}, {})",
            printable(text),
            date_time(*at)
        ),
        None => format!("#{room} has no topic"),
    }
}

/// An `OK`, in words.
pub fn ok(verb: Verb, detail: Option<&str>) -> String {
    let detail = detail.unwrap_or_default();
    match verb {
        Verb::CreateRoom => format!("created #{detail}"),
        Verb::JoinRoom => format!("joined #{detail}"),
        Verb::LeaveRoom => format!("left #{detail}"),
        Verb::RoomMessage => format!("sent to #{detail}"),
        Verb::Msg => "sent to everyone".into(),
        Verb::Pm => match (detail.strip_suffix(" queued"), detail.split_once(" away: ")) {
            (Some(user), _) => format!("{user} is offline: the message waits for their next login"),
            (None, Some((user, away))) => {
                format!("sent to @{user}, who is away: {}", printable(away))
            }
            (None, None) => format!("sent to @{detail}"),
        },
        Verb::History => match detail {
            "1" => "end of history (1 message)".into(),
            count => format!("end of history ({count} messages)"),
        },
        Verb::Quit => "bye".into(),
        Verb::Help => "end of help".into(),
        verb if detail.is_empty() => verb.as_str().to_ascii_lowercase(),
        verb => format!("{} {detail}", verb.as_str().to_ascii_lowercase()),
    }
}

/// An `ERR`, as `CODE: message`, in the client's words. The server's message states a fact
/// and may add a hint after a `;` that names protocol commands (`there is no room x; CR
/// creates it`); for those codes the hint is replaced by the client's own (`:cr x creates
/// it`), or dropped. `command` is the command refused, when known.
pub fn err(code: ErrorCode, message: &str, command: Option<&Command>) -> String {
    let (fact, server_hint) = match message.split_once(';') {
        Some((fact, hint)) => (fact.trim_end(), Some(hint.trim_start())),
        None => (message, None),
    };
    let room = command.and_then(room_of);
    let hint = match (code, command) {
        (ErrorCode::NoSuchRoom, _) => room.map(|room| format!(":cr {room} creates it")),
        (ErrorCode::RoomExists, _) => room.map(|room| format!(":jr {room} joins it")),
        (ErrorCode::NotInRoom, Some(Command::RoomMessage { room, .. })) => {
            Some(format!(":jr {room} joins it"))
        }
        (ErrorCode::UnknownCommand, _) => Some(":help lists the commands".into()),
        (ErrorCode::BadArguments, Some(command)) => {
            let verb = command.verb();
            input::help_on(verb).map(|help| format!("usage: {}", help.usage))
        }
        (ErrorCode::GuestsDisabled, _) => Some(
            "leave out --guest to log in with a password (--register creates an account)".into(),
        ),
        // "<name> is a registered account; use LOGIN": a guest took an account's name.
        (ErrorCode::NameTaken, Some(Command::Nick { .. })) if server_hint.is_some() => {
            Some("leave out --guest to log in to it with its password".into())
        }
        (ErrorCode::NotLoggedIn, _) => return format!("{code}: not logged in yet"),
        // Other hints stand, unless they name a command the user cannot type as it is.
        _ => server_hint
            .filter(|hint| !names_a_protocol_verb(hint))
            .map(str::to_owned),
    };
    match hint {
        Some(hint) => format!("{code}: {}; {}", printable(fact), printable(&hint)),
        None => format!("{code}: {}", printable(fact)),
    }
}

/// Whether `text` names a protocol verb (`CR`, `HELP`), which a user of this client does not
/// type as it is.
pub fn names_a_protocol_verb(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric() && c != ':')
        .any(|word| Verb::ALL.iter().any(|verb| word == verb.as_str()))
}

/// The room a command is about.
fn room_of(command: &Command) -> Option<&Name> {
    match command {
        Command::CreateRoom { room }
        | Command::JoinRoom { room }
        | Command::LeaveRoom { room }
        | Command::ListRoomUsers { room }
        | Command::RoomMessage { room, .. } => Some(room),
        _ => None,
    }
}

/// A command as the user would type it (`:jr dev`), without a password.
pub fn command(command: &Command) -> String {
    let verb = input::spelled(command.verb());
    match command {
        Command::Login { name, .. } | Command::Register { name, .. } => format!("{verb} {name}"),
        other => {
            // The protocol line, with the verb as the client spells it.
            let line = other.to_string();
            let rest = line.split_once(' ').map_or("", |(_, rest)| rest);
            printable(format!("{verb} {rest}").trim_end())
        }
    }
}

/// A `HELP` line from the server, in the client's words when the user can type the verb.
pub fn help(verb: Verb) -> String {
    match input::help_on(verb) {
        Some(help) => help.line(),
        None => verb.usage().into(),
    }
}

/// What a `PONG` says about the `PING` it answers.
pub fn pong(token: Option<&str>, answered: Option<&Pending>) -> String {
    let token = token.map(|token| format!(" {token}")).unwrap_or_default();
    match answered {
        Some(ping) => format!("pong{token}: {}", round_trip(ping.elapsed())),
        None => format!("pong{token}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linechat_protocol::Password;

    #[test]
    fn words_for_replies() {
        let bob = Name::parse("bob").unwrap();
        assert_eq!(ok(Verb::JoinRoom, Some("dev")), "joined #dev");
        assert_eq!(ok(Verb::Pm, Some("bob")), "sent to @bob");
        assert_eq!(
            ok(Verb::Pm, Some("bob queued")),
            "bob is offline: the message waits for their next login"
        );
        assert_eq!(
            ok(Verb::Pm, Some("bob away: at  lunch")),
            "sent to @bob, who is away: at  lunch"
        );
        assert_eq!(ok(Verb::Nick, Some("bob")), "nick bob");
        assert_eq!(
            notice(&Notice::Offline {
                user: bob.clone(),
                how: Departure::Quit(Some("bye".into()))
            }),
            "bob went offline (quit: bye)"
        );
        assert_eq!(names(&[]), "(none)");
        assert_eq!(names(&[bob.clone(), bob]), "bob bob");
        assert_eq!(round_trip(Duration::from_micros(1340)), "1.3 ms");
        assert_eq!(printable("a\tb\u{7}"), "a b\u{fffd}");
    }

    #[test]
    fn commands_are_shown_without_passwords() {
        let login = Command::Login {
            name: Name::parse("al").unwrap(),
            password: Password::new("hunter2"),
        };
        assert_eq!(command(&login), ":login al");
    }

    #[test]
    fn commands_are_shown_as_the_user_types_them() {
        let room = Name::parse("dev").unwrap();
        assert_eq!(
            command(&Command::JoinRoom { room: room.clone() }),
            ":jr dev"
        );
        assert_eq!(
            command(&Command::RoomMessage {
                room,
                text: "a  b".into()
            }),
            ":rm dev a  b"
        );
        assert_eq!(command(&Command::Users {}), ":users");
        assert_eq!(command(&Command::Quit { reason: None }), ":quit");
    }

    fn parse(line: &str) -> Command {
        Command::parse(line).unwrap().unwrap()
    }

    #[test]
    fn errors_name_the_clients_commands_not_the_servers() {
        let cases = [
            // The server's own messages (protocol.md §9), with the command refused.
            (
                ErrorCode::NoSuchRoom,
                "there is no room ops; CR creates it",
                Some("JR ops"),
                "NO_SUCH_ROOM: there is no room ops; :cr ops creates it",
            ),
            (
                ErrorCode::NoSuchRoom,
                "there is no room ops; CR creates it",
                Some("RM ops hi"),
                "NO_SUCH_ROOM: there is no room ops; :cr ops creates it",
            ),
            // Without the command the room is not known: no hint rather than the server's.
            (
                ErrorCode::NoSuchRoom,
                "there is no room ops; CR creates it",
                None,
                "NO_SUCH_ROOM: there is no room ops",
            ),
            (
                ErrorCode::RoomExists,
                "Dev already exists; JR joins it",
                Some("CR dev"),
                "ROOM_EXISTS: Dev already exists; :jr dev joins it",
            ),
            (
                ErrorCode::NotInRoom,
                "you are not in dev",
                Some("RM dev hi"),
                "NOT_IN_ROOM: you are not in dev; :jr dev joins it",
            ),
            (
                ErrorCode::NotInRoom,
                "you are not in dev",
                Some("LR dev"),
                "NOT_IN_ROOM: you are not in dev",
            ),
            (
                ErrorCode::UnknownCommand,
                "unknown command \"WHO\"; HELP lists the commands",
                Some("USERS"),
                "UNKNOWN_COMMAND: unknown command \"WHO\"; :help lists the commands",
            ),
            (
                ErrorCode::BadArguments,
                "missing argument; usage: CR <room> - create a room and join it",
                Some("CR dev"),
                "BAD_ARGUMENTS: missing argument; usage: :cr <room>",
            ),
            (
                ErrorCode::BadArguments,
                "missing argument; usage: CR <room> - create a room and join it",
                None,
                "BAD_ARGUMENTS: missing argument",
            ),
            (
                ErrorCode::GuestsDisabled,
                "guests are not allowed here; REGISTER or LOGIN",
                Some("NICK al"),
                "GUESTS_DISABLED: guests are not allowed here; leave out --guest to log in \
                 with a password (--register creates an account)",
            ),
            (
                ErrorCode::NameTaken,
                "al is a registered account; use LOGIN",
                Some("NICK al"),
                "NAME_TAKEN: al is a registered account; leave out --guest to log in to it \
                 with its password",
            ),
            (
                ErrorCode::NameTaken,
                "al is online already",
                Some("NICK al"),
                "NAME_TAKEN: al is online already",
            ),
            (
                ErrorCode::NotLoggedIn,
                "log in first: LOGIN <name> <password>, REGISTER <name> <password> or NICK <name>",
                Some("USERS"),
                "NOT_LOGGED_IN: not logged in yet",
            ),
            // Hints that name no command stand.
            (
                ErrorCode::TooManyAttempts,
                "too many failed attempts; try again in 5 s",
                Some("LOGIN al pw"),
                "TOO_MANY_ATTEMPTS: too many failed attempts; try again in 5 s",
            ),
            (
                ErrorCode::Flood,
                "over 20 lines per second; the line was dropped",
                None,
                "FLOOD: over 20 lines per second; the line was dropped",
            ),
            (
                ErrorCode::NoSuchUser,
                "bob is neither online nor registered",
                Some("PM bob hi"),
                "NO_SUCH_USER: bob is neither online nor registered",
            ),
        ];
        for (code, message, command, expected) in cases {
            let command = command.map(parse);
            let shown = err(code, message, command.as_ref());
            assert_eq!(shown, expected);
            assert!(!names_a_protocol_verb(&shown), "{shown}");
        }
        // A hint this client does not know of is dropped if it names a protocol command.
        assert_eq!(
            err(
                ErrorCode::Internal,
                "history is unavailable; HISTORY again later",
                None
            ),
            "INTERNAL: history is unavailable"
        );
        // What a server line could hold is shown, not obeyed.
        assert_eq!(
            err(ErrorCode::Internal, "a\u{1b}b", None),
            "INTERNAL: a\u{fffd}b"
        );
    }
}
