//! `LR <room>`: leaves through the room's handle, after a registered user's membership is
//! deleted on disk.

use linechat_protocol::{ErrorCode, Name, Reply};

use super::{Step, not_logged_in};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, room: Name) -> Step {
    Box::pin(leave(session, room)).await
}

async fn leave(session: &mut Session, room: Name) -> Step {
    let server = &session.context.server;
    let Some(presence) = &mut session.presence else {
        return not_logged_in(session).into();
    };
    let Some(handle) = presence.rooms.get(&room) else {
        return server.rooms.not_member(room).await.into();
    };
    // A registered user's membership is deleted on disk first, and the user leaves only once
    // that is stored.
    if presence.registered
        && let Err(error) = server
            .store
            .leave(presence.member.name.clone(), handle.name().clone())
            .await
    {
        let message = format!("leaving {room}: {}", error.client_message());
        return Reply::err(ErrorCode::Storage, message).into();
    }
    let reply = handle.leave(presence.member.clone()).await;
    if let Reply::Ok { .. } = reply {
        presence.rooms.remove(&room);
    }
    reply.into()
}
