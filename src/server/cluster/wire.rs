//! What nodes say to each other over NATS. Every node speaks these same messages, as JSON (small,
//! readable with `nats sub`, and tolerant of fields a newer node adds). Room subjects carry no
//! JSON: their payload is the line protocol's encoding of the room event, made once by the node
//! where it happened and queued as it is to each member of every other node.
//!
//! Names travel as strings and are checked again on arrival: a node never trusts a name it did
//! not parse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::server::member::UserId;
use linechat_protocol::{Name, Reply, Topic};

/// On the global subject, heard by every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t")]
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
        name: String,
        id: String,
        claim: u64,
    },
    /// A user on `node` went offline; `how` as `NOTICE OFFLINE` words it.
    Offline {
        node: String,
        name: String,
        how: String,
    },
    /// `MSG` from a user of the publishing node.
    Msg { from: String, text: String },
    /// A new account: the name stays taken while its owner is offline.
    Registered { name: String, id: i64 },
    /// `CR` on the publishing node.
    RoomCreated { room: String, by: String },
    /// The publishing node deleted an expired room from the shared store: nobody was in it
    /// on any node it knew of, and no registered user remembered it.
    RoomExpired { room: String },
    /// A user of `node` joined or left `room` (the room's members see it on its own subject;
    /// this keeps every node's list of members, for `LRU`).
    Joined {
        node: String,
        room: String,
        user: String,
    },
    Left {
        node: String,
        room: String,
        user: String,
    },
    /// `by` set the topic of `room` to `text` (`None`: cleared) at `at` (Unix milliseconds),
    /// and it is stored: for every node's room table (the room's members heard it on its
    /// subject).
    Topic {
        room: String,
        by: String,
        text: Option<String>,
        at: u64,
    },
}

/// On a node's own subject: a private message to one of its users, or an array of them in
/// the order sent (several queued one after another go out as one NATS message). Published
/// through the node's one queue, as everything else, so that one sender's messages keep their
/// order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pm {
    pub from: String,
    /// The sender's identity, for a message queued for an account that went offline.
    pub from_id: String,
    pub to: String,
    pub text: String,
}

impl Pm {
    /// The private messages of a node subject's payload: one, or an array; `None` if it is
    /// neither.
    pub(crate) fn read(payload: &[u8]) -> Option<Vec<Pm>> {
        if payload.trim_ascii_start().starts_with(b"[") {
            serde_json::from_slice(payload).ok()
        } else {
            serde_json::from_slice(payload).ok().map(|pm| vec![pm])
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserState {
    pub name: String,
    pub id: String,
    pub claim: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomState {
    pub room: String,
    pub members: Vec<String>,
    /// The room's topic as the node knows it: a node that missed a `Topic` (cut off from
    /// NATS when it went out) catches up from this. Absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<TopicState>,
    /// When it has no topic because it was cleared: when (Unix milliseconds), so that a
    /// node that missed the clearing clears it too. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_cleared_at: Option<u64>,
}

/// A room's topic, set by `by` at `at` (Unix milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicState {
    pub text: String,
    pub by: String,
    pub at: u64,
}

impl TopicState {
    pub(crate) fn of(topic: &Topic) -> Self {
        Self {
            text: topic.text.clone(),
            by: topic.by.to_string(),
            at: millis(topic.at),
        }
    }

    /// The topic, if its setter's name is one.
    pub(crate) fn topic(self) -> Option<Topic> {
        Some(Topic {
            by: name(&self.by)?,
            text: self.text,
            at: time(self.at),
        })
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

/// What the names bucket holds under a name's key: who holds it, on which node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub name: String,
    pub node: String,
    /// The holder's identity ([`UserId::key`]); an account's is the same on every node.
    pub id: String,
    /// Random, per claim: tells this claim from a later one of the same user.
    #[serde(default)]
    pub nonce: u64,
}

/// A name that came over the wire, if it is one.
pub(crate) fn name(raw: &str) -> Option<Name> {
    Name::parse(raw).ok()
}

/// A user identity that came over the wire.
pub(crate) fn user_id(raw: &str) -> Option<UserId> {
    UserId::from_key(raw)
}

/// The `NOTICE OFFLINE` for `name` leaving as `how` words it.
pub(crate) fn offline_notice(name: &Name, how: &str) -> Option<linechat_protocol::Notice> {
    match Reply::parse(&format!("NOTICE OFFLINE {name} {how}")) {
        Ok(Reply::Notice(notice)) => Some(notice),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(text: &str) -> Pm {
        Pm {
            from: "alice".into(),
            from_id: "g:alice".into(),
            to: "bob".into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_node_subject_carries_one_private_message_or_an_array_in_order() {
        let one = serde_json::to_vec(&pm("hi")).unwrap();
        let read = Pm::read(&one).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].text, "hi");
        let many = serde_json::to_vec(&[pm("1"), pm("2"), pm("3")]).unwrap();
        let texts: Vec<String> = Pm::read(&many)
            .unwrap()
            .into_iter()
            .map(|pm| pm.text)
            .collect();
        assert_eq!(texts, ["1", "2", "3"]);
        assert!(Pm::read(b"[{\"from\":1}]").is_none());
        assert!(Pm::read(b"garbage").is_none());
    }
}
