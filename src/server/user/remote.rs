//! What the directory hears from the other nodes of a cluster, through this node's cluster
//! task, and how it keeps its users' names when this node rejoins the cluster after a cut.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::users_actor::Continuation;
use super::{RemoteUser, UsersActor, look_alike_key};
use crate::connection::Delivery;
use crate::server::cluster::Recheck;
use crate::server::cluster::wire::{self, UserState};
use crate::server::event::{self, Event, PresenceChange};
use crate::server::member::UserId;
use crate::server::storage::{Conversation, MessageId, Record};
use linechat_protocol::{CloseReason, Departure, Name};

/// What the directory hears from the rest of the cluster, through this node's cluster task.
#[derive(Debug)]
pub(crate) enum Remote {
    Online {
        node: Arc<str>,
        name: Name,
        id: UserId,
        claim: u64,
    },
    Offline {
        node: Arc<str>,
        name: Name,
        how: Departure,
    },
    Msg {
        id: MessageId,
        at: i64,
        from: Name,
        text: String,
    },
    Registered {
        name: Name,
        id: i64,
    },
    /// A user on `node` is away with `message`, or back (`None`).
    Away {
        node: Arc<str>,
        name: Name,
        message: Option<String>,
    },
    /// Private messages from users of other nodes to users of this one, in the order sent.
    Pms(Vec<wire::Pm>),
    /// `node` is gone, with its users: it stopped answering (`Lost`), or said goodbye
    /// (`Shutdown`).
    NodeGone {
        node: Arc<str>,
        how: Departure,
    },
    /// Everyone online on `node` now.
    State {
        node: Arc<str>,
        users: Vec<UserState>,
    },
    /// Publish this node's users, for another node's `Hello` or after a reconnection.
    SendState,
    /// This node was cut off, and may have been declared lost: its users' claims are
    /// checked, made again where they were freed, and a user whose name went to someone
    /// else meanwhile is told and closed.
    Rejoined,
}

/// What the other nodes of a cluster tell the directory.
impl UsersActor {
    pub(super) fn heard(&mut self, remote: Remote) {
        match remote {
            Remote::Online {
                node,
                name,
                id,
                claim,
            } => self.remote_online(node, name, id, claim),
            Remote::Offline { node, name, how } => {
                if self.remote.get(&name).is_some_and(|user| user.node == node) {
                    self.remote_gone(&name, how);
                }
            }
            Remote::Msg { id, at, from, text } => {
                self.flush_presence();
                let line = Delivery::event(Event::GlobalMessage {
                    id,
                    at: event::time_of(at),
                    from: from.clone(),
                    text,
                });
                self.fan_out(&line, &from);
            }
            Remote::Registered { name, id } => self.learn(name, id),
            Remote::Away {
                node,
                name,
                message,
            } => self.remote_away(&node, &name, message),
            Remote::Pms(pms) => {
                self.flush_presence();
                for pm in pms {
                    self.remote_private(pm);
                }
            }
            Remote::NodeGone { node, how } => {
                let lost: Vec<Name> = self
                    .remote
                    .iter()
                    .filter(|(_, user)| user.node == node)
                    .map(|(name, _)| name.clone())
                    .collect();
                info!(%node, users = lost.len(), "node gone");
                for name in lost {
                    // Its node cannot free the name any more: every node that saw it go
                    // tries, with the claim's revision, and the first one does.
                    if let (Some(cluster), Some(user)) = (&self.cluster, self.remote.get(&name)) {
                        cluster.release(&look_alike_key(&name), user.claim);
                    }
                    self.remote_gone(&name, how.clone());
                }
            }
            Remote::State { node, users } => {
                let now: HashSet<&Name> = users.iter().map(|user| &user.name).collect();
                let gone: Vec<Name> = self
                    .remote
                    .iter()
                    .filter(|(name, user)| user.node == node && !now.contains(name))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in gone {
                    self.remote_gone(&name, Departure::Lost);
                }
                for UserState {
                    name,
                    id,
                    claim,
                    away,
                } in users
                {
                    self.remote_online(node.clone(), name.clone(), id, claim);
                    self.remote_away(&node, &name, away);
                }
            }
            Remote::SendState => {
                let Some(cluster) = &self.cluster else {
                    return;
                };
                let users = self
                    .online
                    .iter()
                    .map(|(name, online)| UserState {
                        name: name.clone(),
                        id: online.id,
                        claim: online.claim.unwrap_or_default(),
                        away: online.away.as_deref().map(str::to_owned),
                    })
                    .collect();
                // Published in this turn: in order with this node's `Online` and `Offline`.
                cluster.global(&wire::Global::Users {
                    node: cluster.node().to_string(),
                    incarnation: cluster.incarnation(),
                    users,
                });
            }
            Remote::Rejoined => self.recheck(),
        }
    }

    /// Checks every claim of this node's users from a task of its own; each answer comes
    /// back as [`Continuation::Rechecked`].
    fn recheck(&self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let users: Vec<(Name, UserId, u64)> = self
            .online
            .iter()
            .map(|(name, online)| (name.clone(), online.id, online.claim.unwrap_or_default()))
            .collect();
        let actor = self.tx.clone();
        tokio::spawn(async move {
            for (name, id, checked) in users {
                let key = look_alike_key(&name);
                let recheck = cluster.recheck(&key, &name, &id.key(), checked).await;
                actor.post(
                    Continuation::Rechecked {
                        name,
                        id,
                        checked,
                        recheck,
                    }
                    .into(),
                );
            }
        });
    }

    /// What a rejoining node found of the claim of its user `name`: claimed again, it is
    /// announced again (the others had seen the user go); taken by someone else, the user is
    /// told and closed, and goes offline here.
    pub(super) fn rechecked(&mut self, name: Name, id: UserId, checked: u64, recheck: Recheck) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let current = self
            .online
            .get_mut(&name)
            .filter(|online| online.id == id && online.claim.unwrap_or_default() == checked);
        let Some(online) = current else {
            // Gone meanwhile (or logged in again, with a claim of their own): a claim made
            // again for them is nobody's, and would keep the name taken.
            if let Recheck::Claimed(revision) = recheck {
                cluster.release(&look_alike_key(&name), revision);
            }
            return;
        };
        match recheck {
            Recheck::Held | Recheck::Unknown => {}
            Recheck::Claimed(revision) => {
                online.claim = Some(revision);
                cluster.global(&wire::Global::Online {
                    node: cluster.node().to_string(),
                    name: name.clone(),
                    id,
                    claim: revision,
                });
            }
            // The same account logged in on another node meanwhile: as a takeover.
            Recheck::Taken(holder) if holder.id == id.key() => self.replaced(&name),
            Recheck::Taken(holder) => {
                info!(user = %name, node = holder.node, "name taken on another node while this one was cut off");
                self.name_lost(&name);
            }
        }
    }

    /// This node's user `name` lost the name to a user of another node, who claimed it
    /// while this node was cut off: the user is told and closed, and this node's other
    /// users see them go. Their claim is not released: it is not theirs any more.
    fn name_lost(&mut self, name: &Name) {
        let Some(online) = self.online.remove(name) else {
            return;
        };
        online.outbox.replace(CloseReason::NameLost);
        if !self.registered.contains_key(name) {
            self.release_look_alike(name);
        }
        let (user, how) = (name.clone(), Departure::Lost);
        self.presence
            .add(PresenceChange::Offline { user, how }, self.everyone() + 1);
    }

    /// This node's user `name` logged in to their account on another node, which took the
    /// session over: the session here is closed as replaced, and nobody else is told
    /// anything (the user is still online).
    fn replaced(&mut self, name: &Name) {
        if let Some(local) = self.online.remove(name) {
            local.outbox.replace(CloseReason::Replaced);
            info!(user = %name, "session taken over by a login on another node");
        }
    }

    /// `name` is online on `node`, holding the claim made at revision `claim`. If it is
    /// online here too, the newer claim wins: the same account logged in there since and
    /// took the name over (the session here is closed as replaced, and nobody else is told
    /// anything); or this node was cut off, the others freed the name, and someone else
    /// took it (the user here is told why and closed). A claim older than this node's
    /// holder's is one the other node has not found out it lost yet: it is ignored.
    fn remote_online(&mut self, node: Arc<str>, name: Name, id: UserId, claim: u64) {
        if let Some(local) = self.online.get(&name) {
            if local.claim.is_some_and(|held| held > claim) {
                debug!(user = %name, %node, "an older claim from another node ignored");
                return;
            }
            if local.id == id {
                self.replaced(&name);
            } else {
                self.name_lost(&name);
                self.announce_remote(&name);
            }
        } else if !self.remote.contains_key(&name) {
            self.announce_remote(&name);
        }
        self.look_alikes
            .entry(look_alike_key(&name))
            .or_insert(name.clone());
        let present = CancellationToken::new();
        let user = RemoteUser {
            node,
            id,
            claim,
            away: None,
            present,
        };
        self.remote.insert(name, user);
    }

    /// Tells everyone here that `name` came online on another node.
    fn announce_remote(&mut self, name: &Name) {
        self.presence.add(
            PresenceChange::Online { user: name.clone() },
            self.everyone() + 1,
        );
        self.presence.arrived(name.clone());
    }

    /// A user of another node went offline, as `how` says; everyone here is told.
    fn remote_gone(&mut self, name: &Name, how: Departure) {
        if self.remote.remove(name).is_none() {
            return;
        }
        if !self.registered.contains_key(name) {
            self.release_look_alike(name);
        }
        let user = name.clone();
        self.presence
            .add(PresenceChange::Offline { user, how }, self.everyone() + 1);
    }

    /// A private message from a user of another node to one of this node's; kept for an
    /// account that went offline meanwhile, dropped for a guest who did. On the shared store
    /// this node records it (the sender's does not): as history if it is delivered, as
    /// queued (which is history too) if not, so that it is stored once.
    fn remote_private(&mut self, pm: wire::Pm) {
        let wire::Pm {
            id,
            at,
            from,
            from_id,
            to,
            text,
        } = pm;
        let shared = self.store.is_shared();
        if let Some(online) = self.online.get(&to) {
            if shared {
                let record = Record {
                    conversation: Conversation::Private(from_id, online.id),
                    from: from.clone(),
                    text: text.as_str().into(),
                    at,
                };
                self.store.record_as(record, id);
            }
            let at = event::time_of(at);
            let pm = Event::PrivateMessage { id, at, from, text };
            let _ = online.outbox.push(Delivery::event(pm));
            return;
        }
        if let Some(account) = self.registered.get(&to) {
            let recipient = UserId::Account(*account);
            let record = Record {
                conversation: Conversation::Private(from_id, recipient),
                from,
                text: text.into(),
                at,
            };
            let stored = self.store.queue_private_as(record, id);
            tokio::spawn(async move {
                if let Err(error) = stored.await {
                    tracing::error!(%error, "a private message from another node was not queued");
                }
            });
        }
    }
}
