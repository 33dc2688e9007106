//! The IRC connection's output side: what reaches its outbox, written as IRC.
//!
//! The actors deliver to every connection the same line-protocol lines, encoded once and
//! shared by all recipients ([`Delivery`]); an IRC connection's outbox receives them too. Its
//! writer words each of them as IRC ([`Translator`], the connection's [`Wording`]): `RM lobby
//! alice hi` becomes `:alice!alice@linechat PRIVMSG #lobby :hi`, so that neither the actors
//! nor the line protocol's fan-out do anything for IRC.
//!
//! Most of what is fanned out (room messages, the global chat, joins, parts, presence) reads
//! the same in IRC for every IRC user it reaches; each only decides whether to show it (not
//! their own join, not `#global` once they parted it: [`Audience`]). The first IRC
//! connection to write such a delivery translates it and leaves the translation in the
//! delivery ([`Delivery::translated`]); the others copy it. What depends on the recipient (a
//! private message names them; history, errors) each connection translates for itself.
//!
//! The IRC session also writes its own lines, already IRC, to the same outbox, so that they
//! keep their order with the deliveries. They are told apart by their first word: a line the
//! session writes starts with a source (`:`), or is `ERROR`, `PING` or `AUTHENTICATE`, which no
//! line-protocol line that reaches a connection from elsewhere is. Those lines pass unchanged,
//! and tell the translator, in order with everything else, who the user is now (`001`,
//! `NICK`), whether they are in `#global` (`JOIN`, `PART`), and which capabilities they took
//! (`CAP ACK`).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::debug;

use linechat_protocol::{Departure, HistoryTarget, Notice, Reply};

use super::message::{self, MAX_LINE, Message};
use crate::connection::{Delivery, Wording};

/// The host part of every user's source, `alice!alice@linechat`.
pub(super) const HOST: &str = "linechat";

/// The channel of linechat's global chat (`MSG`).
pub(super) const GLOBAL: &str = "#global";

/// A user's source in IRC lines.
pub(super) fn source_of(nick: &str) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// The channel of a room.
pub(super) fn channel_of(room: &linechat_protocol::Name) -> String {
    format!("#{room}")
}

/// Who, among the IRC users a line reaches, is shown it, for a line whose IRC form is the same
/// for all of them.
#[derive(Debug, Clone, Copy)]
enum Audience<'a> {
    /// Everyone: a room's message.
    Everyone,
    /// Everyone but this user: their join or part of a room, which they saw as the echo of
    /// their own `JOIN` or `PART`.
    AllBut(&'a [u8]),
    /// Those in `#global`: the global chat (`None`), or someone coming or going, whom the
    /// user is not told about if it is themselves, under their name or the one before.
    Global(Option<&'a [u8]>),
}

impl<'a> Audience<'a> {
    /// The audience of a line-protocol line (without its `\n`), from its first words; `None`
    /// for a line whose IRC form depends on the recipient.
    fn of(line: &'a [u8]) -> Option<Self> {
        // Word by word, and no further than needed: the rest may be a long text.
        let (verb, rest) = split_word(line);
        match verb {
            b"RM" => Some(Self::Everyone),
            b"MSG" => Some(Self::Global(None)),
            b"JR" | b"LR" => {
                let (user, _) = split_word(split_word(rest).1);
                (!user.is_empty()).then_some(Self::AllBut(user))
            }
            b"NOTICE" => {
                let (kind, rest) = split_word(rest);
                let (user, _) = split_word(rest);
                (matches!(kind, b"ONLINE" | b"OFFLINE") && !user.is_empty())
                    .then_some(Self::Global(Some(user)))
            }
            _ => None,
        }
    }
}

/// The first word of a line, and what follows its space.
fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', line) {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &[]),
    }
}

/// Turns the lines of one connection's outbox into IRC, in order.
#[derive(Debug)]
pub(super) struct Translator {
    server: Arc<str>,
    /// The user's nick once welcomed (`001`).
    me: Option<String>,
    /// The nick before the last change: others are told it went offline, the user is not.
    former: Option<String>,
    /// Deliveries that came before the welcome, which says who the user is: they wait for
    /// it. They count as the connection's queued output ([`Wording::held`]), so that its
    /// outbox limit and the output budget bound them as they bound what waits in the outbox.
    held: Vec<Bytes>,
    held_bytes: usize,
    in_global: bool,
    server_time: bool,
}

impl Wording for Translator {
    fn put(&mut self, delivery: &Delivery, out: &mut BytesMut) {
        let lines = delivery.bytes();
        if delivery.ends() && self.me.is_none() {
            // The parting line (`ERROR`) is the last thing written: held for a welcome that
            // cannot come, it would never be.
            for line in each_line(lines) {
                let text = std::str::from_utf8(line).unwrap_or_default();
                if let Ok(reply) = Reply::parse(text) {
                    self.reply(reply, out);
                }
            }
            return;
        }
        if self.shows_all(lines)
            && let Some(translated) = delivery.translated(shared_form)
        {
            out.put_slice(translated);
            return;
        }
        for line in each_line(lines) {
            self.line(line, out);
        }
    }

    fn held(&self) -> usize {
        // Each line is an allocation of its own (with the allocator's header), and a handle
        // in the list.
        self.held_bytes + self.held.len() * 16 + self.held.capacity() * size_of::<Bytes>()
    }
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

    /// Whether every line of `lines` has an IRC form the same for all, and the user is shown
    /// each: then the delivery's shared translation is what they get.
    fn shows_all(&self, lines: &[u8]) -> bool {
        self.me.is_some()
            && !lines.is_empty()
            && each_line(lines)
                .all(|line| Audience::of(line).is_some_and(|audience| self.shows(audience)))
    }

    fn shows(&self, audience: Audience<'_>) -> bool {
        let Some(me) = &self.me else {
            return false;
        };
        let is_me = |user: &[u8]| {
            user.eq_ignore_ascii_case(me.as_bytes())
                || self
                    .former
                    .as_ref()
                    .is_some_and(|former| user.eq_ignore_ascii_case(former.as_bytes()))
        };
        match audience {
            Audience::Everyone => true,
            Audience::AllBut(user) => !user.eq_ignore_ascii_case(me.as_bytes()),
            Audience::Global(user) => self.in_global && !user.is_some_and(is_me),
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
            self.held_bytes += line.len();
            self.held.push(Bytes::copy_from_slice(line));
            return;
        }
        // The commonest line a connection translates for itself, read without the parser:
        // `PM <from> <text>`, as the server wrote it.
        if let Some((from, said)) = text.strip_prefix("PM ").and_then(|pm| pm.split_once(' ')) {
            let me = self.me.as_deref().unwrap_or("*");
            privmsg(out, from, me, said, None);
            return;
        }
        let audience = Audience::of(text.as_bytes());
        if audience.is_some_and(|audience| !self.shows(audience)) {
            return;
        }
        let reply = match Reply::parse(text) {
            Ok(reply) => reply,
            Err(error) => {
                debug!(%error, "IRC connection: a line it cannot translate");
                return;
            }
        };
        if audience.is_none() || !put_shared(&reply, out) {
            self.reply(reply, out);
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

    /// The IRC form of a line that depends on the recipient.
    fn reply(&mut self, reply: Reply, out: &mut BytesMut) {
        let me = self.me.as_deref().unwrap_or("*");
        match reply {
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
                // A message from history carries its time: a `time` tag with `server-time`,
                // else in front of the text.
                if self.server_time {
                    let tag = format!("@time={} ", humantime::format_rfc3339_millis(at));
                    privmsg(out, from.as_str(), &channel, &text, Some(&tag));
                } else {
                    let text = format!("[{}] {text}", humantime::format_rfc3339_seconds(at));
                    privmsg(out, from.as_str(), &channel, &text, None);
                }
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
                let line = message::encode(Some(&self.server), "NOTICE", &[me], Some(&text));
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
                let line = message::encode(Some(&self.server), "NOTICE", &[me], Some(&message));
                out.put_slice(&line);
            }
            // Final lines of commands the IRC session answers itself.
            _ => {}
        }
    }
}

/// The IRC form of a delivery every line of which reads the same for every IRC user
/// ([`Audience`]); `None` if a line is not one of those.
fn shared_form(lines: &[u8]) -> Option<Bytes> {
    let mut out = BytesMut::with_capacity(lines.len() + 64);
    for line in each_line(lines) {
        let text = std::str::from_utf8(line).ok()?;
        let reply = Reply::parse(text.strip_suffix('\r').unwrap_or(text)).ok()?;
        if !put_shared(&reply, &mut out) {
            return None;
        }
    }
    Some(out.freeze())
}

/// Writes the IRC form of a line that reads the same for every IRC user it is shown to;
/// `false` for another line.
fn put_shared(reply: &Reply, out: &mut BytesMut) -> bool {
    let (user, verb, channel, reason) = match reply {
        Reply::Rm { room, from, text } => {
            privmsg(out, from.as_str(), &channel_of(room), text, None);
            return true;
        }
        Reply::Msg { from, text } => {
            privmsg(out, from.as_str(), GLOBAL, text, None);
            return true;
        }
        Reply::Joined { room, user } => (user, "JOIN", Some(channel_of(room)), None),
        Reply::Left { room, user } => (user, "PART", Some(channel_of(room)), None),
        Reply::Notice(Notice::Online { user }) => (user, "JOIN", Some(GLOBAL.to_owned()), None),
        Reply::Notice(Notice::Offline { user, how }) => {
            (user, "QUIT", None, Some(quit_reason(how)))
        }
        _ => return false,
    };
    let channel = channel.as_deref();
    let line = message::encode(
        Some(&source_of(user.as_str())),
        verb,
        channel.as_slice(),
        reason.as_deref(),
    );
    out.put_slice(&line);
    true
}

/// `PRIVMSG`s from `from` to `target`, as many as `text` needs to fit in IRC lines, written
/// straight to `out`: a delivered message is the most common line, and costs no allocation
/// here. A text that starts `/me ` is a CTCP `ACTION`. `tag`, if any, goes in front of each.
fn privmsg(out: &mut BytesMut, from: &str, target: &str, text: &str, tag: Option<&str>) {
    let (action, body) = match text.strip_prefix("/me ") {
        Some(action) => (true, action),
        None => (false, text),
    };
    // `:<from>!<from>@<host> PRIVMSG <target> :` and CR LF, and the CTCP wrapping of an
    // action.
    let overhead = 1 + 2 * from.len() + 2 + HOST.len() + " PRIVMSG ".len() + target.len() + 4;
    let overhead = overhead + if action { "\u{1}ACTION \u{1}".len() } else { 0 };
    for piece in message::split(body, MAX_LINE.saturating_sub(overhead)) {
        if let Some(tag) = tag {
            out.put_slice(tag.as_bytes());
        }
        out.reserve(overhead + piece.len());
        out.put_u8(b':');
        message::put_clean(out, from, true);
        out.put_u8(b'!');
        message::put_clean(out, from, true);
        out.put_u8(b'@');
        out.put_slice(HOST.as_bytes());
        out.put_slice(b" PRIVMSG ");
        message::put_clean(out, target, true);
        out.put_slice(b" :");
        if action {
            out.put_slice(b"\x01ACTION ");
        }
        message::put_clean(out, piece, false);
        if action {
            out.put_u8(1);
        }
        out.put_slice(b"\r\n");
    }
}

/// The lines of a delivery, without their `\n`.
fn each_line(lines: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, after) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        };
        rest = after;
        Some(line)
    })
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
        welcomed_as("bob")
    }

    fn welcomed_as(nick: &str) -> Translator {
        let mut translator = Translator::new("irc.test".into());
        translated(
            &mut translator,
            &[&format!(":irc.test 001 {nick} :Welcome")],
        );
        translator
    }

    /// What the connection's writer writes of `delivery`.
    fn put(translator: &mut Translator, delivery: &Delivery) -> String {
        let mut out = BytesMut::new();
        translator.put(delivery, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn delivery(lines: &str) -> Arc<Delivery> {
        Delivery::from_bytes(Bytes::copy_from_slice(lines.as_bytes()))
    }

    #[test]
    fn a_fanned_out_line_is_translated_once_and_shown_to_whom_it_concerns() {
        let mut bob = welcomed_as("bob");
        let mut carol = welcomed_as("carol");
        let said = ":alice!alice@linechat PRIVMSG #lobby :hi\r\n";
        let line = delivery("RM lobby alice hi\n");
        assert_eq!(put(&mut bob, &line), said);
        // The first connection left its translation in the delivery; the next copies it.
        let kept = line.translated(|_| panic!("translated a second time"));
        assert_eq!(kept.map(|kept| &kept[..]), Some(said.as_bytes()));
        assert_eq!(put(&mut carol, &line), said);

        // A join is not echoed to the one who joined, whoever translates it first.
        let join = delivery("JR lobby bob\n");
        assert_eq!(put(&mut carol, &join), ":bob!bob@linechat JOIN #lobby\r\n");
        assert_eq!(put(&mut bob, &join), "");
        let part = delivery("LR lobby carol\n");
        assert_eq!(put(&mut carol, &part), "");
        assert_eq!(
            put(&mut bob, &part),
            ":carol!carol@linechat PART #lobby\r\n"
        );

        // Presence comes in batches of lines: each sees the others' comings and goings, if
        // in #global.
        translated(&mut bob, &[":bob!bob@linechat JOIN #global"]);
        translated(&mut carol, &[":carol!carol@linechat JOIN #global"]);
        let mut dave = welcomed_as("dave");
        let batch = delivery("NOTICE ONLINE carol\nNOTICE OFFLINE erin QUIT\nMSG erin bye\n");
        assert_eq!(
            put(&mut bob, &batch),
            ":carol!carol@linechat JOIN #global\r\n\
             :erin!erin@linechat QUIT :Quit\r\n\
             :erin!erin@linechat PRIVMSG #global :bye\r\n"
        );
        assert_eq!(
            put(&mut carol, &batch),
            ":erin!erin@linechat QUIT :Quit\r\n:erin!erin@linechat PRIVMSG #global :bye\r\n"
        );
        assert_eq!(put(&mut dave, &batch), "");

        // A private message names its recipient: each translates it, nothing is kept.
        let pm = delivery("PM alice psst\n");
        assert_eq!(
            put(&mut bob, &pm),
            ":alice!alice@linechat PRIVMSG bob :psst\r\n"
        );
        assert_eq!(
            put(&mut carol, &pm),
            ":alice!alice@linechat PRIVMSG carol :psst\r\n"
        );
        assert!(pm.translated(|_| None).is_none());
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
            translated(&mut translator, &["PM alice /me waves"]),
            ":alice!alice@linechat PRIVMSG bob :\u{1}ACTION waves\u{1}\r\n"
        );
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
        let text = text.trim_end();
        for line in [format!("RM lobby alice {text}"), format!("PM alice {text}")] {
            let out = translated(&mut translator, &[&line]);
            let lines: Vec<&str> = out.split_inclusive("\r\n").collect();
            assert!(lines.len() >= 4, "{}", lines.len());
            assert!(lines.iter().all(|line| line.len() <= MAX_LINE));
            let said: Vec<&str> = lines
                .iter()
                .map(|line| line.split_once(" :").unwrap().1.trim_end())
                .collect();
            assert_eq!(said.join(" "), text);
        }
    }
}
