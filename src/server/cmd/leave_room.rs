//! `LR <room>`: leaves through the room's handle, after a registered user's membership is
//! deleted on disk.

use linechat_protocol::{Name, Reply, Verb};

use super::{CommandError, Step};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    let outcome = Box::pin(leave(session, room)).await;
    Step::of(session, outcome, |room| Reply::ok_with(Verb::LeaveRoom, room))
}

/// Takes the session's user out of `room`; the room's name as it was created.
pub(in crate::server) async fn leave(session: &mut Session, room: Name) -> Result<Name, CommandError> {
    let server = session.server();
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let Some(handle) = presence.room(&room) else {
        return Err(server.rooms.not_member(room).await.into());
    };
    // A registered user's membership is deleted on disk first, and the user leaves only once
    // that is stored.
    if presence.is_registered()
        && let Err(error) = server
            .store
            .leave(presence.name().clone(), handle.name().clone())
            .await
    {
        return Err(CommandError::Membership {
            doing: "leaving",
            room,
            reason: error.client_message(),
        });
    }
    handle.leave(presence.member().clone()).await?;
    let name = handle.name().clone();
    session.leave_room(&room);
    Ok(name)
}
