//! `JR <room>`: the room table answers with the room's handle, which the session keeps.

use linechat_protocol::{ErrorCode, Name, Reply, Verb};

use super::{Step, not_logged_in};
use crate::server::room::Joined;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    Box::pin(join(session, room)).await
}

async fn join(session: &mut Session, room: Name) -> Step {
    let Some(presence) = &session.presence else {
        return not_logged_in(session).into();
    };
    let member = presence.member.clone();
    let joined = session.context.server.rooms.join(member, room).await;
    entered(session, Verb::JoinRoom, joined).await.into()
}

/// After `CR` or `JR`: keeps the room's handle, once a registered user's membership is
/// stored (the user leaves again if it cannot be).
pub(super) async fn entered(session: &mut Session, verb: Verb, joined: Joined) -> Reply {
    let room = match joined {
        Ok(room) => room,
        Err(refusal) => return refusal,
    };
    let Some(presence) = &mut session.presence else {
        return not_logged_in(session);
    };
    let name = room.name().clone();
    if presence.registered
        && let Err(error) = session
            .context
            .server
            .store
            .join(presence.member.name.clone(), name.clone())
            .await
    {
        room.leave(presence.member.clone()).await;
        let message = format!("joining {name}: {}", error.client_message());
        return Reply::err(ErrorCode::Storage, message);
    }
    presence.rooms.insert(name.clone(), room);
    Reply::ok_with(verb, name)
}
