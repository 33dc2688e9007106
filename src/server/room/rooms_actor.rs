//! The `RoomsActor`: owns the table of rooms and routes requests to their actors. Rooms
//! that nobody is in and no registered user remembers expire after a while. What it hears
//! from the other nodes is handled in `remote.rs`, topics in `topic.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use linechat_protocol::{Name, Topic};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::info;

use super::creations::Creations;
use super::error::{RoomError, RoomStorageError};
use super::room::{IdleSender, Room, RoomActor, RoomRequest};
use super::rooms::{Joined, RoomLimits, RoomMembers, RoomSummary, RoomsRequest};
use super::topic::TopicChange;
use crate::server::cluster::{Cluster, wire};
use crate::server::event::Event;
use crate::server::mailbox::{Backlog, Mailbox, WeakMailbox};
use crate::server::member::Member;
use crate::server::storage::{StorageError, Store};
use crate::server::user::Users;

/// What the rooms actor's tasks send back to it when the store has answered for a request.
/// Only the room table's files make one ([`RoomsRequest::Continue`] carries it), so no other
/// module can forge, say, a room stored.
///
/// It comes on the actor's one inbox, behind the requests sent before it: handled in the
/// order it came, as every request is. A task sends it once the store answered, at a moment
/// no session's request depends on; a session's next request waits for the answer this
/// continuation gives, so it always comes after.
#[derive(Debug)]
pub(super) enum Continuation {
    /// By the task that waited for a [`RoomsRequest::SetTopic`] to be stored.
    TopicStored {
        room: Name,
        change: TopicChange,
        stored: Result<(), StorageError>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    /// By the task that waited for a [`RoomsRequest::Create`] to be stored.
    Stored {
        member: Member,
        room: Name,
        stored: Result<bool, StorageError>,
        reply: oneshot::Sender<Joined>,
    },
    /// By the task that looked a room this node does not know up in the shared
    /// store, for a `JR`: the room as stored, if it is.
    Found {
        member: Member,
        room: Name,
        found: Result<Option<Name>, StorageError>,
        reply: oneshot::Sender<Joined>,
    },
}

impl From<Continuation> for RoomsRequest {
    fn from(continuation: Continuation) -> Self {
        RoomsRequest::Continue(continuation)
    }
}

pub(super) struct RoomEntry {
    /// The name as it was created, for listings.
    pub(super) name: Name,
    /// The running room actor; `None` while the room has no members, so that an empty room
    /// costs no task.
    pub(super) actor: Option<Room>,
    /// Since when the room has had no members (meaningful while `actor` is `None`).
    pub(super) empty_since: Instant,
    /// Its topic, if it has one.
    pub(super) topic: Option<Topic>,
    /// When the topic was last set or cleared, as far as this node knows: what another node
    /// says of it in the state exchange replaces it only if it is newer (a topic cleared
    /// while the nodes were apart is then cleared on the others too).
    pub(super) topic_since: Option<SystemTime>,
    /// How many topic changes were asked for (stored or not): a change applies only if no
    /// later one was applied before it, as the store writes them in the order asked.
    pub(super) topic_changes: u64,
    /// The change the topic is from.
    pub(super) topic_change: u64,
}

impl RoomEntry {
    pub(super) fn new(name: Name, empty_since: Instant) -> Self {
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

pub(super) struct RoomsActor {
    pub(super) limits: RoomLimits,
    /// `limits.created_per_minute` as a bucket; `None` when it is 0.
    pub(super) creations: Option<Creations>,
    pub(super) rooms: HashMap<Name, RoomEntry>,
    /// Rooms whose creation is being stored: the name is taken, but the room does not exist
    /// until it is on disk. With each, the `JR`s that came meanwhile: they join it once it
    /// exists, rather than be told there is no such room a moment before there is.
    pub(super) creating: HashMap<Name, Vec<(Member, oneshot::Sender<Joined>)>>,
    /// The actor's own mailbox, for the [`Continuation`]s of its tasks; weak, so that the
    /// actor still ends when every handle is gone.
    pub(super) back: WeakMailbox<RoomsRequest>,
    pub(super) users: Users,
    pub(super) store: Store,
    pub(super) idle: IdleSender,
    /// Where the store's answer comes back: which expired rooms nobody remembers.
    pub(super) unremembered: mpsc::UnboundedSender<(Instant, Vec<Name>)>,
    pub(super) backlog: Backlog,
    pub(super) cluster: Option<Cluster>,
    /// The members each room has on the other nodes, and where (empty when not clustered).
    pub(super) remote: HashMap<Name, HashMap<Name, Arc<str>>>,
}

/// How often expired rooms are looked for, at most.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_secs(60);

impl RoomsActor {
    /// Starts the actor with the rooms loaded from `store` (name, creator) and their topics;
    /// its inbox, and the count of requests waiting there.
    pub(super) fn spawn(
        users: Users,
        store: Store,
        loaded: Vec<(Name, Name)>,
        topics: Vec<(Name, Topic)>,
        limits: RoomLimits,
        cluster: Option<Cluster>,
    ) -> (Mailbox<RoomsRequest>, Backlog) {
        // Unbounded: a session sends its next room request only once the last is answered,
        // so at most one per connection waits here.
        let (tx, rx) = Mailbox::unbounded();
        let (idle_tx, idle_rx) = Mailbox::unbounded();
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
        (tx, backlog)
    }

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

    /// Finishes a request once the store has answered.
    fn resume(&mut self, continuation: Continuation) {
        match continuation {
            Continuation::Stored {
                member,
                room,
                stored,
                reply,
            } => self.stored(member, room, stored, reply),
            Continuation::Found {
                member,
                room,
                found,
                reply,
            } => self.found(member, room, found, reply),
            Continuation::TopicStored {
                room,
                change,
                stored,
                reply,
            } => self.topic_stored(room, change, stored, reply),
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
            RoomsRequest::Continue(continuation) => self.resume(continuation),
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
            RoomsRequest::Summaries { reply } => self.summaries(reply),
            RoomsRequest::Topic { room, reply } => self.topic(&room, reply),
            RoomsRequest::SetTopic {
                by,
                room,
                text,
                reply,
            } => self.set_topic(by, room, text, reply),
            RoomsRequest::Remote(remote) => self.heard(remote),
            RoomsRequest::Settle { reply } => {
                let running: Vec<Room> = self
                    .rooms
                    .values()
                    .filter_map(|r| r.actor.clone())
                    .collect();
                tokio::spawn(async move {
                    for room in running {
                        let others = Vec::new();
                        let members = |reply| RoomRequest::Members { others, reply };
                        let _ = room.mailbox().ask_later(members).await;
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
            let _ = reply.send(Err(RoomError::Exists(existing.name.clone())));
            return;
        }
        if self.creating.contains_key(&room) {
            let _ = reply.send(Err(RoomError::Exists(room)));
            return;
        }
        let held = self.rooms.len() + self.creating.len();
        if held >= self.limits.max_rooms {
            let _ = reply.send(Err(RoomError::TooMany(held)));
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
                let stored = Continuation::Stored {
                    member,
                    room,
                    stored,
                    reply,
                };
                back.post(stored.into());
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
                let _ = reply.send(Err(RoomError::Exists(room.clone())));
                self.join_waiting(&room, waiting);
                return;
            }
            Err(error) => {
                let reason = error.client_message();
                let refusal = RoomStorageError::Create {
                    room: room.clone(),
                    reason,
                };
                let _ = reply.send(Err(refusal.into()));
                for (_, reply) in waiting {
                    let _ = reply.send(Err(RoomError::NoSuchRoom(room.clone())));
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
        self.join(member, room.clone(), true, reply);
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
            self.join(member, room, false, reply);
        }
    }

    /// Joins those whose `JR` came while `room` was being created, in the order they came.
    fn join_waiting(&mut self, room: &Name, waiting: Vec<(Member, oneshot::Sender<Joined>)>) {
        for (member, reply) in waiting {
            self.join(member, room.clone(), false, reply);
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
                let found = Continuation::Found {
                    member,
                    room,
                    found,
                    reply,
                };
                back.post(found.into());
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
                self.join(member, stored, false, reply);
            }
            Ok(None) => {
                let _ = reply.send(Err(RoomError::NoSuchRoom(room)));
            }
            Err(error) => {
                let reason = error.client_message();
                let refusal = RoomStorageError::LookUp { room, reason };
                let _ = reply.send(Err(refusal.into()));
            }
        }
    }

    /// Why someone who holds no handle to `room` cannot speak in it or leave it: the room
    /// exists and they are not in it, or there is no such room.
    fn not_member(&self, room: &Name, reply: oneshot::Sender<RoomError>) {
        let answer = match self.rooms.get(room) {
            Some(entry) => RoomError::NotMember(entry.name.clone()),
            None => RoomError::NoSuchRoom(room.clone()),
        };
        let _ = reply.send(answer);
    }

    /// A running room's actor answers with its members; a room without one has none here.
    fn members(&self, room: &Name, reply: oneshot::Sender<Result<RoomMembers, RoomError>>) {
        // Clustered, the members on other nodes are listed too.
        let others = || match self.remote.get(room) {
            Some(members) => members.keys().cloned().collect(),
            None => Vec::new(),
        };
        match self.rooms.get(room) {
            Some(RoomEntry {
                actor: Some(actor), ..
            }) => actor.mailbox().post(RoomRequest::Members {
                others: others(),
                reply,
            }),
            Some(RoomEntry { name, .. }) => {
                let mut users: Vec<Name> = others();
                users.sort();
                let _ = reply.send(Ok(RoomMembers {
                    room: name.clone(),
                    users,
                }));
            }
            None => {
                let _ = reply.send(Err(RoomError::NoSuchRoom(room.clone())));
            }
        }
    }

    /// How many rooms have a running room actor.
    #[cfg(test)]
    fn running_managers(&self, reply: oneshot::Sender<usize>) {
        let running = self.rooms.values().filter(|r| r.actor.is_some()).count();
        let _ = reply.send(running);
    }

    /// Every room's name, sorted.
    fn list(&self, reply: oneshot::Sender<Vec<Name>>) {
        let mut names: Vec<Name> = self.rooms.values().map(|r| r.name.clone()).collect();
        names.sort();
        let _ = reply.send(names);
    }

    /// Every room with its member count and topic, sorted by name. The rooms with a running
    /// actor are asked for their members from a task of its own, as [`RoomsActor::send_state`]
    /// does, so that the table does not wait for them.
    fn summaries(&self, reply: oneshot::Sender<Vec<RoomSummary>>) {
        let mut rooms: Vec<(RoomSummary, Option<Room>)> = self
            .rooms
            .values()
            .map(|entry| {
                let others = self.remote.get(&entry.name).map_or(0, HashMap::len);
                let summary = RoomSummary {
                    room: entry.name.clone(),
                    members: others,
                    topic: entry.topic.clone(),
                };
                (summary, entry.actor.clone())
            })
            .collect();
        rooms.sort_by(|(a, _), (b, _)| a.room.cmp(&b.room));
        tokio::spawn(async move {
            let mut summaries = Vec::with_capacity(rooms.len());
            for (mut summary, actor) in rooms {
                if let Some(actor) = actor {
                    let members = actor.mailbox().ask_later(|reply| RoomRequest::Members {
                        others: Vec::new(),
                        reply,
                    });
                    if let Ok(Ok(members)) = members.await {
                        summary.members += members.users.len();
                    }
                }
                summaries.push(summary);
            }
            let _ = reply.send(summaries);
        });
    }

    /// `JR`, and the end of a `CR`: starts the room's actor if the room has none running,
    /// and asks it to take `member`; it answers `reply`.
    fn join(&mut self, member: Member, room: Name, created: bool, reply: oneshot::Sender<Joined>) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            let _ = reply.send(Err(RoomError::NoSuchRoom(room)));
            return;
        };
        let actor = entry.actor.get_or_insert_with(|| {
            let room = entry.name.clone();
            let cluster = self.cluster.clone();
            RoomActor::spawn(room, self.limits.max_members, self.idle.clone(), cluster)
        });
        actor.mailbox().post(RoomRequest::Join {
            member,
            created,
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
