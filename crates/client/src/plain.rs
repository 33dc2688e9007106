//! Line mode: for pipes, scripts and terminals without the TUI.
//!
//! Each input line is a `:command` or text for the room joined last (else everyone). The client
//! sends one at a time and waits for its final line, so that `:jr dev` is done before the
//! next line is read. What arrives goes to standard output, one line each, in a stable form:
//!
//! ```text
//! 14:02:11 #dev <alice> deploy done        RM: time, room, sender, text
//! 14:02:11 * <alice> hello all             MSG: to everyone
//! 14:02:11 @alice <alice> psst             PM: the conversation with alice
//! 14:02:11 #dev bob joined                 JR, LR
//! 14:02:11 -- bob is online                NOTICE
//! 2026-11-25 16:40:00 #dev <alice> hi      a HIST line: when it was sent
//! ok: joined #dev                          the final line of a command
//! error NO_SUCH_ROOM: there is no room x; :cr x creates it
//! users: alice bob                         USERS (rooms: LRS, #dev members: LRU)
//! pong: 0.4 ms                             PONG, with the round-trip time
//! ```
//!
//! Messages about the connection (lost, reconnecting) go to standard error. When the input
//! ends and every command has been answered, the client sends `QUIT` and exits with 0.

use std::io::Write;

use chrono::Local;
use linechat_protocol::{Command, HistoryPage, Reply};
use tokio::sync::mpsc;

use crate::connection::{Line, LinkEvent};
use crate::format;
use crate::input::{self, Input, Mode};
use crate::session::{Pending, Session};

/// The text printed for one server line; `None` for lines not shown (the greeting).
pub fn describe(line: &Line, answered: Option<&Pending>, session: &Session) -> Option<String> {
    let reply = match line {
        Line::Reply(reply) => reply,
        Line::Unknown(raw) => return Some(format!("server: {}", format::printable(raw))),
    };
    let now = || format::clock(Local::now());
    let text = |text: &str| format::printable(text);
    Some(match reply {
        // The link answers the server's PING itself.
        Reply::Hello { .. } | Reply::Ping(_) => return None,
        Reply::Ok { verb, detail } => format!("ok: {}", format::ok(*verb, detail.as_deref())),
        Reply::Err { code, message } => {
            let command = answered.map(|pending| &pending.command);
            format!("error {}", format::err(*code, message, command))
        }
        Reply::Users(users) => format!("users: {}", format::names(users)),
        Reply::Rooms(rooms) => format!("rooms: {}", format::names(rooms)),
        Reply::RoomUsers { room, users } => {
            format!("#{room} members: {}", format::names(users))
        }
        Reply::Pong(token) => format::pong(token.as_deref(), answered),
        Reply::Topic { room, topic } => format::topic(room, topic.as_ref()),
        Reply::Help(verb) => format!("help: {}", format::help(*verb)),
        Reply::Msg { from, text: t } => format!("{} * <{from}> {}", now(), text(t)),
        Reply::Pm { from, text: t } => format!("{} @{from} <{from}> {}", now(), text(t)),
        Reply::Rm {
            room,
            from,
            text: t,
        } => format!("{} #{room} <{from}> {}", now(), text(t)),
        Reply::Hist {
            target,
            at,
            from,
            text: t,
        } => format!(
            "{} {} <{from}> {}",
            format::date_time(*at),
            session.conversation_of(target).label(),
            text(t)
        ),
        Reply::Unread { target, count, .. } => format!(
            "unread: {} {count}",
            session.conversation_of(target).label()
        ),
        Reply::Joined { room, user } => format!("{} #{room} {user} joined", now()),
        Reply::Left { room, user } => format!("{} #{room} {user} left", now()),
        Reply::Notice(notice) => format!("{} -- {}", now(), format::notice(notice)),
    })
}

/// Runs line mode until the input ends (or `:quit`) and everything sent is answered.
/// Returns the exit status.
pub async fn run(
    mut session: Session,
    addr: &str,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    mut input: mpsc::Receiver<String>,
) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut input_open = true;
    let mut quitting = false;
    // Commands whose answer was lost with the connection.
    let mut unanswered = 0;
    let status = |unanswered: usize| i32::from(unanswered > 0);
    loop {
        if !input_open && !session.is_busy() && !quitting {
            if !session.is_connected() {
                return status(unanswered);
            }
            quitting = true;
            let _ = session.send(Command::Quit { reason: None }, true);
        }
        let ready = input_open && !quitting && session.is_connected() && !session.is_busy();
        tokio::select! {
            event = events.recv() => match event {
                None => return status(unanswered) + 1,
                Some(LinkEvent::Line(line)) => {
                    let answered = session.on_line(&line);
                    let quit = answered
                        .as_ref()
                        .is_some_and(|p| matches!(p.command, Command::Quit { .. }));
                    let automatic_quit = quit && answered.as_ref().is_some_and(|p| p.automatic);
                    if !automatic_quit
                        && let Some(text) = describe(&line, answered.as_ref(), &session)
                    {
                        let _ = writeln!(out, "{text}");
                    }
                    if quit {
                        return status(unanswered);
                    }
                }
                Some(LinkEvent::Connected { name, outbox, again }) => {
                    let rejoin = session.on_connected(name, outbox);
                    if again {
                        eprintln!("client: reconnected to {addr} as {}", session.me);
                        for room in rejoin {
                            eprintln!("client: rejoining #{room}");
                        }
                    }
                }
                Some(LinkEvent::Lost { reason }) => {
                    eprintln!("client: connection lost: {reason}; reconnecting");
                    for pending in session.on_lost() {
                        if matches!(pending.command, Command::Quit { .. }) {
                            return status(unanswered);
                        }
                        if !pending.automatic {
                            unanswered += 1;
                            eprintln!(
                                "client: no answer to \"{}\": it may or may not have been done",
                                format::command(&pending.command)
                            );
                        }
                    }
                }
                Some(LinkEvent::Retrying { attempt, delay, error }) => {
                    eprintln!(
                        "client: reconnection attempt {attempt} failed: {error}; next in {:.1} s",
                        delay.as_secs_f64()
                    );
                }
                Some(LinkEvent::Ended { error: Some(error) }) => {
                    eprintln!("client: {error}");
                    return 1;
                }
                Some(LinkEvent::Ended { error: None }) => return status(unanswered),
            },
            line = input.recv(), if ready => match line {
                None => input_open = false,
                Some(line) => {
                    if let Some(text) = handle_input(&mut session, &line, &mut quitting) {
                        let _ = writeln!(out, "{text}");
                    }
                }
            },
        }
        let _ = out.flush();
    }
}

/// Acts on one input line; returns what to print at once, if anything.
fn handle_input(session: &mut Session, line: &str, quitting: &mut bool) -> Option<String> {
    let command = match input::parse(line) {
        Ok(Input::Nothing) => return None,
        Ok(Input::Text(text)) => session.default_target().command(&text),
        Ok(Input::Send(command)) => Ok(command),
        Ok(Input::History) => Ok(Command::History {
            target: Session::history_target(&session.default_target()),
            page: HistoryPage::Latest,
            count: None,
        }),
        Ok(Input::Open(user)) => {
            return Some(format!(
                "error: a message is missing: :pm {user} <text> (a line without a command goes to {})",
                session.default_target().label()
            ));
        }
        Ok(Input::Help(None)) => return Some(input::commands_help(Mode::Lines).join("\n")),
        Ok(Input::Help(Some(verb))) => {
            return Some(input::verb_help(verb, Mode::Lines).join("\n"));
        }
        Err(error) => return Some(format!("error: {error}")),
    };
    let command = match command {
        Ok(command) => command,
        Err(error) => return Some(format!("error: {error}")),
    };
    *quitting |= matches!(command, Command::Quit { .. });
    match session.send(command, false) {
        Ok(()) => None,
        Err(error) => Some(format!("error: {error}")),
    }
}

/// Reads standard input on a thread of its own (a read cannot be cancelled, and the client
/// must keep reading the server meanwhile), one line at a time.
pub fn read_stdin() -> mpsc::Receiver<String> {
    let (lines, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut stdin = std::io::stdin().lock();
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match stdin.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if lines.blocking_send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;
    use linechat_protocol::Name;

    fn session() -> Session {
        let mut session = Session::new(Name::parse("me").unwrap());
        session.on_line(&line("OK CR dev"));
        session
    }

    fn line(text: &str) -> Line {
        Line::Reply(Reply::parse(text).unwrap())
    }

    fn show(text: &str) -> String {
        describe(&line(text), None, &session()).unwrap()
    }

    /// Drops the `HH:MM:SS ` of a delivery.
    fn without_clock(shown: String) -> String {
        let (clock, rest) = shown.split_once(' ').unwrap();
        assert_eq!(clock.len(), 8, "{shown}");
        assert_eq!(clock.as_bytes()[2], b':', "{shown}");
        rest.to_owned()
    }

    #[test]
    fn deliveries_show_time_place_and_sender() {
        assert_eq!(
            without_clock(show("RM dev alice deploy  done")),
            "#dev <alice> deploy  done"
        );
        assert_eq!(without_clock(show("MSG alice hi")), "* <alice> hi");
        assert_eq!(without_clock(show("PM alice psst")), "@alice <alice> psst");
        assert_eq!(without_clock(show("JR dev bob")), "#dev bob joined");
        assert_eq!(without_clock(show("LR dev bob")), "#dev bob left");
        assert_eq!(
            without_clock(show("NOTICE OFFLINE bob LOST")),
            "-- bob went offline (connection lost)"
        );
    }

    #[test]
    fn final_lines() {
        assert_eq!(show("OK JR dev"), "ok: joined #dev");
        // The server's hint names CR; the client's names :cr.
        let join = Pending {
            command: Command::JoinRoom {
                room: Name::parse("x").unwrap(),
            },
            sent_at: std::time::Instant::now(),
            automatic: false,
        };
        assert_eq!(
            describe(
                &line("ERR NO_SUCH_ROOM there is no room x; CR creates it"),
                Some(&join),
                &session()
            )
            .unwrap(),
            "error NO_SUCH_ROOM: there is no room x; :cr x creates it"
        );
        assert_eq!(show("USERS alice bob"), "users: alice bob");
        assert_eq!(show("LRS"), "rooms: (none)");
        assert_eq!(show("LRU dev me"), "#dev members: me");
        assert_eq!(show("PONG"), "pong");
        assert_eq!(
            show("HELP PM <user> <text> - private message"),
            "help: :pm <user> <text>     private message"
        );
        assert_eq!(describe(&line("HELLO linechat 1"), None, &session()), None);
        assert_eq!(
            describe(&Line::Unknown("WHAT now".into()), None, &session()).unwrap(),
            "server: WHAT now"
        );
    }

    #[test]
    fn history_lines_name_their_conversation() {
        let shown = show("HIST dev 2026-11-25T16:40:00.123Z alice hi");
        assert!(shown.ends_with(" #dev <alice> hi"), "{shown}");
        assert!(shown.starts_with("2026-11-2"), "{shown}");
        let shown = show("HIST bob 2026-11-25T16:40:00.123Z alice hi");
        assert!(shown.ends_with(" @bob <alice> hi"), "{shown}");
    }

    #[test]
    fn text_goes_to_the_room_joined_last() {
        let (outbox, mut sent) = mpsc::unbounded_channel();
        let mut session = Session::new(Name::parse("me").unwrap());
        session.on_connected(Name::parse("me").unwrap(), outbox);
        let mut quitting = false;
        assert_eq!(handle_input(&mut session, "hello", &mut quitting), None);
        assert_eq!(sent.try_recv().unwrap().to_string(), "MSG hello");
        session.on_line(&line("OK MSG"));
        session.on_line(&line("OK JR dev"));
        handle_input(&mut session, "hello  dev", &mut quitting);
        assert_eq!(sent.try_recv().unwrap().to_string(), "RM dev hello  dev");
        handle_input(&mut session, ":history", &mut quitting);
        assert_eq!(sent.try_recv().unwrap().to_string(), "HISTORY dev");
        let error = handle_input(&mut session, ":pm bob", &mut quitting).unwrap();
        assert!(error.starts_with("error: a message is missing"), "{error}");
        let error = handle_input(&mut session, ":nick x", &mut quitting).unwrap();
        assert!(
            error.starts_with("error: :nick is not available"),
            "{error}"
        );
        let help = handle_input(&mut session, ":help", &mut quitting).unwrap();
        assert!(help.starts_with("A line without a command goes to the room you joined last"));
        let help = handle_input(&mut session, ":help pm", &mut quitting).unwrap();
        assert_eq!(help, ":pm <user> <text>     private message");
        assert!(!quitting);
        handle_input(&mut session, ":quit bye", &mut quitting);
        assert!(quitting);
        assert_eq!(sent.try_recv().unwrap().to_string(), "QUIT bye");
    }
}
