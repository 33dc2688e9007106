//! The TUI's state: conversations, the input line, the connection status. It changes only
//! through [`App::on_event`] (the server) and [`App::on_key`] (the keyboard), and knows
//! nothing of the terminal, so that tests drive it directly and render it on a test backend.

use std::cell::Cell;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use linechat_protocol::{
    Command, ErrorCode, HistoryPage, HistoryTarget, Name, Notice, Reply, Verb,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::editor::Editor;
use crate::connection::{Line, LinkEvent};
use crate::format;
use crate::input::{self, Input, Mode, Target};
use crate::session::{Pending, Session};

/// How long a quit waits for the server's `OK QUIT`.
const QUIT_PATIENCE: Duration = Duration::from_secs(2);

/// The keys, for `:help` (and the README).
pub const KEYS_HELP: &[&str] = &[
    "Keys:",
    "Enter                 send the line",
    "Tab, Shift-Tab        next, previous conversation (also Ctrl-N, Ctrl-P; Alt-1..9 picks one)",
    "Up, Down              earlier lines you typed",
    "PageUp, PageDown      scroll the messages; Esc goes back to the newest",
    "Left, Right, Home, End, Ctrl-A, Ctrl-E   move in the line",
    "Backspace, Delete, Ctrl-W, Ctrl-U, Ctrl-K   delete a character, a word, to the start, to the end",
    "Ctrl-L                redraw the screen",
    "Ctrl-C, or Ctrl-D on an empty line   quit",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Message { from: Name, text: String },
    Info(String),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: DateTime<Local>,
    pub body: Body,
}

impl Entry {
    fn now(body: Body) -> Self {
        Self {
            at: Local::now(),
            body,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryState {
    Unloaded,
    Loading,
    Loaded,
}

#[derive(Debug)]
pub struct Conversation {
    pub target: Target,
    pub entries: Vec<Entry>,
    pub unread: usize,
    /// A room's members, once `LRU` has answered.
    pub members: Option<Vec<Name>>,
    pub history: HistoryState,
}

impl Conversation {
    fn new(target: Target) -> Self {
        Self {
            target,
            entries: Vec::new(),
            unread: 0,
            members: None,
            history: HistoryState::Unloaded,
        }
    }

    pub fn label(&self) -> String {
        match &self.target {
            Target::Everyone => "* everyone".into(),
            target => target.label(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Connected,
    Reconnecting {
        reason: String,
        next: Option<Instant>,
    },
}

pub struct App {
    pub session: Session,
    pub addr: String,
    /// The conversation with everyone first, then rooms, then private conversations.
    pub conversations: Vec<Conversation>,
    pub selected: usize,
    pub editor: Editor,
    /// Who is online, sorted.
    pub online: Vec<Name>,
    pub status: Status,
    /// Rows scrolled up from the newest message.
    pub scroll: usize,
    /// Set by Ctrl-L: the terminal is cleared before the next frame.
    pub clear_screen: bool,
    /// Set when the app should end: `Err` holds a message for standard error.
    pub done: Option<Result<(), String>>,
    quit_requested: Option<Instant>,
    /// The `HIST` lines of the `HISTORY` being answered.
    history_lines: Vec<Entry>,
    /// Rows of the message pane and of the selected conversation at the last frame, for
    /// scrolling by pages.
    pub(super) page_rows: Cell<usize>,
    pub(super) total_rows: Cell<usize>,
}

impl App {
    pub fn new(session: Session, addr: impl Into<String>) -> Self {
        Self {
            session,
            addr: addr.into(),
            conversations: vec![Conversation::new(Target::Everyone)],
            selected: 0,
            editor: Editor::default(),
            online: Vec::new(),
            status: Status::Connected,
            scroll: 0,
            clear_screen: false,
            done: None,
            quit_requested: None,
            history_lines: Vec::new(),
            page_rows: Cell::new(10),
            total_rows: Cell::new(0),
        }
    }

    pub fn current(&self) -> &Conversation {
        &self.conversations[self.selected]
    }

    pub fn find(&self, target: &Target) -> Option<usize> {
        self.conversations.iter().position(|c| c.target == *target)
    }

    /// The conversation for `target`, made if missing; rooms go before private
    /// conversations.
    fn ensure(&mut self, target: Target) -> usize {
        if let Some(index) = self.find(&target) {
            return index;
        }
        let index = match target {
            Target::Room(_) => self
                .conversations
                .iter()
                .position(|c| matches!(c.target, Target::User(_)))
                .unwrap_or(self.conversations.len()),
            _ => self.conversations.len(),
        };
        self.conversations.insert(index, Conversation::new(target));
        if index <= self.selected {
            self.selected += 1;
        }
        index
    }

    fn remove(&mut self, target: &Target) {
        let Some(index) = self.find(target) else {
            return;
        };
        if index == 0 {
            return;
        }
        self.conversations.remove(index);
        if index == self.selected {
            self.select(0);
        } else if index < self.selected {
            self.selected -= 1;
        }
    }

    pub fn select(&mut self, index: usize) {
        if index >= self.conversations.len() {
            return;
        }
        self.selected = index;
        self.scroll = 0;
        self.conversations[index].unread = 0;
        self.load(index);
    }

    fn select_next(&mut self, forward: bool) {
        let count = self.conversations.len();
        let index = if forward {
            (self.selected + 1) % count
        } else {
            (self.selected + count - 1) % count
        };
        self.select(index);
    }

    /// Asks for what a conversation needs when it is shown: its history, a room's members.
    fn load(&mut self, index: usize) {
        if !self.session.is_connected() {
            return;
        }
        let conversation = &self.conversations[index];
        let target = conversation.target.clone();
        if conversation.history == HistoryState::Unloaded {
            let command = Command::History {
                target: Session::history_target(&target),
                page: HistoryPage::Latest,
                count: None,
            };
            if self.session.send(command, true).is_ok() {
                self.conversations[index].history = HistoryState::Loading;
            }
        }
        if let Target::Room(room) = &target
            && self.conversations[index].members.is_none()
        {
            let _ = self
                .session
                .send(Command::ListRoomUsers { room: room.clone() }, true);
        }
    }

    fn push(&mut self, index: usize, body: Body) {
        if matches!(body, Body::Message { .. }) && index != self.selected {
            self.conversations[index].unread += 1;
        }
        self.conversations[index].entries.push(Entry::now(body));
    }

    /// A line for the conversation on screen.
    fn note(&mut self, body: Body) {
        self.push(self.selected, body);
    }

    fn push_to(&mut self, target: &Target, body: Body) {
        if let Some(index) = self.find(target) {
            self.push(index, body);
        }
    }

    fn message(&mut self, target: Target, from: Name, text: &str) {
        let index = self.ensure(target);
        let text = format::printable(text);
        self.push(index, Body::Message { from, text });
    }

    pub fn on_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Line(line) => self.on_line(line),
            LinkEvent::Connected {
                name,
                outbox,
                again,
            } => {
                for room in self.session.on_connected(name, outbox) {
                    self.ensure(Target::Room(room));
                }
                for room in self.session.rooms().to_vec() {
                    self.ensure(Target::Room(room));
                }
                self.status = Status::Connected;
                for conversation in &mut self.conversations {
                    conversation.history = HistoryState::Unloaded;
                    conversation.members = None;
                }
                let _ = self.session.send(Command::Users {}, true);
                if self.session.has_account {
                    let _ = self.session.send(Command::Unread {}, true);
                }
                if again {
                    self.note(Body::Info(format!(
                        "reconnected to {} as {}",
                        self.addr, self.session.me
                    )));
                }
                self.load(self.selected);
            }
            LinkEvent::Lost { reason } => {
                self.status = Status::Reconnecting {
                    reason: reason.clone(),
                    next: None,
                };
                self.note(Body::Error(format!(
                    "connection lost: {reason}; reconnecting"
                )));
                self.history_lines.clear();
                for pending in self.session.on_lost() {
                    if matches!(pending.command, Command::Quit { .. }) {
                        self.done = Some(Ok(()));
                    } else if !pending.automatic {
                        self.note(Body::Error(format!(
                            "no answer to \"{}\": it may or may not have been done",
                            format::command(&pending.command)
                        )));
                    }
                }
                for conversation in &mut self.conversations {
                    if conversation.history == HistoryState::Loading {
                        conversation.history = HistoryState::Unloaded;
                    }
                }
            }
            LinkEvent::Retrying {
                attempt,
                delay,
                error,
            } => {
                self.status = Status::Reconnecting {
                    reason: format!("attempt {attempt} failed: {error}"),
                    next: Some(Instant::now() + delay),
                };
            }
            LinkEvent::Ended { error } => {
                self.done = Some(match error {
                    None => Ok(()),
                    Some(error) => Err(error),
                });
            }
        }
    }

    fn on_line(&mut self, line: Line) {
        let answered = self.session.on_line(&line);
        let reply = match line {
            Line::Reply(reply) => reply,
            Line::Unknown(raw) => {
                self.note(Body::Info(format!("server: {}", format::printable(&raw))));
                return;
            }
        };
        if reply.is_final() {
            self.answer(reply, answered);
            return;
        }
        let me = self.session.me.clone();
        match reply {
            Reply::Msg { from, text } => self.message(Target::Everyone, from, &text),
            Reply::Pm { from, text } => self.message(Target::User(from.clone()), from, &text),
            Reply::Rm { room, from, text } => self.message(Target::Room(room), from, &text),
            Reply::Joined { room, user } if user == me => {
                self.ensure(Target::Room(room));
            }
            Reply::Joined { room, user } => {
                let target = Target::Room(room);
                if let Some(index) = self.find(&target) {
                    if let Some(members) = &mut self.conversations[index].members {
                        insert_sorted(members, user.clone());
                    }
                    self.push(index, Body::Info(format!("{user} joined")));
                }
            }
            Reply::Left { room, user } => {
                let target = Target::Room(room);
                if let Some(index) = self.find(&target) {
                    if let Some(members) = &mut self.conversations[index].members {
                        members.retain(|member| *member != user);
                    }
                    self.push(index, Body::Info(format!("{user} left")));
                }
            }
            Reply::Hist { at, from, text, .. } => self.history_lines.push(Entry {
                at: format::local(at),
                body: Body::Message {
                    from,
                    text: format::printable(&text),
                },
            }),
            Reply::Help(verb) => self.note(Body::Info(format::help(verb))),
            // What the account has not read, by its read markers, asked as the connection
            // starts: the conversation's unread count, where it is not the one shown.
            Reply::Unread { target, count, .. } => {
                let index = self.ensure(self.session.conversation_of(&target));
                if index != self.selected {
                    let count = usize::try_from(count).unwrap_or(usize::MAX);
                    self.conversations[index].unread = count;
                }
            }
            Reply::Notice(notice) => {
                let text = format::notice(&notice);
                match &notice {
                    Notice::Online { user } => {
                        insert_sorted(&mut self.online, user.clone());
                        self.push(0, Body::Info(text));
                    }
                    Notice::Offline { user, .. } => {
                        self.online.retain(|online| online != user);
                        self.push_to(&Target::User(user.clone()), Body::Info(text.clone()));
                        self.push(0, Body::Info(text));
                    }
                    Notice::RoomCreated { .. } => self.push(0, Body::Info(text)),
                    Notice::Topic { room, .. } => {
                        let target = Target::Room(room.clone());
                        match self.find(&target) {
                            Some(index) => self.push(index, Body::Info(text)),
                            None => self.note(Body::Info(text)),
                        }
                    }
                    Notice::Shutdown | Notice::Closing { .. } => self.note(Body::Error(text)),
                }
            }
            Reply::Hello { .. } | Reply::Ping(_) => {}
            // Final lines were answered above.
            Reply::Ok { .. }
            | Reply::Err { .. }
            | Reply::Users(_)
            | Reply::Rooms(_)
            | Reply::RoomUsers { .. }
            | Reply::Pong(_)
            | Reply::Topic { .. } => {}
        }
    }

    /// A final line, and the command it answers.
    fn answer(&mut self, reply: Reply, answered: Option<Pending>) {
        let automatic = answered.as_ref().is_some_and(|p| p.automatic);
        let command = answered.as_ref().map(|p| p.command.clone());
        match reply {
            Reply::Ok { verb, detail } => {
                let text = format::ok(verb, detail.as_deref());
                let room = detail.as_deref().and_then(|d| Name::parse(d).ok());
                match (verb, room) {
                    (Verb::CreateRoom | Verb::JoinRoom, Some(room)) => {
                        let index = self.ensure(Target::Room(room));
                        if !automatic {
                            self.select(index);
                        }
                        self.push(index, Body::Info(text));
                    }
                    (Verb::LeaveRoom, Some(room)) => {
                        self.remove(&Target::Room(room));
                        self.note(Body::Info(text));
                    }
                    (Verb::History, _) => {
                        if let Some(Command::History { target, .. }) = command {
                            self.history_loaded(&target, !automatic);
                        }
                    }
                    (Verb::Pm, _) => {
                        // Said only when it is news: the recipient is offline, or away.
                        if let Some(Command::Pm { to, .. }) = command
                            && detail
                                .as_deref()
                                .is_some_and(|d| d.ends_with(" queued") || d.contains(" away: "))
                        {
                            self.push_to(&Target::User(to), Body::Info(text));
                        }
                    }
                    (Verb::Msg | Verb::RoomMessage | Verb::Help, _) => {}
                    (Verb::Quit, _) => self.done = Some(Ok(())),
                    _ if automatic => {}
                    _ => self.note(Body::Info(text)),
                }
            }
            Reply::Err { code, message } => {
                let text = format::err(code, &message, command.as_ref());
                match command {
                    Some(Command::JoinRoom { room })
                        if code == ErrorCode::AlreadyInRoom && !automatic =>
                    {
                        let index = self.ensure(Target::Room(room));
                        self.select(index);
                        return;
                    }
                    Some(Command::JoinRoom { room }) if automatic => {
                        self.remove(&Target::Room(room.clone()));
                        self.note(Body::Error(format!("could not rejoin #{room}: {text}")));
                        return;
                    }
                    Some(Command::History { target, .. }) => {
                        self.history_lines.clear();
                        let conversation = self.session.conversation_of(&target);
                        if let Some(index) = self.find(&conversation) {
                            self.conversations[index].history = HistoryState::Loaded;
                        }
                        if automatic {
                            return;
                        }
                    }
                    // Without the server's unread counts (it could not read them), those of
                    // the conversations as the client sees them stand.
                    Some(Command::ListRoomUsers { .. })
                    | Some(Command::Users {})
                    | Some(Command::Unread {})
                        if automatic =>
                    {
                        return;
                    }
                    _ => {}
                }
                self.note(Body::Error(text));
            }
            Reply::Users(users) => {
                if !automatic {
                    self.note(Body::Info(format!("online: {}", format::names(&users))));
                }
                self.online = users;
            }
            Reply::Rooms(rooms) => {
                self.note(Body::Info(format!("rooms: {}", format::names(&rooms))));
            }
            Reply::RoomUsers { room, users } => {
                if !automatic {
                    self.note(Body::Info(format!(
                        "#{room} members: {}",
                        format::names(&users)
                    )));
                }
                if let Some(index) = self.find(&Target::Room(room)) {
                    self.conversations[index].members = Some(users);
                }
            }
            Reply::Topic { room, topic } => {
                self.note(Body::Info(format::topic(&room, topic.as_ref())));
            }
            Reply::Pong(token) => {
                self.note(Body::Info(format::pong(
                    token.as_deref(),
                    answered.as_ref(),
                )));
            }
            _ => {}
        }
    }

    /// `OK HISTORY`: the `HIST` lines read go into their conversation, before what it shows
    /// already, without the messages that are in both.
    fn history_loaded(&mut self, target: &HistoryTarget, asked: bool) {
        let lines = std::mem::take(&mut self.history_lines);
        let count = lines.len();
        let index = self.ensure(self.session.conversation_of(target));
        let conversation = &mut self.conversations[index];
        let existing = std::mem::take(&mut conversation.entries);
        conversation.entries = merge(lines, existing);
        conversation.history = HistoryState::Loaded;
        if asked {
            self.select(index);
            if count == 0 {
                self.note(Body::Info("no messages in the history".into()));
            }
        }
    }

    /// Enter.
    pub fn submit(&mut self) {
        let line = self.editor.text().to_owned();
        let target = self.current().target.clone();
        let command = match input::parse(&line) {
            Ok(Input::Nothing) => {
                self.editor.take();
                return;
            }
            Ok(Input::Help(verb)) => {
                self.editor.take();
                let lines = match verb {
                    None => input::commands_help(Mode::Tui)
                        .into_iter()
                        .chain(KEYS_HELP.iter().map(|line| (*line).to_owned()))
                        .collect(),
                    Some(verb) => input::verb_help(verb, Mode::Tui),
                };
                for line in lines {
                    self.note(Body::Info(line));
                }
                return;
            }
            Ok(Input::Open(user)) => {
                self.editor.take();
                let index = self.ensure(Target::User(user));
                self.select(index);
                return;
            }
            Ok(Input::Text(text)) => target.command(&text).map_err(|e| e.to_string()),
            Ok(Input::Send(command)) => Ok(command),
            Ok(Input::History) => Ok(Command::History {
                target: Session::history_target(&target),
                page: HistoryPage::Latest,
                count: None,
            }),
            Err(error) => Err(error.to_string()),
        };
        let command = match command {
            Ok(command) => command,
            Err(error) => {
                // The line stays in the editor, to be fixed.
                self.note(Body::Error(error));
                return;
            }
        };
        if matches!(command, Command::Quit { .. }) && !self.session.is_connected() {
            self.done = Some(Ok(()));
            return;
        }
        if let Err(error) = self.session.send(command.clone(), false) {
            self.note(Body::Error(format!(
                "{error}: the line is kept, send it again later"
            )));
            return;
        }
        self.editor.take();
        let me = self.session.me.clone();
        // The server does not send our own messages back: show them now.
        let echo = match command {
            Command::Msg { text } => Some((Target::Everyone, text)),
            Command::RoomMessage { room, text } if self.session.in_room(&room) => {
                Some((Target::Room(room), text))
            }
            // A message to ourselves comes back as a PM.
            Command::Pm { to, text } if to != me => Some((Target::User(to), text)),
            Command::Quit { .. } => {
                self.quit_requested = Some(Instant::now());
                None
            }
            _ => None,
        };
        if let Some((target, text)) = echo {
            self.message(target, me, &text);
        }
    }

    fn request_quit(&mut self) {
        if self.quit_requested.is_some() || !self.session.is_connected() {
            self.done = Some(Ok(()));
            return;
        }
        match self.session.send(Command::Quit { reason: None }, false) {
            Ok(()) => self.quit_requested = Some(Instant::now()),
            Err(_) => self.done = Some(Ok(())),
        }
    }

    /// Called now and then: a quit that the server does not confirm ends anyway.
    pub fn tick(&mut self, now: Instant) {
        if self
            .quit_requested
            .is_some_and(|at| now.duration_since(at) >= QUIT_PATIENCE)
        {
            self.done = Some(Ok(()));
        }
    }

    fn scroll_by(&mut self, rows: isize) {
        let most = self.total_rows.get().saturating_sub(self.page_rows.get());
        self.scroll = self.scroll.saturating_add_signed(rows).min(most);
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let editor = &mut self.editor;
        match key.code {
            KeyCode::Char('c') if ctrl => self.request_quit(),
            KeyCode::Char('d') if ctrl && editor.is_empty() => self.request_quit(),
            KeyCode::Char('d') if ctrl => editor.delete(),
            KeyCode::Char('n') if ctrl => self.select_next(true),
            KeyCode::Char('p') if ctrl => self.select_next(false),
            KeyCode::Char('a') if ctrl => editor.home(),
            KeyCode::Char('e') if ctrl => editor.end(),
            KeyCode::Char('w') if ctrl => editor.delete_word(),
            KeyCode::Char('u') if ctrl => editor.delete_to_start(),
            KeyCode::Char('k') if ctrl => editor.delete_to_end(),
            KeyCode::Char('l') if ctrl => self.clear_screen = true,
            KeyCode::Char(digit @ '1'..='9') if alt => {
                self.select(usize::from(digit as u8 - b'1'));
            }
            KeyCode::Char(c) if !ctrl && !alt => editor.insert(c),
            KeyCode::Enter => self.submit(),
            KeyCode::Tab => self.select_next(true),
            KeyCode::BackTab => self.select_next(false),
            KeyCode::Up => editor.history_back(),
            KeyCode::Down => editor.history_forward(),
            KeyCode::Left => editor.left(),
            KeyCode::Right => editor.right(),
            KeyCode::Home => editor.home(),
            KeyCode::End => editor.end(),
            KeyCode::Backspace => editor.backspace(),
            KeyCode::Delete => editor.delete(),
            KeyCode::PageUp => {
                let page = self.page_rows.get().saturating_sub(1).max(1);
                self.scroll_by(page as isize);
            }
            KeyCode::PageDown => {
                let page = self.page_rows.get().saturating_sub(1).max(1);
                self.scroll_by(-(page as isize));
            }
            KeyCode::Esc => self.scroll = 0,
            _ => {}
        }
    }
}

fn insert_sorted(names: &mut Vec<Name>, name: Name) {
    if let Err(at) = names.binary_search(&name) {
        names.insert(at, name);
    }
}

/// The history first, then what was shown before that the history does not hold (notes, and
/// messages that arrived after it was read).
fn merge(history: Vec<Entry>, existing: Vec<Entry>) -> Vec<Entry> {
    let mut merged = history;
    let mut matched = vec![false; merged.len()];
    for entry in existing {
        if let Body::Message { from, text } = &entry.body {
            let twin = (0..matched.len()).find(|&i| {
                !matched[i]
                    && matches!(&merged[i].body, Body::Message { from: f, text: t }
                        if f == from && t == text)
            });
            if let Some(i) = twin {
                matched[i] = true;
                continue;
            }
        }
        merged.push(entry);
    }
    merged
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    pub(crate) fn line(text: &str) -> LinkEvent {
        LinkEvent::Line(Line::Reply(Reply::parse(text).unwrap()))
    }

    /// A connected app, and what it sends.
    pub(crate) fn app() -> (App, mpsc::UnboundedReceiver<Command>) {
        let mut app = App::new(Session::new(name("me")), "127.0.0.1:8080");
        let (outbox, commands) = mpsc::unbounded_channel();
        app.on_event(LinkEvent::Connected {
            name: name("me"),
            outbox,
            again: false,
        });
        (app, commands)
    }

    pub(crate) fn sent(commands: &mut mpsc::UnboundedReceiver<Command>) -> Vec<String> {
        std::iter::from_fn(|| commands.try_recv().ok())
            .map(|c| c.to_string())
            .collect()
    }

    pub(crate) fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    pub(crate) fn type_line(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
    }

    fn texts(conversation: &Conversation) -> Vec<String> {
        conversation
            .entries
            .iter()
            .map(|entry| match &entry.body {
                Body::Message { from, text } => format!("<{from}> {text}"),
                Body::Info(text) => format!("-- {text}"),
                Body::Error(text) => format!("!! {text}"),
            })
            .collect()
    }

    #[test]
    fn connecting_asks_for_users_and_the_global_history() {
        let (mut app, mut commands) = app();
        assert_eq!(sent(&mut commands), ["USERS", "HISTORY *"]);
        app.on_event(line("USERS bob me"));
        app.on_event(line("HIST * 2026-01-01T10:00:00.000Z bob old"));
        app.on_event(line("MSG bob live"));
        app.on_event(line("OK HISTORY 1"));
        assert_eq!(app.online, [name("bob"), name("me")]);
        assert_eq!(texts(app.current()), ["<bob> old", "<bob> live"]);
        assert_eq!(app.current().history, HistoryState::Loaded);
    }

    #[test]
    fn joining_a_room_selects_it_and_loads_it() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        sent(&mut commands);
        type_line(&mut app, ":jr dev");
        assert_eq!(sent(&mut commands), ["JR dev"]);
        app.on_event(line("OK JR dev"));
        assert_eq!(app.current().target, Target::Room(name("dev")));
        assert_eq!(sent(&mut commands), ["HISTORY dev", "LRU dev"]);
        app.on_event(line("HIST dev 2026-01-01T10:00:00.000Z bob earlier"));
        app.on_event(line("OK HISTORY 1"));
        app.on_event(line("LRU dev bob me"));
        assert_eq!(app.current().members, Some(vec![name("bob"), name("me")]));
        // Text without a command goes to the room, and shows at once.
        type_line(&mut app, "hello  room");
        assert_eq!(sent(&mut commands), ["RM dev hello  room"]);
        app.on_event(line("OK RM dev"));
        app.on_event(line("JR dev carol"));
        app.on_event(line("RM dev carol hi"));
        assert_eq!(
            texts(app.current()),
            [
                "<bob> earlier",
                "-- joined #dev",
                "<me> hello  room",
                "-- carol joined",
                "<carol> hi"
            ]
        );
        assert_eq!(
            app.current().members,
            Some(vec![name("bob"), name("carol"), name("me")])
        );
        // Leaving removes it and goes back to everyone.
        type_line(&mut app, ":lr dev");
        app.on_event(line("OK LR dev"));
        assert_eq!(app.selected, 0);
        assert!(app.find(&Target::Room(name("dev"))).is_none());
    }

    #[test]
    fn unread_counts_and_private_conversations() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        sent(&mut commands);
        app.on_event(line("PM bob psst"));
        app.on_event(line("PM bob again"));
        let bob = app.find(&Target::User(name("bob"))).unwrap();
        assert_eq!(app.conversations[bob].unread, 2);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected, bob);
        assert_eq!(app.conversations[bob].unread, 0);
        assert_eq!(sent(&mut commands), ["HISTORY bob"]);
        type_line(&mut app, "back at you");
        assert_eq!(sent(&mut commands), ["PM bob back at you"]);
        app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(app.selected, 0);
    }

    #[test]
    fn an_account_starts_with_the_servers_unread_counts() {
        let mut session = Session::new(name("me"));
        session.has_account = true;
        let mut app = App::new(session, "127.0.0.1:8080");
        let (outbox, mut commands) = mpsc::unbounded_channel();
        app.on_event(LinkEvent::Connected {
            name: name("me"),
            outbox,
            again: false,
        });
        assert_eq!(sent(&mut commands), ["USERS", "UNREAD", "HISTORY *"]);
        app.on_event(line("USERS me"));
        app.on_event(line("UNREAD bob 3 41"));
        app.on_event(line("UNREAD * 5 40"));
        app.on_event(line("OK UNREAD 2"));
        app.on_event(line("OK HISTORY 0"));
        let bob = app.find(&Target::User(name("bob"))).unwrap();
        assert_eq!(app.conversations[bob].unread, 3);
        // The conversation shown is being read.
        assert_eq!(app.selected, 0);
        assert_eq!(app.conversations[0].unread, 0);
    }

    #[test]
    fn a_private_message_to_someone_away_says_so_in_the_conversation() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        type_line(&mut app, ":pm bob hi");
        app.on_event(line("OK PM bob away: at lunch"));
        type_line(&mut app, ":pm bob hi again");
        app.on_event(line("OK PM bob"));
        sent(&mut commands);
        let bob = app.find(&Target::User(name("bob"))).unwrap();
        assert_eq!(
            texts(&app.conversations[bob]),
            [
                "<me> hi",
                "-- sent to @bob, who is away: at lunch",
                "<me> hi again"
            ]
        );
    }

    /// The help's claim: a line without a command goes to the selected conversation, not to
    /// the room joined last (as in line mode).
    #[test]
    fn a_line_goes_to_the_selected_conversation() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        for room in ["dev", "ops"] {
            type_line(&mut app, &format!(":jr {room}"));
            app.on_event(line(&format!("OK JR {room}")));
            app.on_event(line("OK HISTORY 0"));
            app.on_event(line(&format!("LRU {room} me")));
        }
        assert_eq!(app.session.current_room(), Some(&name("ops")));
        sent(&mut commands);
        let dev = app.find(&Target::Room(name("dev"))).unwrap();
        app.select(dev);
        type_line(&mut app, "to dev");
        app.select(0);
        type_line(&mut app, "to everyone");
        assert_eq!(sent(&mut commands), ["RM dev to dev", "MSG to everyone"]);
    }

    #[test]
    fn help_is_the_tuis() {
        let (mut app, mut commands) = app();
        sent(&mut commands);
        type_line(&mut app, ":help");
        let shown = texts(app.current());
        assert!(shown[0].contains("the selected conversation"), "{shown:?}");
        assert!(
            shown
                .iter()
                .any(|line| line.starts_with("-- :pm <user>   "))
        );
        assert!(shown.iter().any(|line| line == "-- Keys:"));
        assert!(shown.iter().all(|line| !line.contains("joined last")));
        type_line(&mut app, ":help cr");
        assert_eq!(
            texts(app.current()).last().unwrap(),
            "-- :cr <room>            create a room and join it"
        );
        // Answered by the client: nothing goes to the server.
        assert!(sent(&mut commands).is_empty());
    }

    #[test]
    fn errors_keep_the_line_and_show_why() {
        let (mut app, mut commands) = app();
        sent(&mut commands);
        type_line(&mut app, ":cr");
        assert_eq!(app.editor.text(), ":cr");
        assert!(
            texts(app.current())
                .last()
                .unwrap()
                .starts_with("!! missing argument")
        );
        assert!(sent(&mut commands).is_empty());
        app.on_key(ctrl('u'));
        type_line(&mut app, ":jr nowhere");
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        app.on_event(line(
            "ERR NO_SUCH_ROOM there is no room nowhere; CR creates it",
        ));
        assert_eq!(
            texts(app.current()).last().unwrap(),
            "!! NO_SUCH_ROOM: there is no room nowhere; :cr nowhere creates it"
        );
    }

    #[test]
    fn ping_shows_the_round_trip() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        sent(&mut commands);
        type_line(&mut app, ":ping");
        assert_eq!(sent(&mut commands), ["PING"]);
        app.on_event(line("PONG"));
        let last = texts(app.current()).pop().unwrap();
        assert!(
            last.starts_with("-- pong: ") && last.ends_with(" ms"),
            "{last}"
        );
    }

    #[test]
    fn a_lost_connection_is_reported_and_rooms_come_back() {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        app.on_event(line("OK CR dev"));
        sent(&mut commands);
        app.on_event(LinkEvent::Lost {
            reason: "the server closed the connection".into(),
        });
        assert!(matches!(app.status, Status::Reconnecting { .. }));
        type_line(&mut app, "are you there");
        assert_eq!(app.editor.text(), "are you there");
        let (outbox, mut commands) = mpsc::unbounded_channel();
        app.on_event(LinkEvent::Connected {
            name: name("me"),
            outbox,
            again: true,
        });
        assert_eq!(app.status, Status::Connected);
        assert_eq!(
            sent(&mut commands),
            ["JR dev", "USERS", "HISTORY dev", "LRU dev"]
        );
        assert!(app.find(&Target::Room(name("dev"))).is_some());
    }

    #[test]
    fn quitting_sends_quit_and_ends_on_its_answer() {
        let (mut app, mut commands) = app();
        sent(&mut commands);
        app.on_key(ctrl('c'));
        assert_eq!(sent(&mut commands), ["QUIT"]);
        assert!(app.done.is_none());
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        app.on_event(line("OK QUIT"));
        assert_eq!(app.done, Some(Ok(())));
    }

    #[test]
    fn history_merge_drops_the_messages_already_shown() {
        let at = Local::now();
        let message = |from: &str, text: &str| Entry {
            at,
            body: Body::Message {
                from: name(from),
                text: text.into(),
            },
        };
        let note = Entry {
            at,
            body: Body::Info("note".into()),
        };
        let merged = merge(
            vec![message("a", "1"), message("b", "2"), message("a", "1")],
            vec![message("a", "1"), note.clone(), message("c", "3")],
        );
        assert_eq!(
            merged,
            [
                message("a", "1"),
                message("b", "2"),
                message("a", "1"),
                note,
                message("c", "3")
            ]
        );
    }
}
