//! What both front ends know about the session: who we are, the rooms we are in, and the
//! commands sent that still wait for their final line.
//!
//! The server answers every command with exactly one final line, in order (protocol.md §2),
//! so the oldest unanswered command is the one a final line answers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use linechat_protocol::{Command, HistoryTarget, Name, Reply, Verb};
use tokio::sync::mpsc;

use crate::connection::Line;
use crate::input::Target;

/// A command sent and not yet answered.
#[derive(Debug, Clone)]
pub struct Pending {
    pub command: Command,
    pub sent_at: Instant,
    /// Sent by the client itself (rejoining, loading history), not typed by the user.
    pub automatic: bool,
}

impl Pending {
    pub fn elapsed(&self) -> Duration {
        self.sent_at.elapsed()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not connected; the client is reconnecting")]
pub struct NotConnected;

pub struct Session {
    /// Our name, as the server spells it.
    pub me: Name,
    /// Rooms we are in, in the order we joined them.
    rooms: Vec<Name>,
    pending: VecDeque<Pending>,
    outbox: Option<mpsc::UnboundedSender<Command>>,
    /// Rooms we were in when the connection dropped.
    rejoin: Vec<Name>,
    /// Whether we log in to an account (not as a guest): it has read markers.
    pub has_account: bool,
}

impl Session {
    pub fn new(me: Name) -> Self {
        Self {
            me,
            rooms: Vec::new(),
            pending: VecDeque::new(),
            outbox: None,
            rejoin: Vec::new(),
            has_account: false,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.outbox.is_some()
    }

    /// Whether a command still waits for its final line.
    pub fn is_busy(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn rooms(&self) -> &[Name] {
        &self.rooms
    }

    pub fn in_room(&self, room: &Name) -> bool {
        self.rooms.contains(room)
    }

    /// The room joined last, which text without a command goes to in line mode.
    pub fn current_room(&self) -> Option<&Name> {
        self.rooms.last()
    }

    pub fn default_target(&self) -> Target {
        match self.current_room() {
            Some(room) => Target::Room(room.clone()),
            None => Target::Everyone,
        }
    }

    /// The history target for a conversation.
    pub fn history_target(target: &Target) -> HistoryTarget {
        match target {
            Target::Everyone => HistoryTarget::Global,
            Target::Room(name) | Target::User(name) => HistoryTarget::Named(name.clone()),
        }
    }

    /// What a `HISTORY` target reads: a room we are in, else a private conversation.
    pub fn conversation_of(&self, target: &HistoryTarget) -> Target {
        match target {
            HistoryTarget::Global => Target::Everyone,
            HistoryTarget::Named(name) if self.in_room(name) => Target::Room(name.clone()),
            HistoryTarget::Named(name) => Target::User(name.clone()),
        }
    }

    pub fn send(&mut self, command: Command, automatic: bool) -> Result<(), NotConnected> {
        let outbox = self.outbox.as_ref().ok_or(NotConnected)?;
        outbox.send(command.clone()).map_err(|_| NotConnected)?;
        self.pending.push_back(Pending {
            command,
            sent_at: Instant::now(),
            automatic,
        });
        Ok(())
    }

    /// The oldest unanswered command, which the next final line answers.
    #[cfg(test)]
    pub fn waiting_for(&self) -> Option<&Pending> {
        self.pending.front()
    }

    /// Takes note of a line. For a final line, returns the command it answers.
    pub fn on_line(&mut self, line: &Line) -> Option<Pending> {
        let reply = match line {
            Line::Reply(reply) => reply,
            // A line of a newer server: if it is a final line, it answers a command.
            Line::Unknown(raw) => {
                let keyword = raw.split(' ').next().unwrap_or_default();
                let is_final = ["OK", "ERR", "USERS", "LRS", "LRU", "PONG"].contains(&keyword);
                return if is_final {
                    self.pending.pop_front()
                } else {
                    None
                };
            }
        };
        match reply {
            // Our own JR: a LOGIN putting us back in a room we had not left.
            Reply::Joined { room, user } if *user == self.me => self.joined(room),
            _ => {}
        }
        if !reply.is_final() {
            return None;
        }
        let answered = self.pending.pop_front();
        if let Reply::Ok { verb, detail } = reply {
            let room = detail.as_deref().and_then(|room| Name::parse(room).ok());
            match (verb, room) {
                (Verb::CreateRoom | Verb::JoinRoom, Some(room)) => self.joined(&room),
                (Verb::LeaveRoom, Some(room)) => self.rooms.retain(|r| *r != room),
                _ => {}
            }
        }
        answered
    }

    fn joined(&mut self, room: &Name) {
        self.rooms.retain(|r| r != room);
        self.rooms.push(room.clone());
        self.rejoin.retain(|r| r != room);
    }

    /// The connection dropped: returns the commands that will never be answered.
    pub fn on_lost(&mut self) -> Vec<Pending> {
        self.outbox = None;
        self.rejoin.append(&mut self.rooms);
        self.pending.drain(..).collect()
    }

    /// Logged in on a new connection. On a reconnection, rejoins the rooms we were in that
    /// the server did not put us back in (a guest's), and returns them.
    pub fn on_connected(
        &mut self,
        name: Name,
        outbox: mpsc::UnboundedSender<Command>,
    ) -> Vec<Name> {
        self.me = name;
        self.outbox = Some(outbox);
        let rejoin = std::mem::take(&mut self.rejoin);
        for room in &rejoin {
            let _ = self.send(Command::JoinRoom { room: room.clone() }, true);
        }
        rejoin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn line(text: &str) -> Line {
        Line::Reply(Reply::parse(text).unwrap())
    }

    fn connected() -> (Session, mpsc::UnboundedReceiver<Command>) {
        let mut session = Session::new(name("me"));
        let (outbox, commands) = mpsc::unbounded_channel();
        session.on_connected(name("Me"), outbox);
        (session, commands)
    }

    #[test]
    fn final_lines_answer_commands_in_order() {
        let (mut session, mut commands) = connected();
        assert_eq!(session.me.as_str(), "Me");
        session.send(Command::Users {}, false).unwrap();
        session.send(Command::Ping { token: None }, false).unwrap();
        assert_eq!(commands.try_recv().unwrap(), Command::Users {});
        assert!(session.is_busy());
        assert!(session.on_line(&line("MSG bob hi")).is_none());
        let first = session.on_line(&line("USERS Me bob")).unwrap();
        assert_eq!(first.command, Command::Users {});
        let second = session.on_line(&line("PONG")).unwrap();
        assert_eq!(second.command, Command::Ping { token: None });
        assert!(!session.is_busy());
        // A final line this client cannot read still answers the oldest command.
        session.send(Command::Users {}, false).unwrap();
        assert!(
            session
                .on_line(&Line::Unknown("USERS a.b".into()))
                .is_some()
        );
        assert!(session.on_line(&Line::Unknown("WHAT".into())).is_none());
    }

    #[test]
    fn rooms_follow_joins_and_leaves() {
        let (mut session, _commands) = connected();
        assert_eq!(session.default_target(), Target::Everyone);
        session.on_line(&line("OK CR dev"));
        session.on_line(&line("OK JR Lobby"));
        assert_eq!(session.default_target(), Target::Room(name("lobby")));
        session.on_line(&line("OK LR lobby"));
        assert_eq!(session.default_target(), Target::Room(name("dev")));
        // Someone else joining is not us joining.
        session.on_line(&line("JR ops bob"));
        assert!(!session.in_room(&name("ops")));
        // A LOGIN restoring our room.
        session.on_line(&line("JR ops Me"));
        assert_eq!(session.current_room(), Some(&name("ops")));
        assert_eq!(
            session.conversation_of(&HistoryTarget::Named(name("ops"))),
            Target::Room(name("ops"))
        );
        assert_eq!(
            session.conversation_of(&HistoryTarget::Named(name("bob"))),
            Target::User(name("bob"))
        );
    }

    #[test]
    fn a_lost_connection_drops_pending_commands_and_rejoins_rooms() {
        let (mut session, _commands) = connected();
        session.on_line(&line("OK CR dev"));
        session.on_line(&line("OK CR ops"));
        session.send(Command::Users {}, false).unwrap();
        let lost = session.on_lost();
        assert_eq!(lost.len(), 1);
        assert!(!session.is_connected());
        assert_eq!(session.send(Command::Users {}, false), Err(NotConnected));
        // The server puts a registered user back in `ops` during LOGIN...
        session.on_line(&line("JR ops Me"));
        let (outbox, mut commands) = mpsc::unbounded_channel();
        // ...and the client rejoins the other.
        assert_eq!(session.on_connected(name("Me"), outbox), vec![name("dev")]);
        assert_eq!(
            commands.try_recv().unwrap(),
            Command::JoinRoom { room: name("dev") }
        );
        assert!(session.waiting_for().unwrap().automatic);
    }
}
