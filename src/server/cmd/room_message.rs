//! `RM <room> <text>`: straight to the room, whose handle the session holds since it joined.
//! Sent on without waiting: its `OK` follows in order.

use linechat_protocol::Name;

use super::{Step, not_logged_in};
use crate::server::session::{InFlight, Session};

pub(super) async fn apply(session: &mut Session, room: Name, text: String) -> Step {
    let Some(presence) = &session.presence else {
        return not_logged_in(session).into();
    };
    let said = match presence.rooms.get(&room) {
        Some(handle) => {
            let store = &session.context.server.store;
            handle.say(store, &presence.member, text).await
        }
        None => None,
    };
    match said {
        Some(ok) => session.pipeline(InFlight::Ready(ok)).await,
        None => {
            let refusal = session.context.server.rooms.not_member(room).await;
            session.reply_in_order(refusal).await;
        }
    }
    Step::Done
}
