//! `REGISTER <name> <password>`: creates an account (the directory holds the name while the
//! account store hashes and stores it) and logs in.

use linechat_protocol::{Name, Password, Verb};

use super::Step;
use super::login::{Entry, LoginError, answer, enter, not_logged_in};
use crate::server::session::Session;
use crate::server::user::RegisterError;

pub(super) async fn apply(session: &mut Session, name: Name, password: Password) -> Step {
    let logged_in = Box::pin(register(session, name, password)).await;
    answer(session, Verb::Register, logged_in).into()
}

/// Registers the account `name` and logs in to it; the name as registered.
async fn register(
    session: &mut Session,
    name: Name,
    password: Password,
) -> Result<Name, LoginError> {
    super::check_new_name(session, &name).map_err(LoginError::NewName)?;
    not_logged_in(session)?;
    let (ip, outbox) = (session.peer().ip(), session.outbox().clone());
    let users = &session.server().users;
    match users.register(name.clone(), password, ip, outbox).await {
        Ok(member) => Ok(enter(session, member, Entry::Registered).await),
        Err(RegisterError::Name(refusal)) => Err(LoginError::NameTaken {
            name,
            refusal,
            registering: true,
        }),
        Err(RegisterError::Account(error)) => Err(LoginError::Account(error)),
    }
}
