//! `MSG <text>`: to everyone online, through the directory. Sent on without waiting: its
//! `OK` follows in order (see `Session::pipeline`).

use std::sync::Arc;

use linechat_protocol::{Reply, Verb};

use crate::server::mailbox::{Answer, Gone};

use super::{CommandError, Step, refused};
use crate::connection::Delivery;
use crate::server::session::{InFlight, Session};

pub(super) async fn apply(session: &mut Session, text: String) -> Step {
    match broadcast(session, text) {
        Ok(answer) => session.pipeline(InFlight::Broadcast(answer)).await,
        Err(error) => return refused(session, error).into(),
    }
    Step::Done
}

/// Sends `text` to everyone online but its sender, through the directory; answered on the
/// returned channel once it is sent.
pub(in crate::server) fn broadcast(
    session: &Session,
    text: String,
) -> Result<Answer<()>, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let users = &session.server().users;
    Ok(users.broadcast(presence.member().clone(), text))
}

/// The line protocol's answer to a global message, once the directory has sent it: `OK MSG`,
/// or, if the directory is gone, that the server is unavailable.
pub(in crate::server) fn msg_answer(sent: Result<(), Gone>) -> Arc<Delivery> {
    Delivery::new(match sent {
        Ok(()) => Reply::ok(Verb::Msg),
        Err(Gone) => super::unavailable(),
    })
}
