//! `LRU <room>`: a room's members, from the room table.

use linechat_protocol::Name;

use super::{Step, not_logged_in};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    if session.presence.is_none() {
        return not_logged_in(session).into();
    }
    session.context.server.rooms.members(room).await.into()
}
