//! `NICK <name>`: logs in as a guest, when the server allows guests.

use linechat_protocol::{Name, Verb};

use super::Step;
use super::login::{Entry, LoginError, answer, enter, not_logged_in};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, name: Name) -> Step {
    let logged_in = Box::pin(guest(session, name)).await;
    answer(session, Verb::Nick, logged_in).into()
}

/// Logs in as the guest `name`; the name as logged in.
pub(in crate::server) async fn guest(session: &mut Session, name: Name) -> Result<Name, LoginError> {
    super::check_new_name(session, &name).map_err(LoginError::NewName)?;
    not_logged_in(session)?;
    if !session.settings().allow_guests {
        return Err(LoginError::GuestsDisabled);
    }
    let outbox = session.outbox().clone();
    match session.server().users.guest(name.clone(), outbox).await {
        Ok(member) => Ok(enter(session, member, Entry::Guest).await),
        Err(refusal) => Err(LoginError::NameTaken {
            name,
            refusal,
            registering: false,
        }),
    }
}
