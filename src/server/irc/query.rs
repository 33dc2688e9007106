//! Questions about users and modes: `WHO`, `WHOIS`, `USERHOST`, `ISON`, `AWAY`, `MODE`. The
//! directory's list of who is online answers them; linechat has no modes or hosts, so those
//! are answered with what is always true here.

use linechat_protocol::Name;

use super::channel::{self, Channel};
use super::message::Message;
use super::translate::HOST;
use super::{Flow, Irc, text};
use crate::server::cmd;
use crate::server::user::MAX_AWAY_BYTES;

/// Who is online now.
async fn online(irc: &Irc) -> Vec<Name> {
    cmd::online(&irc.session).await.unwrap_or_default()
}

/// `nick` as the user online under it spells it, if one is.
async fn find(irc: &Irc, nick: &str) -> Option<Name> {
    online(irc)
        .await
        .into_iter()
        .find(|name| name.as_str().eq_ignore_ascii_case(nick))
}

pub(super) async fn who(irc: &mut Irc, message: Message) -> Flow {
    let mask = message.param(0);
    let server = irc.server.clone();
    let (channel, users) = match Channel::parse(mask) {
        Some(parsed) if mask.starts_with('#') => {
            let users = channel::members(irc, &parsed).await.unwrap_or_default();
            (mask.to_owned(), users)
        }
        _ => ("*".to_owned(), find(irc, mask).await.into_iter().collect()),
    };
    for user in &users {
        let user = user.as_str();
        irc.numeric(
            "352",
            &[&channel, user, HOST, &server, user, "H"],
            &format!("0 {user}"),
        );
    }
    irc.numeric(
        "315",
        &[if mask.is_empty() { "*" } else { mask }],
        "End of /WHO list",
    );
    Flow::Continue
}

pub(super) async fn whois(irc: &mut Irc, message: Message) -> Flow {
    // `WHOIS [server] nick`: the nick is the last parameter.
    let nick = message.params.last().map_or("", String::as_str).to_owned();
    let server = irc.server.clone();
    match find(irc, &nick).await {
        Some(name) => {
            let name = name.as_str();
            irc.numeric("311", &[name, name, HOST, "*"], name);
            let rooms = irc.name().filter(|me| me.as_str() == name).and_then(|_| {
                let presence = irc.session.presence()?;
                let rooms: Vec<String> = presence.rooms().map(|r| format!("#{r}")).collect();
                Some(rooms)
            });
            if let Some(rooms) = rooms.filter(|rooms| !rooms.is_empty()) {
                irc.numeric_list("319", &[name], &rooms);
            }
            irc.numeric("312", &[name, &server], "linechat");
            if let Some(away) = irc.away.clone().filter(|_| irc.nick() == name) {
                irc.numeric("301", &[name], &away);
            }
        }
        None => irc.numeric("401", &[&nick], "No such nick/channel"),
    }
    irc.numeric("318", &[&nick], "End of /WHOIS list");
    Flow::Continue
}

pub(super) async fn userhost(irc: &mut Irc, message: Message) -> Flow {
    let users = online(irc).await;
    let mut found = Vec::new();
    for nick in message.params.iter().take(5) {
        if let Some(name) = users.iter().find(|n| n.as_str().eq_ignore_ascii_case(nick)) {
            let away = if irc.away.is_some() && irc.nick() == name.as_str() {
                '-'
            } else {
                '+'
            };
            found.push(format!("{name}={away}{name}@{HOST}"));
        }
    }
    irc.numeric_list("302", &[], &found);
    Flow::Continue
}

pub(super) async fn ison(irc: &mut Irc, message: Message) -> Flow {
    let users = online(irc).await;
    let found: Vec<&str> = message
        .params
        .iter()
        .flat_map(|param| param.split(' '))
        .filter_map(|nick| {
            users
                .iter()
                .find(|name| name.as_str().eq_ignore_ascii_case(nick))
                .map(Name::as_str)
        })
        .collect();
    irc.numeric_list("303", &[], &found);
    Flow::Continue
}

/// The away message is the directory's, as the line port's `AWAY` sets it: whoever sends
/// the user a private message, on either port, is told it (`301` here). It is a text like
/// any other: formatting removed, the text rules applied, cut to the length allowed.
pub(super) async fn away(irc: &mut Irc, message: Message) -> Flow {
    let raw = message.param(0);
    let plain = text::without_formatting(raw);
    match text::checked(&plain) {
        Ok("") => {
            irc.away = None;
            let _ = cmd::set_away(&irc.session, None);
            irc.numeric("305", &[], "You are no longer marked as being away");
        }
        Ok(away) => {
            let away = super::message::cut(away, MAX_AWAY_BYTES).to_owned();
            let _ = cmd::set_away(&irc.session, Some(away.clone()));
            irc.away = Some(away);
            irc.numeric("306", &[], "You have been marked as being away");
        }
        Err(error) => irc.server_notice(&format!("away message not set: {error}")),
    }
    Flow::Continue
}

/// Channels are `+n` (members only speak; any member may set the topic, so no `+t`) and
/// have no bans; users have no modes to change.
pub(super) async fn mode(irc: &mut Irc, message: Message) -> Flow {
    let target = message.param(0);
    let changes = message.param(1);
    if target.starts_with('#') {
        if Channel::parse(target).is_none() {
            irc.numeric("403", &[target], "No such channel");
        } else if changes.is_empty() {
            irc.numeric("324", &[target], "+n");
        } else if changes.trim_start_matches('+') == "b" {
            irc.numeric("368", &[target], "End of channel ban list");
        } else {
            irc.numeric(
                "482",
                &[target],
                "Channel modes cannot be changed on linechat",
            );
        }
        return Flow::Continue;
    }
    if !target.eq_ignore_ascii_case(&irc.nick()) {
        irc.numeric("502", &[], "Cannot change mode for other users");
    } else if changes.is_empty() {
        irc.numeric("221", &[], "+");
    } else if changes.chars().all(|c| matches!(c, '+' | '-' | 'i')) {
        // Everyone is invisible here already.
    } else {
        irc.numeric("501", &[], "Unknown MODE flag");
    }
    Flow::Continue
}
