//! `TOPIC <room> [text]`: a room's topic, kept by the room table. Anyone logged in may read
//! it; a member of the room (whose session holds its handle) may set it, up to
//! [`MAX_TOPIC_BYTES`].

use linechat_protocol::{ErrorCode, Name, Reply};

use super::{Step, not_logged_in};
use crate::server::room::MAX_TOPIC_BYTES;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name, text: Option<String>) -> Step {
    let Some(presence) = &session.presence else {
        return not_logged_in(session).into();
    };
    let rooms = &session.context.server.rooms;
    let Some(text) = text else {
        return rooms.topic(room).await.into();
    };
    let Some(handle) = presence.rooms.get(&room) else {
        return rooms.not_member(room).await.into();
    };
    if text.len() > MAX_TOPIC_BYTES {
        let message = format!(
            "a topic is at most {MAX_TOPIC_BYTES} bytes; this one is {}",
            text.len()
        );
        return Reply::err(ErrorCode::BadArguments, message).into();
    }
    let room = handle.name().clone();
    let by = presence.member.name.clone();
    rooms.set_topic(by, room, Some(text)).await.into()
}
