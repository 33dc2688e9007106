//! `MARKREAD <target> [id|time]`: the account's read marker in a conversation, the last
//! message it read there. With a message id or a time it moves the marker there, only
//! forward (a marker further on stays), and answers once it is stored:
//! `OK MARKREAD <target> <id>`, the marker now. Without one it answers where the marker is,
//! or `OK MARKREAD <target>` if there is none. A time marks the last message accepted
//! before it. Markers are kept for accounts, across logins and restarts.

use linechat_protocol::{Bound, ErrorCode, HistoryPage, HistoryTarget, Reply, Verb};

use super::history::{conversation, unavailable};
use super::{Step, not_logged_in};
use crate::server::member::UserId;
use crate::server::session::{Presence, Session};
use crate::server::storage::{Conversation, End, MessageId, PageError, ReadMarker};

pub(super) async fn apply(
    session: &mut Session,
    target: HistoryTarget,
    up_to: Option<Bound>,
) -> Step {
    match Box::pin(mark(session, &target, up_to)).await {
        Ok(Some(marker)) => Reply::ok_with(Verb::MarkRead, format!("{target} {marker}")).into(),
        Ok(None) => Reply::ok_with(Verb::MarkRead, &target).into(),
        Err(refusal) => refusal.into(),
    }
}

/// Moves the marker to `up_to`, if given; the marker now.
async fn mark(
    session: &Session,
    target: &HistoryTarget,
    up_to: Option<Bound>,
) -> Result<Option<MessageId>, Reply> {
    let (presence, account) = account_of(session)?;
    let conversation = conversation(session, presence, target).await?;
    let store = &session.server().store;
    let current = async || {
        store
            .read_marker(account, &conversation)
            .await
            .map_err(|error| unavailable(&error))
    };
    let Some(up_to) = up_to else {
        return current().await;
    };
    let Some(id) = message_at(session, &conversation, target, up_to).await? else {
        // Nothing was said before that time: the marker stays where it is.
        return current().await;
    };
    let marker = ReadMarker {
        account,
        conversation: conversation.clone(),
        target: shown(presence, target),
        id,
    };
    match store.mark_read(marker).await {
        Ok(now) => Ok(Some(now)),
        Err(error) => Err(Reply::err(ErrorCode::Storage, error.client_message())),
    }
}

/// The logged-in user and their account: read markers are kept for accounts only.
pub(super) fn account_of(session: &Session) -> Result<(&Presence, i64), Reply> {
    let Some(presence) = session.presence() else {
        return Err(not_logged_in(session));
    };
    match presence.member().id {
        UserId::Account(account) => Ok((presence, account)),
        UserId::Guest(_) => Err(Reply::err(
            ErrorCode::NotRegistered,
            "read markers are kept for accounts: REGISTER or LOGIN",
        )),
    }
}

/// The message a marker moves to: the one of that id, which must be the conversation's, or
/// the last one accepted before that time, if any.
async fn message_at(
    session: &Session,
    conversation: &Conversation,
    target: &HistoryTarget,
    up_to: Bound,
) -> Result<Option<MessageId>, Reply> {
    let store = &session.server().store;
    let page = match up_to {
        Bound::Id(_) => HistoryPage::After(up_to),
        Bound::Time(_) => HistoryPage::Before(up_to),
    };
    let (range, _) = match store.resolve_page(conversation, page).await {
        Ok(Some(place)) => place,
        Ok(None) => return Ok(None),
        Err(PageError::NoSuchMessage(id)) => {
            let message = format!("no message {id} in {target}");
            return Err(Reply::err(ErrorCode::BadArguments, message));
        }
        Err(PageError::Storage(error)) => return Err(unavailable(&error)),
    };
    if let Bound::Id(_) = up_to {
        return Ok(range.after);
    }
    let last = store
        .history_range(conversation, range, 1, End::Newest, 1)
        .await
        .map_err(|error| unavailable(&error))?;
    Ok(last.first().map(|message| message.id))
}

/// How `UNREAD` shows the conversation: a room by its name as created.
fn shown(presence: &Presence, target: &HistoryTarget) -> String {
    match target {
        HistoryTarget::Named(name) => match presence.room(name) {
            Some(room) => room.name().to_string(),
            None => name.to_string(),
        },
        HistoryTarget::Global => target.to_string(),
    }
}
