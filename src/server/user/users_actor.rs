//! The `UsersActor`: the directory of names. It owns who is online and how to reach them,
//! which names have accounts, and which are being registered, so that whether a name is free
//! is decided in one place, in one step: one name, one owner. Names and their claims are in
//! `claims.rs`, new accounts in `registration.rs`, private messages in `private.rs`.

use crate::server::event::{self, Event, PresenceChange};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use linechat_protocol::{CloseReason, Departure, Name};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::claims::{ClaimReply, Unclaimed, look_alike_key};
use super::presence::PresenceNotices;
use super::private::Unrouted;
use super::registration::RegisterError;
use super::users::UsersRequest;
use crate::connection::{Delivery, Outbox};
use crate::server::accounts::Accounts;
use crate::server::cluster::Recheck;
use crate::server::cluster::{Cluster, wire};
use crate::server::mailbox::{Backlog, Mailbox};
use crate::server::member::{Member, UserId};
use crate::server::storage::{Conversation, Record, Store};

/// What the directory's tasks send back to it when work it handed off is done: the end of a
/// request that needed a password hash, a claim in the cluster or a look in the shared store.
/// Only the directory's files make one ([`UsersRequest::Continue`] carries it), so no other
/// module can forge, say, a finished registration.
///
/// It comes on the directory's one inbox, behind the requests sent before it: handled in the
/// order it came, as every request is. A task sends it once its work is done, at a moment no
/// session's request depends on; a session's next request waits for the answer this
/// continuation gives, so it always comes after.
#[derive(Debug)]
pub(super) enum Continuation {
    /// By the task of a [`UsersRequest::Register`] once the account store has answered.
    Registered {
        name: Name,
        outbox: Outbox,
        account: Result<i64, RegisterError>,
        /// The revision of the cluster's claim on the name, when clustered.
        claim: Option<u64>,
        reply: oneshot::Sender<Result<Member, RegisterError>>,
    },
    /// By the task that checked a guest's name in the shared store, or claimed a
    /// guest's or a login's name in the cluster: the claim's revision when clustered.
    Claimed {
        member: Member,
        claim: Result<Option<u64>, Unclaimed>,
        reply: ClaimReply,
    },
    /// By the task that looked a name this node does not know up in the shared store:
    /// the account registered under it on another node, if any.
    LookedUp {
        name: Name,
        account: Option<(i64, Name)>,
    },
    /// By the task that checked, for a node that rejoins the cluster, the claim of the
    /// user `name` (identity `id`) of this node, which they held at revision `checked`.
    Rechecked {
        name: Name,
        id: UserId,
        checked: u64,
        recheck: Recheck,
    },
}

impl From<Continuation> for UsersRequest {
    fn from(continuation: Continuation) -> Self {
        UsersRequest::Continue(continuation)
    }
}

/// Someone online.
pub(super) struct Online {
    pub(super) id: UserId,
    pub(super) outbox: Outbox,
    /// Their away message, while they are away (`AWAY`).
    pub(super) away: Option<Arc<str>>,
    /// The revision of the cluster's claim on the name, when clustered.
    pub(super) claim: Option<u64>,
}

/// Someone online on another node of the cluster.
pub(super) struct RemoteUser {
    pub(super) node: Arc<str>,
    pub(super) id: UserId,
    pub(super) claim: u64,
    /// Their away message, while they are away, as their node said.
    pub(super) away: Option<Arc<str>>,
    /// Cancelled when the directory stops knowing them there (they left, moved, or their
    /// node was lost), or they go away or come back: the handles sessions keep to them
    /// ([`super::RemoteRecipient`]) then stop taking messages, and the sessions ask the
    /// directory again, which tells them what changed.
    pub(super) present: CancellationToken,
}

impl Drop for RemoteUser {
    fn drop(&mut self) {
        self.present.cancel();
    }
}

/// Owns the table of names. Delivery never waits: an outbox that cannot take a line is being
/// closed, and its session will log the user out.
pub(super) struct UsersActor {
    /// Notices of who came and went, waiting to go out together.
    pub(super) presence: PresenceNotices,
    pub(super) online: HashMap<Name, Online>,
    /// Who is online on the other nodes, as they said (empty when not clustered).
    pub(super) remote: HashMap<Name, RemoteUser>,
    /// Names being claimed in the cluster for a guest or a login of this node.
    pub(super) claiming: HashSet<Name>,
    pub(super) cluster: Option<Cluster>,
    /// Every account, by name, with its id.
    pub(super) registered: HashMap<Name, i64>,
    /// Names whose `REGISTER` is being hashed and stored.
    pub(super) registering: HashSet<Name>,
    /// Names being looked up in the shared store, with the private messages to them that
    /// wait for the answer, in the order they came.
    pub(super) looking_up: HashMap<Name, Vec<Unrouted>>,
    /// The look-alike key of every name that is registered, being registered, or online,
    /// and the name that holds it.
    pub(super) look_alikes: HashMap<String, Name>,
    pub(super) store: Store,
    pub(super) accounts: Accounts,
    /// The actor's own mailbox, for the [`Continuation`]s of work it hands off.
    pub(super) tx: Mailbox<UsersRequest>,
    pub(super) backlog: Backlog,
}

/// Requests the directory handles before it sends the presence notices they caused.
const MAX_REQUESTS_PER_TURN: usize = 256;

impl UsersActor {
    /// Starts the actor with the registered accounts (id, name); its inbox, and the count
    /// of requests waiting there.
    pub(super) fn spawn(
        store: Store,
        accounts: Accounts,
        registered: Vec<(i64, Name)>,
        presence_max_online: usize,
        cluster: Option<Cluster>,
    ) -> (Mailbox<UsersRequest>, Backlog) {
        // Unbounded is safe here: each connection awaits the answer to one request before
        // sending the next, but for its pipelined messages, of which it has at most 64 in
        // flight.
        let (tx, rx) = Mailbox::unbounded();
        let mut actor = UsersActor {
            presence: PresenceNotices::new(presence_max_online),
            online: HashMap::new(),
            remote: HashMap::new(),
            claiming: HashSet::new(),
            cluster,
            registered: HashMap::new(),
            registering: HashSet::new(),
            looking_up: HashMap::new(),
            look_alikes: HashMap::new(),
            store,
            accounts,
            tx: tx.clone(),
            backlog: Backlog::default(),
        };
        let backlog = actor.backlog.clone();
        for (id, name) in registered {
            actor
                .look_alikes
                .entry(look_alike_key(&name))
                .or_insert(name.clone());
            actor.registered.insert(name, id);
        }
        tokio::spawn(actor.run(rx));
        (tx, backlog)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<UsersRequest>) {
        loop {
            let request = match self.presence.due() {
                None => rx.recv().await,
                Some(due) => tokio::select! {
                    request = rx.recv() => request,
                    () = tokio::time::sleep_until(due) => {
                        self.flush_presence();
                        continue;
                    }
                },
            };
            let Some(request) = request else { return };
            self.backlog.note(&rx);
            self.handle(request);
            // What else is waiting is handled before the notices go: a burst of logins then
            // costs each online user one line of many notices, not one write per login.
            for _ in 0..MAX_REQUESTS_PER_TURN {
                match rx.try_recv() {
                    Ok(request) => self.handle(request),
                    Err(_) => break,
                }
            }
            if self.presence.may_flush_now() {
                self.flush_presence();
            }
        }
    }

    /// Queues the waiting presence notices for everyone online: one shared line of all of
    /// them for those who were online before them, and for each newcomer the part after
    /// their own arrival.
    pub(super) fn flush_presence(&mut self) {
        let Some((changes, newcomers)) = self.presence.take() else {
            return;
        };
        // A connection online under two names (a guest renaming: the new name is taken before
        // the old one is left) is told once, as the newcomer it is under its new name: under
        // its old name it would hear of its own arrival.
        let renaming: HashSet<usize> = newcomers
            .keys()
            .filter_map(|name| self.online.get(name))
            .map(|online| online.outbox.connection_key())
            .collect();
        let count = changes.changes().len();
        let everything = Delivery::event(Event::Presence(changes.clone()));
        for (name, online) in &self.online {
            match newcomers.get(name) {
                None if renaming.contains(&online.outbox.connection_key()) => {}
                None => {
                    let _ = online.outbox.push(everything.clone());
                }
                Some(&after) if after < count => {
                    let _ = online
                        .outbox
                        .push(Delivery::event(Event::Presence(changes.after(after))));
                }
                Some(_) => {}
            }
        }
    }

    /// Finishes work handed off to a task.
    fn resume(&mut self, continuation: Continuation) {
        match continuation {
            Continuation::Registered {
                name,
                outbox,
                account,
                claim,
                reply,
            } => self.registered(name, outbox, account, claim, reply),
            Continuation::Claimed {
                member,
                claim,
                reply,
            } => self.claimed(member, claim, reply),
            Continuation::LookedUp { name, account } => self.looked_up(name, account),
            Continuation::Rechecked {
                name,
                id,
                checked,
                recheck,
            } => self.rechecked(name, id, checked, recheck),
        }
    }

    fn handle(&mut self, request: UsersRequest) {
        match request {
            UsersRequest::Guest {
                name,
                outbox,
                reply,
            } => self.guest(name, outbox, reply),
            UsersRequest::Register {
                name,
                password,
                peer,
                outbox,
                reply,
            } => self.register(name, password, peer, outbox, reply),
            UsersRequest::Continue(continuation) => self.resume(continuation),
            UsersRequest::Remote(remote) => self.heard(remote),
            UsersRequest::Login { member, reply } => self.login(member, reply),
            UsersRequest::Logout { member, how } => self.go_offline(member, how),
            UsersRequest::Resolve { name, reply } => self.resolve(name, reply),
            UsersRequest::List { reply } => self.list(reply),
            UsersRequest::Broadcast { from, text, reply } => self.broadcast(from, text, reply),
            UsersRequest::Private {
                from,
                to,
                text,
                reply,
            } => self.private(from, to, text, reply),
            UsersRequest::Notify { event, except } => self.notify(event, except),
            UsersRequest::Away { member, message } => self.set_away(member, message),
        }
    }

    /// Puts a registered user, whose password was checked, online; a session of the same
    /// account on another connection is closed and this one takes its place.
    pub(super) fn login(&mut self, member: Member, reply: oneshot::Sender<()>) {
        if reply.is_closed() {
            return;
        }
        // An account registered on another node, which the accounts found in the shared
        // store: from now on this node knows it too.
        if let UserId::Account(id) = member.id
            && !self.registered.contains_key(&member.name)
        {
            self.learn(member.name.clone(), id);
        }
        // Clustered, a name not online here is claimed (or taken over from another node)
        // first; [`UsersActor::claimed`] goes on.
        if self.cluster.is_some() && !self.online.contains_key(&member.name) {
            self.claim(member, ClaimReply::Login(reply));
            return;
        }
        let claim = self
            .online
            .get(&member.name)
            .and_then(|online| online.claim);
        self.login_here(member, reply, claim.unwrap_or_default());
    }

    /// The login of a registered user whose name this node holds (`claim`, when clustered).
    pub(super) fn login_here(&mut self, member: Member, reply: oneshot::Sender<()>, claim: u64) {
        let claim = self.cluster.is_some().then_some(claim);
        match self.online.get_mut(&member.name) {
            // The same account on another connection: the owner, who just proved it,
            // takes it over. Nobody else notices; the old session's rooms pass to
            // this one as it rejoins them.
            Some(current) if current.id == member.id => {
                // The user is back, on the new connection.
                let was_away = current.away.take().is_some();
                let old = std::mem::replace(&mut current.outbox, member.outbox.clone());
                old.replace(CloseReason::Replaced);
                info!(user = %member.name, "session taken over by a new login");
                if was_away {
                    self.publish_away(&member.name, None);
                }
            }
            // Only a guest could hold an account's name, and the directory never lets
            // one; should it happen, the guest goes.
            Some(_) => {
                let old = self.online.remove(&member.name);
                if let Some(old) = old {
                    old.outbox.replace(CloseReason::Replaced);
                }
                self.come_online(&member, claim);
            }
            None => self.come_online(&member, claim),
        }
        let _ = reply.send(());
    }

    /// Who `name` stands for now: the user online under it, or else its account. On a
    /// shared store, a name this node does not know is looked up there (an account
    /// registered on another node), from a task of its own.
    pub(super) fn resolve(&self, name: Name, reply: oneshot::Sender<Option<UserId>>) {
        let online = self.online.get(&name).map(|online| online.id);
        let remote = || self.remote.get(&name).map(|remote| remote.id);
        let registered = || self.registered.get(&name).map(|id| UserId::Account(*id));
        let known = online.or_else(remote).or_else(registered);
        if known.is_some() || !self.store.is_shared() {
            let _ = reply.send(known);
            return;
        }
        let (store, actor) = (self.store.clone(), self.tx.clone());
        tokio::spawn(async move {
            let account = store
                .account(&name)
                .await
                .inspect_err(|error| tracing::warn!(%error, "cannot look a name up in the store"))
                .ok()
                .flatten()
                .map(|(id, name, _hash)| (id, name));
            let _ = reply.send(account.as_ref().map(|(id, _)| UserId::Account(*id)));
            if account.is_some() {
                actor.post(Continuation::LookedUp { name, account }.into());
            }
        });
    }

    /// Everyone online, sorted.
    pub(super) fn list(&self, reply: oneshot::Sender<Vec<Name>>) {
        let mut names: Vec<Name> = self.online.keys().cloned().collect();
        names.extend(self.remote.keys().cloned());
        names.sort();
        let _ = reply.send(names);
    }

    /// `MSG`: records `text` and sends it to everyone online but its sender.
    pub(super) fn broadcast(&mut self, from: Member, text: String, reply: oneshot::Sender<()>) {
        // Notices go first, in the order things happened.
        self.flush_presence();
        // Queued for history first (it never waits), so that a HISTORY sent by anyone
        // who has seen the message finds it.
        let record = Record::now(Conversation::Global, from.name.clone(), text.as_str());
        let millis = record.at;
        let at = event::time_of(millis);
        let id = self.store.record(record);
        if let Some(cluster) = &self.cluster {
            let from = from.name.clone();
            let text = text.clone();
            cluster.global(&wire::Global::Msg {
                id,
                at: millis,
                from,
                text,
            });
        }
        let line = Delivery::event(Event::GlobalMessage {
            id,
            at,
            from: from.name.clone(),
            text,
        });
        self.fan_out(&line, &from.name);
        let _ = reply.send(());
    }

    /// Sends a global notice to everyone online but `except`.
    pub(super) fn notify(&mut self, event: Event, except: Name) {
        // Notices go first, in the order things happened.
        self.flush_presence();
        self.fan_out(&Delivery::event(event), &except);
    }

    pub(super) fn come_online(&mut self, member: &Member, claim: Option<u64>) {
        let user = member.name.clone();
        // Counted with the newcomer, as with the one leaving below.
        self.presence
            .add(PresenceChange::Online { user }, self.everyone() + 1);
        self.presence.arrived(member.name.clone());
        let online = Online {
            id: member.id,
            outbox: member.outbox.clone(),
            away: None,
            claim,
        };
        self.online.insert(member.name.clone(), online);
        if let (Some(cluster), Some(claim)) = (&self.cluster, claim) {
            cluster.global(&wire::Global::Online {
                node: cluster.node().to_string(),
                name: member.name.clone(),
                id: member.id,
                claim,
            });
        }
    }

    /// How many users are online, on every node.
    pub(super) fn everyone(&self) -> usize {
        self.online.len() + self.remote.len()
    }

    /// Takes `member` offline (`Logout`, or a client gone before it was told it is online),
    /// unless the name is online on another connection by now.
    pub(super) fn go_offline(&mut self, member: Member, how: Departure) {
        let current = self.online.get(&member.name);
        if !current.is_some_and(|online| online.outbox.same_connection(&member.outbox)) {
            return;
        }
        let gone = self.online.remove(&member.name);
        if !self.registered.contains_key(&member.name) {
            self.release_look_alike(&member.name);
        }
        if let Some(cluster) = &self.cluster {
            cluster.global(&wire::Global::Offline {
                node: cluster.node().to_string(),
                name: member.name.clone(),
                how: how.clone(),
            });
            if let Some(claim) = gone.and_then(|gone| gone.claim) {
                cluster.release(&look_alike_key(&member.name), claim);
            }
        }
        let user = member.name.clone();
        self.presence
            .add(PresenceChange::Offline { user, how }, self.everyone() + 1);
    }

    pub(super) fn fan_out(&self, line: &std::sync::Arc<Delivery>, except: &Name) {
        for (name, online) in &self.online {
            if name != except {
                let _ = online.outbox.push(line.clone());
            }
        }
    }
}
