//! Private messages through the directory: where one goes (`PmOutcome`) or why not
//! (`PmError`), for a recipient here, on another node, or offline.

use crate::connection::Delivery;
use crate::server::event::{self, Event};
use linechat_protocol::Name;
use tokio::sync::oneshot;

use super::users_actor::Continuation;
use super::users_actor::{Online, UsersActor};
use crate::server::cluster::Cluster;
use crate::server::cluster::wire;
use crate::server::member::{Member, UserId};
use crate::server::storage::{Conversation, Record, Store};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The answer to a private message sent through the directory.
pub type Private = Result<PmOutcome, PmError>;

/// Where a private message went.
#[derive(Debug, Clone)]
pub enum PmOutcome {
    /// In the recipient's outbox, on this node. The sender's session keeps the handle and
    /// sends them its next messages directly, for as long as their outbox takes lines and
    /// they are not away.
    Delivered {
        recipient: Member,
        /// Their away message, if they are away.
        away: Option<Arc<str>>,
    },
    /// Stored for an account that is offline (`to`, its name as registered), which gets it
    /// on logging in.
    Queued { to: Name },
    /// Sent on to the node the recipient is on. The sender's session keeps the handle and
    /// sends its next messages to that node directly, for as long as the recipient is there
    /// and not away.
    Remote {
        recipient: RemoteRecipient,
        /// Their away message, if they are away.
        away: Option<Arc<str>>,
    },
}

impl PmOutcome {
    /// The recipient's name, as they are online or registered.
    pub fn recipient(&self) -> &Name {
        match self {
            Self::Delivered { recipient, .. } => &recipient.name,
            Self::Remote { recipient, .. } => &recipient.name,
            Self::Queued { to } => to,
        }
    }

    /// The recipient's away message, if they are away.
    pub fn away(&self) -> Option<&Arc<str>> {
        match self {
            Self::Delivered { away, .. } | Self::Remote { away, .. } => away.as_ref(),
            Self::Queued { .. } => None,
        }
    }
}

/// A user online on another node, as a session keeps them: its next private messages to
/// them go straight to this node's queue to NATS, without asking the directory each time,
/// for as long as the directory knows them there.
#[derive(Debug, Clone)]
pub struct RemoteRecipient {
    pub name: Name,
    id: UserId,
    node: Arc<str>,
    cluster: Cluster,
    present: CancellationToken,
}

impl RemoteRecipient {
    /// Whether the directory still knows them on that node.
    pub fn is_present(&self) -> bool {
        !self.present.is_cancelled()
    }

    /// Sends `text` from `from` to the recipient's node, waiting only while the queue to
    /// NATS is full. On a shared store the recipient's node stores it, as delivered or,
    /// should they have gone offline meanwhile, as queued for them: one row either way,
    /// under the id given here, where it was accepted. On stores of their own, each side
    /// keeps its own.
    pub(crate) async fn send_waiting(&self, store: &Store, from: &Member, text: String) {
        let pm = self.message(store, from, text);
        self.cluster.private_waiting(&self.node, pm).await;
    }

    /// The same from the directory, which never waits.
    fn send(&self, store: &Store, from: &Member, text: String) {
        let pm = self.message(store, from, text);
        self.cluster.private(&self.node, pm);
    }

    fn message(&self, store: &Store, from: &Member, text: String) -> wire::Pm {
        let record = Record::now(
            Conversation::Private(from.id, self.id),
            from.name.clone(),
            text.as_str(),
        );
        let at = record.at;
        let id = if store.is_shared() {
            store.next_id()
        } else {
            store.record(record)
        };
        wire::Pm {
            id,
            at,
            from: from.name.clone(),
            from_id: from.id,
            to: self.name.clone(),
            text,
        }
    }
}

/// Why a private message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmError {
    #[error("{0} is neither online nor registered")]
    NoSuchUser(Name),
    /// The recipient's outbox takes no more lines: their session is ending.
    #[error("{0} is disconnecting")]
    Disconnecting(Name),
    #[error("the message for {to} could not be stored: {reason}")]
    Storage { to: Name, reason: String },
    /// The directory is gone (the server is shutting down).
    #[error("the server is unavailable")]
    Unavailable,
}

/// A private message waiting for the shared store to say whether its recipient, a name this
/// node does not know, is an account registered on another node.
#[derive(Debug)]
pub(super) struct Unrouted {
    from: Member,
    text: String,
    reply: oneshot::Sender<Private>,
}

impl UsersActor {
    /// `PM`: delivers a private message, or keeps it for an account that is offline: then
    /// the answer waits until it is stored, without holding up the directory.
    pub(super) fn private(
        &mut self,
        from: Member,
        to: Name,
        text: String,
        reply: oneshot::Sender<Private>,
    ) {
        self.route_private(from, to, text, reply, true);
    }

    /// [`UsersActor::private`]; a name this node does not know is looked up in the shared
    /// store first if `may_look_up`, and the message waits for the answer.
    pub(super) fn route_private(
        &mut self,
        from: Member,
        to: Name,
        text: String,
        reply: oneshot::Sender<Private>,
        may_look_up: bool,
    ) {
        // Notices go first, in the order things happened.
        self.flush_presence();
        // Behind a lookup of the same name: in order after the messages that wait for it.
        if let Some(waiting) = self.looking_up.get_mut(&to) {
            waiting.push(Unrouted { from, text, reply });
            return;
        }
        if let Some(cluster) = &self.cluster
            && let Some((name, remote)) = self.remote.get_key_value(&to)
        {
            // On another node: sent there, through this node's one queue to NATS, so that
            // one sender's messages keep their order.
            let recipient = RemoteRecipient {
                name: name.clone(),
                id: remote.id,
                node: remote.node.clone(),
                cluster: cluster.clone(),
                present: remote.present.clone(),
            };
            recipient.send(&self.store, &from, text);
            let away = remote.away.clone();
            let _ = reply.send(Ok(PmOutcome::Remote { recipient, away }));
            return;
        }
        let (to, recipient, outbox) = match self.online.get_key_value(&to) {
            Some((name, online)) => (name.clone(), online.id, Some(online)),
            None => match self.registered.get_key_value(&to) {
                Some((name, id)) => (name.clone(), UserId::Account(*id), None),
                None if may_look_up && self.store.is_shared() => {
                    self.look_up(to.clone());
                    if let Some(waiting) = self.looking_up.get_mut(&to) {
                        waiting.push(Unrouted { from, text, reply });
                    }
                    return;
                }
                None => {
                    let _ = reply.send(Err(PmError::NoSuchUser(to)));
                    return;
                }
            },
        };
        let record = Record::now(
            Conversation::Private(from.id, recipient),
            from.name.clone(),
            text.clone(),
        );
        let Some(Online { outbox, away, .. }) = outbox else {
            // Sent to the writer now, so that queued messages keep their order.
            let stored = self.store.queue_private(record);
            tokio::spawn(async move {
                let answer = match stored.await {
                    Ok(()) => Ok(PmOutcome::Queued { to }),
                    Err(error) => {
                        let reason = error.client_message();
                        Err(PmError::Storage { to, reason })
                    }
                };
                let _ = reply.send(answer);
            });
            return;
        };
        if outbox.is_closed() {
            let _ = reply.send(Err(PmError::Disconnecting(to)));
            return;
        }
        // Recorded before it is delivered, as MSG is.
        let at = event::time_of(record.at);
        let id = self.store.record(record);
        let _ = outbox.push(Delivery::event(Event::PrivateMessage {
            id,
            at,
            from: from.name,
            text,
        }));
        let _ = reply.send(Ok(PmOutcome::Delivered {
            recipient: Member {
                name: to,
                id: recipient,
                outbox: outbox.clone(),
            },
            away: away.clone(),
        }));
    }

    /// Looks `name`, which this node does not know, up in the shared store from a task of
    /// its own; the answer comes back as [`Continuation::LookedUp`]. One lookup per name at
    /// a time: what waits for it is kept in order in `looking_up`.
    pub(super) fn look_up(&mut self, name: Name) {
        if self.looking_up.contains_key(&name) {
            return;
        }
        self.looking_up.insert(name.clone(), Vec::new());
        let (store, actor) = (self.store.clone(), self.tx.clone());
        tokio::spawn(async move {
            let account = match store.account(&name).await {
                Ok(account) => account.map(|(id, name, _hash)| (id, name)),
                Err(error) => {
                    tracing::warn!(%error, "cannot look a name up in the store");
                    None
                }
            };
            actor.post(Continuation::LookedUp { name, account }.into());
        });
    }

    /// The shared store's answer about `name`: an account is taken in, and the private
    /// messages that waited for the answer are queued for it, in order, or refused.
    pub(super) fn looked_up(&mut self, name: Name, account: Option<(i64, Name)>) {
        if let Some((id, registered)) = account {
            self.learn(registered, id);
        }
        for Unrouted { from, text, reply } in self.looking_up.remove(&name).unwrap_or_default() {
            self.route_private(from, name.clone(), text, reply, false);
        }
    }
}
