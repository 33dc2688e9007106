//! `TOPIC <room> [text]`: a room's topic, kept by the room table. Anyone logged in may read
//! it; a member of the room (whose session holds its handle) may set it, up to
//! [`MAX_TOPIC_BYTES`].

use linechat_protocol::{Name, Reply, Verb};

use super::{CommandError, Step};
use crate::server::room::{MAX_TOPIC_BYTES, RoomTopic};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name, text: Option<String>) -> Step {
    match text {
        None => {
            let outcome = topic(session, room).await;
            Step::of(session, outcome, |RoomTopic { room, topic }| {
                Reply::Topic { room, topic }
            })
        }
        Some(text) => {
            let outcome = set_topic(session, room, Some(text)).await;
            Step::of(session, outcome, |room| Reply::ok_with(Verb::Topic, room))
        }
    }
}

/// The topic of `room`, if it has one.
pub(in crate::server) async fn topic(session: &Session, room: Name) -> Result<RoomTopic, CommandError> {
    if !session.is_logged_in() {
        return Err(CommandError::NotLoggedIn);
    }
    Ok(session.server().rooms.topic(room).await?)
}

/// Sets the topic of `room`, a room of the session's user, or clears it (`None`, which the
/// line protocol cannot ask for); the room's name as it was created, once it is stored.
pub(in crate::server) async fn set_topic(
    session: &Session,
    room: Name,
    text: Option<String>,
) -> Result<Name, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let rooms = &session.server().rooms;
    let Some(handle) = presence.room(&room) else {
        return Err(rooms.not_member(room).await.into());
    };
    if let Some(text) = &text
        && text.len() > MAX_TOPIC_BYTES
    {
        return Err(CommandError::TopicTooLong(text.len()));
    }
    let room = handle.name().clone();
    let by = presence.name().clone();
    rooms.set_topic(by, room.clone(), text).await?;
    Ok(room)
}
