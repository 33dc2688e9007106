//! `JR <room>`: the room table answers with the room's handle, which the session keeps.

use linechat_protocol::{Name, Reply, Verb};

use super::{CommandError, Step};
use crate::server::room::Joined;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    let outcome = Box::pin(join(session, room)).await;
    Step::of(session, outcome, |room| Reply::ok_with(Verb::JoinRoom, room))
}

/// Joins the session's user to `room`; the room's name as it was created.
pub(in crate::server) async fn join(session: &mut Session, room: Name) -> Result<Name, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let member = presence.member().clone();
    let joined = session.server().rooms.join(member, room).await;
    entered(session, joined).await
}

/// After `CR` or `JR`: keeps the room's handle, once a registered user's membership is
/// stored (the user leaves again if it cannot be).
pub(super) async fn entered(session: &mut Session, joined: Joined) -> Result<Name, CommandError> {
    let room = joined?;
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let name = room.name().clone();
    if presence.is_registered()
        && let Err(error) = session
            .server()
            .store
            .join(presence.name().clone(), name.clone())
            .await
    {
        let _ = room.leave(presence.member().clone()).await;
        return Err(CommandError::Membership {
            doing: "joining",
            room: name,
            reason: error.client_message(),
        });
    }
    session.enter_room(room);
    Ok(name)
}
