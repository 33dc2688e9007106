//! `UNREAD`: each conversation the account has a read marker in (`MARKREAD`) with messages
//! after it, as `UNREAD <target> <count> <marker>` lines, then `OK UNREAD <n>`. A room the
//! user has left is not listed.

use linechat_protocol::{HistoryTarget, Name, Reply, Verb};

use super::history::unavailable;
use super::mark_read::account_of;
use super::{Step, send};
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session) -> Step {
    let (presence, account) = match account_of(session) {
        Ok(account) => account,
        Err(refusal) => return refusal.into(),
    };
    let unread = match session.server().store.unread(account).await {
        Ok(unread) => unread,
        Err(error) => return unavailable(&error).into(),
    };
    let mut listed = 0;
    for unread in unread {
        let target = match unread.target.as_str() {
            "*" => HistoryTarget::Global,
            name => match Name::parse(name) {
                Ok(name) => HistoryTarget::Named(name),
                Err(_) => continue,
            },
        };
        let left = match &target {
            HistoryTarget::Named(room) => unread.room && !presence.is_in(room),
            HistoryTarget::Global => false,
        };
        if unread.count == 0 || left {
            continue;
        }
        send(
            session,
            Reply::Unread {
                target,
                count: unread.count,
                marker: unread.marker.get(),
            },
        );
        listed += 1;
    }
    Reply::ok_with(Verb::Unread, listed).into()
}
