//! Topics: the longest one, and how the [`RoomsActor`] reads, stores and sets them.

use std::time::SystemTime;

use linechat_protocol::{Name, Topic};
use tokio::sync::oneshot;

use super::error::{RoomError, RoomStorageError};
use super::room::RoomRequest;
use super::rooms::RoomTopic;
use super::rooms_actor::{Continuation, RoomsActor};
use crate::connection::Delivery;
use crate::server::cluster::wire;
use crate::server::event::Event;
use crate::server::storage::StorageError;

/// The longest topic, in bytes of UTF-8: about two lines of a chat window, and what fits
/// in IRC's `332` line with the longest nick and channel.
pub const MAX_TOPIC_BYTES: usize = 300;

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

impl RoomsActor {
    /// The room's topic, if it has one.
    pub(super) fn topic(&self, room: &Name, reply: oneshot::Sender<Result<RoomTopic, RoomError>>) {
        let answer = match self.rooms.get(room) {
            Some(entry) => Ok(RoomTopic {
                room: entry.name.clone(),
                topic: entry.topic.clone(),
            }),
            None => Err(RoomError::NoSuchRoom(room.clone())),
        };
        let _ = reply.send(answer);
    }

    /// `TOPIC <room> <text>`: stores the new topic; [`RoomsActor::topic_stored`] finishes
    /// once it is on disk. The actor does not wait meanwhile.
    pub(super) fn set_topic(
        &mut self,
        by: Name,
        room: Name,
        text: Option<String>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    ) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            let _ = reply.send(Err(RoomError::NoSuchRoom(room)));
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
                let stored = Continuation::TopicStored {
                    room,
                    change,
                    stored,
                    reply,
                };
                back.post(stored.into());
            }
        });
    }

    /// The end of a `TOPIC <room> <text>` once the store has answered: the room takes the
    /// topic, and its members (here and on other nodes) and every node's room table are told.
    pub(super) fn topic_stored(
        &mut self,
        room: Name,
        change: TopicChange,
        stored: Result<(), StorageError>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    ) {
        if let Err(error) = stored {
            let reason = error.client_message();
            let _ = reply.send(Err(RoomStorageError::Topic { room, reason }.into()));
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
                actor.mailbox().post(RoomRequest::Say {
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
        let _ = reply.send(Ok(()));
    }
}
