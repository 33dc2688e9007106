//! One client's session: what a connection holds between its lines, whatever its protocol
//! (the user logged in, their rooms, the answers in flight). The connection loop that drives
//! it is [`serve`], with a [`FrontEnd`] for each protocol: the line protocol's is
//! [`LineFrontEnd`].

mod front_end;
mod line;
mod serve;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use linechat_protocol::{Departure, Name, Reply, Verb};

use super::cmd;
use super::handle::ServerHandle;
use super::limits::RoomCreations;
use super::mailbox::Answer;
use super::member::Member;
use super::room::Room;
use super::user::{PmError, PmOutcome, Private, Users};
use crate::connection::{Delivery, Outbox};
use crate::settings::Settings;

pub(super) use front_end::{Flow, FrontEnd, Refusal};
pub(super) use line::LineFrontEnd;
pub(super) use serve::{End, serve};

/// What every session shares.
#[derive(Debug)]
pub(super) struct SessionContext {
    pub server: ServerHandle,
    pub settings: Arc<Settings>,
    pub shutdown: CancellationToken,
}

/// A logged-in user. Dropping it takes the user offline and out of their rooms, also when the
/// session's task panics, so that nobody is left behind in a room.
pub(super) struct Presence {
    pub(super) users: Users,
    pub(super) member: Member,
    /// Registered users' rooms are remembered across logins; guests' are not.
    pub(super) registered: bool,
    /// The rooms the user is in, with the handles their messages go to.
    pub(super) rooms: BTreeMap<Name, Room>,
    /// What others are told; stays `Lost` if the session's task panics.
    pub(super) how: Departure,
}

impl Drop for Presence {
    fn drop(&mut self) {
        for room in std::mem::take(&mut self.rooms).into_values() {
            room.leave_quietly(self.member.clone());
        }
        let how = std::mem::replace(&mut self.how, Departure::Lost);
        self.users.logout(self.member.clone(), how);
    }
}

/// Someone this session sent a private message to, kept so that the next ones go straight to
/// their outbox: valid exactly as long as that outbox takes lines, that is as long as their
/// session lives.
pub(super) struct Recipient {
    pub(super) member: Member,
    /// `OK PM <name>`, encoded once.
    pub(super) sent: Arc<Delivery>,
}

/// The final line of a command sent on without waiting, in the order of the commands.
pub(super) enum InFlight {
    /// Known already; it waits only for the lines of the commands before it.
    Ready(Arc<Delivery>),
    /// A global message the directory sends; answered once it is sent.
    Broadcast(Answer<()>),
    /// A private message the directory delivers; its answer may hand over the recipient.
    Private(Answer<Private>),
}

/// What a command in flight came to.
enum Answered {
    Line(Arc<Delivery>),
    Reply(Reply),
    Private(Private),
}

impl InFlight {
    async fn answered(&mut self) -> Answered {
        match self {
            InFlight::Ready(line) => Answered::Line(line.clone()),
            InFlight::Broadcast(answer) => Answered::Reply(match answer.await {
                Ok(()) => Reply::ok(Verb::Msg),
                Err(_) => cmd::unavailable(),
            }),
            InFlight::Private(answer) => {
                Answered::Private(answer.await.unwrap_or(Err(PmError::Unavailable)))
            }
        }
    }
}

pub(super) struct Session {
    pub(super) peer: SocketAddr,
    pub(super) outbox: Outbox,
    pub(super) context: Arc<SessionContext>,
    pub(super) presence: Option<Presence>,
    /// Messages (`RM`, `MSG`, `PM`) sent on without waiting, oldest first. Their replies go
    /// out in this order, and before the reply of any later command, so a burst of messages
    /// costs no round trip each, yet every command still gets its final line in order.
    pub(super) in_flight: VecDeque<InFlight>,
    /// How many of those are private messages the directory is delivering. While any is, a
    /// message to someone whose handle the session lacks first waits for their answers.
    pub(super) privates_in_flight: usize,
    /// The users this session sent private messages to lately, by name.
    pub(super) recipients: HashMap<Name, Recipient>,
    pub(super) room_creations: RoomCreations,
    /// When a connection that has not logged in is closed: `login_timeout_secs` after it
    /// was accepted.
    pub(super) login_deadline: Instant,
}

/// Messages a session lets run ahead of their replies.
const MAX_IN_FLIGHT: usize = 64;

/// Recipients a session keeps the handles of.
const MAX_RECIPIENTS: usize = 32;

impl Session {
    /// A connection's session, not logged in yet: the line protocol's, or the one an IRC
    /// connection drives.
    /// `connected_at` is when the TCP connection was accepted: the login deadline counts
    /// from it.
    pub(super) fn new(
        peer: SocketAddr,
        outbox: Outbox,
        context: Arc<SessionContext>,
        connected_at: Instant,
    ) -> Self {
        Session {
            peer,
            login_deadline: connected_at + context.settings.login_timeout(),
            room_creations: RoomCreations::new(&context.settings),
            outbox,
            context,
            presence: None,
            in_flight: VecDeque::new(),
            privates_in_flight: 0,
            recipients: HashMap::new(),
        }
    }

    /// Queues the final line of a message sent on without waiting, after those of the
    /// commands before it; waits for the oldest when too many are in flight.
    pub(super) async fn pipeline(&mut self, item: InFlight) {
        match item {
            InFlight::Ready(line) if self.in_flight.is_empty() => {
                let _ = self.outbox.push(line);
            }
            item => self.in_flight.push_back(item),
        }
        if self.in_flight.len() > MAX_IN_FLIGHT
            && let Some(mut oldest) = self.in_flight.pop_front()
        {
            let answered = oldest.answered().await;
            self.deliver(answered);
        }
    }

    /// Sends what a command in flight came to, and keeps the recipient a directory handed
    /// over.
    fn deliver(&mut self, answered: Answered) {
        match answered {
            Answered::Line(line) => {
                let _ = self.outbox.push(line);
            }
            Answered::Reply(reply) => self.send(reply),
            Answered::Private(answer) => {
                self.privates_in_flight = self.privates_in_flight.saturating_sub(1);
                let reply = cmd::pm_answer(&answer);
                if let Ok(PmOutcome::Delivered { recipient }) = answer {
                    self.keep_recipient(recipient);
                }
                self.send(reply);
            }
        }
    }

    /// Keeps the handle of someone the directory delivered a private message to, so that
    /// the next ones go straight to their outbox.
    pub(super) fn keep_recipient(&mut self, member: Member) {
        if self.recipients.len() >= MAX_RECIPIENTS {
            self.recipients
                .retain(|_, recipient| !recipient.member.outbox.is_closed());
            if self.recipients.len() >= MAX_RECIPIENTS {
                self.recipients.clear();
            }
        }
        let sent = Delivery::new(Reply::ok_with(Verb::Pm, &member.name));
        self.recipients
            .insert(member.name.clone(), Recipient { member, sent });
    }

    /// Names the session's span after the user it is now logged in as.
    pub(super) fn logged_in_as(&self, name: &Name) {
        tracing::Span::current().record("user", name.as_str());
    }

    /// Sends the replies of the messages still in flight, in order.
    pub(super) async fn settle(&mut self) {
        while let Some(mut oldest) = self.in_flight.pop_front() {
            let answered = oldest.answered().await;
            self.deliver(answered);
        }
    }

    /// Sends a final reply after those of the commands before it, without waiting for them.
    /// Not an `async fn`: that would keep the reply in the session's task beside the line
    /// encoded from it, in the state of every loop that awaits this.
    pub(super) fn reply_in_order(&mut self, reply: Reply) -> impl Future<Output = ()> + '_ {
        self.pipeline(InFlight::Ready(self.outbox.delivery(reply)))
    }

    pub(super) fn send(&self, reply: Reply) {
        // A full outbox closes the connection; the session loop sees that and ends.
        let _ = self.outbox.send(reply);
    }
}

/// What the oldest message in flight came to. Cancel-safe: the message stays in flight until
/// the caller pops it.
async fn next_answer(in_flight: &mut VecDeque<InFlight>) -> Answered {
    match in_flight.front_mut() {
        Some(oldest) => oldest.answered().await,
        None => std::future::pending().await,
    }
}
