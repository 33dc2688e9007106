//! What the actors deliver to sessions: typed events, the same value for every recipient,
//! which each front-end words its own way at its connections' writers (the line protocol in
//! `cmd::wording`, IRC in `irc::translate`). No wire text is in them. The server's parting
//! notice to a connection it closes is one too, for that connection alone.
//!
//! A room's events also travel to the room's members on other nodes of a cluster, in the
//! cluster's own encoding (serde), so they are serializable; a parting never leaves its node.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use linechat_protocol::{CloseReason, Departure, Name, Stamp};

use crate::server::storage::MessageId;

/// Something that happened that a session is told of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// `from` said `text` in `room`.
    RoomMessage {
        /// The id history keeps it under, given where it was accepted.
        id: MessageId,
        /// When it was accepted, as history keeps it.
        at: SystemTime,
        room: Name,
        from: Name,
        text: String,
    },
    /// `from` said `text` to the recipient alone.
    PrivateMessage {
        /// The id history keeps it under, given where it was accepted.
        id: MessageId,
        /// When it was accepted, as history keeps it.
        at: SystemTime,
        from: Name,
        text: String,
    },
    /// `from` said `text` to everyone online (the global chat).
    GlobalMessage {
        /// The id history keeps it under, given where it was accepted.
        id: MessageId,
        /// When it was accepted, as history keeps it.
        at: SystemTime,
        from: Name,
        text: String,
    },
    /// A message read back from history for the user alone: one of the answer to a history
    /// request, of the conversation `of`.
    Recalled {
        of: Recalled,
        id: MessageId,
        at: SystemTime,
        from: Name,
        text: String,
    },
    /// `user` joined `room`.
    Joined { room: Name, user: Name },
    /// `user` left `room`.
    Left { room: Name, user: Name },
    /// Users who came online or went offline, in the order they did.
    Presence(PresenceBatch),
    /// `by` created `room`.
    RoomCreated { room: Name, by: Name },
    /// `by`, a member of `room`, set its topic to `text`, or cleared it (`None`).
    Topic {
        room: Name,
        by: Name,
        text: Option<String>,
    },
    /// The server closes the connection, for this reason: the last thing its client is told,
    /// and only that client (the connection's parting, never fanned out nor sent to another
    /// node).
    #[serde(skip)]
    Closing(CloseReason),
    /// The server is shutting down: the last thing each connection is told, as its parting.
    #[serde(skip)]
    ShuttingDown,
}

/// The conversation a recalled message is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recalled {
    /// The global chat.
    Global,
    /// A room, or the private conversation with a user, by its name.
    Named(Name),
}

/// A user coming online or going offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceChange {
    Online { user: Name },
    Offline { user: Name, how: Departure },
}

impl PresenceChange {
    /// The user who came or went.
    pub fn user(&self) -> &Name {
        match self {
            PresenceChange::Online { user } | PresenceChange::Offline { user, .. } => user,
        }
    }
}

/// Presence changes sent together. Those who came online during a batch are told only what
/// happened after they arrived: their batch is a tail of everyone's, sharing its changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PresenceChange>", into = "Vec<PresenceChange>")]
pub struct PresenceBatch {
    all: Arc<[PresenceChange]>,
    from: usize,
}

impl PresenceBatch {
    /// The changes after the first `from` of this batch, sharing them.
    pub fn after(&self, from: usize) -> Self {
        Self {
            all: self.all.clone(),
            from: (self.from + from).min(self.all.len()),
        }
    }

    pub fn changes(&self) -> &[PresenceChange] {
        &self.all[self.from..]
    }
}

impl From<Vec<PresenceChange>> for PresenceBatch {
    fn from(changes: Vec<PresenceChange>) -> Self {
        Self {
            all: changes.into(),
            from: 0,
        }
    }
}

impl From<PresenceBatch> for Vec<PresenceChange> {
    fn from(batch: PresenceBatch) -> Self {
        batch.changes().to_vec()
    }
}

impl Event {
    /// A message's id and time, as a connection that asked for them sees them; `None` for
    /// an event that is not a message.
    pub fn stamp(&self) -> Option<Stamp> {
        match self {
            Event::RoomMessage { id, at, .. }
            | Event::PrivateMessage { id, at, .. }
            | Event::GlobalMessage { id, at, .. }
            | Event::Recalled { id, at, .. } => Some(Stamp {
                id: id.get(),
                at: *at,
            }),
            _ => None,
        }
    }

    /// What the event holds on the heap, in bytes, beyond its own size: its texts. Its names
    /// are handles to the names the directory and the rooms hold (a name is shared, not
    /// copied), short (at most 32 bytes) where an event read from another node has its own.
    /// For what a queued delivery of it counts against its outbox.
    pub fn heap_bytes(&self) -> usize {
        /// A text's allocation: its bytes and the allocator's header.
        fn text(text: &str) -> usize {
            text.len() + 16
        }
        match self {
            Event::RoomMessage { text: t, .. }
            | Event::Recalled { text: t, .. }
            | Event::PrivateMessage { text: t, .. }
            | Event::GlobalMessage { text: t, .. } => text(t),
            Event::Topic { text: t, .. } => t.as_deref().map_or(0, text),
            Event::Joined { .. }
            | Event::Left { .. }
            | Event::RoomCreated { .. }
            | Event::Closing(_)
            | Event::ShuttingDown => 0,
            // The whole batch: a newcomer's tail keeps all of it alive.
            Event::Presence(batch) => {
                16 + batch
                    .all
                    .iter()
                    .map(|change| {
                        size_of::<PresenceChange>()
                            + match change {
                                PresenceChange::Offline {
                                    how: Departure::Quit(Some(reason)),
                                    ..
                                } => text(reason),
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
            }
        }
    }
}

/// The time of a message as history stores it, milliseconds since the Unix epoch: a message's
/// event carries the time stored with it.
pub fn time_of(millis: i64) -> SystemTime {
    let since = std::time::Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        SystemTime::UNIX_EPOCH + since
    } else {
        SystemTime::UNIX_EPOCH - since
    }
}
