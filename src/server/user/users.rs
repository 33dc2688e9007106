//! `Users`, the handle to the [`UsersActor`], and what it is asked.

use crate::server::event::Event;
use std::net::IpAddr;

use linechat_protocol::{Departure, Name, Password};
use tokio::sync::{mpsc, oneshot};

use super::claims::{ClaimReply, NameRefusal, Unclaimed};
use super::private::Private;
use super::registration::RegisterError;
use super::remote::Remote;
use super::users_actor::UsersActor;
use crate::connection::Outbox;
use crate::server::accounts::{AccountError, Accounts};
use crate::server::cluster::{Cluster, Recheck};
use crate::server::member::{Member, UserId};
use crate::server::request::{self, Backlog};
use crate::server::storage::Store;

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
        reply: oneshot::Sender<Vec<Name>>,
    },
    Broadcast {
        from: Member,
        text: String,
        reply: oneshot::Sender<()>,
    },
    Private {
        from: Member,
        to: Name,
        text: String,
        reply: oneshot::Sender<Private>,
    },
    Notify {
        event: Event,
        except: Name,
    },
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
        let (tx, backlog) =
            UsersActor::spawn(store, accounts, registered, presence_max_online, cluster);
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

    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// Everyone online, on every node, sorted; `None` if the directory is gone.
    pub async fn list(&self) -> Option<Vec<Name>> {
        self.ask(|reply| UsersRequest::List { reply }).await
    }

    /// `MSG`: sends `text` to everyone online; answered on the returned channel once it is
    /// sent (closed if the directory is gone).
    pub fn broadcast(&self, from: Member, text: String) -> oneshot::Receiver<()> {
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
    pub fn notify(&self, event: Event, except: Name) {
        let _ = self.tx.send(UsersRequest::Notify { event, except });
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> UsersRequest) -> Option<T> {
        request::ask(&self.tx, request).await
    }

    /// Hands the directory what another node said.
    pub(crate) fn remote(&self, remote: Remote) {
        let _ = self.tx.send(UsersRequest::Remote(remote));
    }
}
