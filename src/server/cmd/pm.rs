//! `PM <user> <text>`: straight to the recipient's outbox when the session holds it,
//! otherwise through the directory, whose answer hands it over. Sent on without waiting: its
//! `OK` follows in order.

use std::sync::Arc;

use linechat_protocol::{ErrorCode, Name, Reply};

use super::Step;
use crate::connection::{Delivery, OutboxFull};
use crate::server::event::{self, Event};
use crate::server::session::{InFlight, Session};
use crate::server::storage::{Conversation, Record};

pub(super) async fn apply(session: &mut Session, to: Name, text: String) -> Step {
    // A message to someone whose handle the session lacks first waits for the answers of
    // the messages the directory is delivering, which may hand the handle over: a burst to
    // one user pays one round trip, not one each, and nothing sent straight to a recipient
    // overtakes what the directory delivers to them.
    if session.privates_in_flight > 0 && !session.recipients.contains_key(&to) {
        session.settle().await;
    }
    if session.presence.is_none() {
        return super::not_logged_in(session).into();
    }
    let text = match straight(session, &to, text) {
        Straight::Sent(answer) => {
            session.pipeline(InFlight::Ready(answer)).await;
            return Step::Done;
        }
        Straight::Refused(answer) => {
            session.pipeline(InFlight::Ready(Delivery::new(answer))).await;
            return Step::Done;
        }
        Straight::NoHandle(text) => text,
    };
    let Some(presence) = &session.presence else {
        return super::not_logged_in(session).into();
    };
    let from = presence.member.clone();
    let answer = session.context.server.users.private(from, to, text);
    session.privates_in_flight += 1;
    session.pipeline(InFlight::Private(answer)).await;
    Step::Done
}

/// What came of a private message offered to [`straight`].
pub(in crate::server) enum Straight {
    /// In the recipient's outbox. The line protocol's answer, `OK PM <name>`, encoded once.
    Sent(Arc<Delivery>),
    /// The recipient's outbox is full: they are being disconnected. The answer says so.
    Refused(Reply),
    /// The session holds no handle to the recipient that still takes lines: the text, back,
    /// for the directory to deliver.
    NoHandle(String),
}

/// Sends a private message straight to the recipient's outbox, without a round trip, when
/// the session holds their handle (kept from an earlier answer of the directory). Both front
/// ends send private messages through here, each wording the outcome its way.
pub(in crate::server) fn straight(session: &mut Session, to: &Name, text: String) -> Straight {
    let Some(presence) = &session.presence else {
        return Straight::NoHandle(text);
    };
    let from = &presence.member;
    let Some(recipient) = session.recipients.get(to) else {
        return Straight::NoHandle(text);
    };
    let outbox = &recipient.member.outbox;
    if outbox.is_closed() {
        // Gone, or logged in again elsewhere: the directory knows where they are now.
        session.recipients.remove(to);
        return Straight::NoHandle(text);
    }
    let record = Record::now(
        Conversation::Private(from.id, recipient.member.id),
        from.name.clone(),
        text.as_str(),
    );
    let line = Delivery::event(Event::PrivateMessage {
        at: event::time_of(record.at),
        from: from.name.clone(),
        text,
    });
    // Recorded before it is delivered, so that a HISTORY the recipient sends on seeing it
    // finds it.
    session.context.server.store.record(record);
    match outbox.push(line) {
        Ok(()) => Straight::Sent(recipient.sent.clone()),
        Err(OutboxFull) => {
            let message = format!("{} is disconnecting", recipient.member.name);
            Straight::Refused(Reply::err(ErrorCode::NoSuchUser, message))
        }
    }
}
