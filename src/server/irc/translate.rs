//! The IRC connection's output side: what reaches its outbox, written as IRC.
//!
//! The actors deliver to every connection the same line-protocol lines, encoded once and
//! shared by all recipients ([`Delivery`](crate::connection::Delivery)); an IRC connection's
//! outbox receives them too. [`IrcWrite`] sits between the outbox's writer and the socket and
//! turns each of them into IRC (`RM lobby alice hi` into
//! `:alice!alice@linechat PRIVMSG #lobby :hi`), so that neither the actors nor the line
//! protocol's fan-out do anything for IRC: the cost (a parse and a format per line) falls on
//! IRC connections only.
//!
//! The IRC session also writes its own lines, already IRC, to the same outbox, so that they
//! keep their order with the deliveries. They are told apart by their first word: a line the
//! session writes starts with a source (`:`), or is `ERROR`, `PING` or `AUTHENTICATE`, which no
//! line-protocol line that reaches a connection from elsewhere is. Those lines pass unchanged,
//! and tell the translator, in order with everything else, who the user is now (`001`,
//! `NICK`), whether they are in `#global` (`JOIN`, `PART`), and which capabilities they took
//! (`CAP ACK`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tracing::{debug, warn};

use linechat_protocol::{Departure, HistoryTarget, Name, Notice, Reply};

use super::message::{self, MAX_LINE, Message};

/// The host part of every user's source, `alice!alice@linechat`.
pub(super) const HOST: &str = "linechat";

/// The channel of linechat's global chat (`MSG`).
pub(super) const GLOBAL: &str = "#global";

/// What a connection holds of deliveries that came before its welcome, at most; they wait
/// for the welcome, which says who the user is, and later ones are dropped.
const MAX_HELD: usize = 1024 * 1024;

/// A user's source in IRC lines.
pub(super) fn source_of(nick: &str) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// The channel of a room.
pub(super) fn channel_of(room: &Name) -> String {
    format!("#{room}")
}

/// Turns the lines of one connection's outbox into IRC, in order.
#[derive(Debug)]
pub(super) struct Translator {
    server: Arc<str>,
    /// The user's nick once welcomed (`001`).
    me: Option<String>,
    /// The nick before the last change: others are told it went offline, the user is not.
    former: Option<String>,
    /// Deliveries that came before the welcome.
    held: Vec<Bytes>,
    held_bytes: usize,
    in_global: bool,
    server_time: bool,
}

impl Translator {
    pub(super) fn new(server: Arc<str>) -> Self {
        Self {
            server,
            me: None,
            former: None,
            held: Vec::new(),
            held_bytes: 0,
            in_global: false,
            server_time: false,
        }
    }

    /// Writes the IRC form of one outbox line (without its `\n`) to `out`.
    pub(super) fn line(&mut self, line: &[u8], out: &mut BytesMut) {
        let Ok(text) = std::str::from_utf8(line) else {
            return;
        };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if is_irc(text) {
            out.put_slice(text.as_bytes());
            out.put_slice(b"\r\n");
            self.observe(text, out);
            return;
        }
        if self.me.is_none() {
            if self.held_bytes + line.len() <= MAX_HELD {
                self.held_bytes += line.len();
                self.held.push(Bytes::copy_from_slice(line));
            } else {
                warn!("IRC connection: too much before the welcome; a line was dropped");
            }
            return;
        }
        match Reply::parse(text) {
            Ok(reply) => self.reply(reply, out),
            Err(error) => debug!(%error, "IRC connection: a line it cannot translate"),
        }
    }

    /// Follows what the session's own lines say about the connection.
    fn observe(&mut self, text: &str, out: &mut BytesMut) {
        let Some(message) = Message::parse(text) else {
            return;
        };
        let from_me = match (source_nick(text), &self.me) {
            (Some(nick), Some(me)) => nick.eq_ignore_ascii_case(me),
            _ => false,
        };
        match message.verb.as_str() {
            "001" => {
                self.me = Some(message.param(0).to_owned());
                for line in std::mem::take(&mut self.held) {
                    self.line(&line, out);
                }
                self.held_bytes = 0;
                self.held = Vec::new();
            }
            "NICK" if from_me => {
                self.former = self.me.replace(message.param(0).to_owned());
            }
            "JOIN" if from_me && message.param(0).eq_ignore_ascii_case(GLOBAL) => {
                self.in_global = true;
            }
            "PART" if from_me && message.param(0).eq_ignore_ascii_case(GLOBAL) => {
                self.in_global = false;
            }
            "CAP" if message.param(1) == "ACK" => {
                for capability in message.params.last().into_iter().flat_map(|c| c.split(' ')) {
                    match capability {
                        "server-time" => self.server_time = true,
                        "-server-time" => self.server_time = false,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn reply(&mut self, reply: Reply, out: &mut BytesMut) {
        let me = self.me.clone().unwrap_or_else(|| "*".into());
        match reply {
            Reply::Rm { room, from, text } => {
                self.privmsg(out, &from, &channel_of(&room), &text, None);
            }
            Reply::Pm { from, text } => self.privmsg(out, &from, &me, &text, None),
            Reply::Msg { from, text } if self.in_global => {
                self.privmsg(out, &from, GLOBAL, &text, None);
            }
            Reply::Hist {
                target,
                at,
                from,
                text,
            } => {
                let channel = match &target {
                    HistoryTarget::Global if !self.in_global => return,
                    HistoryTarget::Global => GLOBAL.to_owned(),
                    HistoryTarget::Named(room) => channel_of(room),
                };
                self.privmsg(out, &from, &channel, &text, Some(at));
            }
            Reply::Joined { room, user } if !user.as_str().eq_ignore_ascii_case(&me) => {
                let line = message::encode(
                    Some(&source_of(user.as_str())),
                    "JOIN",
                    &[&channel_of(&room)],
                    None,
                );
                out.put_slice(&line);
            }
            Reply::Left { room, user } if !user.as_str().eq_ignore_ascii_case(&me) => {
                let line = message::encode(
                    Some(&source_of(user.as_str())),
                    "PART",
                    &[&channel_of(&room)],
                    None,
                );
                out.put_slice(&line);
            }
            Reply::Notice(Notice::Online { user } | Notice::Offline { user, .. })
                if user.as_str().eq_ignore_ascii_case(&me)
                    || self
                        .former
                        .as_ref()
                        .is_some_and(|former| user.as_str().eq_ignore_ascii_case(former)) => {}
            Reply::Notice(Notice::Online { user }) if self.in_global => {
                let line =
                    message::encode(Some(&source_of(user.as_str())), "JOIN", &[GLOBAL], None);
                out.put_slice(&line);
            }
            Reply::Notice(Notice::Offline { user, how }) if self.in_global => {
                let reason = quit_reason(&how);
                let line =
                    message::encode(Some(&source_of(user.as_str())), "QUIT", &[], Some(&reason));
                out.put_slice(&line);
            }
            Reply::Notice(Notice::Topic { room, by, text }) => {
                let text = text.unwrap_or_default();
                let line = message::encode(
                    Some(&source_of(by.as_str())),
                    "TOPIC",
                    &[&channel_of(&room)],
                    Some(&text),
                );
                out.put_slice(&line);
            }
            Reply::Notice(Notice::RoomCreated { room, by }) => {
                let text = format!("{by} created {}", channel_of(&room));
                let line = message::encode(Some(&self.server), "NOTICE", &[&me], Some(&text));
                out.put_slice(&line);
            }
            Reply::Notice(notice @ (Notice::Closing { .. } | Notice::Shutdown)) => {
                let why = match notice {
                    // `NOTICE CLOSING <CODE> <explanation>`: the explanation.
                    Notice::Closing { reason } => Reply::Notice(Notice::Closing { reason })
                        .to_string()
                        .splitn(4, ' ')
                        .nth(3)
                        .unwrap_or("closing")
                        .to_owned(),
                    _ => "the server is going down".to_owned(),
                };
                let line =
                    message::encode(None, "ERROR", &[], Some(&format!("Closing link: {why}")));
                out.put_slice(&line);
            }
            Reply::Err { message, .. } => {
                let line = message::encode(Some(&self.server), "NOTICE", &[&me], Some(&message));
                out.put_slice(&line);
            }
            // Final lines of commands the IRC session answers itself, and what IRC shows
            // otherwise (own joins, the global chat once parted).
            _ => {}
        }
    }

    /// `PRIVMSG`s from `from` to `target`, as many as `text` needs to fit in IRC lines. A
    /// text that starts `/me ` is a CTCP `ACTION`. A message from history carries its time:
    /// a `time` tag with `server-time`, else in front of the text.
    fn privmsg(
        &self,
        out: &mut BytesMut,
        from: &Name,
        target: &str,
        text: &str,
        at: Option<std::time::SystemTime>,
    ) {
        let source = source_of(from.as_str());
        let mut text = text.to_owned();
        let mut tag = None;
        if let Some(at) = at {
            if self.server_time {
                tag = Some(format!("@time={} ", humantime::format_rfc3339_millis(at)));
            } else {
                text = format!("[{}] {text}", humantime::format_rfc3339_seconds(at));
            }
        }
        let (action, body) = match text.strip_prefix("/me ") {
            Some(action) => (true, action),
            None => (false, text.as_str()),
        };
        // `:<source> PRIVMSG <target> :` and CR LF, and the CTCP wrapping of an action.
        let overhead = 1 + source.len() + " PRIVMSG ".len() + target.len() + 2 + 2;
        let overhead = overhead + if action { "\u{1}ACTION \u{1}".len() } else { 0 };
        for piece in message::split(body, MAX_LINE.saturating_sub(overhead)) {
            if let Some(tag) = &tag {
                out.put_slice(tag.as_bytes());
            }
            let piece = if action {
                format!("\u{1}ACTION {piece}\u{1}")
            } else {
                piece.to_owned()
            };
            out.put_slice(&message::encode(
                Some(&source),
                "PRIVMSG",
                &[target],
                Some(&piece),
            ));
        }
    }
}

/// Whether a line the outbox holds is IRC already (see the module's documentation).
fn is_irc(line: &str) -> bool {
    line.starts_with(':')
        || line.starts_with("ERROR ")
        || line.starts_with("PING ")
        || line.starts_with("AUTHENTICATE ")
}

/// The nick of a line's source, `:nick!user@host ...`.
fn source_nick(line: &str) -> Option<&str> {
    let source = line.strip_prefix(':')?.split(' ').next()?;
    Some(source.split('!').next().unwrap_or(source))
}

/// What IRC shows as the reason of a `QUIT`.
fn quit_reason(how: &Departure) -> String {
    match how {
        Departure::Quit(Some(reason)) => format!("Quit: {reason}"),
        Departure::Quit(None) => "Quit".into(),
        Departure::Closed => "Connection closed".into(),
        Departure::Lost => "Connection lost".into(),
        Departure::NotReading => "Not reading (output queue full)".into(),
        Departure::TimedOut => "Ping timeout".into(),
        Departure::Flooding => "Excess flood".into(),
        Departure::Shutdown => "Server shutting down".into(),
    }
}

/// The socket of an IRC connection as the outbox's writer sees it: what it writes is
/// translated ([`Translator`]) and written on. Like a `BufWriter`, it may hold what it took
/// until the next write or flush (the writer flushes after each batch); a write waits until
/// what it held before is out, so it holds at most one batch's translation.
pub(super) struct IrcWrite<W> {
    inner: W,
    translator: Translator,
    /// The end of the last write, when it ended within a line.
    partial: BytesMut,
    /// Translated, not yet written.
    pending: BytesMut,
}

impl<W: AsyncWrite + Unpin> IrcWrite<W> {
    pub(super) fn new(inner: W, server: Arc<str>) -> Self {
        Self {
            inner,
            translator: Translator::new(server),
            partial: BytesMut::new(),
            pending: BytesMut::new(),
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(written);
        }
        // An idle connection holds no buffer.
        self.pending = BytesMut::new();
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for IrcWrite<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.partial.extend_from_slice(buf);
        while let Some(end) = memchr::memchr(b'\n', &this.partial) {
            let line = this.partial.split_to(end + 1);
            this.translator.line(&line[..end], &mut this.pending);
        }
        if this.partial.is_empty() {
            this.partial = BytesMut::new();
        }
        // Written on now if the socket takes it; otherwise at the next write or flush.
        if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(translator: &mut Translator, lines: &[&str]) -> String {
        let mut out = BytesMut::new();
        for line in lines {
            translator.line(line.as_bytes(), &mut out);
        }
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn welcomed() -> Translator {
        let mut translator = Translator::new("irc.test".into());
        translated(&mut translator, &[":irc.test 001 bob :Welcome"]);
        translator
    }

    #[test]
    fn room_and_private_messages_become_privmsgs() {
        let mut translator = welcomed();
        assert_eq!(
            translated(
                &mut translator,
                &["RM lobby alice hi", "PM alice psst", "MSG alice all"]
            ),
            ":alice!alice@linechat PRIVMSG #lobby :hi\r\n\
             :alice!alice@linechat PRIVMSG bob :psst\r\n"
        );
        translated(&mut translator, &[":bob!bob@linechat JOIN #global"]);
        assert_eq!(
            translated(
                &mut translator,
                &["MSG alice all", "RM lobby alice /me waves"]
            ),
            ":alice!alice@linechat PRIVMSG #global :all\r\n\
             :alice!alice@linechat PRIVMSG #lobby :\u{1}ACTION waves\u{1}\r\n"
        );
    }

    #[test]
    fn presence_is_joins_parts_and_quits() {
        let mut translator = welcomed();
        translated(&mut translator, &[":bob!bob@linechat JOIN #global"]);
        assert_eq!(
            translated(
                &mut translator,
                &[
                    "JR lobby alice",
                    "JR lobby bob",
                    "LR lobby alice",
                    "NOTICE ONLINE carol",
                    "NOTICE OFFLINE carol QUIT bye now",
                    "NOTICE OFFLINE dave TIMED_OUT",
                ]
            ),
            ":alice!alice@linechat JOIN #lobby\r\n\
             :alice!alice@linechat PART #lobby\r\n\
             :carol!carol@linechat JOIN #global\r\n\
             :carol!carol@linechat QUIT :Quit: bye now\r\n\
             :dave!dave@linechat QUIT :Ping timeout\r\n"
        );
        translated(&mut translator, &[":bob!bob@linechat PART #global"]);
        assert_eq!(
            translated(&mut translator, &["NOTICE ONLINE erin", "MSG erin x"]),
            ""
        );
    }

    #[test]
    fn topic_notices_become_topic_lines() {
        let mut translator = welcomed();
        assert_eq!(
            translated(
                &mut translator,
                &["NOTICE TOPIC dev alice ship  it", "NOTICE TOPIC dev alice"]
            ),
            ":alice!alice@linechat TOPIC #dev :ship  it\r\n\
             :alice!alice@linechat TOPIC #dev :\r\n"
        );
    }

    #[test]
    fn deliveries_before_the_welcome_wait_for_it_and_nick_changes_are_followed() {
        let mut translator = Translator::new("irc.test".into());
        assert_eq!(translated(&mut translator, &["PM alice early"]), "");
        assert_eq!(
            translated(&mut translator, &[":irc.test 001 bob :Welcome"]),
            ":irc.test 001 bob :Welcome\r\n:alice!alice@linechat PRIVMSG bob :early\r\n"
        );
        translated(&mut translator, &[":bob!bob@linechat NICK :bobby"]);
        assert_eq!(
            translated(&mut translator, &["PM alice later"]),
            ":alice!alice@linechat PRIVMSG bobby :later\r\n"
        );
    }

    #[test]
    fn closing_notices_become_error_and_history_carries_its_time() {
        let mut translator = welcomed();
        assert_eq!(
            translated(
                &mut translator,
                &["NOTICE CLOSING REPLACED you logged in on another connection"]
            ),
            "ERROR :Closing link: you logged in on another connection\r\n"
        );
        assert_eq!(
            translated(
                &mut translator,
                &["HIST lobby 2026-11-25T16:40:00.123Z alice old"]
            ),
            ":alice!alice@linechat PRIVMSG #lobby :[2026-11-25T16:40:00Z] old\r\n"
        );
        translated(&mut translator, &[":irc.test CAP bob ACK :server-time"]);
        assert_eq!(
            translated(
                &mut translator,
                &["HIST lobby 2026-11-25T16:40:00.123Z alice old"]
            ),
            "@time=2026-11-25T16:40:00.123Z :alice!alice@linechat PRIVMSG #lobby :old\r\n"
        );
    }

    #[test]
    fn a_long_message_is_split_into_lines_of_at_most_512_bytes() {
        let mut translator = welcomed();
        let text = "word ".repeat(400);
        let out = translated(
            &mut translator,
            &[&format!("RM lobby alice {}", text.trim_end())],
        );
        let lines: Vec<&str> = out.split_inclusive("\r\n").collect();
        assert!(lines.len() >= 4, "{}", lines.len());
        assert!(lines.iter().all(|line| line.len() <= MAX_LINE));
        let said: Vec<&str> = lines
            .iter()
            .map(|line| line.split_once(" :").unwrap().1.trim_end())
            .collect();
        assert_eq!(said.join(" "), text.trim_end());
    }
}
