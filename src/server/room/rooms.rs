//! `Rooms`, the handle to the [`RoomsActor`], and what it is asked and answers.

use std::time::Duration;

use linechat_protocol::{Name, Topic};
use tokio::sync::oneshot;

use super::error::RoomError;
use super::remote::RemoteRooms;
use super::room::Room;
use super::rooms_actor::{Continuation, RoomsActor};
use crate::server::cluster::Cluster;
use crate::server::mailbox::{Backlog, Mailbox};
use crate::server::member::Member;
use crate::server::storage::Store;
use crate::server::user::Users;

/// What a join answers: the room's handle, or why not.
pub type Joined = Result<Room, RoomError>;

/// A room's members, on every node, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMembers {
    /// The room's name as it was created.
    pub room: Name,
    pub users: Vec<Name>,
}

/// A room's topic, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTopic {
    /// The room's name as it was created.
    pub room: Name,
    pub topic: Option<Topic>,
}

/// One room of a listing with its details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room's name as it was created.
    pub room: Name,
    /// How many members it has, on every node.
    pub members: usize,
    pub topic: Option<Topic>,
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

/// What the rooms actor is asked; requests with a `reply` are answered on it.
#[derive(Debug)]
pub(super) enum RoomsRequest {
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
        reply: oneshot::Sender<RoomError>,
    },
    Members {
        room: Name,
        reply: oneshot::Sender<Result<RoomMembers, RoomError>>,
    },
    /// Every room's name, sorted.
    List { reply: oneshot::Sender<Vec<Name>> },
    /// Every room with its member count and topic, sorted by name.
    Summaries {
        reply: oneshot::Sender<Vec<RoomSummary>>,
    },
    Topic {
        room: Name,
        reply: oneshot::Sender<Result<RoomTopic, RoomError>>,
    },
    /// A new topic from `by`, a member (its session holds the room's handle); `None` clears
    /// it. Answered once stored.
    SetTopic {
        by: Name,
        room: Name,
        text: Option<String>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    /// What the actor's own tasks send back to it. Private to the room table: no other
    /// module can make one.
    Continue(Continuation),
    /// What the other nodes of a cluster said (see [`RemoteRooms`]).
    Remote(RemoteRooms),
    /// Answered once every room task has handled what it was sent before.
    Settle { reply: oneshot::Sender<()> },
    /// How many rooms have a running room actor.
    #[cfg(test)]
    RunningManagers { reply: oneshot::Sender<usize> },
}

/// A handle to the [`RoomsActor`], which owns the table of rooms. Sessions come here to
/// create, join and list rooms; once in a room, they talk to its [`Room`] handle.
#[derive(Debug, Clone)]
pub struct Rooms {
    /// Seen by the room table's files (its tests ask it what only they need).
    pub(super) mailbox: Mailbox<RoomsRequest>,
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
        let (mailbox, backlog) = RoomsActor::spawn(users, store, loaded, topics, limits, cluster);
        Self { mailbox, backlog }
    }

    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// `CR`: creates `room`, stores it, and joins `member` to it.
    pub async fn create(&self, member: Member, room: Name) -> Joined {
        self.mailbox
            .ask(|reply| RoomsRequest::Create {
                member,
                room,
                reply,
            })
            .await
            .unwrap_or(Err(RoomError::Unavailable))
    }

    /// `JR`: joins `member` to `room`.
    pub async fn join(&self, member: Member, room: Name) -> Joined {
        self.mailbox
            .ask(|reply| RoomsRequest::Join {
                member,
                room,
                reply,
            })
            .await
            .unwrap_or(Err(RoomError::Unavailable))
    }

    /// Why someone who holds no handle to `room` cannot speak in it or leave it: they are
    /// not in it, or there is no such room.
    pub async fn not_member(&self, room: Name) -> RoomError {
        self.mailbox
            .ask(|reply| RoomsRequest::NotMember { room, reply })
            .await
            .unwrap_or(RoomError::Unavailable)
    }

    /// The members of `room`.
    pub async fn members(&self, room: Name) -> Result<RoomMembers, RoomError> {
        self.mailbox
            .ask(|reply| RoomsRequest::Members { room, reply })
            .await
            .unwrap_or(Err(RoomError::Unavailable))
    }

    /// Every room's name, sorted.
    pub async fn list(&self) -> Result<Vec<Name>, RoomError> {
        self.mailbox
            .ask(|reply| RoomsRequest::List { reply })
            .await
            .map_err(|_| RoomError::Unavailable)
    }

    /// Every room with how many members it has and its topic, sorted by name: one request,
    /// for which the table asks each room with members.
    pub async fn summaries(&self) -> Result<Vec<RoomSummary>, RoomError> {
        self.mailbox
            .ask(|reply| RoomsRequest::Summaries { reply })
            .await
            .map_err(|_| RoomError::Unavailable)
    }

    /// The room's topic, or why not.
    pub async fn topic(&self, room: Name) -> Result<RoomTopic, RoomError> {
        self.mailbox
            .ask(|reply| RoomsRequest::Topic { room, reply })
            .await
            .unwrap_or(Err(RoomError::Unavailable))
    }

    /// Sets the topic of `room`, which `by` is a member of (the caller checks, as it holds
    /// the room's handle), or clears it (`None`). Answered once it is stored; the room's
    /// other members are told.
    pub async fn set_topic(
        &self,
        by: Name,
        room: Name,
        text: Option<String>,
    ) -> Result<(), RoomError> {
        self.mailbox
            .ask(|reply| RoomsRequest::SetTopic {
                by,
                room,
                text,
                reply,
            })
            .await
            .unwrap_or(Err(RoomError::Unavailable))
    }

    /// Returns once every room has handled what it was sent before (the leaves of the
    /// sessions that ended, at shutdown), so that what they publish is queued.
    pub async fn settle(&self) {
        let _ = self
            .mailbox
            .ask(|reply| RoomsRequest::Settle { reply })
            .await;
    }

    /// Hands the room table what another node said.
    pub(crate) fn remote(&self, remote: RemoteRooms) {
        self.mailbox.post(RoomsRequest::Remote(remote));
    }
}
