//! `PRIVMSG` and `NOTICE`: to `#room` (the room's `RM`), to `#global` (`MSG`) and to a nick
//! (`PM`), through the same actors as the line protocol. A `NOTICE` is delivered as a
//! message, as linechat has one kind, and never answered with an error (RFC 2812 §3.3.2).

use std::borrow::Cow;

use linechat_protocol::{Command, ErrorCode, Name, Reply};

use super::channel::Channel;
use super::message::Message;
use super::{Flow, Irc};
use crate::server::cmd::{self, Straight};
use crate::server::user::Private;

pub(super) async fn privmsg(irc: &mut Irc, message: Message) -> Flow {
    send(irc, message, true).await
}

pub(super) async fn notice(irc: &mut Irc, message: Message) -> Flow {
    send(irc, message, false).await
}

async fn send(irc: &mut Irc, message: Message, answer: bool) -> Flow {
    // As the line port does before a message (`Session::execute`).
    irc.session.context.server.store.room_for_history().await;
    let Some(targets) = message.params.first().filter(|t| !t.is_empty()) else {
        if answer {
            let text = format!("No recipient given ({})", message.verb);
            irc.numeric("411", &[], &text);
        }
        return Flow::Continue;
    };
    let raw = message.param(1);
    if raw.is_empty() {
        if answer {
            irc.numeric("412", &[], "No text to send");
        }
        return Flow::Continue;
    }
    let Some(text) = from_irc(raw) else {
        // A CTCP request other than ACTION: linechat clients would not answer it.
        return Flow::Continue;
    };
    // The line protocol's own check of a message's text: no control or invisible characters.
    let mut line = String::with_capacity("MSG ".len() + text.len());
    line.push_str("MSG ");
    line.push_str(&text);
    let mut text = match Command::parse(&line) {
        Ok(Some(Command::Msg { text })) => text,
        Ok(_) => {
            if answer {
                irc.numeric("412", &[], "No text to send");
            }
            return Flow::Continue;
        }
        Err(error) => {
            if answer {
                irc.server_notice(&format!("message not sent: {error}"));
            }
            return Flow::Continue;
        }
    };
    let count = targets.split(',').filter(|t| !t.is_empty()).take(4).count();
    for (index, target) in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(4)
        .enumerate()
    {
        // The last target takes the text itself: a message to one target is not copied.
        let text = if index + 1 < count {
            text.clone()
        } else {
            std::mem::take(&mut text)
        };
        let refusal = if target.starts_with('#') {
            to_channel(irc, target, text).await
        } else {
            to_user(irc, target, text).await
        };
        if let (Some((code, why)), true) = (refusal, answer) {
            irc.numeric(code, &[target], &why);
        }
    }
    Flow::Continue
}

/// Why a message to a channel was not sent, as a numeric.
async fn to_channel(irc: &mut Irc, target: &str, text: String) -> Option<(&'static str, String)> {
    let server = irc.session.context.server.clone();
    let presence = irc.session.presence.as_ref()?;
    match Channel::parse(target) {
        None => Some(("403", "No such channel".into())),
        Some(Channel::Global) if !irc.in_global => {
            Some(("404", "Cannot send to channel: JOIN #global first".into()))
        }
        Some(Channel::Global) => {
            let answer = server.users.broadcast(presence.member.clone(), text).await;
            match answer {
                Ok(Reply::Err { message, .. }) => Some(("404", message)),
                _ => None,
            }
        }
        Some(Channel::Room(room)) => {
            if let Some(handle) = presence.rooms.get(&room)
                && handle
                    .say(&server.store, &presence.member, text)
                    .await
                    .is_some()
            {
                return None;
            }
            match server.rooms.not_member(room).await {
                Reply::Err {
                    code: ErrorCode::NoSuchRoom,
                    ..
                } => Some(("403", "No such channel".into())),
                _ => Some(("404", "Cannot send to channel: you are not in it".into())),
            }
        }
    }
}

/// Why a private message was not sent, as a numeric. One to an account that is offline is
/// kept for it, and the sender told so.
///
/// As on the line port (`cmd::pm`), a message to someone whose handle the session holds goes
/// straight to their outbox, without a round trip: only the first message to someone (or
/// the first after they logged in again) waits for the directory, whose answer hands their
/// handle over. Every outcome is known before the next line is read, so numerics keep the
/// order of the messages.
async fn to_user(irc: &mut Irc, target: &str, text: String) -> Option<(&'static str, String)> {
    let Ok(to) = Name::parse(target) else {
        return Some(("401", "No such nick/channel".into()));
    };
    irc.session.presence.as_ref()?;
    let text = match cmd::straight(&mut irc.session, &to, text) {
        Straight::Sent(_) => return None,
        Straight::Refused(reply) => return Some(refusal(reply)),
        Straight::NoHandle(text) => text,
    };
    let server = irc.session.context.server.clone();
    let from = irc.session.presence.as_ref()?.member.clone();
    let answer = match server.users.private(from, to, text).await {
        Ok(Private { reply, recipient }) => {
            if let Some(member) = recipient {
                irc.session.keep_recipient(member);
            }
            reply
        }
        Err(_) => return Some(("401", "No such nick/channel".into())),
    };
    match answer {
        Reply::Ok {
            detail: Some(detail),
            ..
        } if detail.ends_with(" queued") => {
            irc.server_notice(&format!(
                "{target} is offline; they will get your message when they log in"
            ));
            None
        }
        Reply::Ok { .. } => None,
        refused => Some(refusal(refused)),
    }
}

/// The numeric of a private message the line protocol refused with `reply`.
fn refusal(reply: Reply) -> (&'static str, String) {
    match reply {
        Reply::Err {
            code: ErrorCode::NoSuchUser,
            ..
        } => ("401", "No such nick/channel".into()),
        Reply::Err { message, .. } => ("401", message),
        _ => ("401", "No such nick/channel".into()),
    }
}

/// A message's text as linechat keeps it: CTCP `ACTION` as `/me ...`, IRC formatting codes
/// (bold, colours, ...) removed. `None` for another CTCP request.
pub(super) fn from_irc(raw: &str) -> Option<Cow<'_, str>> {
    // CTCP and the formatting codes are control characters, which most text has none of.
    if !raw.bytes().any(|byte| byte < b' ') {
        return Some(Cow::Borrowed(raw));
    }
    let text = match raw.strip_prefix('\u{1}') {
        Some(ctcp) => {
            let ctcp = ctcp.strip_suffix('\u{1}').unwrap_or(ctcp);
            format!("/me {}", ctcp.strip_prefix("ACTION ")?)
        }
        None => raw.to_owned(),
    };
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Colour: ^C, then a foreground of up to two digits, then maybe ",background".
            '\u{3}' => {
                for _ in 0..2 {
                    chars.next_if(char::is_ascii_digit);
                }
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        for _ in 0..2 {
                            chars.next_if(char::is_ascii_digit);
                        }
                    }
                }
            }
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            c => plain.push(c),
        }
    }
    Some(Cow::Owned(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_slash_me_and_formatting_goes() {
        assert_eq!(
            from_irc("\u{1}ACTION waves\u{1}").as_deref(),
            Some("/me waves")
        );
        assert_eq!(from_irc("\u{1}VERSION\u{1}"), None);
        assert_eq!(
            from_irc("\u{2}bold\u{2} \u{3}4,12red\u{3} \u{3}3green \u{1f}u\u{f}").as_deref(),
            Some("bold red green u")
        );
        assert_eq!(from_irc("\u{3},x").as_deref(), Some(",x"));
        assert_eq!(from_irc("plain 日本").as_deref(), Some("plain 日本"));
    }
}
