//! `MSG <text>`: to everyone online, through the directory. Sent on without waiting: its
//! `OK` follows in order (see `Session::pipeline`).

use super::{Step, not_logged_in};
use crate::server::session::{InFlight, Session};

pub(super) async fn apply(session: &mut Session, text: String) -> Step {
    let Some(presence) = &session.presence else {
        return not_logged_in(session).into();
    };
    let answer = session
        .context
        .server
        .users
        .broadcast(presence.member.clone(), text);
    session.pipeline(InFlight::Broadcast(answer)).await;
    Step::Done
}
