//! `LOGIN <name> <password>`: logs in to an account, taking over a session already logged in
//! to it, and puts the user back in their rooms. Also what the three login commands share.


use linechat_protocol::{ErrorCode, Name, Password, Reply, Verb};
use tracing::{info, warn};

use super::Step;
use crate::connection::Delivery;
use crate::server::accounts::AccountError;
use crate::server::event::Event;
use crate::server::member::{Member, UserId};
use crate::server::session::{Presence, Session};
use crate::server::user::NameRefusal;

pub(super) async fn apply(session: &mut Session, name: Name, password: Password) -> Step {
    Box::pin(login(session, name, password)).await
}

async fn login(session: &mut Session, name: Name, password: Password) -> Step {
    if let Some(refusal) = already_logged_in(session) {
        return refusal.into();
    }
    let server = session.server();
    let registered = match server.accounts.verify(name.clone(), password, session.peer().ip()).await
    {
        Ok(registered) => registered,
        Err(AccountError::BadPassword) => {
            info!(user = %name, "failed login");
            return Reply::err(ErrorCode::BadPassword, "wrong name or password").into();
        }
        Err(error @ AccountError::Throttled(_)) => {
            warn!(user = %name, "login throttled");
            return account_failure(error).into();
        }
        Err(error) => return account_failure(error).into(),
    };
    let member = Member {
        name: registered.name,
        id: UserId::Account(registered.id),
        outbox: session.outbox().clone(),
    };
    if !server.users.login(member.clone()).await {
        return account_failure(AccountError::Unavailable).into();
    }
    enter(session, Verb::Login, member).await.into()
}

/// `ALREADY_LOGGED_IN`, for a login command from a session that is logged in.
pub(super) fn already_logged_in(session: &Session) -> Option<Reply> {
    let presence = session.presence()?;
    let message = format!("you are logged in as {}", presence.name());
    Some(Reply::err(ErrorCode::AlreadyLoggedIn, message))
}

/// After a successful login: the session has a [`Presence`], and a returning account is put
/// back in its rooms.
pub(super) async fn enter(session: &mut Session, verb: Verb, member: Member) -> Reply {
    let name = member.name.clone();
    session.logged_in_as(&name);
    info!("logged in");
    let mut presence = new_presence(session, member, verb != Verb::Nick);
    if verb == Verb::Login {
        restore(session, &mut presence).await;
    }
    session.enter(presence);
    Reply::ok_with(verb, name)
}

/// The presence of `member`, online through the directory, in no rooms yet: a login's, or a
/// guest's under a new name (IRC's `NICK`).
pub(in crate::server) fn new_presence(session: &Session, member: Member, registered: bool) -> Presence {
    Presence::new(session.server().users.clone(), member, registered)
}

/// Puts a returning user back in their rooms (they see `JR <room> <you>` for each, the
/// members the usual `JR`), then hands over the private messages that waited for them.
async fn restore(session: &Session, presence: &mut Presence) {
    let server = session.server();
    let name = presence.name().clone();
    for room in server.store.memberships(name.clone()).await {
        if let Ok(handle) = server.rooms.join(presence.member().clone(), room).await {
            let _ = session.outbox().push(Delivery::event(Event::Joined {
                room: handle.name().clone(),
                user: name.clone(),
            }));
            presence.entered(handle);
        }
    }
    for message in server.store.take_pending(presence.member().id).await {
        let _ = session.outbox().push(Delivery::event(Event::PrivateMessage {
            id: message.id,
            at: message.at,
            from: message.from,
            text: message.text,
        }));
    }
}

/// `NAME_TAKEN`, worded for the command that was refused; `name` as the client wrote it.
pub(super) fn name_refused(name: &Name, refusal: NameRefusal, verb: Verb) -> Reply {
    let message = match refusal {
        NameRefusal::Online => format!("{name} is online already"),
        NameRefusal::Registered if verb == Verb::Register => {
            format!("{name} is already registered")
        }
        NameRefusal::Registered => format!("{name} is a registered account; use LOGIN"),
        NameRefusal::LooksLike(_) | NameRefusal::Unchecked => refusal.to_string(),
    };
    Reply::err(ErrorCode::NameTaken, message)
}

pub(super) fn account_failure(error: AccountError) -> Reply {
    let code = match error {
        AccountError::Throttled(_) => ErrorCode::TooManyAttempts,
        AccountError::Storage => ErrorCode::Storage,
        AccountError::NameTaken => ErrorCode::NameTaken,
        _ => ErrorCode::Internal,
    };
    Reply::err(code, error.to_string())
}
