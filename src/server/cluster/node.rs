//! The `ClusterActor`: this node's ear on the cluster. It owns the node's subscriptions to the
//! global subject and to its own subject, and what it knows of the other nodes' liveness; it
//! hands what it hears, checked, to the directory and the room table, which own the state it
//! concerns. One task per node, not one per subscription: what arrives is small and quick to
//! route, and one owner keeps the liveness table without sharing it.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::{Event, Message, Subscriber};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::wire::{self, Global, WireError};
use super::{Cluster, Inbound, heartbeat_every};
use crate::server::log_tally::LogTally;
use crate::server::room::{KnownTopic, RemoteRooms, Rooms};
use crate::server::user::{Remote, Users};
use linechat_protocol::Departure;

/// Starts this node's cluster task, which hands what the other nodes say to `users` and
/// `rooms`.
pub(crate) fn spawn_node(cluster: Cluster, inbound: Inbound, users: Users, rooms: Rooms) {
    let actor = ClusterActor {
        cluster,
        users,
        rooms,
        nodes: HashMap::new(),
        forgotten: HashMap::new(),
        connected: true,
        heard_until: Instant::now(),
        unread: LogTally::new(UNREAD_LOGGED_EVERY),
    };
    tokio::spawn(actor.run(inbound));
}

/// When another node was last heard, and which run of it.
struct Seen {
    incarnation: Option<u64>,
    last: Instant,
}

/// A round trip to NATS that was answered: when it was sent, and when its answer came.
struct RoundTrip {
    sent: Instant,
    answered: Instant,
}

struct ClusterActor {
    cluster: Cluster,
    users: Users,
    rooms: Rooms,
    nodes: HashMap<Arc<str>, Seen>,
    /// The nodes this one declared lost, with their run: should one speak again, it is told
    /// so ([`Global::Lost`]), since it may not know it was declared lost.
    forgotten: HashMap<Arc<str>, u64>,
    /// Whether the NATS client is connected, as it last said: while it is not, this node
    /// sends no heartbeats (and, as no round trip comes back, judges nobody).
    connected: bool,
    /// When the latest answered round trip to NATS was sent: everything this node published
    /// before then reached NATS, and everything the others published before then has been
    /// heard. The others' view of this node is fresh up to about then; this node's view of
    /// them is, too.
    heard_until: Instant,
    /// Messages from other nodes that could not be read, counted between log lines.
    unread: LogTally,
}

/// The most batches of private messages that arrived one behind the other handed to the
/// directory in one request: a request of a few thousand messages at most.
const DRAINED_AT_ONCE: usize = 16;

/// How often messages from other nodes that could not be read are logged, at most.
const UNREAD_LOGGED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl ClusterActor {
    async fn run(mut self, inbound: Inbound) {
        let Inbound {
            mut events,
            mut global,
            mut direct,
        } = inbound;
        let (round_trips, mut answered) = mpsc::unbounded_channel();
        self.hello();
        let mut heartbeat = tokio::time::interval(heartbeat_every(self.cluster.inner.node_timeout));
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(message) = global.next() => self.global(message),
                Some(message) = direct.next() => self.direct(message, &mut direct),
                Some(event) = events.recv() => self.connection(event),
                Some(trip) = answered.recv() => {
                    // What NATS sent before its answer is in the subscriptions by now: it is
                    // heard first, so that the answer finds this node's view up to date.
                    while let Some(Some(message)) = global.next().now_or_never() {
                        self.global(message);
                    }
                    while let Some(Some(message)) = direct.next().now_or_never() {
                        self.direct(message, &mut direct);
                    }
                    self.answered(trip);
                }
                _ = heartbeat.tick() => self.beat(&round_trips),
                else => return,
            }
        }
    }

    /// Asks every node for its state, and sends this node's to every node.
    fn hello(&self) {
        self.cluster.global(&Global::Hello {
            node: self.cluster.inner.node.to_string(),
            incarnation: self.cluster.inner.incarnation,
        });
        self.send_state();
    }

    /// Has the directory and the room table publish this node's users and rooms.
    fn send_state(&self) {
        self.users.remote(Remote::SendState);
        self.rooms.remote(RemoteRooms::SendState);
    }

    /// This node may have been declared lost by the others, who then freed its users' names
    /// and dropped them from what they show: the directory checks every claim again, and
    /// the state is exchanged again.
    fn rejoin(&self) {
        self.users.remote(Remote::Rejoined);
        self.hello();
    }

    /// Says this node is alive, and times a round trip to NATS, whose answer comes back on
    /// `round_trips`.
    fn beat(&self, round_trips: &mpsc::UnboundedSender<RoundTrip>) {
        if !self.connected {
            return;
        }
        self.cluster.global(&Global::Heartbeat {
            node: self.cluster.inner.node.to_string(),
            incarnation: self.cluster.inner.incarnation,
        });
        let (cluster, round_trips) = (self.cluster.clone(), round_trips.clone());
        let sent = Instant::now();
        tokio::spawn(async move {
            if cluster.round_trip().await {
                let answered = Instant::now();
                let _ = round_trips.send(RoundTrip { sent, answered });
            }
        });
    }

    /// A round trip came back. If none had for about the node timeout, the others may have
    /// declared this node lost meanwhile: it rejoins. Then the nodes not heard from since
    /// a node timeout before it was sent are lost.
    fn answered(&mut self, trip: RoundTrip) {
        if trip.sent <= self.heard_until {
            return;
        }
        let timeout = self.cluster.inner.node_timeout;
        let silent = trip.answered.saturating_duration_since(self.heard_until);
        self.heard_until = trip.sent;
        if silent >= timeout.saturating_sub(heartbeat_every(timeout)) {
            warn!("NATS did not answer this node for {silent:?}: it rejoins the cluster");
            self.rejoin();
        }
        self.sweep(trip.sent);
    }

    fn connection(&mut self, event: Event) {
        match event {
            Event::Disconnected => {
                warn!("lost NATS; chat goes on on this node, other nodes are out of reach");
                self.connected = false;
            }
            Event::Connected => {
                if self.connected {
                    return;
                }
                info!("reconnected to NATS");
                self.connected = true;
                // Everyone was silent to us meanwhile: they get a fresh timeout.
                let now = Instant::now();
                for seen in self.nodes.values_mut() {
                    seen.last = now;
                }
                self.heard_until = now;
                self.rejoin();
            }
            other => debug!(event = %other, "NATS"),
        }
    }

    /// Declares lost the nodes not heard from for the node timeout before `now`, a moment up
    /// to which this node has heard everything NATS had for it.
    fn sweep(&mut self, now: Instant) {
        let timeout = self.cluster.inner.node_timeout;
        let lost: Vec<Arc<str>> = self
            .nodes
            .iter()
            .filter(|(_, seen)| seen.last + timeout <= now)
            .map(|(node, _)| node.clone())
            .collect();
        for node in lost {
            warn!(%node, "node silent for {timeout:?}: its users are lost");
            if let Some(Seen {
                incarnation: Some(incarnation),
                ..
            }) = self.nodes.remove(&node)
            {
                self.forgotten.insert(node.clone(), incarnation);
                self.lost(&node, incarnation);
            }
            self.gone(node, Departure::Lost);
        }
    }

    /// Tells `node` (its run `incarnation`) that this node declared it lost.
    fn lost(&self, node: &str, incarnation: u64) {
        self.cluster.global(&Global::Lost {
            node: node.to_owned(),
            incarnation,
        });
    }

    /// `node` is gone: its users leave, as `how` says.
    fn gone(&self, node: Arc<str>, how: Departure) {
        let users = Remote::NodeGone {
            node: node.clone(),
            how,
        };
        self.users.remote(users);
        self.rooms.remote(RemoteRooms::NodeLost { node });
    }

    /// Notes that `node` is alive; a new incarnation means the old one is gone, with its
    /// users. Returns the node's name, shared.
    fn alive(&mut self, node: &str, incarnation: Option<u64>) -> Arc<str> {
        let now = Instant::now();
        let known = self.nodes.get_key_value(node).map(|(name, _)| name.clone());
        if let Some(name) = known
            && let Some(seen) = self.nodes.get_mut(node)
        {
            seen.last = now;
            match (seen.incarnation, incarnation) {
                (Some(old), Some(new)) if old != new => {
                    info!(%node, "node restarted");
                    seen.incarnation = Some(new);
                    self.gone(name.clone(), Departure::Lost);
                }
                (None, Some(new)) => seen.incarnation = Some(new),
                _ => {}
            }
            return name;
        }
        let name: Arc<str> = node.into();
        // A node declared lost that speaks again (and is not saying hello, after which it
        // sends its state anyway) may not know it was: it is told, and rejoins.
        if let Some(forgotten) = self.forgotten.remove(node)
            && incarnation.is_none_or(|run| run == forgotten)
        {
            info!(%node, "a node declared lost speaks again");
            self.lost(node, forgotten);
        } else {
            info!(%node, "node joined");
        }
        let seen = Seen {
            incarnation,
            last: now,
        };
        self.nodes.insert(name.clone(), seen);
        name
    }

    fn global(&mut self, message: Message) {
        let global: Global = match wire::decode(&message.payload) {
            Ok(global) => global,
            Err(error) => return self.unread(&error),
        };
        match global {
            Global::Heartbeat { node, incarnation } => {
                self.alive(&node, Some(incarnation));
            }
            Global::Bye { node, incarnation } => {
                let known = self.nodes.get(node.as_str());
                if known.is_some_and(|seen| seen.incarnation.is_none_or(|run| run == incarnation))
                    && let Some((name, _)) = self.nodes.remove_entry(node.as_str())
                {
                    info!(%node, "node shut down");
                    self.gone(name, Departure::Shutdown);
                }
            }
            Global::Hello { node, incarnation } => {
                self.forgotten.remove(node.as_str());
                self.alive(&node, Some(incarnation));
                self.send_state();
            }
            Global::Lost { node, incarnation } => {
                if *node == *self.cluster.inner.node
                    && incarnation == self.cluster.inner.incarnation
                {
                    warn!("another node declared this one lost: it rejoins the cluster");
                    self.rejoin();
                }
            }
            Global::Users {
                node,
                incarnation,
                users,
            } => {
                let node = self.alive(&node, Some(incarnation));
                self.users.remote(Remote::State { node, users });
            }
            Global::Rooms {
                node,
                incarnation,
                rooms,
            } => {
                let node = self.alive(&node, Some(incarnation));
                let rooms = rooms
                    .into_iter()
                    .map(|room| {
                        let topic = match (room.topic, room.topic_cleared_at) {
                            (Some(topic), _) => KnownTopic::Set(topic.into_topic()),
                            (None, Some(at)) => KnownTopic::Cleared(wire::time(at)),
                            (None, None) => KnownTopic::Unknown,
                        };
                        (room.room, room.members, topic)
                    })
                    .collect();
                self.rooms.remote(RemoteRooms::State { node, rooms });
            }
            Global::Online {
                node,
                name,
                id,
                claim,
            } => {
                let node = self.alive(&node, None);
                let online = Remote::Online {
                    node,
                    name,
                    id,
                    claim,
                };
                self.users.remote(online);
            }
            Global::Offline { node, name, how } => {
                let node = self.alive(&node, None);
                self.users.remote(Remote::Offline { node, name, how });
            }
            Global::Msg { id, at, from, text } => {
                self.users.remote(Remote::Msg { id, at, from, text })
            }
            Global::Registered { name, id } => self.users.remote(Remote::Registered { name, id }),
            Global::Away {
                node,
                name,
                message,
            } => {
                let node = self.alive(&node, None);
                self.users.remote(Remote::Away {
                    node,
                    name,
                    message,
                });
            }
            Global::RoomCreated { room, by } => {
                self.rooms.remote(RemoteRooms::Created { room, by });
            }
            Global::RoomExpired { room } => self.rooms.remote(RemoteRooms::Expired { room }),
            Global::Joined { node, room, user } => {
                let node = self.alive(&node, None);
                self.rooms.remote(RemoteRooms::Joined { node, room, user });
            }
            Global::Left { node, room, user } => {
                let node = self.alive(&node, None);
                self.rooms.remote(RemoteRooms::Left { node, room, user });
            }
            Global::Topic { room, by, text, at } => {
                let at = wire::time(at);
                self.rooms.remote(RemoteRooms::Topic { room, by, text, at });
            }
        }
    }

    /// A message from another node that this one could not read: logged, at most one line
    /// per interval with how many there were (a newer node may send many), and skipped.
    fn unread(&mut self, error: &WireError) {
        if let Some(count) = self.unread.count(1) {
            warn!(%error, count, "messages from other nodes skipped");
        }
    }

    /// Private messages for this node's users, in the order sent: this batch, and those
    /// that arrived behind it, to the directory in one request.
    fn direct(&mut self, message: Message, direct: &mut Subscriber) {
        let (mut pms, mut drained) = (Vec::new(), 0);
        let mut next = Some(message);
        while let Some(message) = next {
            match wire::decode::<Vec<wire::Pm>>(&message.payload) {
                Ok(batch) if pms.is_empty() => pms = batch,
                Ok(batch) => pms.extend(batch),
                Err(error) => self.unread(&error),
            }
            drained += 1;
            if drained == DRAINED_AT_ONCE {
                break;
            }
            next = direct.next().now_or_never().flatten();
        }
        if !pms.is_empty() {
            self.users.remote(Remote::Pms(pms));
        }
    }
}
