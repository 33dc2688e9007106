//! `OPTION ids <on|off>`: this connection's own settings, logged in or not. With ids on,
//! message lines start with the message's id and time (`linechat_protocol::Stamp`).

use linechat_protocol::{ConnectionOption, Reply, Verb};

use super::Step;
use super::wording::Stamped;
use crate::connection::Delivery;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, option: ConnectionOption) -> Step {
    match option {
        // The writer words what comes after this delivery the new way: lines already queued
        // keep the form they were asked in.
        ConnectionOption::Ids(on) => {
            let _ = session.outbox().push(Delivery::own(Stamped(on), 0));
        }
    }
    Reply::ok_with(Verb::SetOption, option).into()
}
