//! `PM <user> <text>`: straight to the recipient's outbox when the session holds it,
//! otherwise through the directory, whose answer hands it over. Sent on without waiting: its
//! `OK` follows in order.

use std::sync::Arc;

use linechat_protocol::{ErrorCode, Name, Reply, Verb};

use crate::server::mailbox::Answer;

use super::{CommandError, Step};
use crate::connection::{Delivery, OutboxFull};
use crate::server::event::{self, Event};
use crate::server::session::{InFlight, Reach, Session};
use crate::server::storage::{Conversation, Record};
use crate::server::user::{PmError, PmOutcome, Private};

pub(super) async fn apply(session: &mut Session, to: Name, text: String) -> Step {
    // A message to someone whose handle the session lacks first waits for the answers of
    // the messages the directory is delivering, which may hand the handle over: a burst to
    // one user pays one round trip, not one each, and nothing sent straight to a recipient
    // overtakes what the directory delivers to them.
    if session.awaits_directory_for(&to) {
        session.settle().await;
    }
    if !session.is_logged_in() {
        return super::not_logged_in(session).into();
    }
    let text = match straight(session, &to, text).await {
        Straight::Sent(answer) => {
            session.pipeline(InFlight::Ready(answer)).await;
            return Step::Done;
        }
        Straight::Refused(error) => {
            let answer = pm_refused(&error);
            session.pipeline(InFlight::Ready(Delivery::new(answer))).await;
            return Step::Done;
        }
        Straight::NoHandle(text) => text,
    };
    let answer = match through_directory(session, to, text) {
        Ok(answer) => answer,
        Err(error) => return super::refused(session, error).into(),
    };
    session.pipeline(InFlight::Private(answer)).await;
    Step::Done
}

/// Sends a private message through the directory, for a recipient whose handle the session
/// does not hold (see [`straight`]): the directory delivers it, or keeps it for an account
/// that is offline, and answers on the returned channel; a delivery hands the recipient's
/// handle over, for the session to keep.
pub(in crate::server) fn through_directory(
    session: &Session,
    to: Name,
    text: String,
) -> Result<Answer<Private>, CommandError> {
    let Some(presence) = session.presence() else {
        return Err(CommandError::NotLoggedIn);
    };
    let from = presence.member().clone();
    Ok(session.server().users.private(from, to, text))
}

/// What came of a private message offered to [`straight`].
pub(in crate::server) enum Straight {
    /// In the recipient's outbox, or in the queue to their node. The line protocol's answer,
    /// `OK PM <name>`, encoded once.
    Sent(Arc<Delivery>),
    /// The recipient's outbox is full: they are being disconnected.
    Refused(PmError),
    /// The session holds no handle to the recipient that still takes lines: the text, back,
    /// for the directory to deliver.
    NoHandle(String),
}

/// Sends a private message straight to the recipient, without a round trip to the
/// directory, when the session holds their handle (kept from an earlier answer of the
/// directory): to their outbox on this node, or to the queue to their node. Both front ends
/// send private messages through here, each wording the outcome its way.
pub(in crate::server) async fn straight(
    session: &mut Session,
    to: &Name,
    text: String,
) -> Straight {
    let Some(presence) = session.presence() else {
        return Straight::NoHandle(text);
    };
    let from = presence.member();
    let Some(recipient) = session.recipient(to) else {
        return Straight::NoHandle(text);
    };
    let store = &session.server().store;
    let member = match recipient.reach() {
        Reach::Here(member) if !member.outbox.is_closed() && !member.outbox.is_detoured() => {
            member
        }
        Reach::Elsewhere(remote) if remote.is_present() => {
            remote.send_waiting(store, from, text).await;
            return Straight::Sent(recipient.sent().clone());
        }
        // Gone, logged in again elsewhere, or away: the directory knows where they are now,
        // and what to tell the sender.
        _ => {
            session.forget_recipient(to);
            return Straight::NoHandle(text);
        }
    };
    let record = Record::now(
        Conversation::Private(from.id, member.id),
        from.name.clone(),
        text.as_str(),
    );
    let at = event::time_of(record.at);
    // Recorded before it is delivered, so that a HISTORY the recipient sends on seeing it
    // finds it.
    let id = store.record(record);
    let line = Delivery::event(Event::PrivateMessage {
        id,
        at,
        from: from.name.clone(),
        text,
    });
    match member.outbox.push(line) {
        Ok(()) => Straight::Sent(recipient.sent().clone()),
        Err(OutboxFull) => Straight::Refused(PmError::Disconnecting(member.name.clone())),
    }
}

/// The line protocol's answer to a private message the directory handled.
pub(in crate::server) fn pm_answer(answer: &Private) -> Arc<Delivery> {
    Delivery::new(match answer {
        Ok(PmOutcome::Queued { to }) => Reply::ok_with(Verb::Pm, format!("{to} queued")),
        Ok(sent) => match sent.away() {
            Some(away) => Reply::ok_with(Verb::Pm, format!("{} away: {away}", sent.recipient())),
            None => Reply::ok_with(Verb::Pm, sent.recipient()),
        },
        Err(error) => pm_refused(error),
    })
}

/// The line protocol's answer to a private message sent to `name`, `OK PM <name>`: encoded
/// once when the session keeps their handle, and sent for each message sent straight to them.
pub(in crate::server) fn pm_sent(name: &Name) -> Arc<Delivery> {
    Delivery::new(Reply::ok_with(Verb::Pm, name))
}

fn pm_refused(error: &PmError) -> Reply {
    let code = match error {
        PmError::NoSuchUser(_) | PmError::Disconnecting(_) => ErrorCode::NoSuchUser,
        PmError::Storage { .. } => ErrorCode::Storage,
        PmError::Unavailable => return super::unavailable(),
    };
    Reply::err(code, error.to_string())
}
