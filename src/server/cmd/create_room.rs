//! `CR <room>`: creates the room in the room table and joins it, within the connection's
//! limit of rooms created per minute.

use linechat_protocol::{ErrorCode, Name, Reply, Verb};

use super::join_room::entered;
use super::{Step, not_logged_in};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    Box::pin(create(session, room)).await
}

async fn create(session: &mut Session, room: Name) -> Step {
    if let Some(refusal) = session.check_new_name(&room) {
        return refusal.into();
    }
    let Some(presence) = &session.presence else {
        return not_logged_in(session).into();
    };
    let member = presence.member.clone();
    if !session.room_creations.allow() {
        let per_minute = session.context.settings.rooms_created_per_minute;
        let message = format!(
            "rooms are created at most {per_minute} per minute per connection; the line was dropped"
        );
        return Reply::err(ErrorCode::Flood, message).into();
    }
    let joined = session.context.server.rooms.create(member, room).await;
    entered(session, Verb::CreateRoom, joined).await.into()
}
