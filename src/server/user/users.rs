//! `Users`, the handle to the [`UsersActor`], and what it is asked.

use crate::server::event::Event;
use std::net::IpAddr;
use std::sync::Arc;

use linechat_protocol::{Departure, Name, Password};
use tokio::sync::oneshot;

use super::claims::NameRefusal;
use super::private::Private;
use super::registration::RegisterError;
use super::remote::Remote;
use super::users_actor::{Continuation, UsersActor};
use crate::connection::Outbox;
use crate::server::accounts::{AccountError, Accounts};
use crate::server::cluster::Cluster;
use crate::server::mailbox::{Answer, Backlog, Mailbox};
use crate::server::member::{Member, UserId};
use crate::server::storage::Store;

/// What the users actor is asked; requests with a `reply` are answered on it.
#[derive(Debug)]
pub(super) enum UsersRequest {
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
    /// What another node of the cluster said (see [`Remote`]).
    Remote(Remote),
    /// What the directory's own tasks send back to it. Private to the directory: no other
    /// module can make one.
    Continue(Continuation),
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
    /// The user of `member`'s connection is away with `message`, or back (`None`).
    Away {
        member: Member,
        message: Option<Arc<str>>,
    },
}

/// A handle to the [`UsersActor`].
#[derive(Debug, Clone)]
pub struct Users {
    mailbox: Mailbox<UsersRequest>,
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
        let (mailbox, backlog) =
            UsersActor::spawn(store, accounts, registered, presence_max_online, cluster);
        Self { mailbox, backlog }
    }

    /// Puts a guest online under `name`, reached through `outbox`.
    pub async fn guest(&self, name: Name, outbox: Outbox) -> Result<Member, NameRefusal> {
        self.mailbox
            .ask(|reply| UsersRequest::Guest {
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
        self.mailbox
            .ask(|reply| UsersRequest::Register {
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
        self.mailbox
            .ask(|reply| UsersRequest::Login { member, reply })
            .await
            .is_ok()
    }

    pub fn logout(&self, member: Member, how: Departure) {
        self.mailbox.post(UsersRequest::Logout { member, how });
    }

    /// Who `name` stands for now, if anyone.
    pub async fn resolve(&self, name: Name) -> Option<UserId> {
        self.mailbox
            .ask(|reply| UsersRequest::Resolve { name, reply })
            .await
            .ok()
            .flatten()
    }

    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// Everyone online, on every node, sorted; `None` if the directory is gone.
    pub async fn list(&self) -> Option<Vec<Name>> {
        self.mailbox
            .ask(|reply| UsersRequest::List { reply })
            .await
            .ok()
    }

    /// `MSG`: sends `text` to everyone online; answered once it is sent (`Gone` if the
    /// directory is).
    pub fn broadcast(&self, from: Member, text: String) -> Answer<()> {
        self.mailbox
            .ask_later(|reply| UsersRequest::Broadcast { from, text, reply })
    }

    /// `PM` to a user whose handle the session does not hold: the directory delivers it, or
    /// queues it for an account that is offline. The answer comes later: the session sends on meanwhile.
    pub fn private(&self, from: Member, to: Name, text: String) -> Answer<Private> {
        self.mailbox.ask_later(|reply| UsersRequest::Private {
            from,
            to,
            text,
            reply,
        })
    }

    /// Sends a global notice to everyone online but `except`.
    pub fn notify(&self, event: Event, except: Name) {
        self.mailbox.post(UsersRequest::Notify { event, except });
    }

    /// Marks the user of `member`'s connection away with `message` (those who send them a
    /// private message are told it), or back with `None`. Never waits.
    pub fn away(&self, member: Member, message: Option<Arc<str>>) {
        self.mailbox.post(UsersRequest::Away { member, message });
    }

    /// Hands the directory what another node said.
    pub(crate) fn remote(&self, remote: Remote) {
        self.mailbox.post(UsersRequest::Remote(remote));
    }
}
