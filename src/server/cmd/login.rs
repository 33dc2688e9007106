//! `LOGIN <name> <password>`: logs in to an account, taking over a session already logged in
//! to it, and puts the user back in their rooms. Also what the three login commands share.


use linechat_protocol::{ErrorCode, Name, Password, Reply, Verb};
use tracing::{info, warn};

use super::{CommandError, Step};
use crate::connection::Delivery;
use crate::server::accounts::AccountError;
use crate::server::event::Event;
use crate::server::member::{Member, UserId};
use crate::server::session::{Presence, Session};
use crate::server::user::NameRefusal;

pub(super) async fn apply(session: &mut Session, name: Name, password: Password) -> Step {
    let logged_in = Box::pin(log_in(session, name, password)).await;
    answer(session, Verb::Login, logged_in).into()
}

/// Why a login command (`LOGIN`, `NICK`, `REGISTER`) was refused. The line protocol words it
/// for the command ([`answer`]); IRC words it as numerics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("you are logged in as {0}")]
    AlreadyLoggedIn(Name),
    /// The name a guest or a new account would take is refused before it is asked for.
    #[error(transparent)]
    NewName(CommandError),
    #[error("guests are not allowed here; REGISTER or LOGIN")]
    GuestsDisabled,
    /// `name` (as the client wrote it) is taken, as `refusal` says; `registering` for
    /// `REGISTER`, whose words differ.
    #[error("{}", taken(name, refusal, *registering))]
    NameTaken {
        name: Name,
        refusal: NameRefusal,
        registering: bool,
    },
    /// The account store refused: a wrong password, too many attempts, a failed write.
    #[error(transparent)]
    Account(AccountError),
}

fn taken(name: &Name, refusal: &NameRefusal, registering: bool) -> String {
    match refusal {
        NameRefusal::Online => format!("{name} is online already"),
        NameRefusal::Registered if registering => format!("{name} is already registered"),
        NameRefusal::Registered => format!("{name} is a registered account; use LOGIN"),
        NameRefusal::LooksLike(_) | NameRefusal::Unchecked => refusal.to_string(),
    }
}

/// Logs in to the account `name`, taking over a session already logged in to it, and puts
/// the user back in their rooms; the name as registered.
pub(in crate::server) async fn log_in(
    session: &mut Session,
    name: Name,
    password: Password,
) -> Result<Name, LoginError> {
    not_logged_in(session)?;
    let server = session.server();
    let ip = session.peer().ip();
    let registered = match server.accounts.verify(name.clone(), password, ip).await {
        Ok(registered) => registered,
        Err(error) => {
            match error {
                AccountError::BadPassword => info!(user = %name, "failed login"),
                AccountError::Throttled(_) => warn!(user = %name, "login throttled"),
                _ => {}
            }
            return Err(LoginError::Account(error));
        }
    };
    let member = Member {
        name: registered.name,
        id: UserId::Account(registered.id),
        outbox: session.outbox().clone(),
    };
    if !server.users.login(member.clone()).await {
        return Err(LoginError::Account(AccountError::Unavailable));
    }
    Ok(enter(session, member, Entry::Account).await)
}

/// Refuses a login command from a session that is logged in.
pub(super) fn not_logged_in(session: &Session) -> Result<(), LoginError> {
    match session.presence() {
        Some(presence) => Err(LoginError::AlreadyLoggedIn(presence.name().clone())),
        None => Ok(()),
    }
}

/// The line protocol's answer to a login command: `OK <verb> <name>`, or why not.
pub(super) fn answer(session: &Session, verb: Verb, logged_in: Result<Name, LoginError>) -> Reply {
    let error = match logged_in {
        Ok(name) => return Reply::ok_with(verb, name),
        Err(error) => error,
    };
    let code = match &error {
        LoginError::AlreadyLoggedIn(_) => ErrorCode::AlreadyLoggedIn,
        LoginError::NewName(error) => return super::refused(session, error.clone()),
        LoginError::GuestsDisabled => ErrorCode::GuestsDisabled,
        LoginError::NameTaken { .. } | LoginError::Account(AccountError::NameTaken) => {
            ErrorCode::NameTaken
        }
        LoginError::Account(AccountError::BadPassword) => ErrorCode::BadPassword,
        LoginError::Account(AccountError::Throttled(_)) => ErrorCode::TooManyAttempts,
        LoginError::Account(AccountError::Storage) => ErrorCode::Storage,
        LoginError::Account(AccountError::Unavailable) => ErrorCode::Internal,
    };
    Reply::err(code, error.to_string())
}

/// How a session comes to be logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    Guest,
    /// A new account: in no rooms yet.
    Registered,
    /// A returning account, put back in its rooms.
    Account,
}

/// After a successful login: the session has a [`Presence`], and a returning account is put
/// back in its rooms. The name logged in as.
pub(super) async fn enter(session: &mut Session, member: Member, entry: Entry) -> Name {
    let name = member.name.clone();
    session.logged_in_as(&name);
    info!("logged in");
    let mut presence = new_presence(session, member, entry != Entry::Guest);
    if entry == Entry::Account {
        restore(session, &mut presence).await;
    }
    session.enter(presence);
    name
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
