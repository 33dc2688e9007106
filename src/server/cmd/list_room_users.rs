//! `LRU <room>`: a room's members, from the room table.

use linechat_protocol::{Name, Reply};

use super::{CommandError, Step};
use crate::server::room::RoomMembers;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    let outcome = members(session, room).await;
    Step::of(session, outcome, |RoomMembers { room, users }| {
        Reply::RoomUsers { room, users }
    })
}

/// The members of `room`, on every node.
pub(in crate::server) async fn members(session: &Session, room: Name) -> Result<RoomMembers, CommandError> {
    if !session.is_logged_in() {
        return Err(CommandError::NotLoggedIn);
    }
    Ok(session.server().rooms.members(room).await?)
}
