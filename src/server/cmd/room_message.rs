//! `RM <room> <text>`: straight to the room, whose handle the session holds since it joined.
//! Sent on without waiting: its `OK` follows in order.

use std::sync::Arc;

use linechat_protocol::{Name, Reply, Verb};

use super::{CommandError, Step, refused, reply_in_order};
use crate::connection::Delivery;
use crate::server::session::{InFlight, JoinedRoom, Session};

pub(super) async fn apply(session: &mut Session, room: Name, text: String) -> Step {
    match said_in(session, room, text).await {
        Ok(joined) => {
            let ok = joined.said().clone();
            session.pipeline(InFlight::Ready(ok)).await;
        }
        Err(error) => {
            let refusal = refused(session, error);
            reply_in_order(session, refusal).await;
        }
    }
    Step::Done
}

/// Says `text` in `room`, a room of the session's user; the room's name as it was created.
pub(in crate::server) async fn say(
    session: &Session,
    room: Name,
    text: String,
) -> Result<Name, CommandError> {
    let joined = said_in(session, room, text).await?;
    Ok(joined.handle().name().clone())
}

/// The same, answering the room the message was said in.
async fn said_in(
    session: &Session,
    room: Name,
    text: String,
) -> Result<&JoinedRoom, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    if let Some(joined) = presence.joined(&room) {
        let store = &session.server().store;
        if joined.handle().say(store, presence.member(), text).await.is_ok() {
            return Ok(joined);
        }
    }
    Err(session.server().rooms.not_member(room).await.into())
}

/// The answer to a message said in `room`, `OK RM <room>`: made once per room the user joins.
pub(in crate::server) fn room_message_sent(room: &Name) -> Arc<Delivery> {
    Delivery::new(Reply::ok_with(Verb::RoomMessage, room))
}
