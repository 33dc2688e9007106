//! What nodes say to each other over NATS. Every node speaks these same messages, in postcard
//! (serde's data model in a compact binary form) behind a version byte: a node that gets a
//! message of a version it does not know (a newer node's) logs it and carries on. Room
//! subjects carry the room's events ([`Event`](crate::server::event::Event)), encoded once by
//! the node where they happened; each node that hears one makes one delivery of it for all
//! its members there.
//!
//! Names travel as [`Name`]s: a message whose names are not names is not read, so a node never
//! acts on a name it did not check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::server::member::UserId;
use crate::server::storage::MessageId;
use linechat_protocol::{Departure, Name, Topic};

/// The version of what this node writes, its first byte. A change that an older node could
/// not read takes the next one.
pub(crate) const VERSION: u8 = 3;

/// Why a message from another node was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("a message of version {0}, which this node does not know (it knows {VERSION})")]
    Version(u8),
    #[error("an empty message")]
    Empty,
    #[error("an unreadable message: {0}")]
    Unreadable(#[from] postcard::Error),
}

/// `message`, as nodes write it.
pub(crate) fn encode(message: &impl Serialize) -> Bytes {
    let mut out = BytesMut::with_capacity(64).writer();
    out.get_mut().put_u8(VERSION);
    // Our own types, of strings and numbers, into memory: they always serialize.
    let _ = postcard::to_io(message, &mut out);
    out.into_inner().freeze()
}

/// The message in `payload`, written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let body = versioned(payload)?;
    Ok(postcard::from_bytes(body)?)
}

/// What follows the version byte, if this node knows the version.
fn versioned(payload: &[u8]) -> Result<&[u8], WireError> {
    match payload.split_first() {
        Some((&VERSION, body)) => Ok(body),
        Some((&version, _)) => Err(WireError::Version(version)),
        None => Err(WireError::Empty),
    }
}

/// On the global subject, heard by every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Global {
    /// "I am alive", every `node_timeout / 4` ([`super::heartbeat_every`]).
    Heartbeat { node: String, incarnation: u64 },
    /// A node shuts down: its users are gone (`NOTICE OFFLINE <name> SHUTDOWN`) now, not
    /// after the node timeout.
    Bye { node: String, incarnation: u64 },
    /// The publishing node declared `node` (its run `incarnation`) lost, and freed its users'
    /// names; or it heard from `node` without knowing its state. If `node` is alive after
    /// all, it rejoins: it checks its users' claims and sends its state again.
    Lost { node: String, incarnation: u64 },
    /// A node (re)connected: every node answers with its `Users` and `Rooms`, since what
    /// happened meanwhile went unheard.
    Hello { node: String, incarnation: u64 },
    /// Everyone online on a node, published by its directory in the turn it read them, so
    /// that it falls in order among the node's `Online` and `Offline`: it replaces what the
    /// others knew of the node's users.
    Users {
        node: String,
        incarnation: u64,
        users: Vec<UserState>,
    },
    /// Every room a node knows, with its members there. Gathered from the room tasks while
    /// they go on, so it can be older than a `Left` published meanwhile: it only adds to what
    /// the others know (members leave by `Left` or by their node's loss).
    Rooms {
        node: String,
        incarnation: u64,
        rooms: Vec<RoomState>,
    },
    /// A user came online on `node`, holding the name claim at `claim` (its revision).
    Online {
        node: String,
        name: Name,
        #[serde(with = "user_key")]
        id: UserId,
        claim: u64,
    },
    /// A user on `node` went offline, as `how` says.
    Offline {
        node: String,
        name: Name,
        how: Departure,
    },
    /// `MSG` from a user of the publishing node.
    Msg {
        /// Its id and time (milliseconds since the Unix epoch), given where it was accepted.
        id: MessageId,
        at: i64,
        from: Name,
        text: String,
    },
    /// A new account: the name stays taken while its owner is offline.
    Registered { name: Name, id: i64 },
    /// `CR` on the publishing node.
    RoomCreated { room: Name, by: Name },
    /// The publishing node deleted an expired room from the shared store: nobody was in it
    /// on any node it knew of, and no registered user remembered it.
    RoomExpired { room: Name },
    /// A user of `node` joined or left `room` (the room's members see it on its own subject;
    /// this keeps every node's list of members, for `LRU`).
    Joined {
        node: String,
        room: Name,
        user: Name,
    },
    Left {
        node: String,
        room: Name,
        user: Name,
    },
    /// `by` set the topic of `room` to `text` (`None`: cleared) at `at` (Unix milliseconds),
    /// and it is stored: for every node's room table (the room's members heard it on its
    /// subject).
    Topic {
        room: Name,
        by: Name,
        text: Option<String>,
        at: u64,
    },
    /// A user on `node` is away with `message` (`AWAY`), or back (`None`).
    Away {
        node: String,
        name: Name,
        message: Option<String>,
    },
}

/// A private message to a user of another node. They travel on the recipient's node's own
/// subject in batches, a `Vec<Pm>` per NATS message, in the order sent
/// ([`super::batch::PrivateBatches`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pm {
    /// Its id and time (milliseconds since the Unix epoch), given on the sender's node: the
    /// recipient's node delivers it and, on a shared store, stores it under them.
    pub id: MessageId,
    pub at: i64,
    pub from: Name,
    /// The sender's identity, for a message queued for an account that went offline.
    #[serde(with = "user_key")]
    pub from_id: UserId,
    pub to: Name,
    pub text: String,
}

impl Pm {
    /// About how many bytes this message takes in a batch, to bound a batch's size.
    pub(crate) fn size(&self) -> usize {
        // Each field's length prefix, the identity's key (up to 17 bytes), the id and time.
        self.from.as_str().len() + self.to.as_str().len() + self.text.len() + 44
    }
}

/// A [`UserId`] as it travels: its key ([`UserId::key`]), checked when read.
mod user_key {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::server::member::UserId;

    pub(super) fn serialize<S: Serializer>(id: &UserId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&id.key())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<UserId, D::Error> {
        let key = <&str>::deserialize(deserializer)?;
        UserId::from_key(key).ok_or_else(|| D::Error::custom("not a user identity"))
    }
}

/// A user online on a node, holding the name claim at `claim` (its revision).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserState {
    pub name: Name,
    #[serde(with = "user_key")]
    pub id: UserId,
    pub claim: u64,
    /// Their away message, while they are away.
    pub away: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomState {
    pub room: Name,
    pub members: Vec<Name>,
    /// The room's topic as the node knows it: a node that missed a `Topic` (cut off from
    /// NATS when it went out) catches up from this.
    pub topic: Option<TopicState>,
    /// When it has no topic because it was cleared: when (Unix milliseconds), so that a
    /// node that missed the clearing clears it too.
    pub topic_cleared_at: Option<u64>,
}

/// A room's topic, set by `by` at `at` (Unix milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicState {
    pub text: String,
    pub by: Name,
    pub at: u64,
}

impl TopicState {
    pub(crate) fn of(topic: &Topic) -> Self {
        Self {
            text: topic.text.clone(),
            by: topic.by.clone(),
            at: millis(topic.at),
        }
    }

    pub(crate) fn into_topic(self) -> Topic {
        Topic {
            by: self.by,
            text: self.text,
            at: time(self.at),
        }
    }
}

/// A time as it travels: Unix milliseconds.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(0))
}

/// A time that travelled as Unix milliseconds.
pub(crate) fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// What the names bucket holds under a name's key: who holds it, on which node. JSON, as a
/// key-value store's value (readable with `nats kv get`), not a message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub name: Name,
    pub node: String,
    /// The holder's identity ([`UserId::key`]); an account's is the same on every node.
    pub id: String,
    /// Random, per claim: tells this claim from a later one of the same user.
    #[serde(default)]
    pub nonce: u64,
}

/// A user identity that came over the wire.
#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn pm(text: &str) -> Pm {
        Pm {
            id: MessageId::default(),
            at: 0,
            from: name("alice"),
            from_id: UserId::Guest(7),
            to: name("bob"),
            text: text.into(),
        }
    }

    #[test]
    fn a_batch_of_private_messages_round_trips_in_order_with_its_identities_checked() {
        let batch = encode(&vec![pm("1"), pm("2"), pm("3")]);
        let read: Vec<Pm> = decode(&batch).unwrap();
        let texts: Vec<&str> = read.iter().map(|pm| pm.text.as_str()).collect();
        assert_eq!(texts, ["1", "2", "3"]);
        assert_eq!(read[0].from_id, UserId::Guest(7));
        // The same batch with an identity that is none.
        let mut forged = batch.to_vec();
        let at = forged.iter().position(|&byte| byte == b'g').unwrap();
        forged[at] = b'x';
        assert!(matches!(
            decode::<Vec<Pm>>(&forged),
            Err(WireError::Unreadable(_))
        ));
        assert!(decode::<Vec<Pm>>(b"\x02garbage").is_err());
        assert!(decode::<Vec<Pm>>(b"").is_err());
    }

    #[test]
    fn a_message_round_trips_and_a_name_that_is_not_one_is_refused() {
        let offline = Global::Offline {
            node: "n1".into(),
            name: name("alice"),
            how: Departure::Quit(Some("bye now".into())),
        };
        let encoded = encode(&offline);
        assert_eq!(encoded[0], VERSION);
        match decode::<Global>(&encoded).unwrap() {
            Global::Offline { node, name, how } => {
                assert_eq!((node.as_str(), name.as_str()), ("n1", "alice"));
                assert_eq!(how, Departure::Quit(Some("bye now".into())));
            }
            other => panic!("{other:?}"),
        }
        // The same message with a name no client could have taken.
        let mut forged = encoded.to_vec();
        let at = forged.windows(5).position(|w| w == b"alice").unwrap();
        forged[at] = b' ';
        assert!(matches!(
            decode::<Global>(&forged),
            Err(WireError::Unreadable(_))
        ));
    }

    #[test]
    fn a_message_of_another_version_is_told_apart() {
        let mut newer = encode(&Global::Msg {
            id: MessageId::default(),
            at: 0,
            from: name("alice"),
            text: "hi".into(),
        })
        .to_vec();
        newer[0] = VERSION + 1;
        assert!(matches!(
            decode::<Global>(&newer),
            Err(WireError::Version(v)) if v == VERSION + 1
        ));
        assert!(matches!(decode::<Global>(b""), Err(WireError::Empty)));
    }
}
