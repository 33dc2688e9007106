//! `AWAY [message]`: away with a message, which whoever sends the user a private message is
//! told (`OK PM <user> away: <message>`), or back without one. It lasts until the user says
//! otherwise or the session ends.

use std::sync::Arc;

use linechat_protocol::{Reply, Verb};

use super::{CommandError, Step};
use crate::server::session::Session;
use crate::server::user::MAX_AWAY_BYTES;

pub(super) async fn apply(session: &mut Session, message: Option<String>) -> Step {
    Step::of(session, set_away(session, message), |away| match away {
        true => Reply::ok(Verb::Away),
        false => Reply::ok_with(Verb::Away, "back"),
    })
}

/// Marks the user away with `message`, or back without one; whether they are away now.
pub(in crate::server) fn set_away(
    session: &Session,
    message: Option<String>,
) -> Result<bool, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    if let Some(message) = &message
        && message.len() > MAX_AWAY_BYTES
    {
        return Err(CommandError::AwayTooLong(message.len()));
    }
    let away = message.is_some();
    // First, so that a message sent to the user once this is answered goes through the
    // directory, which hears of the away message before it.
    session.outbox().set_detoured(away);
    let member = presence.member().clone();
    session.server().users.away(member, message.map(Arc::from));
    Ok(away)
}
