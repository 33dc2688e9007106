//! `CR <room>`: creates the room in the room table and joins it, within the connection's
//! limit of rooms created per minute.

use linechat_protocol::{Name, Reply, Verb};

use super::join_room::entered;
use super::{CommandError, Step, check_new_name};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    let outcome = Box::pin(create(session, room)).await;
    Step::of(session, outcome, |room| Reply::ok_with(Verb::CreateRoom, room))
}

/// Creates `room` and joins the session's user to it; the room's name as it was created.
pub(in crate::server) async fn create(session: &mut Session, room: Name) -> Result<Name, CommandError> {
    check_new_name(session, &room)?;
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let member = presence.member().clone();
    if !session.may_create_room() {
        let per_minute = session.settings().rooms_created_per_minute;
        return Err(CommandError::Flood { per_minute });
    }
    let joined = session.server().rooms.create(member, room).await;
    entered(session, joined).await
}
