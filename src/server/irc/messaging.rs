//! `PRIVMSG` and `NOTICE`: to `#room` (the room's `RM`), to `#global` (`MSG`) and to a nick
//! (`PM`), through the same actors as the line protocol. A `NOTICE` is delivered as a
//! message, as linechat has one kind, and never answered with an error (RFC 2812 §3.3.2).

use linechat_protocol::Name;

use super::channel::Channel;
use super::message::Message;
use super::{Flow, Irc, text};
use crate::server::cmd::{self, CommandError, Straight};
use crate::server::room::RoomError;
use crate::server::user::{PmError, PmOutcome};

/// The targets a `PRIVMSG` or `NOTICE` may have (`TARGMAX` in `ISUPPORT`): one message
/// costs the sender one line of flood control, and a delivery to each.
pub(super) const MAX_TARGETS: usize = 4;

pub(super) async fn privmsg(irc: &mut Irc, message: Message) -> Flow {
    send(irc, message, true).await
}

pub(super) async fn notice(irc: &mut Irc, message: Message) -> Flow {
    send(irc, message, false).await
}

async fn send(irc: &mut Irc, message: Message, answer: bool) -> Flow {
    // As the line port does before a message (`Session::execute`).
    irc.session.server().store.room_for_history().await;
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
    let Some(plain) = text::from_irc(raw) else {
        // A CTCP request other than ACTION: linechat clients would not answer it.
        return Flow::Continue;
    };
    let mut text = match text::checked(&plain) {
        Ok("") => {
            if answer {
                irc.numeric("412", &[], "No text to send");
            }
            return Flow::Continue;
        }
        Ok(text) => text.to_owned(),
        Err(error) => {
            if answer {
                irc.server_notice(&format!("message not sent: {error}"));
            }
            return Flow::Continue;
        }
    };
    let mut targets = targets.split(',').filter(|t| !t.is_empty());
    let chosen: Vec<&str> = targets.by_ref().take(MAX_TARGETS).collect();
    // Those past the limit are not sent to: the first of them is named, as IRC servers do.
    if let (Some(dropped), true) = (targets.next(), answer) {
        irc.numeric("407", &[dropped], "Too many targets");
    }
    let count = chosen.len();
    for (index, target) in chosen.into_iter().enumerate() {
        // The last target takes the text itself: a message to one target is not copied.
        let text = if index + 1 < count {
            text.clone()
        } else {
            std::mem::take(&mut text)
        };
        let refusal = if target.starts_with('#') {
            to_channel(irc, target, text).await
        } else {
            to_user(irc, target, text, answer).await
        };
        if let (Some((code, why)), true) = (refusal, answer) {
            irc.numeric(code, &[target], &why);
        }
    }
    Flow::Continue
}

/// Why a message to a channel was not sent, as a numeric.
async fn to_channel(irc: &mut Irc, target: &str, text: String) -> Option<(&'static str, String)> {
    irc.session.presence()?;
    match Channel::parse(target) {
        None => Some(("403", "No such channel".into())),
        Some(Channel::Global) if !irc.in_global => {
            Some(("404", "Cannot send to channel: JOIN #global first".into()))
        }
        Some(Channel::Global) => {
            // Sent once the directory answers; it never refuses one.
            if let Ok(answer) = cmd::broadcast(&irc.session, text) {
                let _ = answer.await;
            }
            None
        }
        Some(Channel::Room(room)) => match cmd::say(&irc.session, room, text).await {
            Ok(_) => None,
            Err(CommandError::Room(RoomError::NoSuchRoom(_))) => {
                Some(("403", "No such channel".into()))
            }
            Err(_) => Some(("404", "Cannot send to channel: you are not in it".into())),
        },
    }
}

/// Why a private message was not sent, as a numeric. One to an account that is offline is
/// kept for it, and the sender told so; the sender of a `PRIVMSG` to someone away is told
/// their away message (`301`).
///
/// As on the line port (`cmd::pm`), a message to someone whose handle the session holds goes
/// straight to their outbox, without a round trip: only the first message to someone (or
/// the first after they logged in again) waits for the directory, whose answer hands their
/// handle over. Every outcome is known before the next line is read, so numerics keep the
/// order of the messages.
async fn to_user(
    irc: &mut Irc,
    target: &str,
    text: String,
    tell_away: bool,
) -> Option<(&'static str, String)> {
    let Ok(to) = Name::parse(target) else {
        return Some(("401", "No such nick/channel".into()));
    };
    irc.session.presence()?;
    let text = match cmd::straight(&mut irc.session, &to, text).await {
        Straight::Sent(_) => return None,
        Straight::Refused(error) => return Some(refusal(&error)),
        Straight::NoHandle(text) => text,
    };
    let answer = match cmd::through_directory(&irc.session, to, text) {
        Ok(answer) => answer.await.unwrap_or(Err(PmError::Unavailable)),
        Err(_) => Err(PmError::Unavailable),
    };
    match answer {
        Ok(outcome @ (PmOutcome::Delivered { .. } | PmOutcome::Remote { .. })) => {
            if let (Some(away), true) = (outcome.away(), tell_away) {
                let name = outcome.recipient().to_string();
                irc.numeric("301", &[&name], away);
            }
            irc.session.keep_recipient(outcome);
            None
        }
        Ok(PmOutcome::Queued { .. }) => {
            irc.server_notice(&format!(
                "{target} is offline; they will get your message when they log in"
            ));
            None
        }
        Err(error) => Some(refusal(&error)),
    }
}

/// The numeric of a private message that was refused.
fn refusal(error: &PmError) -> (&'static str, String) {
    match error {
        PmError::NoSuchUser(_) | PmError::Disconnecting(_) | PmError::Unavailable => {
            ("401", "No such nick/channel".into())
        }
        PmError::Storage { .. } => ("401", error.to_string()),
    }
}
