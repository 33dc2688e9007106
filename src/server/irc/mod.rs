//! The IRC front-end: a second listener that speaks the IRC client protocol (RFC 1459/2812 as
//! modern servers implement them) and maps it onto the same actors as the line protocol, so
//! that IRC users and line-protocol users share rooms, private messages and presence.
//!
//! A connection here is a line-protocol [`Session`] with an IRC face: the same outbox (byte
//! limits, output budget), flood guard, login deadline, idle `PING`, connection limits and
//! TLS; logins, rooms and history go through the same commands (`cmd::apply`), whose answers
//! this front-end words as IRC numerics. What the actors deliver is translated on the way out
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
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use tracing::{Instrument, debug, info, info_span, warn};

use linechat_protocol::{CloseReason, Command, Departure, Name, Notice, Reply};

use super::cmd;
use super::limits::{Admission, FloodGuard, IdleAction, IdleWatch};
use super::session::{Session, SessionContext};
use crate::connection::{Delivery, Frame, LineCodec, MIN_READ_BUFFER};
use message::{MAX_LINE, Message};
use registration::Registration;
use translate::Translator;

/// Serves one IRC connection to its end, as `session::serve` does a line-protocol one.
pub(super) fn serve<R, W>(
    read: R,
    write: W,
    peer: SocketAddr,
    context: Arc<SessionContext>,
    connected_at: Instant,
    slot: impl Send + 'static,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbox, writer) = context
        .server
        .output
        .outbox(context.settings.outbox_limit_bytes);
    // The replies of the line-protocol commands the session runs reach the translator as
    // values, which it words as IRC.
    outbox.keep_replies();
    // At most 512 bytes with the line ending, CR LF or LF.
    let codec = LineCodec::counting_line_ending(MAX_LINE);
    let mut lines = FramedRead::with_capacity(read, codec, MIN_READ_BUFFER);
    let server: Arc<str> = context.settings.irc_server_name().into();
    let session = Session::new(peer, outbox, context, connected_at);
    let mut irc = Irc {
        session,
        server: server.clone(),
        registration: Registration::default(),
        welcomed: false,
        in_global: false,
        away: None,
    };
    let span = info_span!("irc", %peer, user = tracing::field::Empty);
    async move {
        debug!("connected");
        // Answers the grace for the parting line, as `session::serve` does.
        let serving = async {
            let end = irc.run(&mut lines).await;
            irc.finish(end);
            irc.session.context.settings.shutdown_grace()
        };
        let writing = writer.run_worded(write, Translator::new(server));
        tokio::pin!(serving, writing);
        tokio::select! {
            grace = &mut serving => {
                let _ = Box::pin(timeout(grace, writing)).await;
            }
            _ = &mut writing => {
                serving.await;
            }
        }
        drop(slot);
    }
    .instrument(span)
}

/// Why an IRC connection ended.
#[derive(Debug)]
enum End {
    Quit(Option<String>),
    /// Refused: said in `ERROR` (a wrong password, guests not allowed).
    Refused(String),
    Eof,
    ReadError(std::io::Error),
    Closed,
    LoginTimeout,
    IdleTimeout,
    Flood,
    Shutdown,
}

/// What a handler says comes next.
enum Flow {
    Continue,
    Quit(Option<String>),
    /// Close the connection, saying why in `ERROR`.
    Refuse(String),
}

/// One IRC connection: the line-protocol session it drives, and what IRC adds.
struct Irc {
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

impl Irc {
    async fn run<R: AsyncRead + Unpin>(&mut self, lines: &mut FramedRead<R, LineCodec>) -> End {
        let settings = self.session.context.settings.clone();
        let mut flood = FloodGuard::new(&settings);
        let mut idle = IdleWatch::new(&settings);
        let closed = self.session.outbox.closed_owned();
        let shutdown = self.session.context.shutdown.clone().cancelled_owned();
        let timer = sleep_until(self.session.login_deadline);
        tokio::pin!(closed, shutdown, timer);
        let mut timing_login = true;
        loop {
            let frame = tokio::select! {
                frame = lines.next() => frame,
                () = &mut closed => return End::Closed,
                () = &mut shutdown => return End::Shutdown,
                () = &mut timer => {
                    if !self.welcomed {
                        return End::LoginTimeout;
                    }
                    match idle.deadline() {
                        Some(due) if due <= Instant::now() => match idle.fired() {
                            IdleAction::Ping => {
                                let server = self.server.clone();
                                self.send(message::encode(None, "PING", &[], Some(&server)));
                            }
                            IdleAction::Close => return End::IdleTimeout,
                        },
                        _ => {}
                    }
                    timer.as_mut().reset(idle.deadline().unwrap_or_else(far_future));
                    continue;
                }
            };
            let frame = match frame {
                None => return End::Eof,
                Some(Err(error)) => return End::ReadError(error),
                Some(Ok(frame)) => frame,
            };
            idle.heard();
            match flood.admit() {
                Admission::Accept => {}
                Admission::Drop => {
                    let text = format!(
                        "over {} lines per second; the line was dropped",
                        settings.flood_lines_per_sec
                    );
                    self.server_notice(&text);
                    continue;
                }
                Admission::Close => return End::Flood,
            }
            let line = match frame {
                Frame::TooLong => {
                    self.numeric("417", &[], "Input line was too long");
                    continue;
                }
                Frame::BadUtf8 => {
                    self.server_notice("lines must be UTF-8 text; the line was dropped");
                    continue;
                }
                Frame::Line(line) => line,
            };
            let Some(message) = Message::parse(&line) else {
                continue;
            };
            match Box::pin(handlers::dispatch(self, message)).await {
                Flow::Continue => {}
                Flow::Quit(reason) => return End::Quit(reason),
                Flow::Refuse(why) => return End::Refused(why),
            }
            if timing_login && self.welcomed {
                timing_login = false;
                timer
                    .as_mut()
                    .reset(idle.deadline().unwrap_or_else(far_future));
            }
        }
    }

    /// Says goodbye as IRC does (`ERROR`), closes the outbox, and lets the user go offline.
    fn finish(&mut self, end: End) {
        let outbox = &self.session.outbox;
        let (parting, how) = match end {
            End::Quit(reason) => {
                let text = match &reason {
                    Some(reason) => format!("Closing link: Quit: {reason}"),
                    None => "Closing link: Quit".to_owned(),
                };
                let _ = outbox.push(Delivery::from_bytes(message::encode(
                    None,
                    "ERROR",
                    &[],
                    Some(&text),
                )));
                (None, Departure::Quit(reason))
            }
            End::Refused(why) => {
                let text = format!("Closing link: {why}");
                let _ = outbox.push(Delivery::from_bytes(message::encode(
                    None,
                    "ERROR",
                    &[],
                    Some(&text),
                )));
                (None, Departure::Lost)
            }
            End::Eof => (None, Departure::Closed),
            End::ReadError(error) => {
                debug!(%error, "read failed");
                (None, Departure::Lost)
            }
            End::Closed if outbox.overflowed() => {
                warn!("disconnected: not reading, outbox full");
                (None, Departure::NotReading)
            }
            End::Closed if outbox.replaced() => {
                info!("replaced by a new login");
                if let Some(presence) = &mut self.session.presence {
                    presence.rooms.clear();
                }
                (None, Departure::Lost)
            }
            End::Closed => (None, Departure::Lost),
            End::LoginTimeout => {
                info!("disconnected: no registration in time");
                let reason = CloseReason::LoginTimeout;
                (
                    Some(Reply::Notice(Notice::Closing { reason })),
                    Departure::Lost,
                )
            }
            End::IdleTimeout => {
                info!("disconnected: no answer to PING");
                let reason = CloseReason::IdleTimeout;
                (
                    Some(Reply::Notice(Notice::Closing { reason })),
                    Departure::TimedOut,
                )
            }
            End::Flood => {
                warn!("disconnected: flooding");
                let reason = CloseReason::Flood;
                (
                    Some(Reply::Notice(Notice::Closing { reason })),
                    Departure::Flooding,
                )
            }
            End::Shutdown => (Some(Reply::Notice(Notice::Shutdown)), Departure::Shutdown),
        };
        // The translator words these notices as `ERROR`.
        outbox.finish(parting);
        if let Some(mut presence) = self.session.presence.take() {
            info!(%how, "logged out");
            presence.how = how;
        }
    }

    /// The user's nick: their name once logged in, else the one they asked for, else `*`.
    fn nick(&self) -> String {
        match (&self.session.presence, &self.registration.nick) {
            (Some(presence), _) => presence.member.name.to_string(),
            (None, Some(nick)) => nick.clone(),
            (None, None) => "*".to_owned(),
        }
    }

    /// The logged-in user's name.
    fn name(&self) -> Option<Name> {
        self.session
            .presence
            .as_ref()
            .map(|presence| presence.member.name.clone())
    }

    /// Queues an encoded IRC line.
    fn send(&self, line: bytes::Bytes) {
        let _ = self.session.outbox.push(Delivery::from_bytes(line));
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

    /// Runs a line-protocol command on the session; its final reply. Lines it sends on its
    /// way (restored rooms, history) go to the outbox, where they are translated.
    async fn command(&mut self, command: Command) -> Reply {
        match cmd::apply(&mut self.session, command).await {
            cmd::Step::Reply(reply) => reply,
            cmd::Step::Done | cmd::Step::Quit(_) => Reply::ok(linechat_protocol::Verb::Ping),
        }
    }
}

/// A deadline that never comes.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}
