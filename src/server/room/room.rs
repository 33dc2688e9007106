//! `Room`, the handle to one room's task, and the `RoomActor`: one task per room with members.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::error::RoomError;
use super::rooms::RoomMembers;
use crate::connection::{Delivery, Outbox};
use crate::server::cluster::{Cluster, wire};
use crate::server::event::{self, Event};
use crate::server::log_tally::LogTally;
use crate::server::mailbox::{BoundedMailbox, Mailbox};
use crate::server::member::{Member, UserId};
use crate::server::storage::{Conversation, Record, Store};
use linechat_protocol::Name;

#[derive(Debug)]
pub(super) enum RoomRequest {
    Join {
        member: Member,
        /// Whether the joiner just created the room (the other nodes are then told of it).
        created: bool,
        /// The handle the joiner gets to keep.
        handle: Room,
        reply: oneshot::Sender<Result<Room, RoomError>>,
    },
    Leave {
        member: Member,
        reply: Option<oneshot::Sender<Result<(), RoomError>>>,
    },
    /// An event a member caused (their message, a topic they set), one delivery for all
    /// the members; the member's session answers `OK RM` itself.
    Say { from: Name, line: Arc<Delivery> },
    Members {
        /// The members on the other nodes of a cluster, listed with this node's.
        others: Vec<Name>,
        reply: oneshot::Sender<Result<RoomMembers, RoomError>>,
    },
    /// A line for every member here: what happened to the room on another node that could
    /// not say so itself (it was lost), or that was missed while NATS was away.
    Deliver { line: Arc<Delivery> },
    /// Sent by the rooms actor after the room reported itself empty: the task ends if the room
    /// is still empty, otherwise it carries on (someone joined in between).
    Close { reply: oneshot::Sender<bool> },
}

/// Tells the rooms actor that a room has no members left.
pub(super) type IdleSender = Mailbox<Name>;

/// Messages a room's inbox holds before a member's session waits to send it more: a sender
/// faster than the room's fan-out is slowed down, not buffered without end.
const INBOX: usize = 1024;

/// A handle to one room's task. A member's session gets it from `CR` or `JR` and keeps it
/// until `LR`, so that its messages go straight to the room.
#[derive(Debug, Clone)]
pub struct Room {
    name: Name,
    mailbox: BoundedMailbox<RoomRequest>,
}

impl Room {
    /// The room's name as it was created.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Says `text` to the other members, after queueing it for history (which never waits),
    /// so that a member's `HISTORY` sent on seeing it, or the sender's on seeing the `OK`,
    /// finds it. Waits only while the room's inbox is full. `NotMember` if the room's task
    /// is gone.
    pub async fn say(&self, store: &Store, from: &Member, text: String) -> Result<(), RoomError> {
        if self.mailbox.is_closed() {
            return Err(self.not_in());
        }
        let record = Record::now(
            Conversation::Room(self.name.clone()),
            from.name.clone(),
            text.as_str(),
        );
        let from = from.name.clone();
        let at = event::time_of(record.at);
        let id = store.record(record);
        let line = Delivery::event(Event::RoomMessage {
            id,
            at,
            room: self.name.clone(),
            from: from.clone(),
            text,
        });
        let sent = self.mailbox.tell(RoomRequest::Say { from, line }).await;
        sent.map_err(|_| self.not_in())
    }

    /// Leaves the room, or says why not.
    pub async fn leave(&self, member: Member) -> Result<(), RoomError> {
        let leave = |reply| RoomRequest::Leave {
            member,
            reply: Some(reply),
        };
        let answer = self.mailbox.ask(leave).await;
        answer.unwrap_or_else(|_| Err(self.not_in()))
    }

    fn not_in(&self) -> RoomError {
        RoomError::NotMember(self.name.clone())
    }

    /// Leaves without waiting, as a disconnecting session does: it must not wait for one
    /// busy room.
    pub fn leave_quietly(&self, member: Member) {
        self.mailbox.post(RoomRequest::Leave {
            member,
            reply: None,
        });
    }

    /// The room's mailbox, for the rooms actor: it hands the room its work with
    /// [`Mailbox::post`], as it must not wait for one busy room.
    pub(super) fn mailbox(&self) -> &BoundedMailbox<RoomRequest> {
        &self.mailbox
    }

    /// Ends the room's task if the room is still empty once it has handled everything sent
    /// before; whether it ended (or was gone already).
    pub(super) async fn close_if_empty(&self) -> bool {
        let close = self.mailbox.ask(|reply| RoomRequest::Close { reply });
        close.await.unwrap_or(true)
    }
}

/// A member's place in the room: who they are and where their lines go.
struct Seat {
    id: UserId,
    outbox: Outbox,
}

pub(super) struct RoomActor {
    room: Name,
    max_members: usize,
    members: HashMap<Name, Seat>,
    idle: IdleSender,
    /// Clustered: what happens here is published to the other nodes with members.
    cluster: Option<Cluster>,
}

impl RoomActor {
    /// Starts the task of `room` and returns the handle its members will keep.
    pub(super) fn spawn(
        room: Name,
        max_members: usize,
        idle: IdleSender,
        cluster: Option<Cluster>,
    ) -> Room {
        let (mailbox, rx) = BoundedMailbox::bounded(INBOX);
        let handle = Room {
            name: room.clone(),
            mailbox,
        };
        let actor = RoomActor {
            room,
            max_members,
            members: HashMap::new(),
            idle,
            cluster,
        };
        tokio::spawn(actor.run(rx));
        handle
    }

    async fn run(mut self, mut rx: mpsc::Receiver<RoomRequest>) {
        if let Some(cluster) = self.cluster.clone() {
            return self.run_clustered(rx, cluster).await;
        }
        while let Some(message) = rx.recv().await {
            if self.handle(message).is_break() {
                return;
            }
        }
    }

    /// The room's task on a node of a cluster: it also delivers what the room's members on
    /// other nodes said. The subscription to the room's subject is the task's own, so that a
    /// node hears a room exactly while it has members there (the task exists that long), and
    /// the room's events, local and remote, are put in one order by one owner, as a local
    /// room's are. It is made before the first join is answered.
    async fn run_clustered(mut self, mut rx: mpsc::Receiver<RoomRequest>, cluster: Cluster) {
        let mut remote = cluster.subscribe_room(&self.room).await;
        // What a newer node may send many of: one line per interval, with how many.
        let mut unread = LogTally::new(std::time::Duration::from_secs(10));
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => {
                        if self.handle(message).is_break() {
                            return;
                        }
                    }
                    None => return,
                },
                Some(message) = next_message(&mut remote) => {
                    let line = match wire::decode::<Event>(&message.payload) {
                        Ok(event) => Delivery::event(event),
                        Err(error) => {
                            if let Some(count) = unread.count(1) {
                                warn!(room = %self.room, %error, count, "room events from other nodes skipped");
                            }
                            continue;
                        }
                    };
                    for seat in self.members.values() {
                        let _ = seat.outbox.push(line.clone());
                    }
                }
            }
        }
    }

    /// Handles one message; `Break` when the task should end.
    fn handle(&mut self, message: RoomRequest) -> ControlFlow<()> {
        let room = self.room.clone();
        match message {
            RoomRequest::Join {
                member,
                created,
                handle,
                reply,
            } => {
                let _ = reply.send(self.join(member, created).map(|()| handle));
            }
            RoomRequest::Leave { member, reply } => {
                let present = self
                    .members
                    .get(&member.name)
                    .is_some_and(|seat| seat.outbox.same_connection(&member.outbox));
                let answer = if present {
                    self.members.remove(&member.name);
                    let user = member.name.clone();
                    self.tell_cluster(Change::Left, &user);
                    self.fan_out(Event::Left { room, user }, &member.name);
                    if self.members.is_empty() {
                        self.idle.post(self.room.clone());
                    }
                    Ok(())
                } else {
                    Err(RoomError::NotMember(room))
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            RoomRequest::Say { from, line } => {
                // Only a member's session holds the handle; a session whose seat passed to a
                // newer login of the same user may still send, as that user.
                if self.members.contains_key(&from) {
                    self.deliver(&line, &from);
                    if let Some(cluster) = &self.cluster
                        && let Some(event) = line.as_event()
                    {
                        cluster.room_line(&self.room, wire::encode(event));
                    }
                }
            }
            RoomRequest::Members { others, reply } => {
                let mut users: Vec<Name> = self.members.keys().cloned().collect();
                users.extend(others);
                users.sort();
                let _ = reply.send(Ok(RoomMembers { room, users }));
            }
            RoomRequest::Deliver { line } => {
                for seat in self.members.values() {
                    let _ = seat.outbox.push(line.clone());
                }
            }
            RoomRequest::Close { reply } => {
                let empty = self.members.is_empty();
                let _ = reply.send(empty);
                if empty {
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn join(&mut self, member: Member, created: bool) -> Result<(), RoomError> {
        let room = self.room.clone();
        match self.members.get_mut(&member.name) {
            Some(seat) if seat.outbox.same_connection(&member.outbox) => {
                return Err(RoomError::AlreadyMember(room));
            }
            // The same user on a new connection, after a login that took their session over:
            // they keep their seat, and the others see no change.
            Some(seat) if seat.id == member.id => {
                seat.outbox = member.outbox;
                return Ok(());
            }
            // Someone else under that name, whose session is ending: they leave first.
            Some(_) => {
                self.members.remove(&member.name);
                let user = member.name.clone();
                self.tell_cluster(Change::Left, &user);
                self.fan_out(
                    Event::Left {
                        room: room.clone(),
                        user,
                    },
                    &member.name,
                );
            }
            None => {}
        }
        if self.members.len() >= self.max_members {
            let members = self.members.len();
            return Err(RoomError::Full { room, members });
        }
        let user = member.name.clone();
        self.tell_cluster(Change::Joined, &user);
        self.fan_out(Event::Joined { room, user }, &member.name);
        let seat = Seat {
            id: member.id,
            outbox: member.outbox,
        };
        if created && let Some(cluster) = &self.cluster {
            // After the creator's `JR` line, in the node's one queue: a user of another node
            // who joins on hearing of the room cannot get that line, which came before.
            cluster.global(&wire::Global::RoomCreated {
                room: self.room.clone(),
                by: member.name.clone(),
            });
        }
        self.members.insert(member.name, seat);
        Ok(())
    }

    /// Queues `event` for every member but `except`, one delivery shared by all of them,
    /// and, clustered, publishes it to the room's members on other nodes.
    fn fan_out(&self, event: Event, except: &Name) {
        let line = Delivery::event(event);
        self.deliver(&line, except);
        if let Some(cluster) = &self.cluster
            && let Some(event) = line.as_event()
        {
            cluster.room_line(&self.room, wire::encode(event));
        }
    }

    /// Tells every node (for their lists of members, `LRU`) that `user` of this node joined
    /// or left.
    fn tell_cluster(&self, change: Change, user: &Name) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let (node, room, user) = (cluster.node().to_string(), self.room.clone(), user.clone());
        cluster.global(&match change {
            Change::Joined => wire::Global::Joined { node, room, user },
            Change::Left => wire::Global::Left { node, room, user },
        });
    }

    /// Queues `line` for every member but `except`. Never waits: a member whose outbox is full
    /// is being disconnected, and will be removed as it leaves.
    fn deliver(&self, line: &Arc<Delivery>, except: &Name) {
        for (name, seat) in &self.members {
            if name != except {
                let _ = seat.outbox.push(line.clone());
            }
        }
    }
}

/// A change of a room's members, for the other nodes.
enum Change {
    Joined,
    Left,
}

/// The next message on the room's subject; never, without a subscription.
async fn next_message(remote: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match remote {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}
