//! `RM <room> <text>`: straight to the room, whose handle the session holds since it joined.
//! Sent on without waiting: its `OK` follows in order.

use linechat_protocol::{Name, Reply, Verb};

use super::{CommandError, Step, refused, reply_in_order};
use crate::connection::Delivery;
use crate::server::session::{InFlight, Session};

pub(super) async fn apply(session: &mut Session, room: Name, text: String) -> Step {
    match say(session, room, text).await {
        Ok(room) => {
            let ok = Delivery::new(Reply::ok_with(Verb::RoomMessage, room));
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
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    if let Some(handle) = presence.room(&room) {
        let store = &session.server().store;
        if handle.say(store, presence.member(), text).await.is_ok() {
            return Ok(handle.name().clone());
        }
    }
    Err(session.server().rooms.not_member(room).await.into())
}
