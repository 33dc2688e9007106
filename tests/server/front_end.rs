//! A front-end written here, outside the crate, in this one file: a protocol of its own served
//! on a listener of its own ([`linechat::server::Server::serve_front_end`]), driving the same
//! sessions and actors as the line protocol and IRC through the public
//! [`FrontEnd`] trait and [`Session`]'s typed operations. It is the smallest example of a
//! front-end (README, "Adding a front-end"), and it shows what the others' words hide: the
//! id and the time a room message carries, which are the ones history keeps.
//!
//! Its protocol, one line each way:
//!
//! | client sends             | it answers                                                  |
//! |--------------------------|-------------------------------------------------------------|
//! | `guest <name>`           | `ok guest <name>`                                           |
//! | `login <name> <password>`| `ok login <name>`, after a `joined` line per room it is in  |
//! | `join <room>`            | `ok join <room>`                                            |
//! | `say <room> <text>`      | `ok say <room>`                                             |
//! | `history <room>`         | a `message ...` line per message, then `ok history <count>` |
//! | `quit`                   | `bye`, and the connection closes                            |
//!
//! A refusal is `err <why>`. Events come as they happen: a room message as
//! `event room=<room> id=<id> at=<millis> from=<name> text=<text>` (the same fields as a
//! `message` line of history), a join as `joined room=<room> user=<name>`; the others are not
//! shown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use linechat::connection::{Content, Delivery, Wording};
use linechat::server::event::Event;
use linechat::server::session::{End, Flow, FrontEnd, Refusal, Session};
use linechat_protocol::{Name, Password};

use crate::support::{Client, Server, TestServer};

/// One connection of the test front-end: its session is all it keeps.
pub struct TestFrontEnd {
    session: Session,
}

/// A line decoded.
pub enum Action {
    Guest(Name),
    Login(Name, Password),
    Join(Name),
    Say(Name, String),
    History(Name),
    Quit,
    /// A line it does not take, with why.
    Bad(String),
}

impl TestFrontEnd {
    fn send(&self, line: String) {
        let _ = self
            .session
            .outbox()
            .push(Delivery::from_bytes(Bytes::from(line + "\n")));
    }

    fn answer<T>(&self, outcome: Result<T, impl std::fmt::Display>, ok: impl FnOnce(T) -> String) {
        match outcome {
            Ok(done) => self.send(ok(done)),
            Err(error) => self.send(format!("err {error}")),
        }
    }
}

fn name(word: &str) -> Result<Name, String> {
    Name::parse(word).map_err(|error| error.to_string())
}

fn millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

impl FrontEnd for TestFrontEnd {
    type Wording = TestWording;
    type Action = Action;

    fn new(session: Session) -> Self {
        TestFrontEnd { session }
    }

    fn wording(&self) -> TestWording {
        TestWording
    }

    fn greet(&mut self) {
        self.send("hello test".into());
    }

    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn logged_in(&self) -> bool {
        self.session.user().is_some()
    }

    fn decode(&self, line: &str) -> Option<Action> {
        let mut words = line.splitn(3, ' ');
        let verb = words.next().filter(|verb| !verb.is_empty())?;
        let decoded = match (verb, words.next(), words.next()) {
            ("guest", Some(who), None) => name(who).map(Action::Guest),
            ("login", Some(who), Some(password)) => {
                name(who).map(|who| Action::Login(who, Password::new(password)))
            }
            ("join", Some(room), None) => name(room).map(Action::Join),
            ("say", Some(room), Some(text)) => {
                name(room).map(|room| Action::Say(room, text.into()))
            }
            ("history", Some(room), None) => name(room).map(Action::History),
            ("quit", None, None) => Ok(Action::Quit),
            _ => Err(format!("what is {line:?}?")),
        };
        Some(decoded.unwrap_or_else(Action::Bad))
    }

    async fn handle(&mut self, action: Action) -> Flow {
        match action {
            Action::Guest(who) => {
                let outcome = self.session.log_in_as_guest(who).await;
                self.answer(outcome, |who| format!("ok guest {who}"));
            }
            Action::Login(who, password) => {
                let outcome = self.session.log_in(who, password).await;
                self.answer(outcome, |who| format!("ok login {who}"));
            }
            Action::Join(room) => {
                let outcome = self.session.join(room).await;
                self.answer(outcome, |room| format!("ok join {room}"));
            }
            Action::Say(room, text) => {
                let outcome = self.session.say(room, text).await;
                self.answer(outcome, |room| format!("ok say {room}"));
            }
            Action::History(room) => {
                let outcome = self.session.room_history(room.clone(), 100).await;
                self.answer(outcome, |messages| {
                    for message in &messages {
                        self.send(format!(
                            "message room={room} id={} at={} from={} text={}",
                            message.id,
                            millis(message.at),
                            message.from,
                            message.text
                        ));
                    }
                    format!("ok history {}", messages.len())
                });
            }
            Action::Quit => return Flow::Quit(None),
            Action::Bad(why) => self.send(format!("err {why}")),
        }
        Flow::Continue
    }

    fn ping(&mut self) {
        self.send("ping".into());
    }

    async fn refuse(&mut self, refusal: Refusal) {
        self.send(format!("err dropped: {refusal:?}"));
    }

    fn parting(&mut self, end: &End) -> Option<Arc<Delivery>> {
        if let End::Quit(_) = end {
            self.send("bye".into());
        }
        None
    }
}

/// How the test front-end's writer words what reaches its connections: its own lines as they
/// are, room messages and joins as `event` and `joined` lines.
pub struct TestWording;

impl Wording for TestWording {
    fn put(&mut self, delivery: &Arc<Delivery>, batch: &mut BytesMut) {
        let line = match delivery.content() {
            Content::Lines(lines) => return batch.extend_from_slice(lines),
            Content::Event(Event::RoomMessage {
                id,
                at,
                room,
                from,
                text,
            }) => format!(
                "event room={room} id={id} at={} from={from} text={text}\n",
                millis(*at)
            ),
            Content::Event(Event::Joined { room, user }) => {
                format!("joined room={room} user={user}\n")
            }
            _ => return,
        };
        batch.extend_from_slice(line.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// The test front-end's client side, for these tests and the cluster's
// ---------------------------------------------------------------------------------------------

/// A client of the test front-end at `addr`, logged in as guest `name`.
pub async fn guest(addr: SocketAddr, name: &str) -> Client {
    let mut client = Client::connect(addr).await;
    client.expect("hello test").await;
    client
        .check(&format!("guest {name}"), &format!("ok guest {name}"))
        .await;
    client
}

/// Has `client` join `room`; the members are told with a `joined` line, the joiner with the
/// `ok`.
pub async fn join(client: &mut Client, room: &str) {
    client
        .check(&format!("join {room}"), &format!("ok join {room}"))
        .await;
}

/// The fields of an `event` or `message` line: room, id, time, sender and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub room: String,
    pub id: i64,
    pub at: u128,
    pub from: String,
    pub text: String,
}

impl Said {
    fn parse(line: &str, kind: &str) -> Said {
        let fields = line
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(" room="))
            .unwrap_or_else(|| panic!("not a {kind} line: {line:?}"));
        let (room, rest) = fields.split_once(" id=").expect("an id");
        let (id, rest) = rest.split_once(" at=").expect("a time");
        let (at, rest) = rest.split_once(" from=").expect("a sender");
        let (from, text) = rest.split_once(" text=").expect("a text");
        Said {
            room: room.into(),
            id: id.parse().expect("a numeric id"),
            at: at.parse().expect("a time in milliseconds"),
            from: from.into(),
            text: text.into(),
        }
    }
}

/// The next room message `client` is told of, skipping the `joined` lines and the `ok` of
/// its own messages before it.
pub async fn next_event(client: &mut Client) -> Said {
    loop {
        let line = client.line().await;
        if !line.starts_with("joined ") && !line.starts_with("ok say ") {
            return Said::parse(&line, "event");
        }
    }
}

/// `room`'s history as `client` reads it, with ids.
pub async fn history(client: &mut Client, room: &str) -> Vec<Said> {
    client.send(&format!("history {room}")).await;
    let mut messages = Vec::new();
    loop {
        let line = client.line().await;
        if let Some(count) = line.strip_prefix("ok history ") {
            assert_eq!(count, messages.len().to_string());
            return messages;
        }
        messages.push(Said::parse(&line, "message"));
    }
}

/// Has `from` say `text` in `room`; the event `to` (another member) is told of it, checked
/// against what was said.
pub async fn said(from: &mut Client, to: &mut Client, room: &str, text: &str) -> Said {
    from.send(&format!("say {room} {text}")).await;
    from.skip_until(&format!("ok say {room}")).await;
    let event = next_event(to).await;
    assert_eq!((event.room.as_str(), event.text.as_str()), (room, text));
    event
}

fn front_end_addr(server: &TestServer) -> SocketAddr {
    server
        .front_end_addr
        .expect("the test front-end's listener")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_front_end_of_its_own_logs_in_joins_and_is_told_a_room_message_with_its_id_and_time() {
    let server = TestServer::with_front_end::<TestFrontEnd>(|_| {});
    let addr = front_end_addr(&server);
    let mut alice = server.guest("alice").await;
    alice.create_room("lobby", &mut []).await;
    let mut bob = guest(addr, "bob").await;
    let mut carol = guest(addr, "carol").await;
    join(&mut bob, "lobby").await;
    join(&mut carol, "lobby").await;
    alice.skip_until("JR lobby carol").await;
    // A refused login is answered, and the connection carries on.
    let mut again = Client::connect(addr).await;
    again.expect("hello test").await;
    again
        .check("guest carol", "err carol is online already")
        .await;

    let before = millis(SystemTime::now());
    bob.send("say lobby hello  there").await;
    bob.skip_until("ok say lobby").await;
    let event = next_event(&mut carol).await;
    let after = millis(SystemTime::now());
    assert_eq!(
        (
            event.room.as_str(),
            event.from.as_str(),
            event.text.as_str()
        ),
        ("lobby", "bob", "hello  there")
    );
    assert!(event.id > 0, "a stored message's id: {event:?}");
    // The server reads a coarse clock: its time may be a tick behind the test's.
    assert!(before - 1000 <= event.at && event.at <= after, "{event:?}");
    // The line protocol's member hears the same message in its own words.
    alice.expect("RM lobby bob hello  there").await;

    assert_eq!(history(&mut carol, "lobby").await, vec![event.clone()]);
    let next = said(&mut carol, &mut bob, "lobby", "and again").await;
    assert!(next.id > event.id, "ids grow as messages are accepted");

    carol
        .check("history nowhere", "err there is no room nowhere")
        .await;
    carol.check("quit", "bye").await;
    carol.expect_closed().await;
}

#[tokio::test]
async fn a_room_message_keeps_its_id_in_history_across_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut server = TestServer::start_in_with_front_end::<TestFrontEnd>(dir.path(), |_| {});
    // A registered member keeps the room across the restart.
    let mut alice = server.register("alice", "secret").await;
    alice.create_room("lobby", &mut []).await;
    let (mut bob, mut carol) = (
        guest(front_end_addr(&server), "bob").await,
        guest(front_end_addr(&server), "carol").await,
    );
    join(&mut bob, "lobby").await;
    join(&mut carol, "lobby").await;
    let first = said(&mut bob, &mut carol, "lobby", "before the restart").await;
    let second = said(&mut carol, &mut bob, "lobby", "me too").await;
    assert_eq!(
        history(&mut bob, "lobby").await,
        [first.clone(), second.clone()]
    );
    drop((alice, bob, carol));

    server.terminate();
    drop(server);
    let server = TestServer::start_in_with_front_end::<TestFrontEnd>(dir.path(), |_| {});
    // Through the test front-end, alice is back in her room.
    let mut alice = Client::connect(front_end_addr(&server)).await;
    alice.expect("hello test").await;
    alice.send("login alice secret").await;
    alice.expect("joined room=lobby user=alice").await;
    alice.expect("ok login alice").await;
    assert_eq!(history(&mut alice, "lobby").await, [first, second]);
}
