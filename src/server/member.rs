//! A logged-in user as the actors see them.

use crate::common::Name;
use crate::connection::Outbox;

/// A user's name and the outbox of the connection they are logged in on. Two members with the
/// same name but different connections are different sessions: a stale message from an old
/// session never removes the new one.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Name,
    pub outbox: Outbox,
}
