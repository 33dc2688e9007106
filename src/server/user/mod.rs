//! The `UsersActor`: the directory of names. It owns who is online and how to reach them,
//! which names have accounts, and which are being registered, so that whether a name is free
//! is decided in one place, in one step: one name, one owner. What it hears from the other
//! nodes of a cluster is handled in `remote.rs`; its presence notices wait in `presence.rs`.

mod presence;
mod remote;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::accounts::{AccountError, Accounts};
use super::cluster::wire;
use super::cluster::{ClaimError, Cluster, Recheck};
use super::member::{Member, UserId};
use super::request::{self, Backlog, unavailable};
use super::storage::{Conversation, Record, Store};
use crate::connection::{Delivery, Outbox};
use linechat_protocol::{CloseReason, Departure, ErrorCode, Name, Notice, Password, Reply, Verb};
use presence::PresenceNotices;
pub(crate) use remote::Remote;

/// Why a name cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefusal {
    #[error("that name is online already")]
    Online,
    /// The name has an account, or one is being registered.
    #[error("that name is registered")]
    Registered,
    /// The name looks like one that is taken (Unicode TR39 confusables), shown as it is spelled.
    #[error("that name looks too much like {0}")]
    LooksLike(Name),
    /// Clustered, and the cluster's names cannot be checked (NATS is away).
    #[error("names cannot be checked across the cluster now; try again")]
    Unchecked,
}

/// Why a `REGISTER` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Name(#[from] NameRefusal),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// What the users actor is asked; requests with a `reply` are answered on it.
#[derive(Debug)]
pub(crate) enum UsersRequest {
    /// A guest takes a name that has no account.
    Guest {
        name: Name,
        outbox: Outbox,
        reply: oneshot::Sender<Result<Member, NameRefusal>>,
    },
    /// A new account: the name is held while its password is hashed and stored.
    Register {
        name: Name,
        password: Password,
        peer: IpAddr,
        outbox: Outbox,
        reply: oneshot::Sender<Result<Member, RegisterError>>,
    },
    /// Sent by the task of a `Register` once the account store has answered.
    Registered {
        name: Name,
        outbox: Outbox,
        account: Result<i64, RegisterError>,
        /// The revision of the cluster's claim on the name, when clustered.
        claim: Option<u64>,
        reply: oneshot::Sender<Result<Member, RegisterError>>,
    },
    /// Sent by the task that checked a guest's name in the shared store, or claimed a
    /// guest's or a login's name in the cluster: the claim's revision when clustered.
    Claimed {
        member: Member,
        claim: Result<Option<u64>, Unclaimed>,
        reply: ClaimReply,
    },
    /// Sent by the task that looked a name this node does not know up in the shared store:
    /// the account registered under it on another node, if any.
    LookedUp {
        name: Name,
        account: Option<(i64, Name)>,
    },
    /// What another node of the cluster said (see [`Remote`]).
    Remote(Remote),
    /// Sent by the task that checked, for a node that rejoins the cluster, the claim of the
    /// user `name` (identity `id`) of this node, which they held at revision `checked`.
    Rechecked {
        name: Name,
        id: UserId,
        checked: u64,
        recheck: Recheck,
    },
    /// A registered user whose password was checked comes online. If the account is online
    /// on another connection already, this one takes its place.
    Login {
        member: Member,
        reply: oneshot::Sender<()>,
    },
    Logout {
        member: Member,
        how: Departure,
    },
    /// Who a name stands for now: the user online under it, or else its account.
    Resolve {
        name: Name,
        reply: oneshot::Sender<Option<UserId>>,
    },
    List {
        reply: oneshot::Sender<Reply>,
    },
    Broadcast {
        from: Member,
        text: String,
        reply: oneshot::Sender<Reply>,
    },
    Private {
        from: Member,
        to: Name,
        text: String,
        reply: oneshot::Sender<Private>,
    },
    Notify {
        notice: Notice,
        except: Name,
    },
}

/// Why a name was not claimed.
#[derive(Debug)]
pub(crate) enum Unclaimed {
    /// The cluster's names bucket refused it, or did not answer.
    Cluster(ClaimError),
    /// The shared store has an account of that name, registered on another node: its id and
    /// its name as registered.
    Registered(i64, Name),
}

/// A private message waiting for the shared store to say whether its recipient, a name this
/// node does not know, is an account registered on another node.
#[derive(Debug)]
struct Unrouted {
    from: Member,
    text: String,
    reply: oneshot::Sender<Private>,
}

/// Who waits for a cluster-wide claim.
#[derive(Debug)]
pub(crate) enum ClaimReply {
    Guest(oneshot::Sender<Result<Member, NameRefusal>>),
    Login(oneshot::Sender<()>),
}

/// The answer to a private message sent through the directory.
#[derive(Debug)]
pub struct Private {
    pub reply: Reply,
    /// The recipient, if they are online: the sender's session keeps the handle and sends
    /// them its next messages directly, for as long as their outbox takes lines.
    pub recipient: Option<Member>,
}

/// A handle to the [`UsersActor`].
#[derive(Debug, Clone)]
pub struct Users {
    tx: mpsc::UnboundedSender<UsersRequest>,
    backlog: Backlog,
}

impl Users {
    /// Starts the users actor with the registered accounts (id, name). Messages are
    /// recorded in `store`; new accounts are made by `accounts`.
    /// Presence notices go to everyone online while at most `presence_max_online` users are.
    pub fn spawn(
        store: Store,
        accounts: Accounts,
        registered: Vec<(i64, Name)>,
        presence_max_online: usize,
        cluster: Option<Cluster>,
    ) -> Self {
        // Unbounded is safe here: each connection awaits the answer to one request before
        // sending the next, but for its pipelined messages, of which it has at most 64 in
        // flight.
        let (tx, rx) = mpsc::unbounded_channel();
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
        Self { tx, backlog }
    }

    /// Puts a guest online under `name`, reached through `outbox`.
    pub async fn guest(&self, name: Name, outbox: Outbox) -> Result<Member, NameRefusal> {
        self.ask(|reply| UsersRequest::Guest {
            name,
            outbox,
            reply,
        })
        .await
        .unwrap_or(Err(NameRefusal::Online))
    }

    /// Registers `name` and puts its new account online, reached through `outbox`.
    pub async fn register(
        &self,
        name: Name,
        password: Password,
        peer: IpAddr,
        outbox: Outbox,
    ) -> Result<Member, RegisterError> {
        self.ask(|reply| UsersRequest::Register {
            name,
            password,
            peer,
            outbox,
            reply,
        })
        .await
        .unwrap_or(Err(RegisterError::Account(AccountError::Unavailable)))
    }

    /// Puts a registered user online; a session of the same account on another connection
    /// is closed and replaced.
    pub async fn login(&self, member: Member) -> bool {
        self.ask(|reply| UsersRequest::Login { member, reply })
            .await
            .is_some()
    }

    pub fn logout(&self, member: Member, how: Departure) {
        let _ = self.tx.send(UsersRequest::Logout { member, how });
    }

    /// Who `name` stands for now, if anyone.
    pub async fn resolve(&self, name: Name) -> Option<UserId> {
        self.ask(|reply| UsersRequest::Resolve { name, reply })
            .await
            .flatten()
    }

    /// `USERS`: everyone online.
    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    pub async fn list(&self) -> Reply {
        self.ask(|reply| UsersRequest::List { reply })
            .await
            .unwrap_or_else(unavailable)
    }

    /// `MSG`: sends `text` to everyone online; the answer comes on the returned channel.
    pub fn broadcast(&self, from: Member, text: String) -> oneshot::Receiver<Reply> {
        self.submit(|reply| UsersRequest::Broadcast { from, text, reply })
    }

    /// `PM` to a user whose handle the session does not hold: the directory delivers it, or
    /// queues it for an account that is offline. The answer comes on the returned channel.
    pub fn private(&self, from: Member, to: Name, text: String) -> oneshot::Receiver<Private> {
        self.submit(|reply| UsersRequest::Private {
            from,
            to,
            text,
            reply,
        })
    }

    fn submit<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> UsersRequest,
    ) -> oneshot::Receiver<T> {
        request::submit(&self.tx, request)
    }

    /// Sends a global notice to everyone online but `except`.
    pub fn notify(&self, notice: Notice, except: Name) {
        let _ = self.tx.send(UsersRequest::Notify { notice, except });
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> UsersRequest) -> Option<T> {
        request::ask(&self.tx, request).await
    }

    /// Hands the directory what another node said.
    pub(crate) fn remote(&self, remote: Remote) {
        let _ = self.tx.send(UsersRequest::Remote(remote));
    }
}

/// Someone online.
struct Online {
    id: UserId,
    outbox: Outbox,
    /// The revision of the cluster's claim on the name, when clustered.
    claim: Option<u64>,
}

/// Someone online on another node of the cluster.
struct RemoteUser {
    node: Arc<str>,
    id: UserId,
    claim: u64,
}

/// Owns the table of names. Delivery never waits: an outbox that cannot take a line is being
/// closed, and its session will log the user out.
struct UsersActor {
    /// Notices of who came and went, waiting to go out together.
    presence: PresenceNotices,
    online: HashMap<Name, Online>,
    /// Who is online on the other nodes, as they said (empty when not clustered).
    remote: HashMap<Name, RemoteUser>,
    /// Names being claimed in the cluster for a guest or a login of this node.
    claiming: HashSet<Name>,
    cluster: Option<Cluster>,
    /// Every account, by name, with its id.
    registered: HashMap<Name, i64>,
    /// Names whose `REGISTER` is being hashed and stored.
    registering: HashSet<Name>,
    /// Names being looked up in the shared store, with the private messages to them that
    /// wait for the answer, in the order they came.
    looking_up: HashMap<Name, Vec<Unrouted>>,
    /// The look-alike key of every name that is registered, being registered, or online,
    /// and the name that holds it.
    look_alikes: HashMap<String, Name>,
    store: Store,
    accounts: Accounts,
    /// The actor's own inbox, for the answers of work it hands off.
    tx: mpsc::UnboundedSender<UsersRequest>,
    backlog: Backlog,
}

impl UsersActor {
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
    fn flush_presence(&mut self) {
        let Some((lines, newcomers)) = self.presence.take() else {
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
        let everything = Delivery::from_bytes(lines.clone());
        for (name, online) in &self.online {
            match newcomers.get(name) {
                None if renaming.contains(&online.outbox.connection_key()) => {}
                None => {
                    let _ = online.outbox.push(everything.clone());
                }
                Some(&after) if after < lines.len() => {
                    let _ = online
                        .outbox
                        .push(Delivery::from_bytes(lines.slice(after..)));
                }
                Some(_) => {}
            }
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
            UsersRequest::Registered {
                name,
                outbox,
                account,
                claim,
                reply,
            } => self.registered(name, outbox, account, claim, reply),
            UsersRequest::Claimed {
                member,
                claim,
                reply,
            } => self.claimed(member, claim, reply),
            UsersRequest::LookedUp { name, account } => self.looked_up(name, account),
            UsersRequest::Remote(remote) => self.heard(remote),
            UsersRequest::Rechecked {
                name,
                id,
                checked,
                recheck,
            } => self.rechecked(name, id, checked, recheck),
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
            UsersRequest::Notify { notice, except } => self.notify(notice, except),
        }
    }

    /// Puts a guest online under `name`, if it is free.
    fn guest(
        &mut self,
        name: Name,
        outbox: Outbox,
        reply: oneshot::Sender<Result<Member, NameRefusal>>,
    ) {
        if let Err(refusal) = self.check_free(&name) {
            let _ = reply.send(Err(refusal));
            return;
        }
        let member = Member {
            name,
            id: UserId::new_guest(),
            outbox,
        };
        self.look_alikes
            .insert(look_alike_key(&member.name), member.name.clone());
        if self.cluster.is_some() || self.store.is_shared() {
            self.claim(member, ClaimReply::Guest(reply));
            return;
        }
        self.come_online(&member, None);
        if reply.send(Ok(member.clone())).is_err() {
            self.go_offline(member, Departure::Lost);
        }
    }

    /// Claims `member`'s name in the cluster, from a task of its own; the answer comes back
    /// as [`UsersRequest::Claimed`]. A login takes the name over from a session of the same
    /// account on another node (its owner proved it); a guest gets it only if it is free.
    ///
    /// On a shared store, a guest's name is first looked up there: it may be an account
    /// registered on another node that this node has not heard of (registered while this
    /// node was cut off from NATS, or a moment ago). Should the store be out of reach, the
    /// guest is let in on what this node knows: chat that needs no disk goes on, and an
    /// owner who logs in later takes the name over.
    fn claim(&mut self, member: Member, reply: ClaimReply) {
        self.claiming.insert(member.name.clone());
        let actor = self.tx.clone();
        let cluster = self.cluster.clone();
        let store = self.store.is_shared().then(|| self.store.clone());
        tokio::spawn(async move {
            let claim = claim_name(cluster, store, &member, &reply).await;
            let _ = actor.send(UsersRequest::Claimed {
                member,
                claim,
                reply,
            });
        });
    }

    /// The end of a claim: the user comes online, or is told why not.
    fn claimed(
        &mut self,
        member: Member,
        claim: Result<Option<u64>, Unclaimed>,
        reply: ClaimReply,
    ) {
        self.claiming.remove(&member.name);
        match (claim, reply) {
            (Ok(revision), ClaimReply::Guest(reply)) => {
                self.come_online(&member, revision);
                if reply.send(Ok(member.clone())).is_err() {
                    self.go_offline(member, Departure::Lost);
                }
            }
            (Ok(revision), ClaimReply::Login(reply)) => {
                self.login_here(member, reply, revision.unwrap_or_default())
            }
            (Err(error), ClaimReply::Guest(reply)) => {
                let refusal = match error {
                    Unclaimed::Registered(id, name) => {
                        self.learn(name, id);
                        NameRefusal::Registered
                    }
                    Unclaimed::Cluster(ClaimError::Taken(holder)) if holder.name == member.name => {
                        NameRefusal::Online
                    }
                    Unclaimed::Cluster(ClaimError::Taken(holder)) => {
                        NameRefusal::LooksLike(holder.name)
                    }
                    Unclaimed::Cluster(ClaimError::Unavailable) => NameRefusal::Unchecked,
                };
                if !self.registered.contains_key(&member.name) {
                    self.release_look_alike(&member.name);
                }
                let _ = reply.send(Err(refusal));
            }
            // The login is answered "unavailable" when its reply is dropped.
            (Err(_), ClaimReply::Login(_)) => {}
        }
    }

    /// Takes in an account registered on another node, heard of or found in the shared
    /// store: its name stays taken while its owner is offline, and private messages to it
    /// are queued.
    fn learn(&mut self, name: Name, id: i64) {
        self.look_alikes
            .entry(look_alike_key(&name))
            .or_insert(name.clone());
        self.registered.insert(name, id);
    }

    /// Looks `name`, which this node does not know, up in the shared store from a task of
    /// its own; the answer comes back as [`UsersRequest::LookedUp`]. One lookup per name at
    /// a time: what waits for it is kept in order in `looking_up`.
    fn look_up(&mut self, name: Name) {
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
            let _ = actor.send(UsersRequest::LookedUp { name, account });
        });
    }

    /// The shared store's answer about `name`: an account is taken in, and the private
    /// messages that waited for the answer are queued for it, in order, or refused.
    fn looked_up(&mut self, name: Name, account: Option<(i64, Name)>) {
        if let Some((id, registered)) = account {
            self.learn(registered, id);
        }
        for Unrouted { from, text, reply } in self.looking_up.remove(&name).unwrap_or_default() {
            self.route_private(from, name.clone(), text, reply, false);
        }
    }

    /// Holds `name`, if it is free, and has the account made by a task of its own: hashing
    /// takes long, and the directory does not wait for it. The task answers with
    /// [`UsersRequest::Registered`].
    fn register(
        &mut self,
        name: Name,
        password: Password,
        peer: IpAddr,
        outbox: Outbox,
        reply: oneshot::Sender<Result<Member, RegisterError>>,
    ) {
        if let Err(refusal) = self.check_free(&name) {
            let _ = reply.send(Err(refusal.into()));
            return;
        }
        // Held while its hash is computed: nobody else can take it meanwhile.
        self.registering.insert(name.clone());
        self.look_alikes.insert(look_alike_key(&name), name.clone());
        let accounts = self.accounts.clone();
        let actor = self.tx.clone();
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            // Clustered, the name is claimed cluster-wide before the account is made.
            let claim = match &cluster {
                Some(cluster) => {
                    let key = look_alike_key(&name);
                    match cluster.claim(&key, &name, "registering").await {
                        Ok(revision) => Some((key, revision)),
                        Err(error) => {
                            let refusal = match error {
                                ClaimError::Taken(_) => NameRefusal::Registered,
                                ClaimError::Unavailable => NameRefusal::Unchecked,
                            };
                            let _ = actor.send(UsersRequest::Registered {
                                name,
                                outbox,
                                account: Err(refusal.into()),
                                claim: None,
                                reply,
                            });
                            return;
                        }
                    }
                }
                None => None,
            };
            let account = accounts.create(name.clone(), password, peer).await;
            if let (Some(cluster), Some((key, revision)), Err(_)) = (&cluster, &claim, &account) {
                cluster.release(key, *revision);
            }
            let _ = actor.send(UsersRequest::Registered {
                name,
                outbox,
                account: account.map_err(RegisterError::from),
                claim: claim.map(|(_, revision)| revision),
                reply,
            });
        });
    }

    /// Ends the hold on a name being registered: its account is recorded and the client
    /// brought online, or, if the account could not be made, the name is free again.
    fn registered(
        &mut self,
        name: Name,
        outbox: Outbox,
        account: Result<i64, RegisterError>,
        claim: Option<u64>,
        reply: oneshot::Sender<Result<Member, RegisterError>>,
    ) {
        self.registering.remove(&name);
        let id = match account {
            Ok(id) => id,
            Err(error) => {
                self.release_look_alike(&name);
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.registered.insert(name.clone(), id);
        if let Some(cluster) = &self.cluster {
            let name = name.clone();
            cluster.global(&wire::Global::Registered { name, id });
        }
        let member = Member {
            name,
            id: UserId::Account(id),
            outbox,
        };
        // A client that left while its account was made is not brought online.
        if reply.is_closed() {
            if let (Some(cluster), Some(revision)) = (&self.cluster, claim) {
                cluster.release(&look_alike_key(&member.name), revision);
            }
            return;
        }
        self.come_online(&member, claim);
        if reply.send(Ok(member.clone())).is_err() {
            self.go_offline(member, Departure::Lost);
        }
    }

    /// Puts a registered user, whose password was checked, online; a session of the same
    /// account on another connection is closed and this one takes its place.
    fn login(&mut self, member: Member, reply: oneshot::Sender<()>) {
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
    fn login_here(&mut self, member: Member, reply: oneshot::Sender<()>, claim: u64) {
        let claim = self.cluster.is_some().then_some(claim);
        match self.online.get_mut(&member.name) {
            // The same account on another connection: the owner, who just proved it,
            // takes it over. Nobody else notices; the old session's rooms pass to
            // this one as it rejoins them.
            Some(current) if current.id == member.id => {
                let old = std::mem::replace(&mut current.outbox, member.outbox.clone());
                old.replace(Reply::Notice(Notice::Closing {
                    reason: CloseReason::Replaced,
                }));
                info!(user = %member.name, "session taken over by a new login");
            }
            // Only a guest could hold an account's name, and the directory never lets
            // one; should it happen, the guest goes.
            Some(_) => {
                let old = self.online.remove(&member.name);
                if let Some(old) = old {
                    old.outbox.replace(Reply::Notice(Notice::Closing {
                        reason: CloseReason::Replaced,
                    }));
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
    fn resolve(&self, name: Name, reply: oneshot::Sender<Option<UserId>>) {
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
                let _ = actor.send(UsersRequest::LookedUp { name, account });
            }
        });
    }

    /// `USERS`: everyone online, sorted.
    fn list(&self, reply: oneshot::Sender<Reply>) {
        let mut names: Vec<Name> = self.online.keys().cloned().collect();
        names.extend(self.remote.keys().cloned());
        names.sort();
        let _ = reply.send(Reply::Users(names));
    }

    /// `MSG`: records `text` and sends it to everyone online but its sender.
    fn broadcast(&mut self, from: Member, text: String, reply: oneshot::Sender<Reply>) {
        // Notices go first, in the order things happened.
        self.flush_presence();
        // Queued for history first (it never waits), so that a HISTORY sent by anyone
        // who has seen the message finds it.
        self.store.record(Record::now(
            Conversation::Global,
            from.name.clone(),
            text.clone(),
        ));
        if let Some(cluster) = &self.cluster {
            let from = from.name.clone();
            let text = text.clone();
            cluster.global(&wire::Global::Msg { from, text });
        }
        let line = Delivery::new(Reply::Msg {
            from: from.name.clone(),
            text,
        });
        self.fan_out(&line, &from.name);
        let _ = reply.send(Reply::ok(Verb::Msg));
    }

    /// `PM`: delivers a private message, or keeps it for an account that is offline: then
    /// the answer waits until it is stored, without holding up the directory.
    fn private(&mut self, from: Member, to: Name, text: String, reply: oneshot::Sender<Private>) {
        self.route_private(from, to, text, reply, true);
    }

    /// [`UsersActor::private`]; a name this node does not know is looked up in the shared
    /// store first if `may_look_up`, and the message waits for the answer.
    fn route_private(
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
        let refused = |reply: Reply| Private {
            reply,
            recipient: None,
        };
        if let Some(cluster) = &self.cluster
            && let Some((name, remote)) = self.remote.get_key_value(&to)
        {
            // On another node: sent there, through this node's one queue to NATS, so that
            // one sender's messages keep their order. On the shared store, the recipient's
            // node records it, as delivered or, should they have gone offline meanwhile, as
            // queued for them: one row either way. On stores of their own, each side keeps
            // its own.
            if !self.store.is_shared() {
                self.store.record(Record::now(
                    Conversation::Private(from.id, remote.id),
                    from.name.clone(),
                    text.clone(),
                ));
            }
            let pm = wire::Pm {
                from: from.name,
                from_id: from.id,
                to: name.clone(),
                text,
            };
            cluster.private(&remote.node, pm);
            let _ = reply.send(refused(Reply::ok_with(Verb::Pm, name)));
            return;
        }
        let (to, recipient, outbox) = match self.online.get_key_value(&to) {
            Some((name, online)) => (name.clone(), online.id, Some(&online.outbox)),
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
                    let message = format!("{to} is neither online nor registered");
                    let _ = reply.send(refused(Reply::err(ErrorCode::NoSuchUser, message)));
                    return;
                }
            },
        };
        let record = Record::now(
            Conversation::Private(from.id, recipient),
            from.name.clone(),
            text.clone(),
        );
        let Some(outbox) = outbox else {
            // Sent to the writer now, so that queued messages keep their order.
            let stored = self.store.queue_private(record);
            tokio::spawn(async move {
                let answer = match stored.await {
                    Ok(()) => Reply::ok_with(Verb::Pm, format!("{to} queued")),
                    Err(error) => {
                        let reason = error.client_message();
                        let message = format!("the message for {to} could not be stored: {reason}");
                        Reply::err(ErrorCode::Storage, message)
                    }
                };
                let _ = reply.send(refused(answer));
            });
            return;
        };
        if outbox.is_closed() {
            let message = format!("{to} is disconnecting");
            let _ = reply.send(refused(Reply::err(ErrorCode::NoSuchUser, message)));
            return;
        }
        // Recorded before it is delivered, as MSG is.
        self.store.record(record);
        let _ = outbox.send(Reply::Pm {
            from: from.name,
            text,
        });
        let _ = reply.send(Private {
            reply: Reply::ok_with(Verb::Pm, &to),
            recipient: Some(Member {
                name: to,
                id: recipient,
                outbox: outbox.clone(),
            }),
        });
    }

    /// Sends a global notice to everyone online but `except`.
    fn notify(&mut self, notice: Notice, except: Name) {
        // Notices go first, in the order things happened.
        self.flush_presence();
        self.fan_out(&Delivery::new(Reply::Notice(notice)), &except);
    }

    /// Whether a new guest or account may take `name`.
    fn check_free(&self, name: &Name) -> Result<(), NameRefusal> {
        if self.registered.contains_key(name) || self.registering.contains(name) {
            return Err(NameRefusal::Registered);
        }
        if self.online.contains_key(name)
            || self.remote.contains_key(name)
            || self.claiming.contains(name)
        {
            return Err(NameRefusal::Online);
        }
        match self.look_alikes.get(&look_alike_key(name)) {
            Some(holder) => Err(NameRefusal::LooksLike(holder.clone())),
            None => Ok(()),
        }
    }

    fn come_online(&mut self, member: &Member, claim: Option<u64>) {
        let user = member.name.clone();
        // Counted with the newcomer, as with the one leaving below.
        self.presence
            .add(Notice::Online { user }, self.everyone() + 1);
        self.presence.arrived(member.name.clone());
        let online = Online {
            id: member.id,
            outbox: member.outbox.clone(),
            claim,
        };
        self.online.insert(member.name.clone(), online);
        if let (Some(cluster), Some(claim)) = (&self.cluster, claim) {
            cluster.global(&wire::Global::Online {
                node: cluster.node().to_string(),
                name: member.name.clone(),
                id: member.id.key(),
                claim,
            });
        }
    }

    /// How many users are online, on every node.
    fn everyone(&self) -> usize {
        self.online.len() + self.remote.len()
    }

    /// Takes `member` offline (`Logout`, or a client gone before it was told it is online),
    /// unless the name is online on another connection by now.
    fn go_offline(&mut self, member: Member, how: Departure) {
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
            .add(Notice::Offline { user, how }, self.everyone() + 1);
    }

    fn release_look_alike(&mut self, name: &Name) {
        let key = look_alike_key(name);
        if self.look_alikes.get(&key) == Some(name) {
            self.look_alikes.remove(&key);
        }
    }

    fn fan_out(&self, line: &std::sync::Arc<Delivery>, except: &Name) {
        for (name, online) in &self.online {
            if name != except {
                let _ = online.outbox.push(line.clone());
            }
        }
    }
}

/// Checks and claims `member`'s name for [`UsersActor::claim`]: a guest's in the shared store
/// (`store`), then in the cluster; a login's only in the cluster, where it takes the name
/// over. The claim's revision when clustered.
async fn claim_name(
    cluster: Option<Cluster>,
    store: Option<Store>,
    member: &Member,
    reply: &ClaimReply,
) -> Result<Option<u64>, Unclaimed> {
    if let (Some(store), ClaimReply::Guest(_)) = (store, reply) {
        match store.account(&member.name).await {
            Ok(Some((id, name, _hash))) => return Err(Unclaimed::Registered(id, name)),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot check a guest's name in the store"),
        }
    }
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    let key = look_alike_key(&member.name);
    let id = member.id.key();
    let claim = match reply {
        ClaimReply::Guest(_) => cluster.claim(&key, &member.name, &id).await,
        ClaimReply::Login(_) => cluster.take_over(&key, &member.name, &id).await,
    };
    claim.map(Some).map_err(Unclaimed::Cluster)
}

/// Requests the directory handles before it sends the presence notices they caused.
const MAX_REQUESTS_PER_TURN: usize = 256;

/// What two names that look alike have in common: their TR39 skeleton (`I`, `l` and `1`
/// alike, `0` and `O`, `rn` and `m`, ...), without regard to case, as names are compared.
fn look_alike_key(name: &Name) -> String {
    unicode_security::skeleton(name.as_str())
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testing::{Inbox, member, name};

    async fn private(users: &Users, from: &Member, to: &str, text: &str) -> String {
        let answer = users.private(from.clone(), name(to), text.to_string());
        answer.await.unwrap().reply.to_string()
    }

    /// A guest online under `raw`, or why not.
    async fn guest(users: &Users, raw: &str) -> Result<(Member, Inbox), NameRefusal> {
        let (member, inbox) = member(raw);
        let member = users.guest(member.name, member.outbox).await?;
        Ok((member, inbox))
    }

    async fn online(users: &Users) -> String {
        users.list().await.to_string()
    }

    #[tokio::test]
    async fn names_are_unique_regardless_of_case_and_look_and_others_are_told() {
        let (users, _dir) = crate::server::testing::users().await;
        let (_alice, mut alice_inbox) = guest(&users, "alice").await.unwrap();
        assert_eq!(
            guest(&users, "ALICE").await.err(),
            Some(NameRefusal::Online)
        );
        assert_eq!(
            guest(&users, "aIice").await.err(),
            Some(NameRefusal::LooksLike(name("alice")))
        );
        guest(&users, "bob").await.unwrap();
        assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
        assert!(matches!(
            users.resolve(name("Bob")).await,
            Some(UserId::Guest(_))
        ));
        assert_eq!(users.resolve(name("carol")).await, None);
        assert_eq!(online(&users).await, "USERS alice bob");
    }

    #[tokio::test]
    async fn a_broadcast_with_nobody_else_online_is_fine() {
        let (users, _dir) = crate::server::testing::users().await;
        let (alone, mut inbox) = guest(&users, "alone").await.unwrap();
        let reply = users.broadcast(alone, "anyone?".into()).await.unwrap();
        assert_eq!(reply.to_string(), "OK MSG");
        inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn private_messages_reach_only_their_target() {
        let (users, _dir) = crate::server::testing::users().await;
        let (alice, mut alice_inbox) = guest(&users, "alice").await.unwrap();
        let (_bob, mut bob_inbox) = guest(&users, "bob").await.unwrap();
        assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
        assert_eq!(private(&users, &alice, "BOB", "psst").await, "OK PM bob");
        assert_eq!(bob_inbox.line().await, "PM alice psst");
        assert_eq!(
            private(&users, &alice, "carol", "hi").await,
            "ERR NO_SUCH_USER carol is neither online nor registered"
        );
        alice_inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn a_guest_taking_a_new_name_does_not_hear_of_its_own_arrival() {
        let (users, _dir) = crate::server::testing::users().await;
        let (_watcher, mut watcher_inbox) = guest(&users, "watcher").await.unwrap();
        let (ann, mut ann_inbox) = guest(&users, "ann").await.unwrap();
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE ann");
        // A rename (IRC's NICK): the new name is taken on the same connection, the old one
        // left after. The connection hears of the old name's departure (the IRC front-end
        // shows it as the NICK line), never of its own arrival.
        let anna = users.guest(name("anna"), ann.outbox.clone()).await.unwrap();
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE anna");
        ann_inbox.expect_nothing().await;
        users.logout(ann, Departure::Quit(Some("now known as anna".into())));
        assert_eq!(
            watcher_inbox.line().await,
            "NOTICE OFFLINE ann QUIT now known as anna"
        );
        assert_eq!(online(&users).await, "USERS anna watcher");
        drop(anna);
    }

    #[tokio::test]
    async fn a_stale_logout_does_not_remove_the_new_session() {
        let (users, _dir) = crate::server::testing::users().await;
        let (_watcher, mut watcher_inbox) = guest(&users, "watcher").await.unwrap();
        let (old, _) = guest(&users, "alice").await.unwrap();
        users.logout(old, Departure::Closed);
        let (_new, _) = guest(&users, "alice").await.unwrap();
        users.logout(member("alice").0, Departure::Closed);
        assert_eq!(online(&users).await, "USERS alice watcher");
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
        assert_eq!(watcher_inbox.line().await, "NOTICE OFFLINE alice CLOSED");
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
        watcher_inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn a_name_is_registered_once_even_when_racing() {
        let (users, _dir) = crate::server::testing::users().await;
        let home = std::net::IpAddr::from([127, 0, 0, 1]);
        let register = |raw: &str, password: &str| {
            let (member, _) = member(raw);
            users.register(member.name, Password::new(password), home, member.outbox)
        };
        let (first, second) = tokio::join!(register("bob", "one"), register("BOB", "two"));
        let mut results = [first.map(drop), second.map(drop)];
        results.sort_by_key(|r| r.is_err());
        assert_eq!(
            results,
            [Ok(()), Err(RegisterError::Name(NameRefusal::Registered))]
        );
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let key = |raw: &str| look_alike_key(&name(raw));
        assert_eq!(key("aIice"), key("Alice"));
        assert_eq!(key("A1ice"), key("alice"));
        assert_eq!(key("rnodern"), key("modern"));
        assert_eq!(key("b0b"), key("bob"));
        assert_ne!(key("alicia"), key("alice"));
    }
}
