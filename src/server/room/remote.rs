//! What the room table hears from the other nodes of a cluster (`RemoteRooms`), and the
//! state of its rooms it tells them.

use std::sync::Arc;
use std::time::SystemTime;

use linechat_protocol::{Name, Topic};
use tokio::time::Instant;

use super::room::{Room, RoomRequest};
use super::rooms_actor::{RoomEntry, RoomsActor};
use crate::connection::Delivery;
use crate::server::cluster::wire::{self, RoomState, TopicState};
use crate::server::event::Event;

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

impl RoomsActor {
    pub(super) fn heard(&mut self, remote: RemoteRooms) {
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
    pub(super) fn know(&mut self, room: &Name) {
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
            actor.mailbox().post(RoomRequest::Deliver {
                line: Delivery::event(line),
            });
        }
    }

    /// Publishes every room of the table, with its members on this node, from a task of its
    /// own that asks the running room tasks.
    pub(super) fn send_state(&self) {
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
                    let members = actor.mailbox().ask_later(|reply| RoomRequest::Members {
                        others: Vec::new(),
                        reply,
                    });
                    if let Ok(Ok(members)) = members.await {
                        room.members = members.users;
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
