//! The `RoomsActor`: owns the table of rooms and routes requests to their actors. Rooms
//! that nobody is in and no registered user remembers expire after a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::info;

use super::members::{Room, RoomActor, RoomRequest};
use crate::connection::Delivery;
use crate::server::cluster::Cluster;
use crate::server::cluster::wire::{self, RoomState, TopicState};
use crate::server::event::Event;
use crate::server::member::Member;
use crate::server::request::{self, Backlog, unavailable};
use crate::server::storage::{StorageError, Store};
use crate::server::user::Users;
use linechat_protocol::{ErrorCode, Name, Reply, Topic, Verb};

/// The longest topic, in bytes of UTF-8: about two lines of a chat window, and what fits
/// in IRC's `332` line with the longest nick and channel.
pub const MAX_TOPIC_BYTES: usize = 300;

/// What a join answers: the room's handle, or why not.
pub type Joined = Result<Room, Reply>;

/// What the rooms actor is asked; requests with a `reply` are answered on it.
#[derive(Debug)]
pub(crate) enum RoomsRequest {
    Create {
        member: Member,
        room: Name,
        reply: oneshot::Sender<Joined>,
    },
    Join {
        member: Member,
        room: Name,
        reply: oneshot::Sender<Joined>,
    },
    /// Why someone who holds no handle to `room` cannot speak in it or leave it.
    NotMember {
        room: Name,
        reply: oneshot::Sender<Reply>,
    },
    Members {
        room: Name,
        reply: oneshot::Sender<Reply>,
    },
    List {
        reply: oneshot::Sender<Reply>,
    },
    /// `TOPIC <room>`: answered `TOPIC <room> [...]`.
    Topic {
        room: Name,
        reply: oneshot::Sender<Reply>,
    },
    /// `TOPIC <room> <text>` from `by`, a member (its session holds the room's handle);
    /// `None` clears it. Answered `OK TOPIC <room>` once stored.
    SetTopic {
        by: Name,
        room: Name,
        text: Option<String>,
        reply: oneshot::Sender<Reply>,
    },
    /// Sent back to the rooms actor by the task that waited for a `SetTopic` to be stored.
    TopicStored {
        room: Name,
        change: TopicChange,
        stored: Result<(), StorageError>,
        reply: oneshot::Sender<Reply>,
    },
    /// Sent back to the rooms actor by the task that waited for a `Create` to be stored.
    Stored {
        member: Member,
        room: Name,
        stored: Result<bool, StorageError>,
        reply: oneshot::Sender<Joined>,
    },
    /// Sent back by the task that looked a room this node does not know up in the shared
    /// store, for a `JR`: the room as stored, if it is.
    Found {
        member: Member,
        room: Name,
        found: Result<Option<Name>, StorageError>,
        reply: oneshot::Sender<Joined>,
    },
    /// What the other nodes of a cluster said (see [`RemoteRooms`]).
    Remote(RemoteRooms),
    /// Answered once every room task has handled what it was sent before.
    Settle {
        reply: oneshot::Sender<()>,
    },
    /// How many rooms have a running room actor.
    #[cfg(test)]
    RunningManagers {
        reply: oneshot::Sender<usize>,
    },
}

/// What the room table hears from the rest of the cluster, through this node's cluster task.
#[derive(Debug)]
pub(crate) enum RemoteRooms {
    Created {
        room: Name,
        by: Name,
    },
    /// Another node deleted `room`, which had expired, from the shared store.
    Expired {
        room: Name,
    },
    Joined {
        node: Arc<str>,
        room: Name,
        user: Name,
    },
    Left {
        node: Arc<str>,
        room: Name,
        user: Name,
    },
    /// `node` stopped answering: its users leave every room.
    NodeLost {
        node: Arc<str>,
    },
    /// Every room `node` knows, with its members there and its topic: added to what is
    /// known (see `wire::Global::Rooms`); a topic set or cleared later than the known one
    /// was replaces it.
    State {
        node: Arc<str>,
        rooms: Vec<(Name, Vec<Name>, KnownTopic)>,
    },
    /// Publish this node's rooms and members, for another node's `Hello` or after a
    /// reconnection.
    SendState,
    /// A member of `room` on another node set its topic (`text`), or cleared it; that node
    /// told its members, and the room's members here through the room's subject.
    Topic {
        room: Name,
        by: Name,
        text: Option<String>,
        at: SystemTime,
    },
}

/// A handle to the [`RoomsActor`], which owns the table of rooms. Sessions come here to
/// create, join and list rooms; once in a room, they talk to its [`Room`] handle.
#[derive(Debug, Clone)]
pub struct Rooms {
    tx: mpsc::UnboundedSender<RoomsRequest>,
    backlog: Backlog,
}

impl Rooms {
    /// Starts the rooms actor with the rooms loaded from `store` (name, creator).
    pub fn spawn(
        users: Users,
        store: Store,
        loaded: Vec<(Name, Name)>,
        topics: Vec<(Name, Topic)>,
        limits: RoomLimits,
        cluster: Option<Cluster>,
    ) -> Self {
        // Unbounded: a session sends its next room request only once the last is answered,
        // so at most one per connection waits here.
        let (tx, rx) = mpsc::unbounded_channel();
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let (unremembered_tx, unremembered_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let mut topics: HashMap<Name, Topic> = topics.into_iter().collect();
        let rooms = loaded
            .into_iter()
            .map(|(name, _creator)| {
                let mut room = RoomEntry::new(name.clone(), now);
                room.topic = topics.remove(&name);
                room.topic_since = room.topic.as_ref().map(|topic| topic.at);
                (name, room)
            })
            .collect();
        let actor = RoomsActor {
            rooms,
            creating: HashMap::new(),
            back: tx.downgrade(),
            users,
            store,
            idle: idle_tx,
            unremembered: unremembered_tx,
            creations: Creations::new(limits.created_per_minute),
            limits,
            backlog: Backlog::default(),
            cluster,
            remote: HashMap::new(),
        };
        let backlog = actor.backlog.clone();
        tokio::spawn(actor.run(rx, idle_rx, unremembered_rx));
        Self { tx, backlog }
    }

    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// `CR`: creates `room`, stores it, and joins `member` to it.
    pub async fn create(&self, member: Member, room: Name) -> Joined {
        self.ask(|reply| RoomsRequest::Create {
            member,
            room,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(unavailable()))
    }

    /// `JR`: joins `member` to `room`.
    pub async fn join(&self, member: Member, room: Name) -> Joined {
        self.ask(|reply| RoomsRequest::Join {
            member,
            room,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(unavailable()))
    }

    /// The error for an `RM` or `LR` from someone who is not in `room`.
    pub async fn not_member(&self, room: Name) -> Reply {
        self.ask(|reply| RoomsRequest::NotMember { room, reply })
            .await
            .unwrap_or_else(unavailable)
    }

    /// `LRU`: the members of `room`.
    pub async fn members(&self, room: Name) -> Reply {
        self.ask(|reply| RoomsRequest::Members { room, reply })
            .await
            .unwrap_or_else(unavailable)
    }

    /// `LRS`: every room.
    pub async fn list(&self) -> Reply {
        self.ask(|reply| RoomsRequest::List { reply })
            .await
            .unwrap_or_else(unavailable)
    }

    /// `TOPIC <room>`: the room's topic (`Reply::Topic`), or why not.
    pub async fn topic(&self, room: Name) -> Reply {
        self.ask(|reply| RoomsRequest::Topic { room, reply })
            .await
            .unwrap_or_else(unavailable)
    }

    /// `TOPIC <room> <text>`: sets the topic of `room`, which `by` is a member of (the caller
    /// checks, as it holds the room's handle), or clears it (`None`). `OK TOPIC <room>` once it
    /// is stored; the room's other members get `NOTICE TOPIC`.
    pub async fn set_topic(&self, by: Name, room: Name, text: Option<String>) -> Reply {
        self.ask(|reply| RoomsRequest::SetTopic {
            by,
            room,
            text,
            reply,
        })
        .await
        .unwrap_or_else(unavailable)
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> RoomsRequest) -> Option<T> {
        request::ask(&self.tx, request).await
    }

    /// Returns once every room has handled what it was sent before (the leaves of the
    /// sessions that ended, at shutdown), so that what they publish is queued.
    pub async fn settle(&self) {
        self.ask(|reply| RoomsRequest::Settle { reply }).await;
    }

    /// Hands the room table what another node said.
    pub(crate) fn remote(&self, remote: RemoteRooms) {
        let _ = self.tx.send(RoomsRequest::Remote(remote));
    }
}

/// What a node knows of a room's topic, as it says in the state exchange.
#[derive(Debug)]
pub(crate) enum KnownTopic {
    /// The topic, set at its time.
    Set(Topic),
    /// No topic: it was cleared at this time.
    Cleared(SystemTime),
    /// No topic, and no knowledge of one ever being set.
    Unknown,
}

impl KnownTopic {
    /// When the topic was set or cleared.
    fn since(&self) -> Option<SystemTime> {
        match self {
            Self::Set(topic) => Some(topic.at),
            Self::Cleared(at) => Some(*at),
            Self::Unknown => None,
        }
    }
}

struct RoomEntry {
    /// The name as it was created, for listings.
    name: Name,
    /// The running room actor; `None` while the room has no members, so that an empty room
    /// costs no task.
    actor: Option<Room>,
    /// Since when the room has had no members (meaningful while `actor` is `None`).
    empty_since: Instant,
    /// Its topic, if it has one.
    topic: Option<Topic>,
    /// When the topic was last set or cleared, as far as this node knows: what another node
    /// says of it in the state exchange replaces it only if it is newer (a topic cleared
    /// while the nodes were apart is then cleared on the others too).
    topic_since: Option<SystemTime>,
    /// How many topic changes were asked for (stored or not): a change applies only if no
    /// later one was applied before it, as the store writes them in the order asked.
    topic_changes: u64,
    /// The change the topic is from.
    topic_change: u64,
}

impl RoomEntry {
    fn new(name: Name, empty_since: Instant) -> Self {
        Self {
            name,
            actor: None,
            empty_since,
            topic: None,
            topic_since: None,
            topic_changes: 0,
            topic_change: 0,
        }
    }
}

/// A change of a room's topic asked for, on its way to the store.
#[derive(Debug)]
pub(crate) struct TopicChange {
    /// Which of the room's changes it is, counted by the rooms actor.
    number: u64,
    by: Name,
    /// The new topic; `None` clears it.
    text: Option<String>,
    at: SystemTime,
}

impl TopicChange {
    fn topic(&self) -> Option<Topic> {
        let text = self.text.clone()?;
        Some(Topic {
            text,
            by: self.by.clone(),
            at: self.at,
        })
    }
}

/// Sizes the rooms actor enforces.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    pub max_rooms: usize,
    pub max_members: usize,
    /// How long a room may stay empty before it goes, unless a registered user remembers
    /// it; `None` keeps every room.
    pub expiry: Option<Duration>,
    /// Rooms created per minute, by everyone together; 0 does not limit. Each connection
    /// has its own limit besides, but many connections (from many addresses) could fill
    /// `max_rooms` in moments within theirs.
    pub created_per_minute: u32,
}

/// The server-wide bucket of room creations, and the clock that says when it refills.
struct Creations {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    per_minute: NonZeroU32,
}

impl Creations {
    fn new(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let clock = DefaultClock::default();
        let limiter = RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone());
        Some(Self {
            limiter,
            clock,
            per_minute,
        })
    }

    /// Counts one more creation, or says why not and for how long.
    fn take(&self) -> Result<(), Reply> {
        let Err(not_until) = self.limiter.check() else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let message = format!(
            "rooms are created at most {} per minute on this server; try again in {} s",
            self.per_minute,
            wait.as_millis().div_ceil(1000).max(1)
        );
        Err(Reply::err(ErrorCode::TooManyRooms, message))
    }
}

struct RoomsActor {
    limits: RoomLimits,
    /// `limits.created_per_minute` as a bucket; `None` when it is 0.
    creations: Option<Creations>,
    rooms: HashMap<Name, RoomEntry>,
    /// Rooms whose creation is being stored: the name is taken, but the room does not exist
    /// until it is on disk. With each, the `JR`s that came meanwhile: they join it once it
    /// exists, rather than be told there is no such room a moment before there is.
    creating: HashMap<Name, Vec<(Member, oneshot::Sender<Joined>)>>,
    /// The actor's own inbox, for the answers of the storage; weak, so that the
    /// actor still ends when every handle is gone.
    back: mpsc::WeakUnboundedSender<RoomsRequest>,
    users: Users,
    store: Store,
    idle: mpsc::UnboundedSender<Name>,
    /// Where the store's answer comes back: which expired rooms nobody remembers.
    unremembered: mpsc::UnboundedSender<(Instant, Vec<Name>)>,
    backlog: Backlog,
    cluster: Option<Cluster>,
    /// The members each room has on the other nodes, and where (empty when not clustered).
    remote: HashMap<Name, HashMap<Name, Arc<str>>>,
}

/// How often expired rooms are looked for, at most.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_secs(60);

impl RoomsActor {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<RoomsRequest>,
        mut idle: mpsc::UnboundedReceiver<Name>,
        mut unremembered: mpsc::UnboundedReceiver<(Instant, Vec<Name>)>,
    ) {
        let every = self
            .limits
            .expiry
            .map_or(SWEEP_AT_MOST_EVERY, |expiry| {
                (expiry / 2).min(SWEEP_AT_MOST_EVERY)
            })
            .max(Duration::from_millis(100));
        let mut sweep = tokio::time::interval(every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => {
                        self.backlog.note(&requests);
                        self.handle(request);
                    }
                    None => return,
                },
                Some(room) = idle.recv() => self.close_if_empty(room).await,
                _ = sweep.tick(), if self.limits.expiry.is_some() => self.sweep(),
                Some((swept, rooms)) = unremembered.recv() => self.expire(swept, rooms),
            }
        }
    }

    /// Asks the store which of the rooms empty for longer than the expiry no registered
    /// user remembers; the answer comes back to [`RoomsActor::expire`].
    fn sweep(&mut self) {
        let Some(expiry) = self.limits.expiry else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<Name> = self
            .rooms
            .values_mut()
            .filter(|room| room.actor.is_none() && room.empty_since + expiry <= now)
            // A room with members on other nodes is not empty.
            .filter(|room| self.remote.get(&room.name).is_none_or(HashMap::is_empty))
            .map(|room| {
                // Checked again one expiry from now if someone remembers it.
                room.empty_since = now;
                room.name.clone()
            })
            .collect();
        if expired.is_empty() {
            return;
        }
        let store = self.store.clone();
        let answer = self.unremembered.clone();
        tokio::spawn(async move {
            let _ = answer.send((now, store.unremembered_rooms(expired).await));
        });
    }

    /// Removes the rooms nobody remembers that have stayed empty since the sweep at `swept`,
    /// and their history.
    fn expire(&mut self, swept: Instant, rooms: Vec<Name>) {
        let mut gone = Vec::new();
        for room in rooms {
            // Clustered, nobody may have joined it on another node meanwhile either.
            let still_empty = self.rooms.get(&room).is_some_and(|entry| {
                entry.actor.is_none()
                    && entry.empty_since <= swept
                    && self.remote.get(&room).is_none_or(HashMap::is_empty)
            });
            if let Some(entry) = still_empty.then(|| self.rooms.remove(&room)).flatten() {
                gone.push(entry.name);
            }
        }
        if !gone.is_empty() {
            info!(rooms = gone.len(), "expired empty rooms");
            let deleted = self.store.delete_rooms(gone.clone());
            // The other nodes drop them too, once the shared store no longer has them: told
            // sooner, a node could find a room in the store again on a join meanwhile, and
            // keep it after it is deleted.
            if let Some(cluster) = self.cluster.clone() {
                tokio::spawn(async move {
                    deleted.await;
                    for room in gone {
                        cluster.global(&wire::Global::RoomExpired { room });
                    }
                });
            }
        }
    }

    /// Hands each request to its method.
    fn handle(&mut self, request: RoomsRequest) {
        match request {
            RoomsRequest::Create {
                member,
                room,
                reply,
            } => self.create(member, room, reply),
            RoomsRequest::Stored {
                member,
                room,
                stored,
                reply,
            } => self.stored(member, room, stored, reply),
            RoomsRequest::Found {
                member,
                room,
                found,
                reply,
            } => self.found(member, room, found, reply),
            RoomsRequest::Join {
                member,
                room,
                reply,
            } => self.join_room(member, room, reply),
            RoomsRequest::NotMember { room, reply } => self.not_member(&room, reply),
            RoomsRequest::Members { room, reply } => self.members(&room, reply),
            #[cfg(test)]
            RoomsRequest::RunningManagers { reply } => self.running_managers(reply),
            RoomsRequest::List { reply } => self.list(reply),
            RoomsRequest::Topic { room, reply } => self.topic(&room, reply),
            RoomsRequest::SetTopic {
                by,
                room,
                text,
                reply,
            } => self.set_topic(by, room, text, reply),
            RoomsRequest::TopicStored {
                room,
                change,
                stored,
                reply,
            } => self.topic_stored(room, change, stored, reply),
            RoomsRequest::Remote(remote) => self.heard(remote),
            RoomsRequest::Settle { reply } => {
                let running: Vec<Room> = self
                    .rooms
                    .values()
                    .filter_map(|r| r.actor.clone())
                    .collect();
                tokio::spawn(async move {
                    for room in running {
                        let (tx, rx) = oneshot::channel();
                        let others = Vec::new();
                        room.post(RoomRequest::Members { others, reply: tx });
                        let _ = rx.await;
                    }
                    let _ = reply.send(());
                });
            }
        }
    }

    /// `CR`: refuses a name that is taken (or being created) and a room past the limit;
    /// otherwise stores the room, and [`RoomsActor::stored`] finishes once it is on disk.
    fn create(&mut self, member: Member, room: Name, reply: oneshot::Sender<Joined>) {
        if let Some(existing) = self.rooms.get(&room) {
            let message = format!("{} already exists; JR joins it", existing.name);
            let _ = reply.send(Err(Reply::err(ErrorCode::RoomExists, message)));
            return;
        }
        if self.creating.contains_key(&room) {
            let message = format!("{room} already exists; JR joins it");
            let _ = reply.send(Err(Reply::err(ErrorCode::RoomExists, message)));
            return;
        }
        let held = self.rooms.len() + self.creating.len();
        if held >= self.limits.max_rooms {
            let message = format!("the server holds {held} rooms, its most");
            let _ = reply.send(Err(Reply::err(ErrorCode::TooManyRooms, message)));
            return;
        }
        // Counted last: a `CR` of a room that exists, or one past the limit, creates nothing
        // and takes no one else's turn.
        if let Some(Err(refusal)) = self.creations.as_ref().map(Creations::take) {
            let _ = reply.send(Err(refusal));
            return;
        }
        // The name is reserved while the room is stored; the room exists, and `OK CR`
        // goes out, only once it is on disk. The actor does not wait meanwhile.
        self.creating.insert(room.clone(), Vec::new());
        let stored = self.store.create_room(room.clone(), member.name.clone());
        let back = self.back.clone();
        tokio::spawn(async move {
            let stored = stored.await;
            if let Some(back) = back.upgrade() {
                let _ = back.send(RoomsRequest::Stored {
                    member,
                    room,
                    stored,
                    reply,
                });
            }
        });
    }

    /// The end of a `CR` once the store has answered: frees the reserved name and, if the
    /// room was stored, adds it, tells everyone else it exists and joins its creator.
    fn stored(
        &mut self,
        member: Member,
        room: Name,
        stored: Result<bool, StorageError>,
        reply: oneshot::Sender<Joined>,
    ) {
        let waiting = self.creating.remove(&room).unwrap_or_default();
        match stored {
            Ok(true) => {}
            // Stored already: by another node sharing the store (at the same moment, maybe),
            // which announces it. It exists, here too.
            Ok(false) => {
                self.know(&room);
                let message = format!("{room} already exists; JR joins it");
                let _ = reply.send(Err(Reply::err(ErrorCode::RoomExists, message)));
                self.join_waiting(&room, waiting);
                return;
            }
            Err(error) => {
                let message = format!("{room} could not be stored: {}", error.client_message());
                let _ = reply.send(Err(Reply::err(ErrorCode::Storage, message)));
                for (_, reply) in waiting {
                    let _ = reply.send(Err(no_such_room(&room)));
                }
                return;
            }
        }
        self.rooms
            .insert(room.clone(), RoomEntry::new(room.clone(), Instant::now()));
        let created = Event::RoomCreated {
            room: room.clone(),
            by: member.name.clone(),
        };
        self.users.notify(created, member.name.clone());
        // Clustered, the room's task tells the other nodes, after its creator's `JR` line.
        self.join(member, room.clone(), Verb::CreateRoom, reply);
        self.join_waiting(&room, waiting);
    }

    /// `JR`: a room being created is joined once it is stored; one this node does not know
    /// is looked up in a shared store, where another node may have made it.
    fn join_room(&mut self, member: Member, room: Name, reply: oneshot::Sender<Joined>) {
        if let Some(waiting) = self.creating.get_mut(&room) {
            waiting.push((member, reply));
        } else if !self.rooms.contains_key(&room) && self.store.is_shared() {
            self.look_up(member, room, reply);
        } else {
            self.join(member, room, Verb::JoinRoom, reply);
        }
    }

    /// Joins those whose `JR` came while `room` was being created, in the order they came.
    fn join_waiting(&mut self, room: &Name, waiting: Vec<(Member, oneshot::Sender<Joined>)>) {
        for (member, reply) in waiting {
            self.join(member, room.clone(), Verb::JoinRoom, reply);
        }
    }

    /// `JR` of a room this node does not know, on a shared store: another node may have
    /// created it (while this one was cut off from NATS, or a moment ago). Looked up there
    /// from a task of its own; [`RoomsActor::found`] goes on.
    fn look_up(&mut self, member: Member, room: Name, reply: oneshot::Sender<Joined>) {
        let (store, back) = (self.store.clone(), self.back.clone());
        tokio::spawn(async move {
            let found = store
                .room(&room)
                .await
                .map(|found| found.map(|(room, _)| room));
            if let Some(back) = back.upgrade() {
                let _ = back.send(RoomsRequest::Found {
                    member,
                    room,
                    found,
                    reply,
                });
            }
        });
    }

    /// The end of a `JR` that looked its room up in the shared store: the room is added to
    /// the table and joined, or there is no such room.
    fn found(
        &mut self,
        member: Member,
        room: Name,
        found: Result<Option<Name>, StorageError>,
        reply: oneshot::Sender<Joined>,
    ) {
        match found {
            Ok(Some(stored)) => {
                self.know(&stored);
                self.join(member, stored, Verb::JoinRoom, reply);
            }
            Ok(None) => {
                let _ = reply.send(Err(no_such_room(&room)));
            }
            Err(error) => {
                let reason = error.client_message();
                let message = format!("{room} could not be looked up: {reason}");
                let _ = reply.send(Err(Reply::err(ErrorCode::Storage, message)));
            }
        }
    }

    /// Why someone who holds no handle to `room` cannot speak in it or leave it: the room
    /// exists and they are not in it, or there is no such room.
    fn not_member(&self, room: &Name, reply: oneshot::Sender<Reply>) {
        let answer = match self.rooms.get(room) {
            Some(entry) => {
                let message = format!("you are not in {}", entry.name);
                Reply::err(ErrorCode::NotInRoom, message)
            }
            None => no_such_room(room),
        };
        let _ = reply.send(answer);
    }

    /// `LRU`: a running room's actor answers with its members; a room without one has none.
    fn members(&self, room: &Name, reply: oneshot::Sender<Reply>) {
        // Clustered, the members on other nodes are listed too.
        let others = || match self.remote.get(room) {
            Some(members) => members.keys().cloned().collect(),
            None => Vec::new(),
        };
        match self.rooms.get(room) {
            Some(RoomEntry {
                actor: Some(actor), ..
            }) => actor.post(RoomRequest::Members {
                others: others(),
                reply,
            }),
            Some(RoomEntry { name, .. }) => {
                let mut users: Vec<Name> = others();
                users.sort();
                let _ = reply.send(Reply::RoomUsers {
                    room: name.clone(),
                    users,
                });
            }
            None => {
                let _ = reply.send(no_such_room(room));
            }
        }
    }

    /// How many rooms have a running room actor.
    #[cfg(test)]
    fn running_managers(&self, reply: oneshot::Sender<usize>) {
        let running = self.rooms.values().filter(|r| r.actor.is_some()).count();
        let _ = reply.send(running);
    }

    /// `LRS`: every room's name, sorted.
    fn list(&self, reply: oneshot::Sender<Reply>) {
        let mut names: Vec<Name> = self.rooms.values().map(|r| r.name.clone()).collect();
        names.sort();
        let _ = reply.send(Reply::Rooms(names));
    }

    /// `TOPIC <room>`: the room's topic, if it has one.
    fn topic(&self, room: &Name, reply: oneshot::Sender<Reply>) {
        let answer = match self.rooms.get(room) {
            Some(entry) => Reply::Topic {
                room: entry.name.clone(),
                topic: entry.topic.clone(),
            },
            None => no_such_room(room),
        };
        let _ = reply.send(answer);
    }

    /// `TOPIC <room> <text>`: stores the new topic; [`RoomsActor::topic_stored`] finishes
    /// once it is on disk. The actor does not wait meanwhile.
    fn set_topic(
        &mut self,
        by: Name,
        room: Name,
        text: Option<String>,
        reply: oneshot::Sender<Reply>,
    ) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            let _ = reply.send(no_such_room(&room));
            return;
        };
        entry.topic_changes += 1;
        let change = TopicChange {
            number: entry.topic_changes,
            by,
            text,
            at: SystemTime::now(),
        };
        let room = entry.name.clone();
        let stored = self.store.set_topic(room.clone(), change.topic());
        let back = self.back.clone();
        tokio::spawn(async move {
            let stored = stored.await;
            if let Some(back) = back.upgrade() {
                let _ = back.send(RoomsRequest::TopicStored {
                    room,
                    change,
                    stored,
                    reply,
                });
            }
        });
    }

    /// The end of a `TOPIC <room> <text>` once the store has answered: the room takes the
    /// topic, and its members (here and on other nodes) and every node's room table are told.
    fn topic_stored(
        &mut self,
        room: Name,
        change: TopicChange,
        stored: Result<(), StorageError>,
        reply: oneshot::Sender<Reply>,
    ) {
        if let Err(error) = stored {
            let message = format!(
                "the topic of {room} could not be stored: {}",
                error.client_message()
            );
            let _ = reply.send(Reply::err(ErrorCode::Storage, message));
            return;
        }
        // Unless the room is gone meanwhile (expired), or a later change is in place already:
        // this one was stored and then replaced, so nobody is told of it.
        if let Some(entry) = self.rooms.get_mut(&room)
            && entry.topic_change < change.number
        {
            entry.topic_change = change.number;
            entry.topic = change.topic();
            entry.topic_since = Some(change.at);
            let topic = Event::Topic {
                room: room.clone(),
                by: change.by.clone(),
                text: change.text.clone(),
            };
            // Through the room's task, as a line its member said: the other members get it
            // in order with the room's messages, here and, clustered, on the other nodes.
            if let Some(actor) = &entry.actor {
                let line = Delivery::event(topic);
                actor.post(RoomRequest::Say {
                    from: change.by.clone(),
                    line,
                });
            }
            if let Some(cluster) = &self.cluster {
                cluster.global(&wire::Global::Topic {
                    room: room.clone(),
                    by: change.by.clone(),
                    text: change.text,
                    at: wire::millis(change.at),
                });
            }
        }
        let _ = reply.send(Reply::ok_with(Verb::Topic, &room));
    }

    /// `JR`, and the end of a `CR`: starts the room's actor if the room has none running,
    /// and asks it to take `member`; it answers `reply`.
    fn join(&mut self, member: Member, room: Name, verb: Verb, reply: oneshot::Sender<Joined>) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            let _ = reply.send(Err(no_such_room(&room)));
            return;
        };
        let actor = entry.actor.get_or_insert_with(|| {
            let room = entry.name.clone();
            let cluster = self.cluster.clone();
            RoomActor::spawn(room, self.limits.max_members, self.idle.clone(), cluster)
        });
        actor.post(RoomRequest::Join {
            member,
            verb,
            handle: actor.clone(),
            reply,
        });
    }

    /// Stops the actor of a room that reported itself empty, unless someone joined since:
    /// the actor answers after handling every request sent to it before this one.
    async fn close_if_empty(&mut self, room: Name) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        let Some(actor) = &entry.actor else {
            return;
        };
        if actor.close_if_empty().await {
            entry.actor = None;
            entry.empty_since = Instant::now();
        }
    }
}

/// What the other nodes of a cluster tell the room table.
impl RoomsActor {
    fn heard(&mut self, remote: RemoteRooms) {
        match remote {
            RemoteRooms::Created { room, by } => {
                // Known already if its creator's join came first.
                self.know(&room);
                self.users.notify(
                    Event::RoomCreated {
                        room,
                        by: by.clone(),
                    },
                    by,
                );
            }
            RemoteRooms::Expired { room } => {
                // A room with members here lives on in this node's table (see README,
                // Cluster: a join at the moment another node expires the room).
                if self
                    .rooms
                    .get(&room)
                    .is_some_and(|entry| entry.actor.is_none())
                {
                    self.rooms.remove(&room);
                    self.remote.remove(&room);
                }
            }
            RemoteRooms::Joined { node, room, user } => {
                self.know(&room);
                self.remote.entry(room).or_default().insert(user, node);
            }
            RemoteRooms::Left { node, room, user } => {
                if let Some(members) = self.remote.get_mut(&room)
                    && members.get(&user) == Some(&node)
                {
                    members.remove(&user);
                }
            }
            RemoteRooms::NodeLost { node } => {
                let rooms: Vec<Name> = self.remote.keys().cloned().collect();
                for room in rooms {
                    self.replace_members(&node, &room, Vec::new());
                }
            }
            RemoteRooms::State { node, rooms } => {
                for (room, members, topic) in rooms {
                    self.know(&room);
                    let known = self.remote.get(&room);
                    let mut now: Vec<Name> = known
                        .iter()
                        .flat_map(|known| known.iter())
                        .filter(|(_, at)| **at == node)
                        .map(|(user, _)| user.clone())
                        .collect();
                    now.extend(
                        members
                            .into_iter()
                            .filter(|user| !now.contains(user))
                            .collect::<Vec<_>>(),
                    );
                    self.replace_members(&node, &room, now);
                    if let (Some(since), Some(entry)) = (topic.since(), self.rooms.get_mut(&room))
                        && entry.topic_since.is_none_or(|known| known < since)
                    {
                        entry.topic_since = Some(since);
                        entry.topic = match topic {
                            KnownTopic::Set(topic) => Some(topic),
                            KnownTopic::Cleared(_) | KnownTopic::Unknown => None,
                        };
                    }
                }
            }
            RemoteRooms::SendState => self.send_state(),
            RemoteRooms::Topic { room, by, text, at } => {
                self.know(&room);
                if let Some(entry) = self.rooms.get_mut(&room) {
                    entry.topic = text.map(|text| Topic { text, by, at });
                    entry.topic_since = Some(at);
                }
            }
        }
    }

    /// Adds `room`, created on another node, to the table, unless it is there.
    fn know(&mut self, room: &Name) {
        if self.rooms.contains_key(room) {
            return;
        }
        let entry = RoomEntry::new(room.clone(), Instant::now());
        self.rooms.insert(room.clone(), entry);
    }

    /// Sets the members `room` has on `node`; this node's members of the room are told who
    /// left and who joined, as the node itself would have told them had they heard it.
    fn replace_members(&mut self, node: &Arc<str>, room: &Name, now: Vec<Name>) {
        let members = self.remote.entry(room.clone()).or_default();
        let gone: Vec<Name> = members
            .iter()
            .filter(|(user, at)| *at == node && !now.contains(user))
            .map(|(user, _)| user.clone())
            .collect();
        let mut lines = Vec::new();
        for user in gone {
            members.remove(&user);
            let room = room.clone();
            lines.push(Event::Left { room, user });
        }
        for user in now {
            if members.insert(user.clone(), node.clone()).is_none() {
                let room = room.clone();
                lines.push(Event::Joined { room, user });
            }
        }
        if members.is_empty() {
            self.remote.remove(room);
        }
        let Some(RoomEntry {
            actor: Some(actor), ..
        }) = self.rooms.get(room)
        else {
            return;
        };
        for line in lines {
            actor.post(RoomRequest::Deliver {
                line: Delivery::event(line),
            });
        }
    }

    /// Publishes every room of the table, with its members on this node, from a task of its
    /// own that asks the running room tasks.
    fn send_state(&self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        // Each room's state but its members, which its running task is asked for.
        let rooms: Vec<(RoomState, Option<Room>)> = self
            .rooms
            .values()
            .map(|entry| {
                let cleared = entry.topic_since.filter(|_| entry.topic.is_none());
                let state = RoomState {
                    room: entry.name.clone(),
                    members: Vec::new(),
                    topic: entry.topic.as_ref().map(TopicState::of),
                    topic_cleared_at: cleared.map(wire::millis),
                };
                (state, entry.actor.clone())
            })
            .collect();
        tokio::spawn(async move {
            let mut state = Vec::with_capacity(rooms.len());
            for (mut room, actor) in rooms {
                if let Some(actor) = actor {
                    let (tx, rx) = oneshot::channel();
                    actor.post(RoomRequest::Members {
                        others: Vec::new(),
                        reply: tx,
                    });
                    if let Ok(Reply::RoomUsers { users, .. }) = rx.await {
                        room.members = users;
                    }
                }
                state.push(room);
            }
            cluster.global(&wire::Global::Rooms {
                node: cluster.node().to_string(),
                incarnation: cluster.incarnation(),
                rooms: state,
            });
        });
    }
}

fn no_such_room(room: &Name) -> Reply {
    Reply::err(
        ErrorCode::NoSuchRoom,
        format!("there is no room {room}; CR creates it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testing::{member, name};

    /// The line a session would answer for a `CR` or `JR`.
    fn shown(verb: Verb, joined: Joined) -> String {
        match joined {
            Ok(room) => Reply::ok_with(verb, room.name()).to_string(),
            Err(refusal) => refusal.to_string(),
        }
    }

    async fn create(rooms: &Rooms, member: &Member, room: &str) -> String {
        shown(
            Verb::CreateRoom,
            rooms.create(member.clone(), name(room)).await,
        )
    }

    async fn join(rooms: &Rooms, member: &Member, room: &str) -> String {
        shown(Verb::JoinRoom, rooms.join(member.clone(), name(room)).await)
    }

    async fn handle(rooms: &Rooms, member: &Member, room: &str) -> Room {
        rooms.join(member.clone(), name(room)).await.unwrap()
    }

    async fn members(rooms: &Rooms, room: &str) -> String {
        rooms.members(name(room)).await.to_string()
    }

    #[tokio::test]
    async fn creating_an_existing_room_is_an_error_and_keeps_it() {
        let (rooms, _store, _dir) = crate::server::testing::rooms().await;
        let (alice, _) = member("alice");
        let (bob, _) = member("bob");
        assert_eq!(create(&rooms, &alice, "Dev").await, "OK CR Dev");
        assert_eq!(
            create(&rooms, &bob, "dev").await,
            "ERR ROOM_EXISTS Dev already exists; JR joins it"
        );
        assert_eq!(members(&rooms, "dev").await, "LRU Dev alice");
    }

    #[tokio::test]
    async fn a_join_while_the_room_is_being_created_waits_for_it() {
        let (rooms, _store, _dir) = crate::server::testing::rooms().await;
        let (alice, _) = member("alice");
        let (bob, _) = member("bob");
        // Sent in this order, the JR reaches the table while the room is being stored.
        let (created, joined) =
            tokio::join!(create(&rooms, &alice, "dev"), join(&rooms, &bob, "dev"));
        assert_eq!(created, "OK CR dev");
        assert_eq!(joined, "OK JR dev");
        assert_eq!(members(&rooms, "dev").await, "LRU dev alice bob");
    }

    #[tokio::test]
    async fn room_messages_reach_other_members_only() {
        let (rooms, store, _dir) = crate::server::testing::rooms().await;
        let (alice, mut alice_inbox) = member("alice");
        let (bob, mut bob_inbox) = member("bob");
        let (_eve, mut eve_inbox) = member("eve");
        assert_eq!(create(&rooms, &alice, "dev").await, "OK CR dev");
        let dev = handle(&rooms, &bob, "dev").await;
        assert_eq!(alice_inbox.line().await, "JR dev bob");
        let said = dev.say(&store, &bob, "hi there".into()).await.unwrap();
        assert_eq!(said.bytes(), b"OK RM dev\n");
        assert_eq!(alice_inbox.line().await, "RM dev bob hi there");
        assert_eq!(
            rooms.not_member(name("dev")).await.to_string(),
            "ERR NOT_IN_ROOM you are not in dev"
        );
        assert_eq!(
            rooms.not_member(name("ops")).await.to_string(),
            "ERR NO_SUCH_ROOM there is no room ops; CR creates it"
        );
        bob_inbox.expect_nothing().await;
        eve_inbox.expect_nothing().await;
    }

    async fn running_managers(rooms: &Rooms) -> usize {
        rooms
            .ask(|reply| RoomsRequest::RunningManagers { reply })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_empty_room_stays_listed_but_its_task_ends() {
        let (rooms, store, _dir) = crate::server::testing::rooms().await;
        let (alice, _) = member("alice");
        let (bob, mut bob_inbox) = member("bob");
        let dev = rooms.create(alice.clone(), name("dev")).await.unwrap();
        assert_eq!(running_managers(&rooms).await, 1);
        assert_eq!(dev.leave(alice.clone()).await.to_string(), "OK LR dev");
        // The last member leaving is not an error, and the room's task ends.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while running_managers(&rooms).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the room task lingers"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(rooms.list().await.to_string(), "LRS dev");
        assert_eq!(members(&rooms, "dev").await, "LRU dev");
        // A handle kept past the room's task says so.
        assert_eq!(
            dev.leave(alice.clone()).await.to_string(),
            "ERR NOT_IN_ROOM you are not in dev"
        );
        let dev = handle(&rooms, &alice, "dev").await;
        assert_eq!(join(&rooms, &bob, "dev").await, "OK JR dev");
        assert!(dev.say(&store, &alice, "back".into()).await.is_some());
        assert_eq!(bob_inbox.line().await, "RM dev alice back");
    }

    #[tokio::test]
    async fn a_member_that_cannot_take_lines_does_not_stall_the_room() {
        let (rooms, store, _dir) = crate::server::testing::rooms().await;
        let (alice, _) = member("alice");
        let (bob, mut bob_inbox) = member("bob");
        // A member whose writer is gone: every push to it fails at once.
        let (outbox, writer) = crate::connection::outbox(64);
        drop(writer);
        let stuck = Member {
            name: name("stuck"),
            id: crate::server::member::UserId::new_guest(),
            outbox,
        };
        let dev = rooms.create(alice.clone(), name("dev")).await.unwrap();
        assert_eq!(join(&rooms, &stuck, "dev").await, "OK JR dev");
        assert_eq!(join(&rooms, &bob, "dev").await, "OK JR dev");
        for i in 0..100 {
            assert!(dev.say(&store, &alice, i.to_string()).await.is_some());
        }
        for i in 0..100 {
            assert_eq!(bob_inbox.line().await, format!("RM dev alice {i}"));
        }
    }

    #[tokio::test]
    async fn a_topic_is_stored_then_kept_and_told_to_the_other_members() {
        let (rooms, store, _dir) = crate::server::testing::rooms().await;
        let (alice, mut alice_inbox) = member("alice");
        let (bob, mut bob_inbox) = member("bob");
        assert_eq!(create(&rooms, &alice, "Dev").await, "OK CR Dev");
        assert_eq!(join(&rooms, &bob, "dev").await, "OK JR Dev");
        assert_eq!(alice_inbox.line().await, "JR Dev bob");
        assert_eq!(rooms.topic(name("dev")).await.to_string(), "TOPIC Dev");
        let set = rooms.set_topic(name("alice"), name("dev"), Some("ship  it".into()));
        assert_eq!(set.await.to_string(), "OK TOPIC Dev");
        assert_eq!(bob_inbox.line().await, "NOTICE TOPIC Dev alice ship  it");
        let Reply::Topic {
            topic: Some(topic), ..
        } = rooms.topic(name("DEV")).await
        else {
            panic!("no topic");
        };
        assert_eq!(
            (topic.by.as_str(), topic.text.as_str()),
            ("alice", "ship  it")
        );
        assert_eq!(
            rooms.topic(name("ops")).await.to_string(),
            "ERR NO_SUCH_ROOM there is no room ops; CR creates it"
        );
        // Cleared (from IRC): told without a text.
        let cleared = rooms.set_topic(name("bob"), name("dev"), None).await;
        assert_eq!(cleared.to_string(), "OK TOPIC Dev");
        assert_eq!(alice_inbox.line().await, "NOTICE TOPIC Dev bob");
        assert_eq!(rooms.topic(name("dev")).await.to_string(), "TOPIC Dev");
        // A topic that cannot be stored is refused, and nothing changes.
        store.close().await;
        let refused = rooms.set_topic(name("alice"), name("dev"), Some("lost".into()));
        assert_eq!(
            refused.await.to_string(),
            "ERR STORAGE the topic of Dev could not be stored: the store is shutting down"
        );
        assert_eq!(rooms.topic(name("dev")).await.to_string(), "TOPIC Dev");
        alice_inbox.expect_nothing().await;
        bob_inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn another_nodes_state_brings_a_newer_topic_or_clearing_and_never_an_older_one() {
        let (rooms, _store, _dir) = crate::server::testing::rooms().await;
        let (alice, _alice_inbox) = member("alice");
        assert_eq!(create(&rooms, &alice, "dev").await, "OK CR dev");
        let set = rooms.set_topic(name("alice"), name("dev"), Some("ours".into()));
        assert_eq!(set.await.to_string(), "OK TOPIC dev");
        let topic = |text: &str, at: SystemTime| Topic {
            text: text.into(),
            by: name("bob"),
            at,
        };
        let state = |topic: KnownTopic| RemoteRooms::State {
            node: "n2".into(),
            rooms: vec![(name("dev"), vec![name("bob")], topic)],
        };
        // `TOPIC <room> <setter> <time> <text>`: who set it, and the text.
        let shown = || async {
            let line = rooms.topic(name("dev")).await.to_string();
            let words: Vec<&str> = line.split(' ').collect();
            format!("{} {}", words[2], words[4..].join(" "))
        };
        // Set before ours (a node that missed the change): ours stays.
        let older = SystemTime::UNIX_EPOCH;
        rooms.remote(state(KnownTopic::Set(topic("older", older))));
        assert_eq!(members(&rooms, "dev").await, "LRU dev alice bob");
        assert_eq!(shown().await, "alice ours");
        // Nor does a clearing before it, nor a node that knows of none.
        rooms.remote(state(KnownTopic::Cleared(older)));
        rooms.remote(state(KnownTopic::Unknown));
        assert_eq!(shown().await, "alice ours");
        // Set after ours, while this node was cut off from it: it catches up.
        let later = SystemTime::now() + Duration::from_secs(60);
        rooms.remote(state(KnownTopic::Set(topic("newer", later))));
        assert_eq!(members(&rooms, "dev").await, "LRU dev alice bob");
        assert_eq!(shown().await, "bob newer");
        // Cleared later still: it is cleared here too, and an older topic does not return.
        let latest = later + Duration::from_secs(60);
        rooms.remote(state(KnownTopic::Cleared(latest)));
        assert_eq!(rooms.topic(name("dev")).await.to_string(), "TOPIC dev");
        rooms.remote(state(KnownTopic::Set(topic("newer", later))));
        assert_eq!(rooms.topic(name("dev")).await.to_string(), "TOPIC dev");
    }

    #[tokio::test]
    async fn rooms_and_members_are_limited() {
        // The test actor allows 3 rooms of 3 members.
        let (rooms, _store, _dir) = crate::server::testing::rooms().await;
        let people: Vec<_> = ["a", "b", "c", "d"].map(|n| member(n).0).into();
        for room in ["r1", "r2", "r3"] {
            assert_eq!(
                create(&rooms, &people[0], room).await,
                format!("OK CR {room}")
            );
        }
        assert_eq!(
            create(&rooms, &people[0], "r4").await,
            "ERR TOO_MANY_ROOMS the server holds 3 rooms, its most"
        );
        assert_eq!(join(&rooms, &people[1], "r1").await, "OK JR r1");
        let r1 = handle(&rooms, &people[2], "r1").await;
        assert_eq!(
            join(&rooms, &people[3], "r1").await,
            "ERR ROOM_FULL r1 has 3 members, its most"
        );
        assert_eq!(r1.leave(people[2].clone()).await.to_string(), "OK LR r1");
        assert_eq!(join(&rooms, &people[3], "r1").await, "OK JR r1");
    }

    #[tokio::test]
    async fn rooms_are_created_at_most_so_many_per_minute_by_everyone_together() {
        let (rooms, _store, _dir) = crate::server::testing::rooms_with(RoomLimits {
            max_rooms: 100,
            max_members: 3,
            expiry: None,
            created_per_minute: 2,
        })
        .await;
        let (a, b) = (member("a").0, member("b").0);
        assert_eq!(create(&rooms, &a, "r1").await, "OK CR r1");
        // A room that exists is refused as such, and takes no turn.
        assert_eq!(
            create(&rooms, &b, "r1").await,
            "ERR ROOM_EXISTS r1 already exists; JR joins it"
        );
        assert_eq!(create(&rooms, &b, "r2").await, "OK CR r2");
        let refused = create(&rooms, &b, "r3").await;
        assert!(
            refused.starts_with(
                "ERR TOO_MANY_ROOMS rooms are created at most 2 per minute on this server; \
                 try again in "
            ),
            "{refused}"
        );
        // The bucket refills one room every 30 s.
        let wait: u64 = refused.rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "{refused}");
        assert_eq!(join(&rooms, &a, "r2").await, "OK JR r2");
    }
}
