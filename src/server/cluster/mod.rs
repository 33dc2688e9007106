//! Clustering over NATS (issue 12): several nodes, each with its own clients, behave as one
//! server. Without `nats_url` none of this exists: the actors hold `None` where they would
//! hold a [`Cluster`], and check it once per request that could concern another node.
//!
//! What lives where:
//! - `linechat.all`, the global subject, heard by every node: presence, `MSG`, new (and
//!   expired) rooms, new accounts, room membership changes (for `LRU`), heartbeats, and the
//!   state exchange of a node that (re)connects ([`wire::Global`]).
//! - `linechat.node.<node>`, one per node: private messages to that node's users (which that
//!   node records in the shared store, delivered or queued). A node knows where every user is
//!   (it keeps the others' lists of users from their presence messages), so a message
//!   crosses to the one node that has the recipient, in a batch with the others sent to that
//!   node within a millisecond ([`batch`]). Per-node rather than per-user subjects:
//!   one subscription per node instead of a subscribe and unsubscribe at every login and
//!   logout (each of which NATS propagates through its interest graph), for the same routing.
//! - `linechat.room.<room>`, one per room: the room's events (`RM`, `JR`, `LR`) as the line
//!   protocol's lines, encoded once by the node where they happened. Only a node with
//!   members of the room subscribes, and only for as long as it has them: the subscription
//!   is owned by the room's task, which exists exactly that long. A room message therefore
//!   crosses the network once per node that has members, never once per member.
//! - JetStream key-value bucket `linechat_names`: one key per taken name (its look-alike
//!   key, so that look-alike names are refused cluster-wide in the same step), holding the
//!   owner's name, node and identity ([`wire::Claim`]). A login is answered `OK` only after
//!   its `create` succeeded: that is the atomic step that makes names unique.
//!
//! Ordering: every publication of a node goes out through one queue, in the order the actors
//! made them; a room's messages are made by its one task in the order its members' sessions
//! sent them; NATS keeps the order of one connection's messages to each subscriber. So one
//! sender's messages to one room arrive in order on every node.
//!
//! Failure: a node that stops sending heartbeats for `node_timeout_secs` is declared lost by
//! every other node, each on its own (no coordination needed: each removes the lost node's
//! users from what it shows, and deletes their name claims with the revision it knows, which
//! only the first one does). A node judges others only on what it heard before a round trip
//! to NATS that came back, so that a node that was itself cut off or frozen (its connection
//! still open) judges nobody on its stale view. A node that was cut off for long enough to
//! have been declared lost, or is told it was, or reconnects, *rejoins*: it checks every
//! name claim of its users (claiming again those that were freed, and closing, with a notice
//! that says why, a user whose name someone else holds now), and sends and asks for the full
//! state again. When two nodes both list a user under one name, the newer claim wins.

mod batch;
mod node;
pub(crate) mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::{Client, ConnectOptions, Subject, Subscriber};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::settings::Settings;
use linechat_protocol::Name;

use batch::PrivateBatches;
pub(crate) use node::spawn_node;
use wire::Claim;

/// The bucket of taken names.
const NAMES_BUCKET: &str = "linechat_names";

/// How long a claim refused for want of an answer is watched for, to be undone.
const FORGET_FOR_SECS: u32 = 300;

/// How long a node waits for JetStream to answer a claim: a login waits that long at most
/// while NATS is away.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest a node waits between two attempts to reconnect to NATS. The client's own
/// backoff goes up to 4 s, which a chat cut in two would wait after NATS is back; an attempt
/// to a NATS that is still away costs a refused connection.
const RECONNECT_DELAY_AT_MOST: Duration = Duration::from_millis(500);

/// How long a node waits for NATS to answer a round trip before it counts it as unanswered.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// Publications the publishing task takes from its queue at once.
const TAKEN_AT_ONCE: usize = 256;

/// Publications that may wait for NATS (while it is away) before new ones are dropped.
const OUTGOING: usize = 65_536;

/// How long a session's private message waits for room in a full queue before it is dropped.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// How long a node waits for NATS to confirm a room subscription before it lets members in
/// anyway (NATS is away: local members still chat).
const SUBSCRIBE_CONFIRMATION: Duration = Duration::from_secs(2);

/// How to reach NATS and who this node is, from the settings.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub url: String,
    pub node: String,
    pub user: Option<(String, String)>,
    pub token: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub node_timeout: Duration,
}

impl ClusterOptions {
    /// The cluster's options, when `nats_url` turns clustering on.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let url = settings.nats_url.clone()?;
        let user = settings
            .nats_user
            .clone()
            .zip(settings.nats_password.clone());
        Some(Self {
            url,
            node: settings.node_name(),
            user,
            token: settings.nats_token.clone(),
            tls_ca: settings.nats_tls_ca.clone(),
            node_timeout: settings.node_timeout(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error(
        "cannot open the JetStream key-value bucket {NAMES_BUCKET} (is JetStream on? nats-server -js): {0}"
    )]
    Bucket(String),
    #[error("cannot subscribe to the cluster's subjects: {0}")]
    Subscribe(String),
}

/// What a node that rejoins finds of one of its users' names in the bucket.
#[derive(Debug)]
pub(crate) enum Recheck {
    /// The user's claim is there as it was.
    Held,
    /// The claim had been freed (the others declared this node lost): the name is the
    /// user's again, at this revision.
    Claimed(u64),
    /// The claim had been freed and someone else holds the name now.
    Taken(Claim),
    /// NATS did not answer.
    Unknown,
}

/// Why a name could not be claimed.
#[derive(Debug)]
pub(crate) enum ClaimError {
    /// Someone holds it (or a look-alike of it).
    Taken(Claim),
    /// NATS did not answer.
    Unavailable,
}

/// A handle to this node's place in the cluster: its connection to NATS, the names bucket and
/// the queue of what it publishes. One pointer, cheap to clone: every room task holds one.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Shared>,
}

/// What every holder of a [`Cluster`] shares; nothing in it changes.
#[derive(Debug)]
struct Shared {
    node: Arc<str>,
    /// Random per start: a node restarted under the same name is a new incarnation, and the
    /// others drop what they knew of the old one at once.
    incarnation: u64,
    client: Client,
    names: kv::Store,
    outgoing: mpsc::Sender<Outgoing>,
    node_timeout: Duration,
}

/// What this node hears, for its cluster task: what the NATS client says of its connection
/// (disconnected, connected again), and its subscriptions to the global subject and its own.
/// Subscribed while the server binds, so that a node hears the others before it takes its
/// first client.
#[derive(Debug)]
pub struct Inbound {
    events: mpsc::UnboundedReceiver<async_nats::Event>,
    global: Subscriber,
    direct: Subscriber,
}

/// One publication, in the queue.
#[derive(Debug)]
enum Outgoing {
    /// A message, as it goes out.
    Publish {
        subject: Subject,
        payload: Bytes,
        /// Told once this and everything before it is at NATS.
        sent: Option<oneshot::Sender<()>>,
    },
    /// A private message to a user of `node`, to go out in a batch with others to that node.
    Private { node: Arc<str>, pm: wire::Pm },
}

impl Cluster {
    /// Connects to NATS and opens (or creates) the names bucket. Fails if NATS cannot be
    /// reached now; once connected, the client reconnects by itself for as long as it takes.
    pub async fn connect(options: ClusterOptions) -> Result<(Self, Inbound), ClusterError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut connect = ConnectOptions::new()
            .name(format!("linechat {}", options.node))
            // A node handles what it does itself; its own publications coming back would
            // only be dropped.
            .no_echo()
            .max_reconnects(None)
            // NATS's default is a ping every 2 minutes: a connection that stops carrying
            // anything (a network that drops its packets, without closing it) would be found
            // out only then. Pinged as often as a heartbeat goes, it is dropped and made again
            // after about three heartbeats without an answer.
            .ping_interval(heartbeat_every(options.node_timeout))
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let events = events_tx.clone();
                async move {
                    let _ = events.send(event);
                }
            });
        if let Some((user, password)) = options.user.clone() {
            connect = connect.user_and_password(user, password);
        }
        if let Some(token) = options.token.clone() {
            connect = connect.token(token);
        }
        if let Some(ca) = options.tls_ca.clone() {
            connect = connect.add_root_certificates(ca).require_tls(true);
        }
        let client = connect
            .connect(options.url.as_str())
            .await
            .map_err(|source| ClusterError::Connect {
                url: options.url.clone(),
                source,
            })?;
        let names = names_bucket(&client).await?;
        let own = Subject::from(format!("{NODE_PREFIX}{}", options.node));
        let subscribed = tokio::try_join!(client.subscribe(GLOBAL), client.subscribe(own));
        let (global, direct) =
            subscribed.map_err(|error| ClusterError::Subscribe(error.to_string()))?;
        if tokio::time::timeout(SUBSCRIBE_CONFIRMATION, client.flush())
            .await
            .is_err()
        {
            warn!("NATS did not confirm the node's subscriptions in time");
        }
        let (outgoing, queue) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_in_order(client.clone(), queue));
        let incarnation = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
        info!(node = %options.node, url = %options.url, "joined the cluster");
        let cluster = Self {
            inner: Arc::new(Shared {
                node: options.node.into(),
                incarnation,
                client,
                names,
                outgoing,
                node_timeout: options.node_timeout,
            }),
        };
        cluster.release_leftovers().await;
        let inbound = Inbound {
            events: events_rx,
            global,
            direct,
        };
        Ok((cluster, inbound))
    }

    /// This node's name.
    pub fn node(&self) -> &Arc<str> {
        &self.inner.node
    }

    /// This run of the node.
    pub(crate) fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    /// Publishes a message to every node.
    pub(crate) fn global(&self, message: &wire::Global) {
        self.send(Subject::from_static(GLOBAL), wire::encode(message));
    }

    /// Publishes a room event (its encoded line) to the nodes with members in `room`.
    pub(crate) fn room_line(&self, room: &Name, line: Bytes) {
        self.send(room_subject(room), line);
    }

    /// Queues a publication; never waits. While NATS is away and the queue is full, what
    /// does not fit is dropped: chat on this node goes on.
    fn send(&self, subject: Subject, payload: Bytes) {
        self.queue(Outgoing::Publish {
            subject,
            payload,
            sent: None,
        });
    }

    /// [`Cluster::send`] for any publication.
    fn queue(&self, outgoing: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.inner.outgoing.try_send(outgoing) {
            debug!("cluster queue full; a message to other nodes was dropped");
        }
    }

    /// Tells the other nodes that this one shuts down, after what it queued before, and waits
    /// (a little) until NATS has it: its users are then gone everywhere at once.
    pub async fn leave(&self) {
        let bye = wire::Global::Bye {
            node: self.inner.node.to_string(),
            incarnation: self.inner.incarnation,
        };
        let (sent, flushed) = oneshot::channel();
        let outgoing = Outgoing::Publish {
            subject: Subject::from_static(GLOBAL),
            payload: wire::encode(&bye),
            sent: Some(sent),
        };
        let leaving = async {
            if self.inner.outgoing.send(outgoing).await.is_ok() {
                let _ = flushed.await;
            }
        };
        if tokio::time::timeout(SUBSCRIBE_CONFIRMATION, leaving)
            .await
            .is_err()
        {
            warn!("NATS did not take this node's goodbye in time");
        }
    }

    /// Sends a private message to a user of `node`: within [`batch::FLUSH_AFTER`], with the
    /// others queued for that node meanwhile, in the order queued.
    pub(crate) fn private(&self, node: &Arc<str>, pm: wire::Pm) {
        self.queue(Outgoing::Private {
            node: node.clone(),
            pm,
        });
    }

    /// The same for a session that sends straight to a user on another node: it waits while
    /// the queue is full, as a sender faster than a room's fan-out waits for the room, so
    /// that a burst is paced rather than dropped. Only a queue that stays full for
    /// [`QUEUE_WAIT`] (NATS away) drops the message, as [`Cluster::private`] would.
    pub(crate) async fn private_waiting(&self, node: &Arc<str>, pm: wire::Pm) {
        let outgoing = Outgoing::Private {
            node: node.clone(),
            pm,
        };
        let sent = match self.inner.outgoing.try_send(outgoing) {
            Err(mpsc::error::TrySendError::Full(outgoing)) => {
                tokio::time::timeout(QUEUE_WAIT, self.inner.outgoing.send(outgoing))
                    .await
                    .is_ok()
            }
            _ => true,
        };
        if !sent {
            debug!("cluster queue full; a message to other nodes was dropped");
        }
    }

    /// Subscribes to `room`'s subject, and waits (a little) until NATS has the subscription,
    /// so that what is said there after a join is answered reaches this node.
    pub(crate) async fn subscribe_room(&self, room: &Name) -> Option<Subscriber> {
        let subscriber = self.inner.client.subscribe(room_subject(room)).await.ok()?;
        if tokio::time::timeout(SUBSCRIBE_CONFIRMATION, self.inner.client.flush())
            .await
            .is_err()
        {
            warn!(%room, "NATS did not confirm the room's subscription in time");
        }
        Some(subscriber)
    }

    /// Claims `name` for the user `id` of this node. The key is the name's look-alike key,
    /// so a look-alike of a taken name is refused as the name itself is.
    pub(crate) async fn claim(&self, key: &str, name: &Name, id: &str) -> Result<u64, ClaimError> {
        let claim = self.claim_of(name, id);
        let claimed = self.create(key, &claim).await;
        if let Err(ClaimError::Unavailable) = claimed {
            self.forget(key, claim.nonce);
        }
        claimed
    }

    /// Takes over `name` from whoever holds it (an account's owner logging in on this node
    /// while a session of theirs is on another): atomic against the claim read.
    pub(crate) async fn take_over(
        &self,
        key: &str,
        name: &Name,
        id: &str,
    ) -> Result<u64, ClaimError> {
        let claim = self.claim_of(name, id);
        let claimed = match self.create(key, &claim).await {
            Err(ClaimError::Taken(_)) => match self.holder(key).await {
                Ok(Some((_, revision))) => self
                    .inner
                    .names
                    .update(bucket_key(key), json(&claim), revision)
                    .await
                    .map_err(|_| ClaimError::Unavailable),
                _ => Err(ClaimError::Unavailable),
            },
            claimed => claimed,
        };
        if let Err(ClaimError::Unavailable) = claimed {
            self.forget(key, claim.nonce);
        }
        claimed
    }

    /// Creates `claim` on `key` unless someone holds it.
    async fn create(&self, key: &str, claim: &Claim) -> Result<u64, ClaimError> {
        // The client knows NATS is away: nobody can check the name, and the answer is at once.
        if !self.connected() {
            return Err(ClaimError::Unavailable);
        }
        for _ in 0..3 {
            // One deadline for the whole attempt: the key-value `create` asks JetStream a
            // second time when its first request goes unanswered, which doubled the wait.
            let create = self.inner.names.create(bucket_key(key), json(claim));
            let Ok(created) = tokio::time::timeout(CLAIM_TIMEOUT, create).await else {
                warn!("cannot claim a name: NATS did not answer within {CLAIM_TIMEOUT:?}");
                return Err(ClaimError::Unavailable);
            };
            match created {
                Ok(revision) => return Ok(revision),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    match self.holder(key).await {
                        Ok(Some((holder, _))) => return Err(ClaimError::Taken(holder)),
                        // Released meanwhile: try again.
                        Ok(None) => continue,
                        Err(()) => return Err(ClaimError::Unavailable),
                    }
                }
                Err(error) => {
                    warn!(%error, "cannot claim a name");
                    return Err(ClaimError::Unavailable);
                }
            }
        }
        Err(ClaimError::Unavailable)
    }

    /// Whether the NATS client is connected (as far as it knows).
    fn connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Undoes a claim that was refused for want of an answer: NATS may still get it later
    /// (the client sends what it buffered while disconnected), and then nobody would release
    /// it. Once NATS answers again, the claim is deleted if it is that one (its nonce).
    fn forget(&self, key: &str, nonce: u64) {
        let (cluster, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move {
            let mut absent = 0;
            for _ in 0..FORGET_FOR_SECS {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !cluster.connected() {
                    continue;
                }
                match cluster.holder(&key).await {
                    Ok(Some((claim, revision))) if claim.nonce == nonce => {
                        let names = &cluster.inner.names;
                        let _ = names
                            .delete_expect_revision(bucket_key(&key), Some(revision))
                            .await;
                        return;
                    }
                    // Not there (yet, maybe): looked for a few times.
                    Ok(_) => {
                        absent += 1;
                        if absent >= 3 {
                            return;
                        }
                    }
                    Err(()) => {}
                }
            }
        });
    }

    /// Who holds `key` now, and the claim's revision.
    async fn holder(&self, key: &str) -> Result<Option<(Claim, u64)>, ()> {
        let entry = self
            .inner
            .names
            .entry(bucket_key(key))
            .await
            .map_err(|_| ())?;
        Ok(entry.and_then(|entry| {
            if entry.operation != kv::Operation::Put {
                return None;
            }
            let claim = serde_json::from_slice(&entry.value).ok()?;
            Some((claim, entry.revision))
        }))
    }

    fn claim_of(&self, name: &Name, id: &str) -> Claim {
        Claim {
            name: name.clone(),
            node: self.inner.node.to_string(),
            id: id.to_owned(),
            nonce: getrandom::u64().unwrap_or_default(),
        }
    }

    /// Frees the claim on `key` made at `revision`, unless it has changed hands since. From
    /// a task of its own: nobody waits for it.
    pub(crate) fn release(&self, key: &str, revision: u64) {
        let cluster = self.clone();
        let key = bucket_key(key);
        tokio::spawn(async move {
            let names = &cluster.inner.names;
            if let Err(error) = names.delete_expect_revision(&key, Some(revision)).await {
                debug!(%error, key, "name claim not released (released already or taken over)");
            }
        });
    }

    /// Checks, for a node that rejoins, the claim on `key` that its user `name` (identity
    /// `id`) made at `revision`: still there, or freed and claimed again, or taken by someone
    /// else meanwhile.
    pub(crate) async fn recheck(&self, key: &str, name: &Name, id: &str, revision: u64) -> Recheck {
        let ours = |claim: &Claim| *claim.node == *self.inner.node && claim.id == id;
        match self.holder(key).await {
            Ok(Some((_, held))) if held == revision => Recheck::Held,
            // Claimed again already (two rejoins close together).
            Ok(Some((claim, held))) if ours(&claim) => Recheck::Claimed(held),
            Ok(Some((claim, _))) => Recheck::Taken(claim),
            Ok(None) => match self.claim(key, name, id).await {
                Ok(revision) => Recheck::Claimed(revision),
                Err(ClaimError::Taken(claim)) if ours(&claim) => Recheck::Unknown,
                Err(ClaimError::Taken(claim)) => Recheck::Taken(claim),
                Err(ClaimError::Unavailable) => Recheck::Unknown,
            },
            Err(()) => Recheck::Unknown,
        }
    }

    /// A round trip to the NATS server: true if it answered in time. Everything NATS sent
    /// this node before its answer has reached this node's subscriptions by then.
    pub(crate) async fn round_trip(&self) -> bool {
        // Any request the server itself answers: JetStream's account information.
        let request = self
            .inner
            .client
            .request(Subject::from_static("$JS.API.INFO"), Bytes::new());
        matches!(
            tokio::time::timeout(ROUND_TRIP_TIMEOUT, request).await,
            Ok(Ok(_))
        )
    }

    /// Deletes the claims a previous run of this node left (a crash, a kill): its users are
    /// gone. Done at start, before any login.
    async fn release_leftovers(&self) {
        let Ok(keys) = self.inner.names.keys().await else {
            return;
        };
        use futures::TryStreamExt;
        let keys: Vec<String> = keys.try_collect().await.unwrap_or_default();
        for key in keys {
            if let Ok(entry) = self.inner.names.entry(&key).await
                && let Some(entry) = entry
                && let Ok(claim) = serde_json::from_slice::<Claim>(&entry.value)
                && *claim.node == *self.inner.node
            {
                let _ = self
                    .inner
                    .names
                    .delete_expect_revision(&key, Some(entry.revision))
                    .await;
            }
        }
    }
}

const GLOBAL: &str = "linechat.all";
const NODE_PREFIX: &str = "linechat.node.";
const ROOM_PREFIX: &str = "linechat.room.";

/// A room's subject: names compare without regard to ASCII case, subjects with.
fn room_subject(room: &Name) -> Subject {
    Subject::from(format!(
        "{ROOM_PREFIX}{}",
        room.as_str().to_ascii_lowercase()
    ))
}

/// A key the bucket accepts (`[-/_=.a-zA-Z0-9]`) for a look-alike key, which may hold other
/// characters: those are written as `=` and their hex code.
fn bucket_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            out.push_str(&format!("={:x}=", c as u32));
        }
    }
    out
}

/// A value of the names bucket, as JSON: readable with `nats kv get`.
fn json(value: &impl serde::Serialize) -> Bytes {
    // Our own types, of strings and numbers: they always serialize.
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// Opens the names bucket, creating it if no node has yet. History 1: only who holds a name
/// now matters.
///
/// The bucket's stream is created here as async-nats' `create_key_value` would, because that
/// first reads the account's JetStream info in a form nats-server 2.9 (Debian 12's) does not
/// send; the key-value operations themselves work with 2.9.
async fn names_bucket(client: &Client) -> Result<kv::Store, ClusterError> {
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(CLAIM_TIMEOUT)
        .build(client.clone());
    if let Ok(store) = jetstream.get_key_value(NAMES_BUCKET).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{NAMES_BUCKET}"),
        description: Some("linechat: who holds each name, on which node".to_owned()),
        subjects: vec![format!("$KV.{NAMES_BUCKET}.>")],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    // Another node may create it meanwhile: either way, it is then there.
    let created = jetstream.get_or_create_stream(config).await;
    jetstream
        .get_key_value(NAMES_BUCKET)
        .await
        .map_err(|error| match created {
            Err(created) => ClusterError::Bucket(created.to_string()),
            Ok(_) => ClusterError::Bucket(error.to_string()),
        })
}

/// Where the publishing task publishes: NATS, or a test's recorder.
trait Bus {
    async fn publish(&self, subject: Subject, payload: Bytes);
    /// Returns once what was published before is at the server.
    async fn flush(&self);
}

impl Bus for Client {
    async fn publish(&self, subject: Subject, payload: Bytes) {
        if let Err(error) = Client::publish(self, subject, payload).await {
            debug!(%error, "cannot publish to NATS");
        }
    }

    async fn flush(&self) {
        let _ = Client::flush(self).await;
    }
}

/// The node's publications, in the order they were queued. A task of its own so that no
/// actor ever waits for the network, and one task so that the order is kept.
///
/// Private messages wait in [`PrivateBatches`] for others to the same node, [`batch::FLUSH_AFTER`]
/// at most, and go out in one NATS message per node (or sooner, at a batch's size bound): to
/// each node in the order queued, which keeps every sender's order. They are not held in
/// order with the other publications, which go to other subjects (whose order between
/// subjects a receiving node does not keep either), except a publication someone waits on
/// (the goodbye): everything before it goes out first.
async fn publish_in_order(bus: impl Bus, mut queue: mpsc::Receiver<Outgoing>) {
    let mut taken = Vec::with_capacity(TAKEN_AT_ONCE);
    let mut batches = PrivateBatches::default();
    loop {
        let due = batches.due();
        tokio::select! {
            biased;
            received = queue.recv_many(&mut taken, TAKEN_AT_ONCE) => {
                if received == 0 {
                    publish_batches(&bus, batches.take()).await;
                    return;
                }
            }
            () = sleep_until_due(due), if due.is_some() => {}
        }
        for outgoing in taken.drain(..) {
            match outgoing {
                Outgoing::Private { node, pm } => {
                    if let Some(full) = batches.add(node, pm) {
                        publish_batches(&bus, [full]).await;
                    }
                }
                Outgoing::Publish {
                    subject,
                    payload,
                    sent: None,
                } => bus.publish(subject, payload).await,
                Outgoing::Publish {
                    subject,
                    payload,
                    sent: Some(sent),
                } => {
                    publish_batches(&bus, batches.take()).await;
                    bus.publish(subject, payload).await;
                    bus.flush().await;
                    let _ = sent.send(());
                }
            }
        }
        // Checked after every turn, not only when the queue is empty: under a steady load it
        // never is.
        if batches.due().is_some_and(|due| due <= Instant::now()) {
            publish_batches(&bus, batches.take()).await;
        }
    }
}

/// Waits until `due` (a batch's time to go out), if there is one.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Publishes each node's private messages as one message on the node's subject.
async fn publish_batches(
    bus: &impl Bus,
    batches: impl IntoIterator<Item = (Arc<str>, Vec<wire::Pm>)>,
) {
    for (node, pms) in batches {
        let subject = Subject::from(format!("{NODE_PREFIX}{node}"));
        bus.publish(subject, wire::encode(&pms)).await;
    }
}

/// How often a node says it is alive: a quarter of the node timeout, so that a node is
/// declared lost only after missing several in a row.
pub(crate) fn heartbeat_every(node_timeout: Duration) -> Duration {
    (node_timeout / 4).max(Duration::from_millis(100))
}

/// How long a node waits before its `attempts`th attempt in a row to reconnect to NATS:
/// doubling from 1 ms, up to `RECONNECT_DELAY_AT_MOST`.
fn reconnect_delay(attempts: usize) -> Duration {
    let doubling = u32::try_from(attempts).unwrap_or(u32::MAX);
    Duration::from_millis(2_u64.saturating_pow(doubling)).min(RECONNECT_DELAY_AT_MOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use linechat_protocol::Name;

    use super::batch::{BATCH_BYTES, FLUSH_AFTER};
    use crate::server::member::UserId;
    use crate::server::storage::MessageId;

    /// A bus that keeps what is published on it, for the test to read.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(Subject, Bytes)>>>);

    impl Bus for Recorder {
        async fn publish(&self, subject: Subject, payload: Bytes) {
            self.0.lock().unwrap().push((subject, payload));
        }

        async fn flush(&self) {}
    }

    impl Recorder {
        /// What was published since last asked: each private message's text, per message.
        fn published(&self) -> Vec<(String, Vec<String>)> {
            let published = std::mem::take(&mut *self.0.lock().unwrap());
            published
                .into_iter()
                .map(|(subject, payload)| {
                    let texts = match subject.strip_prefix(NODE_PREFIX) {
                        Some(_) => wire::decode::<Vec<wire::Pm>>(&payload)
                            .unwrap()
                            .into_iter()
                            .map(|pm| pm.text)
                            .collect(),
                        None => Vec::new(),
                    };
                    (subject.to_string(), texts)
                })
                .collect()
        }
    }

    fn private(node: &str, text: impl Into<String>) -> Outgoing {
        Outgoing::Private {
            node: node.into(),
            pm: wire::Pm {
                id: MessageId::default(),
                at: 0,
                from: Name::parse("alice").unwrap(),
                from_id: UserId::Guest(1),
                to: Name::parse("bob").unwrap(),
                text: text.into(),
            },
        }
    }

    fn publish(subject: &'static str) -> Outgoing {
        Outgoing::Publish {
            subject: Subject::from_static(subject),
            payload: Bytes::new(),
            sent: None,
        }
    }

    /// Lets the publishing task run until it waits again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn private_messages_go_out_per_node_in_order_within_a_millisecond() {
        let recorder = Recorder::default();
        let (queue, taken) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_in_order(recorder.clone(), taken));
        for outgoing in [
            private("n2", "1"),
            private("n3", "a"),
            publish(GLOBAL),
            private("n2", "2"),
        ] {
            queue.send(outgoing).await.unwrap();
        }
        settle().await;
        // What is not a private message goes at once; they wait for others.
        assert_eq!(recorder.published(), [(GLOBAL.to_owned(), vec![])]);
        tokio::time::advance(FLUSH_AFTER / 2).await;
        queue.send(private("n2", "3")).await.unwrap();
        settle().await;
        assert_eq!(recorder.published(), []);
        // A millisecond after the first: everything queued till then, one message per node.
        tokio::time::advance(FLUSH_AFTER / 2).await;
        settle().await;
        let mut published = recorder.published();
        published.sort();
        let texts = |texts: &[&str]| texts.iter().map(|text| text.to_string()).collect();
        assert_eq!(
            published,
            [
                ("linechat.node.n2".to_owned(), texts(&["1", "2", "3"])),
                ("linechat.node.n3".to_owned(), texts(&["a"])),
            ]
        );
        // Idle: nothing more goes out.
        tokio::time::advance(FLUSH_AFTER * 10).await;
        settle().await;
        assert_eq!(recorder.published(), []);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_reaches_its_size_goes_out_at_once() {
        let recorder = Recorder::default();
        let (queue, taken) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_in_order(recorder.clone(), taken));
        let text = "x".repeat(1000);
        let fill = BATCH_BYTES.div_ceil(1000);
        for n in 0..fill + 1 {
            queue
                .send(private("n2", format!("{n}{text}")))
                .await
                .unwrap();
        }
        settle().await;
        let published = recorder.published();
        assert_eq!(published.len(), 1, "one full batch, before its time");
        let sent = &published[0].1;
        assert!(
            sent.len() <= fill && sent.len() > fill / 2,
            "{}",
            sent.len()
        );
        assert!(
            sent.iter()
                .enumerate()
                .all(|(n, pm)| pm.starts_with(&n.to_string()))
        );
        // The rest when its time comes, in order after the batch before it.
        tokio::time::advance(FLUSH_AFTER).await;
        settle().await;
        let rest = recorder.published();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].1[0].starts_with(&sent.len().to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_goodbye_goes_out_after_the_private_messages_before_it() {
        let recorder = Recorder::default();
        let (queue, taken) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_in_order(recorder.clone(), taken));
        let (sent, flushed) = oneshot::channel();
        queue.send(private("n2", "last words")).await.unwrap();
        let bye = Outgoing::Publish {
            subject: Subject::from_static(GLOBAL),
            payload: Bytes::new(),
            sent: Some(sent),
        };
        queue.send(bye).await.unwrap();
        flushed.await.unwrap();
        let subjects: Vec<String> = recorder.published().into_iter().map(|(s, _)| s).collect();
        assert_eq!(subjects, ["linechat.node.n2", GLOBAL]);
    }

    #[test]
    fn reconnecting_backs_off_to_half_a_second_at_most() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(1));
        assert_eq!(reconnect_delay(3), Duration::from_millis(8));
        assert_eq!(reconnect_delay(9), RECONNECT_DELAY_AT_MOST);
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_DELAY_AT_MOST);
    }
}
