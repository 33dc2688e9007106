//! `REGISTER <name> <password>`: creates an account (the directory holds the name while the
//! account store hashes and stores it) and logs in.

use linechat_protocol::{Name, Password, Verb};

use super::login::{account_failure, already_logged_in, enter, name_refused};
use super::Step;
use crate::server::session::Session;
use crate::server::user::RegisterError;

pub(super) async fn apply(session: &mut Session, name: Name, password: Password) -> Step {
    Box::pin(register(session, name, password)).await
}

async fn register(session: &mut Session, name: Name, password: Password) -> Step {
    if let Err(error) = super::check_new_name(session, &name) {
        return super::refused(session, error).into();
    }
    if let Some(refusal) = already_logged_in(session) {
        return refusal.into();
    }
    let (ip, outbox) = (session.peer().ip(), session.outbox().clone());
    let users = &session.server().users;
    match users.register(name.clone(), password, ip, outbox).await {
        Ok(member) => enter(session, Verb::Register, member).await.into(),
        Err(RegisterError::Name(refusal)) => name_refused(&name, refusal, Verb::Register).into(),
        Err(RegisterError::Account(error)) => account_failure(error).into(),
    }
}
