//! The IRC front-end: a second listener that speaks the IRC client protocol (RFC 1459/2812 as
//! modern servers implement them) and maps it onto the same actors as the line protocol, so
//! that IRC users and line-protocol users share rooms, private messages and presence.
//!
//! A connection here is a line-protocol [`Session`] with an IRC face ([`Irc`], a
//! [`FrontEnd`]): the same connection loop, so the same outbox (byte limits, output budget),
//! flood guard, login deadline (until the welcome), idle `PING`, connection limits and TLS;
//! logins, rooms and history go through the same commands (`cmd::apply`), whose answers this
//! front-end words as IRC numerics. What the actors deliver is translated on the way out
//! ([`translate`]). protocol.md's IRC section is the contract.

mod channel;
mod handlers;
mod message;
mod messaging;
mod query;
mod registration;
mod text;
mod translate;

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info_span;

use linechat_protocol::Name;

use super::session::{End, Flow, FrontEnd, Refusal, Session};
use crate::connection::{Delivery, LineCodec};
use crate::settings::Settings;
use message::{MAX_LINE, Message};
use registration::Registration;
use translate::Translator;

/// One IRC connection: the line-protocol session it drives, and what IRC adds.
pub(super) struct Irc {
    session: Session,
    /// The server's name, the source of its numerics.
    server: Arc<str>,
    registration: Registration,
    /// Whether the welcome (`001`) was sent: registration is over.
    welcomed: bool,
    /// Whether the user is in `#global` (they are on arrival, until they `PART` it).
    in_global: bool,
    /// The away message the user set, if any. Only the user sees it: linechat has no away
    /// state to share.
    away: Option<String>,
}

impl FrontEnd for Irc {
    type Wording = Translator;
    type Action = Message;

    fn new(session: Session) -> Self {
        let server = session.settings().irc_server_name().into();
        Irc {
            session,
            server,
            registration: Registration::default(),
            welcomed: false,
            in_global: false,
            away: None,
        }
    }

    fn span(peer: SocketAddr) -> tracing::Span {
        info_span!("irc", %peer, user = tracing::field::Empty)
    }

    /// At most 512 bytes with the line ending, CR LF or LF.
    fn codec(_: &Settings) -> LineCodec {
        LineCodec::counting_line_ending(MAX_LINE)
    }

    fn wording(&self) -> Translator {
        Translator::new(self.server.clone())
    }

    /// An IRC client speaks first (`CAP`, `NICK`, `USER`).
    fn greet(&mut self) {}

    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Registration is over: the welcome (`001`) was sent.
    fn logged_in(&self) -> bool {
        self.welcomed
    }

    fn decode(&self, line: &str) -> Option<Message> {
        Message::parse(line)
    }

    fn handle(&mut self, message: Message) -> impl Future<Output = Flow> + Send + '_ {
        handlers::dispatch(self, message)
    }

    fn ping(&mut self) {
        self.send(message::encode(None, "PING", &[], Some(&self.server)));
    }

    fn refuse(&mut self, refusal: Refusal) -> impl Future<Output = ()> + Send + '_ {
        match refusal {
            Refusal::Flood => {
                let rate = self.session.settings().flood_lines_per_sec;
                self.server_notice(&format!(
                    "over {rate} lines per second; the line was dropped"
                ));
            }
            Refusal::TooLong => self.numeric("417", &[], "Input line was too long"),
            Refusal::BadUtf8 => {
                self.server_notice("lines must be UTF-8 text; the line was dropped");
            }
        }
        std::future::ready(())
    }

    /// A quit or a refusal is said in an `ERROR` line, the last one written; the server's
    /// notices of the other ends are events, which the translator words as `ERROR`.
    fn parting(&mut self, end: &End) -> Option<Arc<Delivery>> {
        let text = match end {
            End::Quit(Some(reason)) => format!("Closing link: Quit: {reason}"),
            End::Quit(None) => "Closing link: Quit".to_owned(),
            End::Refused(why) => format!("Closing link: {why}"),
            _ => return end.notice().map(Delivery::event),
        };
        Some(Delivery::from_bytes(message::encode(
            None,
            "ERROR",
            &[],
            Some(&text),
        )))
    }
}

impl Irc {
    /// The user's nick: their name once logged in, else the one they asked for, else `*`.
    fn nick(&self) -> String {
        match (self.session.presence(), &self.registration.nick) {
            (Some(presence), _) => presence.name().to_string(),
            (None, Some(nick)) => nick.clone(),
            (None, None) => "*".to_owned(),
        }
    }

    /// The logged-in user's name.
    fn name(&self) -> Option<Name> {
        self.session
            .presence()
            .map(|presence| presence.name().clone())
    }

    /// Queues an encoded IRC line.
    fn send(&self, line: bytes::Bytes) {
        let _ = self.session.outbox().push(Delivery::from_bytes(line));
    }

    /// `:<server> <code> <nick> <params...> :<text>`.
    fn numeric(&self, code: &str, params: &[&str], text: &str) {
        let nick = self.nick();
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(nick.as_str());
        all.extend_from_slice(params);
        self.send(message::encode(Some(&self.server), code, &all, Some(text)));
    }

    /// A list reply: `:<server> <code> <nick> <params...> :<words>`, in as many lines as the
    /// words need (see [`message::encode_list`]).
    fn numeric_list(&self, code: &str, params: &[&str], words: &[impl AsRef<str>]) {
        let nick = self.nick();
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(nick.as_str());
        all.extend_from_slice(params);
        for line in message::encode_list(Some(&self.server), code, &all, words) {
            self.send(line);
        }
    }

    /// A line with the user as its source: what others see them do, echoed to them.
    fn as_me(&self, verb: &str, params: &[&str], text: Option<&str>) {
        let source = translate::source_of(&self.nick());
        self.send(message::encode(Some(&source), verb, params, text));
    }

    /// `:<server> NOTICE <nick> :<text>`.
    fn server_notice(&self, text: &str) {
        let nick = self.nick();
        self.send(message::encode(
            Some(&self.server),
            "NOTICE",
            &[&nick],
            Some(text),
        ));
    }
}
