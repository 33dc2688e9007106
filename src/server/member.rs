//! A logged-in user as the actors see them.

use crate::connection::Outbox;
use linechat_protocol::Name;

/// Who a user is, beyond the name they go by: their account if they have one, otherwise their
/// guest session. History and queued messages are filed under it, never under the name, so
/// that someone who takes a name later reads nothing of its earlier owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserId {
    /// A registered account's row id: stable for the account's life, never reused.
    Account(i64),
    /// One guest session. Random, so that no later session (after a restart either) has it.
    Guest(u64),
}

impl UserId {
    /// A fresh guest identity.
    pub fn new_guest() -> Self {
        // A failing system random source is a broken machine; a clock-based value still
        // differs between sessions.
        let random = getrandom::u64().unwrap_or_else(|_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |since| since.as_nanos() as u64)
        });
        UserId::Guest(random)
    }

    /// How the store files it: `a<id>` for an account, `g<hex>` for a guest session.
    pub fn key(&self) -> String {
        match self {
            UserId::Account(id) => format!("a{id}"),
            UserId::Guest(session) => format!("g{session:016x}"),
        }
    }

    /// The identity [`UserId::key`] gave, as another node of a cluster sends it.
    pub fn from_key(key: &str) -> Option<Self> {
        match key.split_at_checked(1)? {
            ("a", id) => id.parse().ok().map(UserId::Account),
            ("g", session) => u64::from_str_radix(session, 16).ok().map(UserId::Guest),
            _ => None,
        }
    }
}

/// A user's name and identity, and the outbox of the connection they are logged in on. Two
/// members with the same name but different connections are different sessions: a stale
/// message from an old session never removes the new one.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Name,
    pub id: UserId,
    pub outbox: Outbox,
}
