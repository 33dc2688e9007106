//! One client's session: what a connection holds between its lines, whatever its protocol
//! (the user logged in, their rooms, the answers in flight). The connection loop that drives
//! it is `serve`, with a [`FrontEnd`] for each protocol: the line protocol's is
//! `LineFrontEnd`.
//!
//! Public for front-ends outside the crate: [`FrontEnd`] and what it names, and [`Session`]'s
//! public methods. Everything else here is the server's own.

mod front_end;
mod line;
mod serve;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use linechat_protocol::{Departure, Name, Password};

use super::cmd::{self, CommandError, LoginError};
use super::handle::ServerHandle;
use super::limits::RoomCreations;
use super::mailbox::Answer;
use super::member::Member;
use super::room::Room;
use super::storage::{Conversation, StorageError, StoredMessage};
use super::user::{PmError, PmOutcome, Private, RemoteRecipient, Users};
use crate::connection::{Delivery, Outbox};
use crate::settings::Settings;

pub use front_end::{Flow, FrontEnd, Refusal};
pub(super) use line::LineFrontEnd;
pub use serve::End;
pub(super) use serve::serve;

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
    users: Users,
    member: Member,
    /// Registered users' rooms are remembered across logins; guests' are not.
    registered: bool,
    /// The rooms the user is in, with the handles their messages go to.
    rooms: BTreeMap<Name, JoinedRoom>,
    /// What others are told; stays `Lost` if the session's task panics.
    how: Departure,
}

impl Presence {
    /// `member`, online through the directory `users`, in no rooms yet.
    pub(super) fn new(users: Users, member: Member, registered: bool) -> Self {
        Self {
            users,
            member,
            registered,
            rooms: BTreeMap::new(),
            how: Departure::Lost,
        }
    }

    /// Who the user is and where their lines go.
    pub(super) fn member(&self) -> &Member {
        &self.member
    }

    /// The user's name.
    pub(super) fn name(&self) -> &Name {
        &self.member.name
    }

    /// Whether the user logged in to an account (rather than as a guest).
    pub(super) fn is_registered(&self) -> bool {
        self.registered
    }

    /// The handle of `room`, if the user is in it.
    pub(super) fn room(&self, room: &Name) -> Option<&Room> {
        self.rooms.get(room).map(|joined| &joined.handle)
    }

    /// The handle of `room` and the line protocol's answer to a message said there, if the
    /// user is in it.
    pub(super) fn joined(&self, room: &Name) -> Option<&JoinedRoom> {
        self.rooms.get(room)
    }

    /// Whether the user is in `room`.
    pub(super) fn is_in(&self, room: &Name) -> bool {
        self.rooms.contains_key(room)
    }

    /// The rooms the user is in, by name, sorted.
    pub(super) fn rooms(&self) -> impl Iterator<Item = &Name> {
        self.rooms.keys()
    }

    /// Keeps the handle of a room the user joined.
    pub(super) fn entered(&mut self, room: Room) {
        let said = cmd::room_message_sent(room.name());
        let name = room.name().clone();
        self.rooms.insert(name, JoinedRoom { handle: room, said });
    }

    /// Drops the handle of a room the user left.
    pub(super) fn left(&mut self, room: &Name) {
        self.rooms.remove(room);
    }

    /// Hands over the handles of every room the user is in, leaving them none: for a rename,
    /// which leaves each under the old name and joins it under the new.
    pub(super) fn take_rooms(&mut self) -> BTreeMap<Name, Room> {
        let rooms = std::mem::take(&mut self.rooms).into_iter();
        rooms.map(|(name, joined)| (name, joined.handle)).collect()
    }

    /// What the others are told when the user goes.
    pub(super) fn depart_as(&mut self, how: Departure) {
        self.how = how;
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        for joined in std::mem::take(&mut self.rooms).into_values() {
            joined.handle.leave_quietly(self.member.clone());
        }
        let how = std::mem::replace(&mut self.how, Departure::Lost);
        self.users.logout(self.member.clone(), how);
    }
}

/// A room the user is in.
pub(super) struct JoinedRoom {
    handle: Room,
    /// `OK RM <room>`, encoded once: the answer to every message the user says there.
    said: Arc<Delivery>,
}

impl JoinedRoom {
    /// Where the user's messages to the room go.
    pub(super) fn handle(&self) -> &Room {
        &self.handle
    }

    /// The answer to a message the user said there, `OK RM <room>`.
    pub(super) fn said(&self) -> &Arc<Delivery> {
        &self.said
    }
}

/// Someone this session sent a private message to, kept so that the next ones go straight to
/// them: to their outbox on this node, valid exactly as long as it takes lines (as long as
/// their session lives), or to their node's queue, as long as the directory knows them there.
pub(super) struct Recipient {
    reach: Reach,
    /// `OK PM <name>`, encoded once.
    sent: Arc<Delivery>,
}

impl Recipient {
    /// Where their messages go.
    pub(super) fn reach(&self) -> &Reach {
        &self.reach
    }

    /// The answer to a message sent to them, `OK PM <name>`.
    pub(super) fn sent(&self) -> &Arc<Delivery> {
        &self.sent
    }
}

/// Where a kept recipient's messages go.
pub(super) enum Reach {
    Here(Member),
    Elsewhere(RemoteRecipient),
}

impl Recipient {
    /// Whether messages sent this way still reach them.
    fn reachable(&self) -> bool {
        match &self.reach {
            Reach::Here(member) => !member.outbox.is_closed() && !member.outbox.is_detoured(),
            Reach::Elsewhere(remote) => remote.is_present(),
        }
    }
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
    /// Its final line.
    Line(Arc<Delivery>),
    /// The directory's answer to a private message: its final line, and the recipient's
    /// handle to keep.
    Private(Private),
}

impl InFlight {
    async fn answered(&mut self) -> Answered {
        match self {
            InFlight::Ready(line) => Answered::Line(line.clone()),
            InFlight::Broadcast(answer) => Answered::Line(cmd::msg_answer(answer.await)),
            InFlight::Private(answer) => {
                Answered::Private(answer.await.unwrap_or(Err(PmError::Unavailable)))
            }
        }
    }
}

/// One connection's session, which its [`FrontEnd`] drives. Its fields are the session's own
/// (and its connection loop's); commands and front-ends change it through the methods below,
/// which say what they do: the public ones are what a front-end outside this crate may do.
pub struct Session {
    peer: SocketAddr,
    outbox: Outbox,
    context: Arc<SessionContext>,
    presence: Option<Presence>,
    /// Messages (`RM`, `MSG`, `PM`) sent on without waiting, oldest first. Their replies go
    /// out in this order, and before the reply of any later command, so a burst of messages
    /// costs no round trip each, yet every command still gets its final line in order.
    in_flight: VecDeque<InFlight>,
    /// How many of those are private messages the directory is delivering. While any is, a
    /// message to someone whose handle the session lacks first waits for their answers.
    privates_in_flight: usize,
    /// The users this session sent private messages to lately, by name.
    recipients: HashMap<Name, Recipient>,
    room_creations: RoomCreations,
    /// When a connection that has not logged in is closed: `login_timeout_secs` after it
    /// was accepted.
    login_deadline: Instant,
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

    /// The client's address.
    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Where the front-end queues what it says; the events the actors deliver to the user
    /// arrive there too, and reach the front-end's [`crate::connection::Wording`].
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The handles of the server's actors.
    pub(super) fn server(&self) -> &ServerHandle {
        &self.context.server
    }

    /// The server's settings.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.context.settings
    }

    /// Cancelled when the server shuts down.
    pub(super) fn shutdown(&self) -> &CancellationToken {
        &self.context.shutdown
    }

    /// The user logged in, if any.
    pub(super) fn presence(&self) -> Option<&Presence> {
        self.presence.as_ref()
    }

    pub(super) fn is_logged_in(&self) -> bool {
        self.presence.is_some()
    }

    /// Logs the session in as `presence` (replacing any presence it had).
    pub(super) fn enter(&mut self, presence: Presence) {
        self.presence = Some(presence);
    }

    /// Takes the presence out of the session, which is logged out until the next
    /// [`Session::enter`]; dropping it takes the user offline.
    pub(super) fn take_presence(&mut self) -> Option<Presence> {
        self.presence.take()
    }

    /// Keeps the handle of a room the user joined.
    pub(super) fn enter_room(&mut self, room: Room) {
        if let Some(presence) = &mut self.presence {
            presence.entered(room);
        }
    }

    /// Drops the handle of a room the user left.
    pub(super) fn leave_room(&mut self, room: &Name) {
        if let Some(presence) = &mut self.presence {
            presence.left(room);
        }
    }

    /// Whether this connection may create a room now (its own limit per minute); counts
    /// the creation if so.
    pub(super) fn may_create_room(&mut self) -> bool {
        self.room_creations.allow()
    }

    /// The handle of `to`, kept from a private message the directory delivered.
    pub(super) fn recipient(&self, to: &Name) -> Option<&Recipient> {
        self.recipients.get(to)
    }

    /// Forgets the handle of `to`, whose session has ended.
    pub(super) fn forget_recipient(&mut self, to: &Name) {
        self.recipients.remove(to);
    }

    /// Whether a message to `to` must first wait for the private messages the directory is
    /// delivering: the session lacks `to`'s handle, and one of them may hand it over.
    pub(super) fn awaits_directory_for(&self, to: &Name) -> bool {
        self.privates_in_flight > 0 && !self.recipients.contains_key(to)
    }

    /// Queues the final line of a message sent on without waiting, after those of the
    /// commands before it; waits for the oldest when too many are in flight.
    pub(super) async fn pipeline(&mut self, item: InFlight) {
        if let InFlight::Private(_) = item {
            self.privates_in_flight += 1;
        }
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
            Answered::Private(answer) => {
                self.privates_in_flight = self.privates_in_flight.saturating_sub(1);
                let line = cmd::pm_answer(&answer);
                if let Ok(outcome) = answer {
                    self.keep_recipient(outcome);
                }
                let _ = self.outbox.push(line);
            }
        }
    }

    /// Keeps the handle to someone the directory sent a private message to (here or on
    /// another node), so that the next ones go straight to them.
    /// Not for someone who is away: every message to them goes through the directory, which
    /// says so.
    pub(super) fn keep_recipient(&mut self, outcome: PmOutcome) {
        let (name, reach) = match outcome {
            PmOutcome::Delivered {
                recipient,
                away: None,
            } => (recipient.name.clone(), Reach::Here(recipient)),
            PmOutcome::Remote {
                recipient,
                away: None,
            } => (recipient.name.clone(), Reach::Elsewhere(recipient)),
            _ => return,
        };
        if self.recipients.len() >= MAX_RECIPIENTS {
            self.recipients.retain(|_, recipient| recipient.reachable());
            if self.recipients.len() >= MAX_RECIPIENTS {
                self.recipients.clear();
            }
        }
        let sent = cmd::pm_sent(&name);
        self.recipients.insert(name, Recipient { reach, sent });
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
}

/// What a front-end does with its session: the typed operations of `cmd`, which the line
/// protocol and IRC run too, and the outbox its lines and the events for its user go to.
impl Session {
    /// The name of the user logged in, if any.
    pub fn user(&self) -> Option<&Name> {
        self.presence.as_ref().map(|presence| &presence.member.name)
    }

    /// Logs in as guest `name`, as the line protocol's `NICK` does; the name logged in as.
    pub async fn log_in_as_guest(&mut self, name: Name) -> Result<Name, LoginError> {
        cmd::guest(self, name).await
    }

    /// Logs in to an account, as the line protocol's `LOGIN` does: the user is put back in
    /// their rooms (an [`Event::Joined`](crate::server::event::Event::Joined) each) and
    /// handed the private messages that waited for them.
    pub async fn log_in(&mut self, name: Name, password: Password) -> Result<Name, LoginError> {
        cmd::log_in(self, name, password).await
    }

    /// Joins the user to `room`; the room's name as it was created.
    pub async fn join(&mut self, room: Name) -> Result<Name, CommandError> {
        cmd::join(self, room).await
    }

    /// Says `text` in `room`, a room of the user's; the room's name as it was created. Its
    /// members, the user too, are delivered an
    /// [`Event::RoomMessage`](crate::server::event::Event::RoomMessage) with the message's id.
    pub async fn say(&self, room: Name, text: String) -> Result<Name, CommandError> {
        cmd::say(self, room, text).await
    }

    /// The last `count` messages of `room`, a room of the user's, oldest first, with the ids
    /// history keeps them under.
    pub async fn room_history(
        &self,
        room: Name,
        count: u32,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        let Some(presence) = &self.presence else {
            return Err(CommandError::NotLoggedIn.into());
        };
        let server = &self.context.server;
        let Some(handle) = presence.room(&room) else {
            return Err(CommandError::from(server.rooms.not_member(room).await).into());
        };
        let conversation = Conversation::Room(handle.name().clone());
        Ok(server.store.history(conversation, count).await?)
    }
}

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Refused(#[from] CommandError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the oldest message in flight came to. Cancel-safe: the message stays in flight until
/// the caller pops it.
async fn next_answer(in_flight: &mut VecDeque<InFlight>) -> Answered {
    match in_flight.front_mut() {
        Some(oldest) => oldest.answered().await,
        None => std::future::pending().await,
    }
}
