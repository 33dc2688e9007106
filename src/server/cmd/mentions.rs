//! `MENTIONS [count]`: the messages in the user's rooms that name them (as a word, in any
//! case, `@` before it or not), said by others since the user's read marker in each room
//! (`MARKREAD`; all that is kept for a guest, or where there is none), newest first, as
//! `HIST` lines, then `OK MENTIONS <n>`. At most `history_max_count` of a room's newest
//! messages after the marker are looked through.

use linechat_protocol::{Name, Reply, Verb};

use super::history::{recall_found, unavailable};
use super::{Step, not_logged_in};
use crate::server::event::Recalled;
use crate::server::member::UserId;
use crate::server::session::Session;
use crate::server::storage::{Conversation, End, Range, StoredMessage};

pub(super) async fn apply(session: &mut Session, count: Option<u32>) -> Step {
    match Box::pin(mentions(session, count)).await {
        Ok(sent) => Reply::ok_with(Verb::Mentions, sent).into(),
        Err(refusal) => refusal.into(),
    }
}

async fn mentions(session: &Session, count: Option<u32>) -> Result<u32, Reply> {
    let Some(presence) = session.presence() else {
        return Err(not_logged_in(session));
    };
    let settings = session.settings();
    let count = count
        .unwrap_or(settings.history_default_count)
        .min(settings.history_max_count);
    let scan = settings.history_max_count;
    let me = presence.name();
    let store = &session.server().store;
    store
        .committed()
        .await
        .map_err(|error| unavailable(&error))?;
    let mut found: Vec<(Name, StoredMessage)> = Vec::new();
    for room in presence.rooms() {
        let Some(joined) = presence.room(room) else {
            continue;
        };
        let conversation = Conversation::Room(joined.name().clone());
        let marker = match presence.member().id {
            UserId::Account(account) => store
                .read_marker(account, &conversation)
                .await
                .map_err(|error| unavailable(&error))?,
            UserId::Guest(_) => None,
        };
        let range = Range {
            after: marker,
            before: None,
        };
        let messages = store
            .history_range(&conversation, range, scan, End::Newest, scan)
            .await
            .map_err(|error| unavailable(&error))?;
        found.extend(
            messages
                .into_iter()
                .filter(|message| message.from != *me && names(&message.text, me))
                .map(|message| (joined.name().clone(), message)),
        );
    }
    // Newest first, across rooms: ids grow in the order messages were accepted.
    found.sort_by_key(|(_, message)| std::cmp::Reverse(message.id));
    found.truncate(count as usize);
    let found = found
        .into_iter()
        .map(|(room, message)| (Recalled::Named(room), message));
    Ok(recall_found(session, found).await)
}

/// Whether `text` names `user` as a word: the name, in any case, with no character of a
/// name right before or after it.
fn names(text: &str, user: &Name) -> bool {
    let name = user.as_str().as_bytes();
    let text = text.as_bytes();
    let is_name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    text.windows(name.len()).enumerate().any(|(at, window)| {
        window.eq_ignore_ascii_case(name)
            && (at == 0 || !is_name_byte(&text[at - 1]))
            && text.get(at + name.len()).is_none_or(|b| !is_name_byte(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_as_a_word_in_any_case() {
        let alice = Name::parse("alice").unwrap();
        for text in ["alice", "hi Alice!", "@ALICE: look", "ask alice, or bob", "(alice)"] {
            assert!(names(text, &alice), "{text:?}");
        }
        for text in ["alicex", "malice", "alice_b", "al-alice", "ali ce", ""] {
            assert!(!names(text, &alice), "{text:?}");
        }
    }
}
