//! `USERS`: who is online, from the directory.

use linechat_protocol::{Name, Reply};

use super::{CommandError, Step};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session) -> Step {
    let outcome = online(session).await;
    Step::of(session, outcome, Reply::Users)
}

/// Everyone online, on every node, sorted.
pub(in crate::server) async fn online(session: &Session) -> Result<Vec<Name>, CommandError> {
    if !session.is_logged_in() {
        return Err(CommandError::NotLoggedIn);
    }
    session
        .server()
        .users
        .list()
        .await
        .ok_or(CommandError::Unavailable)
}
