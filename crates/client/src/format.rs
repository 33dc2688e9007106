//! Readable text for what the server says, shared by line mode and the TUI.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local};
use linechat_protocol::{Command, Departure, ErrorCode, Name, Notice, Verb};

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
        Notice::Shutdown => "the server is shutting down".into(),
        Notice::Closing { reason } => {
            format!("the server is closing the connection ({})", reason.as_str())
        }
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
        Verb::Pm => match detail.strip_suffix(" queued") {
            Some(user) => format!("{user} is offline: the message waits for their next login"),
            None => format!("sent to @{detail}"),
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

pub fn err(code: ErrorCode, message: &str) -> String {
    format!("{code}: {}", printable(message))
}

/// A command as the user may see it, without a password.
pub fn command(command: &Command) -> String {
    match command {
        Command::Login { name, .. } => format!("LOGIN {name}"),
        Command::Register { name, .. } => format!("REGISTER {name}"),
        other => printable(&other.to_string()),
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
        assert_eq!(command(&login), "LOGIN al");
    }
}
