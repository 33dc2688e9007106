//! `NICK <name>`: logs in as a guest, when the server allows guests.

use linechat_protocol::{ErrorCode, Name, Reply, Verb};

use super::login::{already_logged_in, enter, name_refused};
use super::Step;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, name: Name) -> Step {
    Box::pin(nick(session, name)).await
}

async fn nick(session: &mut Session, name: Name) -> Step {
    if let Err(error) = super::check_new_name(session, &name) {
        return super::refused(session, error).into();
    }
    if let Some(refusal) = already_logged_in(session) {
        return refusal.into();
    }
    if !session.settings().allow_guests {
        let message = "guests are not allowed here; REGISTER or LOGIN";
        return Reply::err(ErrorCode::GuestsDisabled, message).into();
    }
    let outbox = session.outbox().clone();
    match session.server().users.guest(name.clone(), outbox).await {
        Ok(member) => enter(session, Verb::Nick, member).await.into(),
        Err(refusal) => name_refused(&name, refusal, Verb::Nick).into(),
    }
}
