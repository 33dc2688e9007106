//! New accounts: a name held while its password is hashed and the account stored
//! (`RegisterError` if it cannot be).

use std::net::IpAddr;

use linechat_protocol::{Departure, Name, Password};
use tokio::sync::oneshot;

use super::claims::{NameRefusal, look_alike_key};
use super::users_actor::Continuation;
use super::users_actor::UsersActor;
use crate::connection::Outbox;
use crate::server::accounts::AccountError;
use crate::server::cluster::{ClaimError, wire};
use crate::server::member::{Member, UserId};

/// Why a `REGISTER` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Name(#[from] NameRefusal),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl UsersActor {
    /// Holds `name`, if it is free, and has the account made by a task of its own: hashing
    /// takes long, and the directory does not wait for it. The task answers with
    /// [`Continuation::Registered`].
    pub(super) fn register(
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
                            actor.post(
                                Continuation::Registered {
                                    name,
                                    outbox,
                                    account: Err(refusal.into()),
                                    claim: None,
                                    reply,
                                }
                                .into(),
                            );
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
            actor.post(
                Continuation::Registered {
                    name,
                    outbox,
                    account: account.map_err(RegisterError::from),
                    claim: claim.map(|(_, revision)| revision),
                    reply,
                }
                .into(),
            );
        });
    }

    /// Ends the hold on a name being registered: its account is recorded and the client
    /// brought online, or, if the account could not be made, the name is free again.
    pub(super) fn registered(
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
}
