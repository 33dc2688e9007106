//! Names and their claims: whether a name is free here (`NameRefusal` if not), a guest
//! taking one, and a name claimed across the cluster or checked in the shared store.

use linechat_protocol::{Departure, Name};
use tokio::sync::oneshot;

use super::users_actor::Continuation;
use super::users_actor::UsersActor;
use crate::connection::Outbox;
use crate::server::cluster::{ClaimError, Cluster};
use crate::server::member::{Member, UserId};
use crate::server::storage::Store;

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

/// Why a name was not claimed.
#[derive(Debug)]
pub(crate) enum Unclaimed {
    /// The cluster's names bucket refused it, or did not answer.
    Cluster(ClaimError),
    /// The shared store has an account of that name, registered on another node: its id and
    /// its name as registered.
    Registered(i64, Name),
}

/// Who waits for a cluster-wide claim.
#[derive(Debug)]
pub(crate) enum ClaimReply {
    Guest(oneshot::Sender<Result<Member, NameRefusal>>),
    Login(oneshot::Sender<()>),
}

impl UsersActor {
    /// Puts a guest online under `name`, if it is free.
    pub(super) fn guest(
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
    /// as [`Continuation::Claimed`]. A login takes the name over from a session of the same
    /// account on another node (its owner proved it); a guest gets it only if it is free.
    ///
    /// On a shared store, a guest's name is first looked up there: it may be an account
    /// registered on another node that this node has not heard of (registered while this
    /// node was cut off from NATS, or a moment ago). Should the store be out of reach, the
    /// guest is let in on what this node knows: chat that needs no disk goes on, and an
    /// owner who logs in later takes the name over.
    pub(super) fn claim(&mut self, member: Member, reply: ClaimReply) {
        self.claiming.insert(member.name.clone());
        let actor = self.tx.clone();
        let cluster = self.cluster.clone();
        let store = self.store.is_shared().then(|| self.store.clone());
        tokio::spawn(async move {
            let claim = claim_name(cluster, store, &member, &reply).await;
            actor.post(
                Continuation::Claimed {
                    member,
                    claim,
                    reply,
                }
                .into(),
            );
        });
    }

    /// The end of a claim: the user comes online, or is told why not.
    pub(super) fn claimed(
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
    pub(super) fn learn(&mut self, name: Name, id: i64) {
        self.look_alikes
            .entry(look_alike_key(&name))
            .or_insert(name.clone());
        self.registered.insert(name, id);
    }

    /// Whether a new guest or account may take `name`.
    pub(super) fn check_free(&self, name: &Name) -> Result<(), NameRefusal> {
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

    pub(super) fn release_look_alike(&mut self, name: &Name) {
        let key = look_alike_key(name);
        if self.look_alikes.get(&key) == Some(name) {
            self.look_alikes.remove(&key);
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

/// What two names that look alike have in common: their TR39 skeleton (`I`, `l` and `1`
/// alike, `0` and `O`, `rn` and `m`, ...), without regard to case, as names are compared.
pub(super) fn look_alike_key(name: &Name) -> String {
    unicode_security::skeleton(name.as_str())
        .collect::<String>()
        .to_lowercase()
}
