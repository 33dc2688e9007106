//! `LRS`: the rooms, from the room table.

use linechat_protocol::Reply;

use super::{CommandError, Step};
use crate::server::room::RoomSummary;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session) -> Step {
    let outcome = match session.presence() {
        None => Err(CommandError::NotLoggedIn),
        Some(_) => session.server().rooms.list().await.map_err(Into::into),
    };
    Step::of(session, outcome, Reply::Rooms)
}

/// Every room with its member count and topic, sorted by name.
pub(in crate::server) async fn summaries(
    session: &Session,
) -> Result<Vec<RoomSummary>, CommandError> {
    if !session.is_logged_in() {
        return Err(CommandError::NotLoggedIn);
    }
    Ok(session.server().rooms.summaries().await?)
}
