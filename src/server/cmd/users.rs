//! `USERS`: who is online, from the directory.

use super::{Step, not_logged_in};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session) -> Step {
    if session.presence.is_none() {
        return not_logged_in(session).into();
    }
    session.context.server.users.list().await.into()
}
