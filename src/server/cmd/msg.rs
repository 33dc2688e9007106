//! `MSG <text>`: to everyone online, through the directory. Sent on without waiting: its
//! `OK` follows in order (see `Session::pipeline`).

use crate::server::mailbox::Answer;

use super::{CommandError, Step, refused};
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
