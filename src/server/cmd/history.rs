//! `HISTORY <*|room|user> [LATEST|BEFORE <bound>|AFTER <bound>|BETWEEN <bound> <bound>]
//! [count]`: one `HIST` line per message, oldest first, then `OK HISTORY <n>`. The lines are
//! read a page at a time and queued only as the client takes them, so that however long the
//! answer, a client that does not read pins little more than a page and a part of its
//! outbox. One that takes nothing for `idle_timeout_secs` counts as not reading.
//!
//! A page by bounds (`BEFORE`, `AFTER`, `BETWEEN`) is how a client walks a conversation, the
//! id of one answer's last (or first) message bounding the next: its count is refused past
//! `history_max_count` rather than cut, so that a client never takes a shorter answer for the
//! end of the conversation.

use std::sync::Arc;
use std::time::Duration;

use linechat_protocol::{ErrorCode, HistoryPage, HistoryTarget, Reply, Verb};
use tokio::time::timeout;
use tracing::warn;

use super::{Step, not_logged_in, room_refused};
use crate::connection::Delivery;
use crate::server::event::{Event, Recalled};
use crate::server::room::RoomError;
use crate::server::session::{Presence, Session};
use crate::server::storage::{Conversation, End, PageError, StorageError, StoredMessage};

/// Messages read from the store at a time.
const PAGE: u32 = 100;

pub(super) async fn apply(
    session: &mut Session,
    target: HistoryTarget,
    page: HistoryPage,
    count: Option<u32>,
) -> Step {
    match Box::pin(recall_page(session, target, page, count)).await {
        Ok(sent) => Reply::ok_with(Verb::History, sent).into(),
        Err(refusal) => refusal.into(),
    }
}

/// Queues the last `count` messages of `target` for the user, oldest first, each as an
/// [`Event::Recalled`], as the client takes them; how many were queued, or why none could
/// be (in the line protocol's words, which IRC, replaying history on a join, has no use for).
pub(in crate::server) async fn recall(
    session: &Session,
    target: HistoryTarget,
    count: Option<u32>,
) -> Result<u32, Reply> {
    recall_page(session, target, HistoryPage::Latest, count).await
}

/// Queues the messages of `page` of `target`'s history, as [`recall`] does the last ones.
async fn recall_page(
    session: &Session,
    target: HistoryTarget,
    page: HistoryPage,
    count: Option<u32>,
) -> Result<u32, Reply> {
    let Some(presence) = session.presence() else {
        return Err(not_logged_in(session));
    };
    let settings = session.settings();
    let max = settings.history_max_count;
    let count = match (page, count) {
        (HistoryPage::Latest, count) => count.unwrap_or(settings.history_default_count),
        (_, Some(count)) if count > max => {
            let message = format!("at most {max} messages a page");
            return Err(Reply::err(ErrorCode::BadArguments, message));
        }
        (_, count) => count.unwrap_or(settings.history_default_count),
    }
    .min(max);
    let conversation = conversation(session, presence, &target).await?;
    let store = &session.server().store;
    let (mut range, mut from) = match store.resolve_page(&conversation, page).await {
        Ok(Some(place)) => place,
        Ok(None) => return Ok(0),
        Err(PageError::NoSuchMessage(id)) => {
            let message = format!("no message {id} in {target}");
            return Err(Reply::err(ErrorCode::BadArguments, message));
        }
        Err(PageError::Storage(error)) => return Err(unavailable(&error)),
    };
    let recalled = match target {
        HistoryTarget::Global => Recalled::Global,
        HistoryTarget::Named(name) => Recalled::Named(name),
    };
    let stalled_after = stalled_after(session);
    let mut sent = 0;
    'pages: while sent < count {
        let left = count - sent;
        let page = match store
            .history_range(&conversation, range, left, from, left.min(PAGE))
            .await
        {
            Ok(page) => page,
            Err(error) => return Err(unavailable(&error)),
        };
        if page.is_empty() {
            break;
        }
        for message in page {
            let id = message.id;
            let line = Delivery::event(Event::Recalled {
                of: recalled.clone(),
                id,
                at: message.at,
                from: message.from,
                text: message.text,
            });
            if !queue_line(session, stalled_after, line).await {
                break 'pages;
            }
            sent += 1;
            // The rest of the answer is what follows the last line sent, up to the same end.
            range.after = Some(id);
            from = End::Oldest;
        }
    }
    Ok(sent)
}

/// Queues messages found in history (by `SEARCH`, `MENTIONS`), each of the conversation
/// given with it, as recalled events in the order given, as the client takes them; how many
/// were queued.
pub(super) async fn recall_found(
    session: &Session,
    found: impl IntoIterator<Item = (Recalled, StoredMessage)>,
) -> u32 {
    let stalled_after = stalled_after(session);
    let mut sent = 0;
    for (of, message) in found {
        let line = Delivery::event(Event::Recalled {
            of,
            id: message.id,
            at: message.at,
            from: message.from,
            text: message.text,
        });
        if !queue_line(session, stalled_after, line).await {
            break;
        }
        sent += 1;
    }
    sent
}

/// How long a client may take nothing of an answer before it counts as not reading.
pub(super) fn stalled_after(session: &Session) -> Duration {
    session.settings().idle_timeout().max(Duration::from_secs(1))
}

/// Queues one line of a long answer once the outbox has room for it, as the client takes
/// the lines before; whether it was queued (not if the client stopped reading for
/// `stalled_after`, which closes its connection, or the server is shutting down).
pub(super) async fn queue_line(
    session: &Session,
    stalled_after: Duration,
    line: Arc<Delivery>,
) -> bool {
    let outbox = session.outbox();
    let room = timeout(stalled_after, outbox.wait_for_room(line.size()));
    let ready = tokio::select! {
        room = room => match room {
            Ok(room) => room.is_ok(),
            Err(_) => {
                outbox.close_not_reading();
                false
            }
        },
        // The lines sent so far are counted in the final line.
        () = session.shutdown().cancelled() => false,
    };
    ready && outbox.push(line).is_ok()
}

/// The answer when history cannot be read (the database failed or is out of reach).
pub(super) fn unavailable(error: &StorageError) -> Reply {
    warn!(%error, "history unavailable");
    Reply::err(ErrorCode::Internal, "history is unavailable; try again")
}

/// Which conversation a target means: `*` the global one; a name a room the user is in,
/// else the private conversation with whoever holds that name now (a guest's lasts as long
/// as their session, an account's as long as the account). A name that is neither is
/// refused, saying why, rather than read as an empty conversation: `HISTORY lobby` from
/// outside the room `lobby` is `NOT_IN_ROOM`.
pub(super) async fn conversation(
    session: &Session,
    presence: &Presence,
    target: &HistoryTarget,
) -> Result<Conversation, Reply> {
    let name = match target {
        HistoryTarget::Global => return Ok(Conversation::Global),
        HistoryTarget::Named(room) if presence.is_in(room) => {
            return Ok(Conversation::Room(room.clone()));
        }
        HistoryTarget::Named(name) => name,
    };
    let server = session.server();
    if let Some(other) = server.users.resolve(name.clone()).await {
        return Ok(Conversation::Private(presence.member().id, other));
    }
    match server.rooms.not_member(name.clone()).await {
        not_in_room @ RoomError::NotMember(_) => Err(room_refused(&not_in_room)),
        _ => {
            let message = format!("{name} is neither a room you are in nor a user");
            Err(Reply::err(ErrorCode::NoSuchUser, message))
        }
    }
}
