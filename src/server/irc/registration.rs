//! Registration (`CAP`, `PASS`, `AUTHENTICATE`, `NICK`, `USER`), the welcome, `MOTD`,
//! `PING`/`PONG` and `QUIT`.
//!
//! Logging in goes through the line protocol's own commands: `SASL PLAIN` and `PASS` are a
//! `LOGIN`, a nick without a password a guest's `NICK`. A nick that is a registered account
//! needs its password; one online already is `433`, and the client picks another.

use base64::Engine;
use linechat_protocol::{Departure, HistoryTarget, Name, Password};
use tracing::info;

use super::message::Message;
use super::messaging::MAX_TARGETS;
use super::translate::{self, Control, GLOBAL};
use super::{Flow, Irc, channel, text};
use crate::server::accounts::AccountError;
use crate::server::cmd::{self, LoginError};
use crate::server::room::MAX_TOPIC_BYTES;

/// Capabilities offered (`CAP LS`); any other `CAP REQ` is refused whole (`NAK`).
const CAPABILITIES: &[&str] = &["sasl", "server-time"];

/// The longest SASL payload accepted, after its 400-byte chunks are put together.
const MAX_SASL: usize = 2048;

/// What a connection said while registering.
#[derive(Debug, Default)]
pub(super) struct Registration {
    /// The nick asked for, once valid.
    pub(super) nick: Option<String>,
    user: bool,
    pass: Option<String>,
    /// Between `CAP LS`/`REQ` and `CAP END`, registration waits.
    negotiating: bool,
    /// `AUTHENTICATE PLAIN` was accepted; its payload comes next, in chunks.
    sasl: Option<String>,
    /// Capabilities the client took.
    enabled: Vec<&'static str>,
}

pub(super) async fn cap(irc: &mut Irc, message: Message) -> Flow {
    let nick = irc.nick();
    let server = irc.server.clone();
    let reply = |sub: &str, text: &str| {
        super::message::encode(Some(&server), "CAP", &[&nick, sub], Some(text))
    };
    match message.param(0).to_ascii_uppercase().as_str() {
        "LS" => {
            irc.registration.negotiating |= !irc.welcomed;
            let offered = if message.param(1).parse::<u32>().unwrap_or(0) >= 302 {
                "sasl=PLAIN server-time"
            } else {
                "sasl server-time"
            };
            irc.send(reply("LS", offered));
        }
        "LIST" => irc.send(reply("LIST", &irc.registration.enabled.join(" "))),
        "REQ" => {
            irc.registration.negotiating |= !irc.welcomed;
            let asked = message.param(1).trim();
            let known = |cap: &str| CAPABILITIES.iter().find(|&&known| known == cap);
            let all_known = asked
                .split(' ')
                .filter(|cap| !cap.is_empty())
                .all(|cap| known(cap.trim_start_matches('-')).is_some());
            if asked.is_empty() || !all_known {
                irc.send(reply("NAK", asked));
                return Flow::Continue;
            }
            for cap in asked.split(' ').filter(|cap| !cap.is_empty()) {
                let removing = cap.starts_with('-');
                let Some(&cap) = known(cap.trim_start_matches('-')) else {
                    continue;
                };
                irc.registration.enabled.retain(|&enabled| enabled != cap);
                if !removing {
                    irc.registration.enabled.push(cap);
                }
            }
            irc.send(reply("ACK", asked));
            let server_time = irc.registration.enabled.contains(&"server-time");
            translate::tell(irc.session.outbox(), Control::ServerTime(server_time));
        }
        "END" => {
            irc.registration.negotiating = false;
            return try_register(irc).await;
        }
        sub => irc.numeric("410", &[sub], "Invalid CAP command"),
    }
    Flow::Continue
}

pub(super) async fn authenticate(irc: &mut Irc, message: Message) -> Flow {
    if irc.session.is_logged_in() {
        irc.numeric("907", &[], "You have already authenticated using SASL");
        return Flow::Continue;
    }
    let data = message.param(0);
    if data == "*" {
        irc.registration.sasl = None;
        irc.numeric("906", &[], "SASL authentication aborted");
        return Flow::Continue;
    }
    let Some(mut payload) = irc.registration.sasl.take() else {
        if data.eq_ignore_ascii_case("PLAIN") {
            irc.registration.sasl = Some(String::new());
            irc.send(super::message::encode(None, "AUTHENTICATE", &["+"], None));
        } else {
            irc.numeric("908", &["PLAIN"], "are available SASL mechanisms");
            irc.numeric("904", &[], "SASL authentication failed");
        }
        return Flow::Continue;
    };
    if data != "+" {
        payload.push_str(data);
    }
    if payload.len() > MAX_SASL {
        irc.numeric("905", &[], "SASL message too long");
        return Flow::Continue;
    }
    // A chunk of 400 bytes means more follow.
    if data.len() == 400 {
        irc.registration.sasl = Some(payload);
        return Flow::Continue;
    }
    let Some((name, password)) = plain(&payload) else {
        irc.numeric("904", &[], "SASL authentication failed");
        return Flow::Continue;
    };
    match cmd::log_in(&mut irc.session, name, password).await {
        Ok(_) => {
            let nick = irc.nick();
            let source = super::translate::source_of(&nick);
            irc.numeric(
                "900",
                &[&source, &nick],
                &format!("You are now logged in as {nick}"),
            );
            irc.numeric("903", &[], "SASL authentication successful");
        }
        Err(refusal) => {
            irc.server_notice(&refusal.to_string());
            irc.numeric("904", &[], "SASL authentication failed");
        }
    }
    Flow::Continue
}

/// The account name and password of a SASL PLAIN payload, `authzid NUL authcid NUL passwd`
/// in base64. An authorization identity other than the account is not supported.
fn plain(payload: &str) -> Option<(Name, Password)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let mut parts = decoded.split('\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || (!authzid.is_empty() && authzid != authcid) {
        return None;
    }
    Some((Name::parse(authcid).ok()?, Password::new(password)))
}

pub(super) async fn pass(irc: &mut Irc, message: Message) -> Flow {
    if irc.welcomed {
        irc.numeric("462", &[], "You may not reregister");
        return Flow::Continue;
    }
    irc.registration.pass = Some(message.param(0).to_owned());
    Flow::Continue
}

pub(super) async fn user(irc: &mut Irc, _message: Message) -> Flow {
    if irc.welcomed {
        irc.numeric("462", &[], "You may not reregister");
        return Flow::Continue;
    }
    irc.registration.user = true;
    try_register(irc).await
}

pub(super) async fn nick(irc: &mut Irc, message: Message) -> Flow {
    let wanted = message.param(0);
    if wanted.is_empty() {
        irc.numeric("431", &[], "No nickname given");
        return Flow::Continue;
    }
    let name = match Name::parse(wanted) {
        Ok(name) => name,
        Err(error) => {
            irc.numeric("432", &[wanted], &format!("Erroneous nickname: {error}"));
            return Flow::Continue;
        }
    };
    if let Err(error) = cmd::check_new_name(&irc.session, &name) {
        irc.numeric("432", &[wanted], &error.to_string());
        return Flow::Continue;
    }
    if !irc.welcomed {
        if !irc.session.is_logged_in() {
            irc.registration.nick = Some(name.to_string());
        }
        return try_register(irc).await;
    }
    rename(irc, name).await;
    Flow::Continue
}

/// `NICK` after registration: a guest takes the new name (if free) and leaves the old one,
/// taking their rooms along. Others see the old name leave and the new one come.
async fn rename(irc: &mut Irc, new: Name) {
    let Some(presence) = irc.session.presence() else {
        return;
    };
    if presence.name().as_str() == new.as_str() {
        return;
    }
    if presence.is_registered() {
        irc.numeric(
            "447",
            &[],
            "Accounts keep their name; log in as a guest to choose one",
        );
        return;
    }
    let server = irc.session.server().clone();
    let outbox = irc.session.outbox().clone();
    let member = match server.users.guest(new.clone(), outbox).await {
        Ok(member) => member,
        Err(refusal) => {
            irc.numeric(
                "433",
                &[new.as_str()],
                &format!("Nickname is in use: {refusal}"),
            );
            return;
        }
    };
    let Some(mut old) = irc.session.take_presence() else {
        return;
    };
    let mut presence = cmd::new_presence(&irc.session, member.clone(), false);
    for (name, room) in old.take_rooms() {
        let _ = room.leave(old.member().clone()).await;
        if let Ok(room) = server.rooms.join(member.clone(), name).await {
            presence.entered(room);
        }
    }
    let old_name = old.name().clone();
    old.depart_as(Departure::Quit(Some(format!("now known as {new}"))));
    drop(old);
    irc.as_me("NICK", &[], Some(new.as_str()));
    translate::tell(irc.session.outbox(), Control::Nick(new.to_string()));
    irc.session.logged_in_as(&new);
    info!(from = %old_name, "changed nick");
    irc.session.enter(presence);
}

/// Logs in and welcomes the user once `NICK` and `USER` are in and capability negotiation
/// is over.
async fn try_register(irc: &mut Irc) -> Flow {
    let ready = irc.registration.user && !irc.registration.negotiating && !irc.welcomed;
    let Some(nick) = irc.registration.nick.clone().filter(|_| ready) else {
        // Logged in by SASL, the nick is the account's; it still waits for USER.
        if !(ready && irc.session.is_logged_in()) {
            return Flow::Continue;
        }
        return welcome(irc).await;
    };
    if irc.session.is_logged_in() {
        return welcome(irc).await;
    }
    let Ok(name) = Name::parse(&nick) else {
        return Flow::Continue;
    };
    let logged_in = match irc.registration.pass.take() {
        Some(password) => {
            let password = Password::new(password);
            match cmd::log_in(&mut irc.session, name, password).await {
                Err(refusal) => {
                    irc.numeric("464", &[], "Password incorrect");
                    let why = match refusal {
                        LoginError::Account(AccountError::BadPassword) => "Bad password".into(),
                        refusal => refusal.to_string(),
                    };
                    return Flow::Refuse(why);
                }
                logged_in => logged_in,
            }
        }
        None => cmd::guest(&mut irc.session, name).await,
    };
    match logged_in {
        Ok(_) => welcome(irc).await,
        Err(refusal @ LoginError::NameTaken { .. }) => {
            irc.registration.nick = None;
            irc.numeric("433", &[&nick], &format!("Nickname is in use: {refusal}"));
            Flow::Continue
        }
        Err(LoginError::GuestsDisabled) => {
            irc.numeric("464", &[], "Password required");
            Flow::Refuse("guests are not allowed here; log in with PASS or SASL".into())
        }
        Err(refusal) => {
            irc.registration.nick = None;
            irc.numeric("432", &[&nick], &refusal.to_string());
            Flow::Continue
        }
    }
}

/// `001`–`005`, the MOTD, then `#global` and the rooms a returning account is in, each with
/// its names and recent history.
async fn welcome(irc: &mut Irc) -> Flow {
    irc.welcomed = true;
    let settings = irc.session.settings().clone();
    let nick = irc.nick();
    let server = irc.server.clone();
    let version = concat!("linechat-", env!("CARGO_PKG_VERSION"));
    irc.numeric(
        "001",
        &[],
        &format!("Welcome to the linechat IRC network, {nick}"),
    );
    translate::tell(irc.session.outbox(), Control::Welcome(nick.clone()));
    irc.numeric(
        "002",
        &[],
        &format!("Your host is {server}, running version {version}"),
    );
    irc.numeric(
        "003",
        &[],
        "This server speaks linechat's line protocol too",
    );
    irc.send(super::message::encode(
        Some(&server),
        "004",
        &[&nick, &server, version, "i", "nt"],
        None,
    ));
    let max = settings.max_name_length;
    let isupport = [
        "AWAYLEN=200".to_owned(),
        "CASEMAPPING=ascii".to_owned(),
        "CHANMODES=,,,nt".to_owned(),
        format!("CHANNELLEN={}", max + 1),
        "CHANTYPES=#".to_owned(),
        "NETWORK=linechat".to_owned(),
        format!("NICKLEN={max}"),
        "PREFIX=(o)@".to_owned(),
        "SAFELIST".to_owned(),
        format!(
            "TARGMAX=ISON:,JOIN:,NAMES:1,NOTICE:{MAX_TARGETS},PART:,PRIVMSG:{MAX_TARGETS},USERHOST:5,WHOIS:1"
        ),
        format!("TOPICLEN={MAX_TOPIC_BYTES}"),
    ];
    let words: Vec<&str> = isupport.iter().map(String::as_str).collect();
    irc.numeric("005", &words, "are supported by this server");
    send_motd(irc);
    info!("registered");
    channel::enter(irc, GLOBAL, HistoryTarget::Global).await;
    let rooms: Vec<Name> = match irc.session.presence() {
        Some(presence) => presence.rooms().cloned().collect(),
        None => Vec::new(),
    };
    for room in rooms {
        let channel = super::translate::channel_of(&room);
        channel::enter(irc, &channel, HistoryTarget::Named(room)).await;
    }
    Flow::Continue
}

pub(super) async fn motd(irc: &mut Irc, _message: Message) -> Flow {
    send_motd(irc);
    Flow::Continue
}

fn send_motd(irc: &Irc) {
    let server = irc.server.clone();
    irc.numeric("375", &[], &format!("- {server} Message of the day -"));
    for line in [
        "This is linechat, over IRC: the same chat as its line protocol.",
        "#global is the global chat; everyone online is in it.",
        "Rooms are channels: JOIN #name joins the room, or creates it.",
        "Guests pick any free nick; accounts log in with PASS or SASL PLAIN.",
    ] {
        irc.numeric("372", &[], &format!("- {line}"));
    }
    irc.numeric("376", &[], "End of /MOTD command.");
}

pub(super) async fn ping(irc: &mut Irc, message: Message) -> Flow {
    let server = irc.server.clone();
    irc.send(super::message::encode(
        Some(&server),
        "PONG",
        &[&server],
        Some(message.param(0)),
    ));
    Flow::Continue
}

pub(super) async fn pong(_irc: &mut Irc, _message: Message) -> Flow {
    // Hearing it was what mattered: every line counts as activity.
    Flow::Continue
}

/// The reason goes to everyone online: it is cleaned of what the text rules refuse.
pub(super) async fn quit(_irc: &mut Irc, message: Message) -> Flow {
    Flow::Quit(
        message
            .params
            .first()
            .and_then(|reason| text::cleaned(reason)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sasl_plain_payload_gives_the_account_and_its_password() {
        let encode = |raw: &str| base64::engine::general_purpose::STANDARD.encode(raw);
        let (name, password) = plain(&encode("\0alice\0secret pw")).unwrap();
        assert_eq!(name.as_str(), "alice");
        assert_eq!(password.expose(), "secret pw");
        assert!(plain(&encode("alice\0alice\0pw")).is_some());
        assert!(
            plain(&encode("bob\0alice\0pw")).is_none(),
            "another identity"
        );
        assert!(plain(&encode("\0bad name\0pw")).is_none());
        assert!(plain("not base64!").is_none());
        assert!(plain(&encode("\0alice")).is_none());
    }
}
