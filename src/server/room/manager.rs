//! The `RoomManager`: one task per room with members.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use crate::common::{ErrorCode, Name, Reply, Verb};
use crate::connection::{Delivery, Outbox};
use crate::server::member::{Member, UserId};
use crate::server::storage::{Conversation, Record, Store};

#[derive(Debug)]
pub(super) enum RoomMessage {
    Join {
        member: Member,
        /// `CR` or `JR`: the verb the joiner's `OK` names.
        verb: Verb,
        reply: oneshot::Sender<Reply>,
    },
    Leave {
        member: Member,
        reply: Option<oneshot::Sender<Reply>>,
    },
    Say {
        from: Member,
        text: String,
        reply: oneshot::Sender<Reply>,
    },
    Members {
        reply: oneshot::Sender<Reply>,
    },
    /// Sent by the processor after the room reported itself empty: the task ends if the room
    /// is still empty, otherwise it carries on (someone joined in between).
    Close {
        reply: oneshot::Sender<bool>,
    },
}

/// Tells the room processor that a room has no members left.
pub(super) type IdleSender = mpsc::UnboundedSender<Name>;

/// A member's place in the room: who they are and where their lines go.
struct Seat {
    id: UserId,
    outbox: Outbox,
}

pub(super) struct RoomManager {
    room: Name,
    max_members: usize,
    members: HashMap<Name, Seat>,
    idle: IdleSender,
    store: Store,
}

impl RoomManager {
    /// Starts the task of `room` and returns its inbox.
    pub(super) fn spawn(
        room: Name,
        max_members: usize,
        idle: IdleSender,
        store: Store,
    ) -> mpsc::UnboundedSender<RoomMessage> {
        // Unbounded: requests come through the room processor, one per waiting connection.
        let (tx, rx) = mpsc::unbounded_channel();
        let manager = RoomManager {
            room,
            max_members,
            members: HashMap::new(),
            idle,
            store,
        };
        tokio::spawn(manager.run(rx));
        tx
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<RoomMessage>) {
        while let Some(message) = rx.recv().await {
            if self.handle(message).is_break() {
                return;
            }
        }
    }

    /// Handles one message; `Break` when the task should end.
    fn handle(&mut self, message: RoomMessage) -> ControlFlow<()> {
        let room = self.room.clone();
        match message {
            RoomMessage::Join {
                member,
                verb,
                reply,
            } => {
                let answer = self.join(member, verb);
                let _ = reply.send(answer);
            }
            RoomMessage::Leave { member, reply } => {
                let present = self
                    .members
                    .get(&member.name)
                    .is_some_and(|seat| seat.outbox.same_connection(&member.outbox));
                let answer = if present {
                    self.members.remove(&member.name);
                    let user = member.name.clone();
                    self.fan_out(Reply::Left { room, user }, &member.name);
                    if self.members.is_empty() {
                        let _ = self.idle.send(self.room.clone());
                    }
                    Reply::ok_with(Verb::Lr, &self.room)
                } else {
                    not_in(&room)
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            RoomMessage::Say { from, text, reply } => {
                let answer = if self.members.contains_key(&from.name) {
                    // Queued for history first (never waits), so that a member's HISTORY right
                    // after the delivery finds it.
                    self.store.record(Record {
                        conversation: Conversation::Room(room.clone()),
                        from: from.name.clone(),
                        to: None,
                        text: text.clone(),
                        at: SystemTime::now(),
                        pending: false,
                    });
                    let line = Reply::Rm {
                        room,
                        from: from.name.clone(),
                        text,
                    };
                    self.fan_out(line, &from.name);
                    Reply::ok_with(Verb::Rm, &self.room)
                } else {
                    not_in(&room)
                };
                let _ = reply.send(answer);
            }
            RoomMessage::Members { reply } => {
                let mut users: Vec<Name> = self.members.keys().cloned().collect();
                users.sort();
                let _ = reply.send(Reply::RoomUsers { room, users });
            }
            RoomMessage::Close { reply } => {
                let empty = self.members.is_empty();
                let _ = reply.send(empty);
                if empty {
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn join(&mut self, member: Member, verb: Verb) -> Reply {
        let room = self.room.clone();
        match self.members.get_mut(&member.name) {
            Some(seat) if seat.outbox.same_connection(&member.outbox) => {
                return Reply::err(ErrorCode::AlreadyInRoom, format!("you are in {room}"));
            }
            // The same user on a new connection, after a login that took their session over:
            // they keep their seat, and the others see no change.
            Some(seat) if seat.id == member.id => {
                seat.outbox = member.outbox;
                return Reply::ok_with(verb, &room);
            }
            // Someone else under that name, whose session is ending: they leave first.
            Some(_) => {
                self.members.remove(&member.name);
                let user = member.name.clone();
                self.fan_out(
                    Reply::Left {
                        room: room.clone(),
                        user,
                    },
                    &member.name,
                );
            }
            None => {}
        }
        if self.members.len() >= self.max_members {
            let message = format!("{room} has {} members, its most", self.members.len());
            return Reply::err(ErrorCode::RoomFull, message);
        }
        let user = member.name.clone();
        self.fan_out(Reply::Joined { room, user }, &member.name);
        let seat = Seat {
            id: member.id,
            outbox: member.outbox,
        };
        self.members.insert(member.name, seat);
        Reply::ok_with(verb, &self.room)
    }

    /// Queues `reply` for every member but `except`, encoded once for all of them. Never waits:
    /// a member whose outbox is full is being disconnected, and will be removed as it leaves.
    fn fan_out(&self, reply: Reply, except: &Name) {
        let line = Delivery::new(reply);
        for (name, seat) in &self.members {
            if name != except {
                let _ = seat.outbox.push(line.clone());
            }
        }
    }
}

fn not_in(room: &Name) -> Reply {
    Reply::err(ErrorCode::NotInRoom, format!("you are not in {room}"))
}
