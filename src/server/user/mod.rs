//! The directory of names: `Users` (`users.rs`) is the handle to the `UsersActor`
//! (`users_actor.rs`), which owns who is online and how to reach them, which names have
//! accounts, and which are being registered. Names and their claims are in `claims.rs`, new
//! accounts in `registration.rs`, private messages in `private.rs`; what it hears from the
//! other nodes of a cluster is handled in `remote.rs`; its presence notices wait in
//! `presence.rs`; away messages are in `away.rs`.

mod away;
mod claims;
mod presence;
mod private;
mod registration;
mod remote;
#[cfg(test)]
mod tests;
mod users;
mod users_actor;

pub use away::MAX_AWAY_BYTES;
pub use claims::NameRefusal;
use claims::look_alike_key;
pub use private::{PmError, PmOutcome, Private, RemoteRecipient};
pub use registration::RegisterError;
pub(crate) use remote::Remote;
pub use users::Users;
use users_actor::{RemoteUser, UsersActor};
