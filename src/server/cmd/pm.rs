//! `PM <user> <text>`: straight to the recipient's outbox when the session holds it,
//! otherwise through the directory, whose answer hands it over. Sent on without waiting: its
//! `OK` follows in order.

use std::time::SystemTime;

use linechat_protocol::{ErrorCode, Name, Reply};

use super::Step;
use crate::connection::{Delivery, OutboxFull};
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
    let Some(presence) = &session.presence else {
        return super::not_logged_in(session).into();
    };
    let from = &presence.member;
    if let Some(recipient) = session.recipients.get(&to) {
        let outbox = &recipient.member.outbox;
        if !outbox.is_closed() {
            let pm = Reply::Pm {
                from: from.name.clone(),
                text,
            };
            let line = Delivery::of(&pm);
            let Reply::Pm { from: name, text } = pm else {
                return Step::Done;
            };
            // Recorded before it is delivered, so that a HISTORY the recipient sends on
            // seeing it finds it. The text moves on to the record: a message is copied once,
            // into its line.
            session.context.server.store.record(Record {
                conversation: Conversation::Private(from.id, recipient.member.id),
                from: name,
                to: Some(recipient.member.id),
                text,
                at: SystemTime::now(),
                pending: false,
            });
            let answer = match outbox.push(line) {
                Ok(()) => recipient.sent.clone(),
                Err(OutboxFull) => {
                    let message = format!("{} is disconnecting", recipient.member.name);
                    Delivery::new(Reply::err(ErrorCode::NoSuchUser, message))
                }
            };
            session.pipeline(InFlight::Ready(answer)).await;
            return Step::Done;
        }
        // Gone, or logged in again elsewhere: the directory knows where they are now.
        session.recipients.remove(&to);
    }
    let answer = session.context.server.users.private(from.clone(), to, text);
    session.privates_in_flight += 1;
    session.pipeline(InFlight::Private(answer)).await;
    Step::Done
}
