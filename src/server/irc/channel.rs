//! Channels: `JOIN`, `PART`, `NAMES`, `LIST`, `TOPIC`. A room `lobby` is the channel
//! `#lobby`; `#global` is linechat's global chat, which every user is in on arrival.

use std::time::UNIX_EPOCH;

use linechat_protocol::{HistoryTarget, Name, Topic};

use super::message::{self, Message};
use super::translate::{self, Control, GLOBAL};
use super::{Flow, Irc, text};
use crate::server::cmd::{self, CommandError};
use crate::server::room::{MAX_TOPIC_BYTES, RoomError, RoomTopic};

/// Messages of a channel's history replayed when one joins it.
pub(super) const REPLAY_ON_JOIN: u32 = 20;

/// What a channel name stands for.
pub(super) enum Channel {
    Global,
    Room(Name),
}

impl Channel {
    /// Reads `#name`; `None` if it is no channel linechat can have.
    pub(super) fn parse(channel: &str) -> Option<Channel> {
        if channel.eq_ignore_ascii_case(GLOBAL) {
            return Some(Channel::Global);
        }
        let name = channel.strip_prefix('#')?;
        Name::parse(name).ok().map(Channel::Room)
    }
}

pub(super) async fn join(irc: &mut Irc, message: Message) -> Flow {
    if message.param(0) == "0" {
        let rooms: Vec<Name> = match irc.session.presence() {
            Some(presence) => presence.rooms().cloned().collect(),
            None => Vec::new(),
        };
        for room in rooms {
            leave(irc, &format!("#{room}"), None).await;
        }
        return Flow::Continue;
    }
    for channel in message.param(0).split(',').filter(|c| !c.is_empty()) {
        join_one(irc, channel).await;
    }
    Flow::Continue
}

async fn join_one(irc: &mut Irc, channel: &str) {
    let room = match Channel::parse(channel) {
        None => {
            irc.numeric(
                "403",
                &[channel],
                "No such channel: a channel is # and a linechat name",
            );
            return;
        }
        Some(Channel::Global) => {
            if !irc.in_global {
                enter(irc, GLOBAL, HistoryTarget::Global).await;
            }
            return;
        }
        Some(Channel::Room(room)) => room,
    };
    if let Some(presence) = irc.session.presence()
        && presence.is_in(&room)
    {
        return;
    }
    let mut joined = cmd::join(&mut irc.session, room.clone()).await;
    if let Err(CommandError::Room(RoomError::NoSuchRoom(_))) = joined {
        joined = cmd::create(&mut irc.session, room.clone()).await;
        // Created by someone else since the join: it exists now, or is being stored, and
        // a join then waits for it in the room table.
        if let Err(CommandError::Room(RoomError::Exists(_))) = joined {
            joined = cmd::join(&mut irc.session, room).await;
        }
    }
    match joined {
        // The room's name as it was created, which may differ in case.
        Ok(name) => {
            let channel = format!("#{name}");
            enter(irc, &channel, HistoryTarget::Named(name)).await;
        }
        Err(CommandError::Room(RoomError::AlreadyMember(_))) => {}
        Err(error @ CommandError::Room(RoomError::Full { .. })) => {
            irc.numeric("471", &[channel], &format!("Cannot join channel: {error}"))
        }
        Err(error @ CommandError::NameTooLong { .. }) => {
            irc.numeric("479", &[channel], &error.to_string());
        }
        Err(error) => irc.numeric("403", &[channel], &error.to_string()),
    }
}

/// What a join shows the joiner: the `JOIN`, the topic if there is one, the names, then the
/// channel's recent history.
pub(super) async fn enter(irc: &mut Irc, channel: &str, history: HistoryTarget) {
    if matches!(history, HistoryTarget::Global) {
        irc.in_global = true;
    }
    irc.as_me("JOIN", &[channel], None);
    if matches!(history, HistoryTarget::Global) {
        translate::tell(irc.session.outbox(), Control::InGlobal(true));
    }
    if let HistoryTarget::Named(room) = &history
        && let Some(topic) = topic_of(irc, room).await
    {
        send_topic(irc, channel, &topic);
    }
    send_names(irc, channel).await;
    let count = Some(REPLAY_ON_JOIN.min(irc.session.settings().history_max_count));
    // The messages go to the outbox as events, worded there; a refusal has nothing to show
    // here (the user is in the channel they just joined).
    let _ = cmd::recall(&irc.session, history, count).await;
}

pub(super) async fn part(irc: &mut Irc, message: Message) -> Flow {
    // Only the user sees it (the line protocol has no reason for leaving a room); it is
    // cleaned all the same, as a reason for quitting is, so that nothing echoes back what the
    // text rules refuse.
    let reason = message
        .params
        .get(1)
        .and_then(|reason| text::cleaned(reason));
    for channel in message.param(0).split(',').filter(|c| !c.is_empty()) {
        leave(irc, channel, reason.as_deref()).await;
    }
    Flow::Continue
}

async fn leave(irc: &mut Irc, channel: &str, reason: Option<&str>) {
    match Channel::parse(channel) {
        None => irc.numeric("403", &[channel], "No such channel"),
        Some(Channel::Global) if irc.in_global => {
            irc.in_global = false;
            irc.as_me("PART", &[GLOBAL], reason);
            translate::tell(irc.session.outbox(), Control::InGlobal(false));
        }
        Some(Channel::Global) => irc.numeric("442", &[channel], "You're not on that channel"),
        Some(Channel::Room(room)) => match cmd::leave(&mut irc.session, room).await {
            Ok(_) => irc.as_me("PART", &[channel], reason),
            Err(CommandError::Room(RoomError::NotMember(_))) => {
                irc.numeric("442", &[channel], "You're not on that channel");
            }
            Err(error) => irc.numeric("403", &[channel], &error.to_string()),
        },
    }
}

pub(super) async fn names(irc: &mut Irc, message: Message) -> Flow {
    if message.params.is_empty() {
        irc.numeric("366", &["*"], "End of /NAMES list");
    }
    for channel in message.param(0).split(',').filter(|c| !c.is_empty()) {
        send_names(irc, channel).await;
    }
    Flow::Continue
}

/// The members of a channel, online users for `#global`.
pub(super) async fn members(irc: &Irc, channel: &Channel) -> Option<Vec<Name>> {
    match channel {
        Channel::Global => cmd::online(&irc.session).await.ok(),
        Channel::Room(room) => cmd::members(&irc.session, room.clone())
            .await
            .ok()
            .map(|members| members.users),
    }
}

/// The names in as many `353` lines as they need, then `366`.
async fn send_names(irc: &mut Irc, channel: &str) {
    let users = match Channel::parse(channel) {
        Some(parsed) => members(irc, &parsed).await.unwrap_or_default(),
        None => Vec::new(),
    };
    if !users.is_empty() {
        let names: Vec<&str> = users.iter().map(Name::as_str).collect();
        irc.numeric_list("353", &["=", channel], &names);
    }
    irc.numeric("366", &[channel], "End of /NAMES list");
}

pub(super) async fn list(irc: &mut Irc, message: Message) -> Flow {
    let wanted: Vec<&str> = message
        .param(0)
        .split(',')
        .filter(|c| !c.is_empty())
        .collect();
    let shown =
        |channel: &str| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(channel));
    irc.numeric("321", &["Channel"], "Users  Name");
    if shown(GLOBAL) {
        let count = members(irc, &Channel::Global)
            .await
            .map_or(0, |users| users.len());
        let about = "linechat's global chat: everyone online";
        irc.numeric("322", &[GLOBAL, &count.to_string()], about);
    }
    for room in cmd::summaries(&irc.session).await.unwrap_or_default() {
        let name = format!("#{}", room.room);
        if !shown(&name) {
            continue;
        }
        let about = room.topic.map(|topic| topic.text).unwrap_or_default();
        irc.numeric("322", &[&name, &room.members.to_string()], &about);
    }
    irc.numeric("323", &[], "End of /LIST");
    Flow::Continue
}

/// `TOPIC #room` answers the room's topic (`332` and `333`) or that it has none (`331`);
/// `TOPIC #room :text` sets it, for a member (`442` otherwise), and `TOPIC #room :` clears it.
/// `#global` has no topic, and none can be set.
pub(super) async fn topic(irc: &mut Irc, message: Message) -> Flow {
    let channel = message.param(0).to_owned();
    let room = match Channel::parse(&channel) {
        None => {
            irc.numeric("403", &[&channel], "No such channel");
            return Flow::Continue;
        }
        Some(Channel::Global) => {
            if message.params.len() == 1 {
                irc.numeric("331", &[&channel], "No topic is set");
            } else if irc.in_global {
                irc.numeric("482", &[&channel], "#global has no topic to set");
            } else {
                irc.numeric("442", &[&channel], "You're not on that channel");
            }
            return Flow::Continue;
        }
        Some(Channel::Room(room)) => room,
    };
    if message.params.len() == 1 {
        match cmd::topic(&irc.session, room).await {
            Ok(RoomTopic {
                room,
                topic: Some(topic),
            }) => send_topic(irc, &format!("#{room}"), &topic),
            Ok(RoomTopic { room, topic: None }) => {
                irc.numeric("331", &[&format!("#{room}")], "No topic is set");
            }
            Err(_) => irc.numeric("403", &[&channel], "No such channel"),
        }
        return Flow::Continue;
    }
    set_topic(irc, &channel, room, message.param(1)).await;
    Flow::Continue
}

/// Sets (or, with an empty text, clears) a room's topic, and shows the user the `TOPIC`
/// line the other members see. IRC formatting is removed, and a topic longer than
/// `TOPICLEN` is cut, as IRC servers do; the rest is held to the text rules, as messages are.
/// Only a member may (`442` otherwise), whatever the text.
async fn set_topic(irc: &mut Irc, channel: &str, room: Name, raw: &str) {
    let member = irc
        .session
        .presence()
        .is_some_and(|presence| presence.is_in(&room));
    let text = if member {
        let Some(plain) = text::from_irc(raw) else {
            irc.server_notice("topic not set: a CTCP request is no topic");
            return;
        };
        match text::checked(message::cut(&plain, MAX_TOPIC_BYTES)) {
            Ok("") => None,
            Ok(text) => Some(text.to_owned()),
            Err(error) => {
                irc.server_notice(&format!("topic not set: {error}"));
                return;
            }
        }
    } else {
        None
    };
    match cmd::set_topic(&irc.session, room, text.clone()).await {
        // As the others see it, whatever was cut or trimmed.
        Ok(room) => {
            let channel = format!("#{room}");
            irc.as_me("TOPIC", &[&channel], Some(text.as_deref().unwrap_or("")));
        }
        Err(CommandError::Room(RoomError::NotMember(_))) => {
            irc.numeric("442", &[channel], "You're not on that channel");
        }
        Err(CommandError::Room(RoomError::NoSuchRoom(_))) => {
            irc.numeric("403", &[channel], "No such channel");
        }
        Err(error) => irc.server_notice(&format!("topic not set: {error}")),
    }
}

/// A room's topic, if it has one.
async fn topic_of(irc: &Irc, room: &Name) -> Option<Topic> {
    cmd::topic(&irc.session, room.clone()).await.ok()?.topic
}

/// `332` (the topic) and `333` (who set it, and when, in Unix seconds).
fn send_topic(irc: &mut Irc, channel: &str, topic: &Topic) {
    irc.numeric("332", &[channel], &topic.text);
    let at = topic
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let params = [channel, topic.by.as_str(), &at.to_string()];
    let nick = irc.nick();
    let mut all = vec![nick.as_str()];
    all.extend_from_slice(&params);
    irc.send(message::encode(Some(&irc.server), "333", &all, None));
}
