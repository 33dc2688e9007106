//! The IRC connection's output side: what reaches its outbox, written as IRC.
//!
//! The actors deliver typed events, shared by all their recipients ([`Delivery`]); an IRC
//! connection's writer words them as IRC ([`Translator`], the connection's [`Wording`]): a
//! room message from alice becomes `:alice!alice@linechat PRIVMSG #lobby :hi`, so that
//! neither the actors nor the line protocol do anything for IRC.
//!
//! Most of what is fanned out (room messages, the global chat, joins, parts, presence,
//! topics) reads the same in IRC for every IRC user it reaches; each only decides whether to
//! show it (not their own join, not `#global` once they parted it: [`Audience`]). The first
//! IRC connection to write such an event words it and leaves the wording in the delivery
//! ([`Delivery::worded`], one form with the `server-time` tag on messages and one without);
//! the others copy it. What depends on the recipient (a private message names them) each
//! connection words for itself.
//!
//! The IRC session also writes its own lines, already IRC, to the same outbox, so that they
//! keep their order with the deliveries; they pass unchanged. What the translator must know
//! of the connection (who the user is, whether they are in `#global`, whether they took
//! `server-time`) the session tells it through the same outbox, in order with its lines
//! ([`Control`]). When the server closes the connection, its notice of why comes last, as an
//! event too ([`Event::Closing`], [`Event::ShuttingDown`]): the parting, written as
//! `ERROR :Closing link: <why>` even before the welcome.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};

use linechat_protocol::{Departure, Name};

use super::message::{self, MAX_LINE};
use crate::connection::{Content, Delivery, Form, Outbox, Wording};
use crate::server::event::{Event, PresenceChange, Recalled};

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

/// A change of what the writer knows of its connection, queued by the session right after
/// the line that shows it to the client, so that it takes effect in order with the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Control {
    /// The welcome (`001`) went out: the user is this nick. What waited for it follows.
    Welcome(String),
    /// The user changed their nick (`NICK`) to this one.
    Nick(String),
    /// The user joined (`true`) or parted `#global`.
    InGlobal(bool),
    /// The user took (`true`) or dropped `server-time`.
    ServerTime(bool),
}

/// Tells the writer of `outbox` of `change`, after what was queued before it.
pub(super) fn tell(outbox: &Outbox, change: Control) {
    let heap = match &change {
        Control::Welcome(nick) | Control::Nick(nick) => nick.len() + 16,
        Control::InGlobal(_) | Control::ServerTime(_) => 0,
    };
    let _ = outbox.push(Delivery::own(change, heap));
}

/// Who, among the IRC users an event reaches, is shown it, for an event whose IRC form is the
/// same for all of them.
#[derive(Debug, Clone, Copy)]
enum Audience<'a> {
    /// Everyone: a room's message or topic.
    Everyone,
    /// Everyone but this user: their join or part of a room, which they saw as the echo of
    /// their own `JOIN` or `PART`.
    AllBut(&'a Name),
    /// Those in `#global`: the global chat (`None`), or someone coming or going, whom the
    /// user is not told about if it is themselves, under their name or the one before.
    Global(Option<&'a Name>),
}

impl<'a> Audience<'a> {
    /// The audience of an event; `None` for one whose IRC form depends on the recipient, and
    /// for a parting, which only its own connection gets.
    fn of(event: &'a Event) -> Option<Self> {
        match event {
            Event::RoomMessage { .. } | Event::Topic { .. } => Some(Self::Everyone),
            Event::GlobalMessage { .. } => Some(Self::Global(None)),
            Event::Joined { user, .. } | Event::Left { user, .. } => Some(Self::AllBut(user)),
            Event::PrivateMessage { .. }
            | Event::Recalled { .. }
            | Event::RoomCreated { .. }
            | Event::Presence(_)
            | Event::Closing(_)
            | Event::ShuttingDown => None,
        }
    }

    fn of_change(change: &'a PresenceChange) -> Self {
        Self::Global(Some(change.user()))
    }
}

/// Turns what reaches one connection's outbox into IRC, in order.
#[derive(Debug)]
pub(in crate::server) struct Translator {
    server: Arc<str>,
    /// The user's nick once welcomed.
    me: Option<String>,
    /// The nick before the last change: others are told it went offline, the user is not.
    former: Option<String>,
    /// Deliveries that came before the welcome, which says who the user is: they wait for
    /// it. They count as the connection's queued output ([`Wording::held`]), so that its
    /// outbox limit and the output budget bound them as they bound what waits in the outbox.
    held: Vec<Arc<Delivery>>,
    held_bytes: usize,
    in_global: bool,
    server_time: bool,
}

impl Wording for Translator {
    fn put(&mut self, delivery: &Arc<Delivery>, out: &mut BytesMut) {
        match delivery.content() {
            Content::Lines(lines) => out.put_slice(lines),
            Content::Own(value) => {
                if let Some(change) = value.downcast_ref::<Control>() {
                    self.control(change.clone(), out);
                }
            }
            // The parting is the last thing written: held for a welcome that cannot come, it
            // would never be.
            Content::Event(event) if delivery.ends() => self.event(delivery, event, out),
            Content::Event(_) if self.me.is_none() => {
                self.held_bytes += delivery.size();
                self.held.push(delivery.clone());
            }
            Content::Event(event) => self.event(delivery, event, out),
        }
    }

    fn held(&self) -> usize {
        self.held_bytes + self.held.capacity() * size_of::<Arc<Delivery>>()
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

    fn control(&mut self, change: Control, out: &mut BytesMut) {
        match change {
            Control::Welcome(nick) => {
                self.me = Some(nick);
                self.held_bytes = 0;
                for delivery in std::mem::take(&mut self.held) {
                    self.put(&delivery, out);
                }
            }
            Control::Nick(nick) => self.former = self.me.replace(nick),
            Control::InGlobal(joined) => self.in_global = joined,
            Control::ServerTime(taken) => self.server_time = taken,
        }
    }

    fn shows(&self, audience: Audience<'_>) -> bool {
        let Some(me) = &self.me else {
            return false;
        };
        let is_me = |user: &Name| {
            user.as_str().eq_ignore_ascii_case(me)
                || self
                    .former
                    .as_ref()
                    .is_some_and(|former| user.as_str().eq_ignore_ascii_case(former))
        };
        match audience {
            Audience::Everyone => true,
            Audience::AllBut(user) => !user.as_str().eq_ignore_ascii_case(me),
            Audience::Global(user) => self.in_global && !user.is_some_and(is_me),
        }
    }

    /// Whether the event reads the same in IRC for everyone it reaches and the user is shown
    /// all of it: then the delivery's shared wording is what they get.
    fn shows_all(&self, event: &Event) -> bool {
        match event {
            Event::Presence(batch) => batch
                .changes()
                .iter()
                .all(|change| self.shows(Audience::of_change(change))),
            event => Audience::of(event).is_some_and(|audience| self.shows(audience)),
        }
    }

    /// Writes the IRC form of an event to `out`.
    fn event(&mut self, delivery: &Arc<Delivery>, event: &Event, out: &mut BytesMut) {
        let timed = self.server_time;
        // A delivery only this connection holds (a private message) is worded straight into
        // the batch: no other connection will ask for its wording.
        let form = if timed { Form::IrcTimed } else { Form::Irc };
        let shared = Arc::strong_count(delivery) > 1 || delivery.is_worded(form);
        if shared
            && self.shows_all(event)
            && let Some(shared) = delivery.worded(form, |event| shared_form(event, timed))
        {
            out.put_slice(shared);
            return;
        }
        let me = self.me.as_deref().unwrap_or("*");
        match event {
            Event::PrivateMessage { at, from, text, .. } => {
                privmsg(
                    out,
                    from.as_str(),
                    me,
                    text,
                    time_tag(timed, *at).as_deref(),
                );
            }
            Event::Recalled {
                of, at, from, text, ..
            } => {
                let channel = match of {
                    Recalled::Global if !self.in_global => return,
                    Recalled::Global => GLOBAL.to_owned(),
                    Recalled::Named(room) => channel_of(room),
                };
                // A message from history carries its time: a `time` tag with `server-time`,
                // else in front of the text.
                if self.server_time {
                    let tag = time_tag(true, *at);
                    privmsg(out, from.as_str(), &channel, text, tag.as_deref());
                } else {
                    let text = format!("[{}] {text}", humantime::format_rfc3339_seconds(*at));
                    privmsg(out, from.as_str(), &channel, &text, None);
                }
            }
            Event::RoomCreated { room, by } => {
                let text = format!("{by} created {}", channel_of(room));
                let line = message::encode(Some(&self.server), "NOTICE", &[me], Some(&text));
                out.put_slice(&line);
            }
            Event::Presence(batch) => {
                for change in batch.changes() {
                    if self.shows(Audience::of_change(change)) {
                        put_change(change, out);
                    }
                }
            }
            Event::Closing(reason) => closing_link(reason.explanation(), out),
            Event::ShuttingDown => closing_link("the server is going down", out),
            event => {
                if Audience::of(event).is_some_and(|audience| self.shows(audience)) {
                    put_shared(event, timed, out);
                }
            }
        }
    }
}

/// Writes `ERROR :Closing link: <why>`, the last line of a connection the server closes.
fn closing_link(why: &str, out: &mut BytesMut) {
    let text = format!("Closing link: {why}");
    out.put_slice(&message::encode(None, "ERROR", &[], Some(&text)));
}

/// The `server-time` tag of a message said at `at`, with its space, if the client took it.
fn time_tag(timed: bool, at: SystemTime) -> Option<String> {
    timed.then(|| format!("@time={} ", humantime::format_rfc3339_millis(at)))
}

/// The IRC form of an event that reads the same for every IRC user it is shown to; `None`
/// for another event.
fn shared_form(event: &Event, timed: bool) -> Option<Bytes> {
    let mut out = BytesMut::new();
    match event {
        Event::Presence(batch) => {
            for change in batch.changes() {
                put_change(change, &mut out);
            }
        }
        event => {
            Audience::of(event)?;
            put_shared(event, timed, &mut out);
        }
    }
    Some(out.freeze())
}

/// Writes the IRC form of an event that reads the same for every IRC user it is shown to.
fn put_shared(event: &Event, timed: bool, out: &mut BytesMut) {
    let (user, verb, channel, text) = match event {
        Event::RoomMessage {
            at,
            room,
            from,
            text,
            ..
        } => {
            let tag = time_tag(timed, *at);
            privmsg(out, from.as_str(), &channel_of(room), text, tag.as_deref());
            return;
        }
        Event::GlobalMessage { at, from, text, .. } => {
            privmsg(
                out,
                from.as_str(),
                GLOBAL,
                text,
                time_tag(timed, *at).as_deref(),
            );
            return;
        }
        Event::Joined { room, user } => (user, "JOIN", channel_of(room), None),
        Event::Left { room, user } => (user, "PART", channel_of(room), None),
        Event::Topic { room, by, text } => (
            by,
            "TOPIC",
            channel_of(room),
            Some(text.as_deref().unwrap_or_default()),
        ),
        Event::PrivateMessage { .. }
        | Event::Recalled { .. }
        | Event::RoomCreated { .. }
        | Event::Presence(_)
        | Event::Closing(_)
        | Event::ShuttingDown => return,
    };
    let line = message::encode(Some(&source_of(user.as_str())), verb, &[&channel], text);
    out.put_slice(&line);
}

/// Writes the IRC form of someone coming (a `JOIN` of `#global`) or going (a `QUIT`).
fn put_change(change: &PresenceChange, out: &mut BytesMut) {
    let line = match change {
        PresenceChange::Online { user } => {
            message::encode(Some(&source_of(user.as_str())), "JOIN", &[GLOBAL], None)
        }
        PresenceChange::Offline { user, how } => message::encode(
            Some(&source_of(user.as_str())),
            "QUIT",
            &[],
            Some(&quit_reason(how)),
        ),
    };
    out.put_slice(&line);
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
    use crate::connection::wordings;
    use crate::server::cmd::wording::LineWording;

    use crate::server::storage::MessageId;
    use linechat_protocol::CloseReason;
    use tokio::io::AsyncReadExt;

    fn name(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    /// The time of the messages in these tests.
    fn at() -> SystemTime {
        humantime::parse_rfc3339("2026-11-25T16:40:00.123Z").unwrap()
    }

    fn rm(room: &str, from: &str, text: &str) -> Event {
        Event::RoomMessage {
            id: MessageId::default(),
            at: at(),
            room: name(room),
            from: name(from),
            text: text.into(),
        }
    }

    fn pm(from: &str, text: &str) -> Event {
        Event::PrivateMessage {
            id: MessageId::default(),
            at: at(),
            from: name(from),
            text: text.into(),
        }
    }

    fn msg(from: &str, text: &str) -> Event {
        Event::GlobalMessage {
            id: MessageId::default(),
            at: at(),
            from: name(from),
            text: text.into(),
        }
    }

    fn joined(room: &str, user: &str) -> Event {
        let (room, user) = (name(room), name(user));
        Event::Joined { room, user }
    }

    fn left(room: &str, user: &str) -> Event {
        let (room, user) = (name(room), name(user));
        Event::Left { room, user }
    }

    fn online(user: &str) -> PresenceChange {
        PresenceChange::Online { user: name(user) }
    }

    fn offline(user: &str, how: Departure) -> PresenceChange {
        PresenceChange::Offline {
            user: name(user),
            how,
        }
    }

    fn presence(changes: Vec<PresenceChange>) -> Event {
        Event::Presence(changes.into())
    }

    /// What the connection's writer writes of `delivery`.
    fn put(translator: &mut Translator, delivery: &Arc<Delivery>) -> String {
        let mut out = BytesMut::new();
        translator.put(delivery, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    /// What the writer writes of `events`, each a delivery of its own that only it holds.
    fn translated(translator: &mut Translator, events: Vec<Event>) -> String {
        events
            .into_iter()
            .map(|event| put(translator, &Delivery::event(event)))
            .collect()
    }

    fn control(translator: &mut Translator, change: Control) -> String {
        put(translator, &Delivery::own(change, 0))
    }

    fn welcomed() -> Translator {
        welcomed_as("bob")
    }

    fn welcomed_as(nick: &str) -> Translator {
        let mut translator = Translator::new("irc.test".into());
        control(&mut translator, Control::Welcome(nick.into()));
        translator
    }

    #[test]
    fn a_fanned_out_event_is_worded_once_and_shown_to_whom_it_concerns() {
        let mut bob = welcomed_as("bob");
        let mut carol = welcomed_as("carol");
        let said = ":alice!alice@linechat PRIVMSG #lobby :hi\r\n";
        let line = Delivery::event(rm("lobby", "alice", "hi"));
        let _fanned_out = line.clone();
        assert_eq!(put(&mut bob, &line), said);
        // The first connection left its wording in the delivery; the next copies it.
        let kept = line.worded(Form::Irc, |_| panic!("worded a second time"));
        assert_eq!(kept.map(|kept| &kept[..]), Some(said.as_bytes()));
        assert_eq!(put(&mut carol, &line), said);

        // A join is not echoed to the one who joined, whoever words it first.
        let join = Delivery::event(joined("lobby", "bob"));
        let _fanned_out = join.clone();
        assert_eq!(put(&mut carol, &join), ":bob!bob@linechat JOIN #lobby\r\n");
        assert_eq!(put(&mut bob, &join), "");
        let part = Delivery::event(left("lobby", "carol"));
        let _fanned_out = part.clone();
        assert_eq!(put(&mut carol, &part), "");
        assert_eq!(
            put(&mut bob, &part),
            ":carol!carol@linechat PART #lobby\r\n"
        );

        // Presence comes in batches: each sees the others' comings and goings, if in
        // #global.
        control(&mut bob, Control::InGlobal(true));
        control(&mut carol, Control::InGlobal(true));
        let mut dave = welcomed_as("dave");
        let batch = Delivery::event(presence(vec![
            online("carol"),
            offline("erin", Departure::Quit(None)),
        ]));
        let _fanned_out = batch.clone();
        assert_eq!(
            put(&mut bob, &batch),
            ":carol!carol@linechat JOIN #global\r\n:erin!erin@linechat QUIT :Quit\r\n"
        );
        assert_eq!(
            put(&mut carol, &batch),
            ":erin!erin@linechat QUIT :Quit\r\n"
        );
        assert_eq!(put(&mut dave, &batch), "");

        // A private message names its recipient: each words it, nothing is kept.
        let private = Delivery::event(pm("alice", "psst"));
        let _fanned_out = private.clone();
        assert_eq!(
            put(&mut bob, &private),
            ":alice!alice@linechat PRIVMSG bob :psst\r\n"
        );
        assert_eq!(
            put(&mut carol, &private),
            ":alice!alice@linechat PRIVMSG carol :psst\r\n"
        );
        assert!(private.worded(Form::Irc, |_| None).is_none());
    }

    #[test]
    fn a_room_event_fanned_out_to_many_connections_is_worded_once_per_form() {
        let line = Delivery::event(rm("lobby", "alice", "hi"));
        // Each recipient's outbox holds the delivery until its writer takes it.
        let outboxes = vec![line.clone(); 100];
        let mut irc: Vec<Translator> = (0..50).map(|i| welcomed_as(&format!("u{i}"))).collect();
        for translator in irc.iter_mut().skip(40) {
            control(translator, Control::ServerTime(true));
        }
        let before = [Form::Line, Form::Irc, Form::IrcTimed].map(wordings);
        let mut written = BytesMut::new();
        for _ in 0..50 {
            LineWording::default().put(&line, &mut written);
        }
        for translator in &mut irc {
            translator.put(&line, &mut written);
        }
        drop(outboxes);
        // The last writer, alone with it, copies the wording made already.
        LineWording::default().put(&line, &mut written);
        let made = [Form::Line, Form::Irc, Form::IrcTimed].map(wordings);
        assert_eq!(
            [
                made[0] - before[0],
                made[1] - before[1],
                made[2] - before[2]
            ],
            [1, 1, 1]
        );
        let written = String::from_utf8(written.to_vec()).unwrap();
        assert_eq!(written.matches("RM lobby alice hi\n").count(), 51);
        assert_eq!(
            written
                .matches(":alice!alice@linechat PRIVMSG #lobby :hi\r\n")
                .count(),
            50
        );
        assert_eq!(
            written.matches("@time=2026-11-25T16:40:00.123Z ").count(),
            10
        );
    }

    #[test]
    fn room_and_private_messages_become_privmsgs() {
        let mut translator = welcomed();
        assert_eq!(
            translated(
                &mut translator,
                vec![
                    rm("lobby", "alice", "hi"),
                    pm("alice", "psst"),
                    msg("alice", "all")
                ]
            ),
            ":alice!alice@linechat PRIVMSG #lobby :hi\r\n\
             :alice!alice@linechat PRIVMSG bob :psst\r\n"
        );
        control(&mut translator, Control::InGlobal(true));
        assert_eq!(
            translated(&mut translator, vec![pm("alice", "/me waves")]),
            ":alice!alice@linechat PRIVMSG bob :\u{1}ACTION waves\u{1}\r\n"
        );
        assert_eq!(
            translated(
                &mut translator,
                vec![msg("alice", "all"), rm("lobby", "alice", "/me waves")]
            ),
            ":alice!alice@linechat PRIVMSG #global :all\r\n\
             :alice!alice@linechat PRIVMSG #lobby :\u{1}ACTION waves\u{1}\r\n"
        );
    }

    #[test]
    fn presence_is_joins_parts_and_quits() {
        let mut translator = welcomed();
        control(&mut translator, Control::InGlobal(true));
        assert_eq!(
            translated(
                &mut translator,
                vec![
                    joined("lobby", "alice"),
                    joined("lobby", "bob"),
                    left("lobby", "alice"),
                    presence(vec![
                        online("carol"),
                        offline("carol", Departure::Quit(Some("bye now".into()))),
                        offline("dave", Departure::TimedOut),
                    ]),
                ]
            ),
            ":alice!alice@linechat JOIN #lobby\r\n\
             :alice!alice@linechat PART #lobby\r\n\
             :carol!carol@linechat JOIN #global\r\n\
             :carol!carol@linechat QUIT :Quit: bye now\r\n\
             :dave!dave@linechat QUIT :Ping timeout\r\n"
        );
        control(&mut translator, Control::InGlobal(false));
        assert_eq!(
            translated(
                &mut translator,
                vec![presence(vec![online("erin")]), msg("erin", "x")]
            ),
            ""
        );
    }

    #[test]
    fn topic_events_become_topic_lines_and_a_new_room_a_notice() {
        let mut translator = welcomed();
        let topic = |text: Option<&str>| Event::Topic {
            room: name("dev"),
            by: name("alice"),
            text: text.map(str::to_owned),
        };
        let created = Event::RoomCreated {
            room: name("dev"),
            by: name("alice"),
        };
        assert_eq!(
            translated(
                &mut translator,
                vec![topic(Some("ship  it")), topic(None), created]
            ),
            ":alice!alice@linechat TOPIC #dev :ship  it\r\n\
             :alice!alice@linechat TOPIC #dev :\r\n\
             :irc.test NOTICE bob :alice created #dev\r\n"
        );
    }

    #[test]
    fn deliveries_before_the_welcome_wait_for_it_and_nick_changes_are_followed() {
        let mut translator = Translator::new("irc.test".into());
        let early = Delivery::event(pm("alice", "early"));
        assert_eq!(put(&mut translator, &early), "");
        assert_eq!(
            translator.held(),
            early.size() + translator.held.capacity() * size_of::<Arc<Delivery>>()
        );
        // The session's own lines pass at once.
        let notice = Delivery::from_bytes(Bytes::from_static(b":irc.test NOTICE * :hi\r\n"));
        assert_eq!(put(&mut translator, &notice), ":irc.test NOTICE * :hi\r\n");
        assert_eq!(
            control(&mut translator, Control::Welcome("bob".into())),
            ":alice!alice@linechat PRIVMSG bob :early\r\n"
        );
        assert_eq!(translator.held(), 0);
        control(&mut translator, Control::Nick("bobby".into()));
        assert_eq!(
            translated(&mut translator, vec![pm("alice", "later")]),
            ":alice!alice@linechat PRIVMSG bobby :later\r\n"
        );
        // Under the new nick, the user is not told of their own coming or going, under
        // either.
        control(&mut translator, Control::InGlobal(true));
        assert_eq!(
            translated(
                &mut translator,
                vec![presence(vec![
                    online("bobby"),
                    offline("bob", Departure::Quit(None))
                ])]
            ),
            ""
        );
    }

    #[test]
    fn closing_notices_become_error_and_messages_carry_their_time() {
        let mut translator = welcomed();
        let closing = Event::Closing(CloseReason::Replaced);
        assert_eq!(
            translated(&mut translator, vec![closing, Event::ShuttingDown]),
            "ERROR :Closing link: you logged in on another connection\r\n\
             ERROR :Closing link: the server is going down\r\n"
        );
        let recalled = || {
            Delivery::event(Event::Recalled {
                of: Recalled::Named(name("lobby")),
                id: MessageId::default(),
                at: at(),
                from: name("alice"),
                text: "old".into(),
            })
        };
        assert_eq!(
            put(&mut translator, &recalled()),
            ":alice!alice@linechat PRIVMSG #lobby :[2026-11-25T16:40:00Z] old\r\n"
        );
        control(&mut translator, Control::ServerTime(true));
        assert_eq!(
            put(&mut translator, &recalled()),
            "@time=2026-11-25T16:40:00.123Z :alice!alice@linechat PRIVMSG #lobby :old\r\n"
        );
        assert_eq!(
            translated(
                &mut translator,
                vec![rm("lobby", "alice", "new"), pm("alice", "psst")]
            ),
            "@time=2026-11-25T16:40:00.123Z :alice!alice@linechat PRIVMSG #lobby :new\r\n\
             @time=2026-11-25T16:40:00.123Z :alice!alice@linechat PRIVMSG bob :psst\r\n"
        );
    }

    /// What a writer never welcomed writes of a private message, which waits for the
    /// welcome, and then of the parting `end` queues.
    async fn parting_before_the_welcome(end: impl FnOnce(&Outbox)) -> String {
        let (outbox, writer) = crate::connection::outbox(1 << 16);
        outbox.push(Delivery::event(pm("alice", "early"))).unwrap();
        end(&outbox);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let translator = Translator::new("irc.test".into());
        writer.run_worded(server, translator).await.unwrap();
        let mut written = String::new();
        client.read_to_string(&mut written).await.unwrap();
        assert_eq!(outbox.queued_bytes(), 0);
        written
    }

    #[tokio::test]
    async fn a_closing_notice_is_written_before_the_welcome_and_what_waits_for_it_is_not() {
        let closing =
            |event: Event| move |outbox: &Outbox| outbox.finish(Some(Delivery::event(event)));
        assert_eq!(
            parting_before_the_welcome(closing(Event::Closing(CloseReason::LoginTimeout))).await,
            "ERROR :Closing link: no login in time\r\n"
        );
        assert_eq!(
            parting_before_the_welcome(closing(Event::ShuttingDown)).await,
            "ERROR :Closing link: the server is going down\r\n"
        );
        assert_eq!(
            parting_before_the_welcome(|outbox| outbox.replace(CloseReason::Replaced)).await,
            "ERROR :Closing link: you logged in on another connection\r\n"
        );
    }

    #[test]
    fn a_long_message_is_split_into_lines_of_at_most_512_bytes() {
        let mut translator = welcomed();
        let text = "word ".repeat(400);
        let text = text.trim_end();
        for event in [rm("lobby", "alice", text), pm("alice", text)] {
            let out = translated(&mut translator, vec![event]);
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
