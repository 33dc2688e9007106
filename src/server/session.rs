//! One client's session: the greeting, login under a deadline, then commands until the client
//! quits, disconnects, stops reading, or the server shuts down.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::accounts::AccountError;
use super::handle::ServerHandle;
use super::limits::{Admission, FloodGuard, IdleAction, IdleWatch, RoomCreations};
use super::member::{Member, UserId};
use super::request::unavailable;
use super::room::{Joined, Room};
use super::storage::{Conversation, Record};
use super::user::{NameRefusal, Private, RegisterError, Users};
use crate::connection::{Delivery, Frame, LineCodec, MIN_READ_BUFFER, Outbox, OutboxFull};
use crate::settings::Settings;
use linechat_protocol::{
    CloseReason, Command, Departure, ErrorCode, HistoryTarget, Name, Notice, Reply, Verb,
};

/// What every session shares.
#[derive(Debug)]
pub(super) struct SessionContext {
    pub server: ServerHandle,
    pub settings: Arc<Settings>,
    pub shutdown: CancellationToken,
}

impl SessionContext {
    /// Runs a logged-in user's command that reads or changes shared state, and waits for
    /// its answer: rooms and the list of users.
    async fn run(&self, presence: &mut Presence, command: Command) -> Reply {
        let server = &self.server;
        match command {
            Command::Users {} => server.users.list().await,
            Command::ListRooms {} => server.rooms.list().await,
            Command::ListRoomUsers { room } => server.rooms.members(room).await,
            Command::CreateRoom { room } => {
                let joined = server.rooms.create(presence.member.clone(), room).await;
                self.entered(presence, Verb::CreateRoom, joined).await
            }
            Command::JoinRoom { room } => {
                let joined = server.rooms.join(presence.member.clone(), room).await;
                self.entered(presence, Verb::JoinRoom, joined).await
            }
            Command::LeaveRoom { room } => {
                let Some(handle) = presence.rooms.get(&room) else {
                    return server.rooms.not_member(room).await;
                };
                // A registered user's membership is deleted on disk first, and the user
                // leaves only once that is stored.
                if presence.registered
                    && let Err(error) = server
                        .store
                        .leave(presence.member.name.clone(), handle.name().clone())
                        .await
                {
                    let message = format!("leaving {room}: {}", error.client_message());
                    return Reply::err(ErrorCode::Storage, message);
                }
                let reply = handle.leave(presence.member.clone()).await;
                if let Reply::Ok { .. } = reply {
                    presence.rooms.remove(&room);
                }
                reply
            }
            other => {
                let message = format!("{} is not a shared-state command", other.verb());
                Reply::err(ErrorCode::Internal, message)
            }
        }
    }

    /// After `CR` or `JR`: keeps the room's handle, once a registered user's membership is
    /// stored (the user leaves again if it cannot be).
    async fn entered(&self, presence: &mut Presence, verb: Verb, joined: Joined) -> Reply {
        let room = match joined {
            Ok(room) => room,
            Err(refusal) => return refusal,
        };
        let name = room.name().clone();
        if presence.registered
            && let Err(error) = self
                .server
                .store
                .join(presence.member.name.clone(), name.clone())
                .await
        {
            room.leave(presence.member.clone()).await;
            let message = format!("joining {name}: {}", error.client_message());
            return Reply::err(ErrorCode::Storage, message);
        }
        presence.rooms.insert(name.clone(), room);
        Reply::ok_with(verb, name)
    }
}

/// Serves one connection, given as its two halves, to its end. Never fails: what goes wrong
/// is logged and ends only this connection.
/// `connected_at` is when the TCP connection was accepted: the login deadline counts from it.
/// `slot` is held until the connection ends: dropping it counts the connection out.
///
/// Not an `async fn`: those keep a copy of each argument beside what is built from it, for
/// the whole connection; the block below captures each argument once.
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
    let codec = LineCodec::new(context.settings.max_line_length);
    let mut lines = FramedRead::with_capacity(read, codec, MIN_READ_BUFFER);
    let _ = outbox.send(Reply::Hello);
    let grace = context.settings.shutdown_grace();
    let mut session = Session {
        peer,
        room_creations: RoomCreations::new(&context.settings),
        outbox,
        context,
        presence: None,
        in_flight: VecDeque::new(),
        privates_in_flight: 0,
        recipients: HashMap::new(),
    };
    async move {
        debug!(%peer, "connected");
        let serving = async {
            let end = session.run(&mut lines, connected_at).await;
            session.finish(end);
        };
        // The writer runs in the session's task rather than a task of its own: one task per
        // connection costs less memory, and a wake-up for output polls both at little cost.
        let writing = writer.run(write);
        tokio::pin!(serving, writing);
        tokio::select! {
            () = &mut serving => {
                // The parting line and what was queued before it get a moment to go out.
                // Boxed: the timer would otherwise take room in every connection's state.
                let _ = Box::pin(timeout(grace, writing)).await;
            }
            // The socket failed or the client stopped reading: the session sees its outbox
            // closed and ends.
            _ = &mut writing => serving.await,
        }
        drop(slot);
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Quit(Option<String>),
    Eof,
    ReadError(std::io::Error),
    /// The outbox closed: the client stopped reading or the socket failed.
    Closed,
    LoginTimeout,
    IdleTimeout,
    Flood,
    Shutdown,
}

/// A logged-in user. Dropping it takes the user offline and out of their rooms, also when the
/// session's task panics, so that nobody is left behind in a room.
struct Presence {
    users: Users,
    member: Member,
    /// Registered users' rooms are remembered across logins; guests' are not.
    registered: bool,
    /// The rooms the user is in, with the handles their messages go to.
    rooms: BTreeMap<Name, Room>,
    /// What others are told; stays `Lost` if the session's task panics.
    how: Departure,
}

impl Drop for Presence {
    fn drop(&mut self) {
        for room in std::mem::take(&mut self.rooms).into_values() {
            room.leave_quietly(self.member.clone());
        }
        let how = std::mem::replace(&mut self.how, Departure::Lost);
        self.users.logout(self.member.clone(), how);
    }
}

/// Someone this session sent a private message to, kept so that the next ones go straight to
/// their outbox: valid exactly as long as that outbox takes lines, that is as long as their
/// session lives.
struct Recipient {
    member: Member,
    /// `OK PM <name>`, encoded once.
    sent: Arc<Delivery>,
}

/// The final line of a command sent on without waiting, in the order of the commands.
enum InFlight {
    /// Known already; it waits only for the lines of the commands before it.
    Ready(Arc<Delivery>),
    Reply(oneshot::Receiver<Reply>),
    /// A private message the directory delivers; its answer may hand over the recipient.
    Private(oneshot::Receiver<Private>),
}

/// What a command in flight came to.
enum Answered {
    Line(Arc<Delivery>),
    Reply(Reply),
    Private(Private),
}

impl InFlight {
    async fn answered(&mut self) -> Answered {
        match self {
            InFlight::Ready(line) => Answered::Line(line.clone()),
            InFlight::Reply(answer) => {
                Answered::Reply(answer.await.unwrap_or_else(|_| unavailable()))
            }
            InFlight::Private(answer) => {
                Answered::Private(answer.await.unwrap_or_else(|_| Private {
                    reply: unavailable(),
                    recipient: None,
                }))
            }
        }
    }
}

struct Session {
    peer: SocketAddr,
    outbox: Outbox,
    context: Arc<SessionContext>,
    presence: Option<Presence>,
    /// Messages (`RM`, `MSG`, `PM`) sent on without waiting, oldest first. Their replies go
    /// out in this order, and before the reply of any later command, so a burst of messages
    /// costs no round trip each, yet every command still gets its final line in order.
    in_flight: VecDeque<InFlight>,
    /// How many of those are private messages the directory is delivering. While any is, a
    /// message to someone whose handle the session lacks first waits for their answers.
    privates_in_flight: usize,
    /// The users this session sent private messages to lately, by name.
    recipients: HashMap<Name, Recipient>,
    room_creations: RoomCreations,
}

/// Messages a session lets run ahead of their replies.
const MAX_IN_FLIGHT: usize = 64;

/// Recipients a session keeps the handles of.
const MAX_RECIPIENTS: usize = 32;

impl Session {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        lines: &mut FramedRead<R, LineCodec>,
        connected_at: Instant,
    ) -> End {
        let settings = self.context.settings.clone();
        let login_deadline = connected_at + settings.login_timeout();
        let mut flood = FloodGuard::new(&settings);
        let mut idle = IdleWatch::new(&settings);
        // Made once, not at every turn of the loop: a timer or a wait on a token registers
        // itself (under a lock) when first polled, which would cost every line twice.
        let closed = self.outbox.closed_owned();
        let shutdown = self.context.shutdown.clone().cancelled_owned();
        // One timer: the login deadline until login, then the idle deadline. It is moved only
        // when it fires: a line heard meanwhile makes it fire early, and it is set again.
        let timer = sleep_until(login_deadline);
        tokio::pin!(closed, shutdown, timer);
        let mut timing_login = true;
        loop {
            let frame = tokio::select! {
                answered = next_answer(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    self.in_flight.pop_front();
                    self.deliver(answered);
                    continue;
                }
                frame = lines.next() => frame,
                () = &mut closed => return End::Closed,
                () = &mut shutdown => return End::Shutdown,
                () = &mut timer => {
                    if self.presence.is_none() {
                        return End::LoginTimeout;
                    }
                    match idle.deadline() {
                        Some(due) if due <= Instant::now() => match idle.fired() {
                            IdleAction::Ping => self.send(Reply::Ping("idle".into())),
                            IdleAction::Close => return End::IdleTimeout,
                        },
                        _ => {}
                    }
                    timer.as_mut().reset(idle.deadline().unwrap_or_else(far_future));
                    continue;
                }
            };
            // The end of input is no line: what came before it within the limit is served,
            // and the session ends as the client closed it, never as a flood.
            let frame = match frame {
                None => {
                    self.settle().await;
                    return End::Eof;
                }
                Some(Err(error)) => return End::ReadError(error),
                Some(Ok(frame)) => frame,
            };
            // A blank line gets no answer, so one now and then would keep a client that never
            // reads connected for ever: only other lines count as activity. Blank lines still
            // count for flood control.
            if !is_blank(&frame) {
                idle.heard();
            }
            match flood.admit() {
                Admission::Accept => {}
                Admission::Drop => {
                    let message = format!(
                        "over {} lines per second; the line was dropped",
                        settings.flood_lines_per_sec
                    );
                    self.reply_in_order(Reply::err(ErrorCode::Flood, message))
                        .await;
                    continue;
                }
                Admission::Close => return End::Flood,
            }
            let line = match frame {
                Frame::TooLong => {
                    let max = self.context.settings.max_line_length;
                    let message = format!("lines are at most {max} bytes; the line was dropped");
                    self.reply_in_order(Reply::err(ErrorCode::LineTooLong, message))
                        .await;
                    continue;
                }
                Frame::BadUtf8 => {
                    let message = "lines must be UTF-8 text; the line was dropped";
                    self.reply_in_order(Reply::err(ErrorCode::BadUtf8, message))
                        .await;
                    continue;
                }
                Frame::Line(line) => line,
            };
            match Command::parse(&line) {
                Ok(None) => {}
                Ok(Some(command)) => {
                    let logging_in = timing_login;
                    // Boxed: an idle connection then holds only the loop's own state, not
                    // room for the largest command; one small allocation per command.
                    if let Break(reason) = Box::pin(self.execute(command)).await {
                        return End::Quit(reason);
                    }
                    if logging_in && self.presence.is_some() {
                        timing_login = false;
                        timer
                            .as_mut()
                            .reset(idle.deadline().unwrap_or_else(far_future));
                    }
                }
                Err(error) => {
                    let code = ErrorCode::from(&error);
                    self.reply_in_order(Reply::err(code, error.to_string()))
                        .await;
                }
            }
        }
    }

    /// Runs one command and sends its final reply; `Break` with the reason after `QUIT`.
    async fn execute(&mut self, command: Command) -> ControlFlow<Option<String>> {
        // Messages go on without waiting for the previous ones' answers.
        let command = match (command, &self.presence) {
            (Command::RoomMessage { room, text }, Some(_)) => {
                self.say_in_room(room, text).await;
                return Continue(());
            }
            (Command::Pm { to, text }, Some(_)) => {
                self.private(to, text).await;
                return Continue(());
            }
            (Command::Msg { text }, Some(presence)) => {
                let answer = self
                    .context
                    .server
                    .users
                    .broadcast(presence.member.clone(), text);
                self.pipeline(InFlight::Reply(answer)).await;
                return Continue(());
            }
            (command, _) => command,
        };
        self.settle().await;
        if let Some(refusal) = self.check_new_name(&command) {
            self.send(refusal);
            return Continue(());
        }
        if matches!(command, Command::CreateRoom { .. })
            && self.presence.is_some()
            && !self.room_creations.allow()
        {
            let per_minute = self.context.settings.rooms_created_per_minute;
            let message = format!(
                "rooms are created at most {per_minute} per minute per connection; the line was dropped"
            );
            self.send(Reply::err(ErrorCode::Flood, message));
            return Continue(());
        }
        let reply = match command {
            Command::Ping { token } => Reply::Pong(token),
            // The answer to the server's PING: hearing it was all that mattered.
            Command::Pong { .. } => return Continue(()),
            Command::Help { verb } => {
                let verbs = verb.map_or(Verb::ALL.to_vec(), |verb| vec![verb]);
                for verb in verbs {
                    self.send(Reply::Help(verb));
                }
                Reply::ok(Verb::Help)
            }
            // `OK QUIT` is the parting line, sent by `finish`.
            Command::Quit { reason } => return Break(reason),
            Command::Register { .. } | Command::Login { .. } | Command::Nick { .. } => {
                match &self.presence {
                    Some(presence) => Reply::err(
                        ErrorCode::AlreadyLoggedIn,
                        format!("you are logged in as {}", presence.member.name),
                    ),
                    // Boxed, as are the other long, rare answers: a future is as large as its
                    // largest state, and every idle connection would hold that much.
                    None => Box::pin(self.log_in(command)).await,
                }
            }
            Command::History { target, count } => match &self.presence {
                None => not_logged_in(),
                Some(presence) => Box::pin(self.history(presence, target, count)).await,
            },
            command => match &mut self.presence {
                None => not_logged_in(),
                Some(presence) => Box::pin(self.context.run(presence, command)).await,
            },
        };
        self.send(reply);
        Continue(())
    }

    /// `RM`: straight to the room, whose handle the session holds since it joined.
    async fn say_in_room(&mut self, room: Name, text: String) {
        let said = match &self.presence {
            Some(presence) => match presence.rooms.get(&room) {
                Some(handle) => {
                    let store = &self.context.server.store;
                    handle.say(store, &presence.member, text).await
                }
                None => None,
            },
            None => None,
        };
        match said {
            Some(ok) => self.pipeline(InFlight::Ready(ok)).await,
            None => {
                let refusal = self.context.server.rooms.not_member(room).await;
                self.reply_in_order(refusal).await;
            }
        }
    }

    /// `PM`: straight to the recipient's outbox when the session holds it, otherwise through
    /// the directory, whose answer hands it over.
    async fn private(&mut self, to: Name, text: String) {
        // A message to someone whose handle the session lacks first waits for the answers of
        // the messages the directory is delivering, which may hand the handle over: a burst
        // to one user pays one round trip, not one each, and nothing sent straight to a
        // recipient overtakes what the directory delivers to them.
        if self.privates_in_flight > 0 && !self.recipients.contains_key(&to) {
            self.settle().await;
        }
        let Some(presence) = &self.presence else {
            return;
        };
        let from = &presence.member;
        if let Some(recipient) = self.recipients.get(&to) {
            let outbox = &recipient.member.outbox;
            if !outbox.is_closed() {
                let pm = Reply::Pm {
                    from: from.name.clone(),
                    text,
                };
                let line = Delivery::of(&pm);
                let Reply::Pm { from: name, text } = pm else {
                    return;
                };
                // Recorded before it is delivered, so that a HISTORY the recipient sends on
                // seeing it finds it. The text moves on to the record: a message is copied
                // once, into its line.
                self.context.server.store.record(Record {
                    conversation: Conversation::Private(from.id, recipient.member.id),
                    from: name,
                    to: Some(recipient.member.id),
                    text,
                    at: SystemTime::now(),
                    pending: false,
                });
                let answer = match outbox.push(line) {
                    Ok(()) => recipient.sent.clone(),
                    Err(OutboxFull) => {
                        let message = format!("{} is disconnecting", recipient.member.name);
                        Delivery::new(Reply::err(ErrorCode::NoSuchUser, message))
                    }
                };
                self.pipeline(InFlight::Ready(answer)).await;
                return;
            }
            // Gone, or logged in again elsewhere: the directory knows where they are now.
            self.recipients.remove(&to);
        }
        let answer = self.context.server.users.private(from.clone(), to, text);
        self.privates_in_flight += 1;
        self.pipeline(InFlight::Private(answer)).await;
    }

    /// Queues the final line of a message sent on without waiting, after those of the
    /// commands before it; waits for the oldest when too many are in flight.
    async fn pipeline(&mut self, item: InFlight) {
        match item {
            InFlight::Ready(line) if self.in_flight.is_empty() => {
                let _ = self.outbox.push(line);
            }
            item => self.in_flight.push_back(item),
        }
        if self.in_flight.len() > MAX_IN_FLIGHT
            && let Some(mut oldest) = self.in_flight.pop_front()
        {
            let answered = oldest.answered().await;
            self.deliver(answered);
        }
    }

    /// Sends what a command in flight came to, and keeps the recipient a directory handed
    /// over.
    fn deliver(&mut self, answered: Answered) {
        match answered {
            Answered::Line(line) => {
                let _ = self.outbox.push(line);
            }
            Answered::Reply(reply) => self.send(reply),
            Answered::Private(Private { reply, recipient }) => {
                self.privates_in_flight = self.privates_in_flight.saturating_sub(1);
                if let Some(member) = recipient {
                    self.keep_recipient(member);
                }
                self.send(reply);
            }
        }
    }

    fn keep_recipient(&mut self, member: Member) {
        if self.recipients.len() >= MAX_RECIPIENTS {
            self.recipients
                .retain(|_, recipient| !recipient.member.outbox.is_closed());
            if self.recipients.len() >= MAX_RECIPIENTS {
                self.recipients.clear();
            }
        }
        let sent = Delivery::new(Reply::ok_with(Verb::Pm, &member.name));
        self.recipients
            .insert(member.name.clone(), Recipient { member, sent });
    }

    /// Names that a command would create must fit `max_name_length`, which may be stricter
    /// than the protocol's 32 characters; existing names are accepted as they are.
    fn check_new_name(&self, command: &Command) -> Option<Reply> {
        let name = match command {
            Command::Register { name, .. } | Command::Nick { name } => name,
            Command::CreateRoom { room } => room,
            _ => return None,
        };
        let max = self.context.settings.max_name_length;
        (name.as_str().len() > max).then(|| {
            let message = format!("bad name \"{name}\": a name is at most {max} characters here");
            Reply::err(ErrorCode::BadName, message)
        })
    }

    /// The login verbs: on success the session has a [`Presence`].
    async fn log_in(&mut self, command: Command) -> Reply {
        let server = &self.context.server;
        let ip = self.peer.ip();
        let outbox = self.outbox.clone();
        let (verb, member) = match command {
            Command::Nick { name } => {
                if !self.context.settings.allow_guests {
                    let message = "guests are not allowed here; REGISTER or LOGIN";
                    return Reply::err(ErrorCode::GuestsDisabled, message);
                }
                match server.users.guest(name.clone(), outbox).await {
                    Ok(member) => (Verb::Nick, member),
                    Err(refusal) => return name_refused(&name, refusal, Verb::Nick),
                }
            }
            Command::Register { name, password } => {
                match server
                    .users
                    .register(name.clone(), password, ip, outbox)
                    .await
                {
                    Ok(member) => (Verb::Register, member),
                    Err(RegisterError::Name(refusal)) => {
                        return name_refused(&name, refusal, Verb::Register);
                    }
                    Err(RegisterError::Account(error)) => return account_failure(error),
                }
            }
            Command::Login { name, password } => {
                let registered = match server.accounts.verify(name.clone(), password, ip).await {
                    Ok(registered) => registered,
                    Err(AccountError::BadPassword) => {
                        info!(peer = %self.peer, user = %name, "failed login");
                        return Reply::err(ErrorCode::BadPassword, "wrong name or password");
                    }
                    Err(error @ AccountError::Throttled(_)) => {
                        warn!(peer = %self.peer, user = %name, "login throttled");
                        return account_failure(error);
                    }
                    Err(error) => return account_failure(error),
                };
                let member = Member {
                    name: registered.name,
                    id: UserId::Account(registered.id),
                    outbox,
                };
                if !server.users.login(member.clone()).await {
                    return account_failure(AccountError::Unavailable);
                }
                (Verb::Login, member)
            }
            _ => return Reply::err(ErrorCode::Internal, "not a login command"),
        };
        let name = member.name.clone();
        info!(peer = %self.peer, user = %name, "logged in");
        let mut presence = Presence {
            users: server.users.clone(),
            member,
            registered: verb != Verb::Nick,
            rooms: BTreeMap::new(),
            how: Departure::Lost,
        };
        if verb == Verb::Login {
            self.restore(&mut presence).await;
        }
        self.presence = Some(presence);
        Reply::ok_with(verb, name)
    }

    /// Puts a returning user back in their rooms (they see `JR <room> <you>` for each, the
    /// members the usual `JR`), then hands over the private messages that waited for them.
    async fn restore(&self, presence: &mut Presence) {
        let server = &self.context.server;
        let name = presence.member.name.clone();
        for room in server.store.memberships(name.clone()).await {
            if let Ok(handle) = server.rooms.join(presence.member.clone(), room).await {
                self.send(Reply::Joined {
                    room: handle.name().clone(),
                    user: name.clone(),
                });
                presence.rooms.insert(handle.name().clone(), handle);
            }
        }
        for message in server.store.take_pending(presence.member.id).await {
            self.send(Reply::Pm {
                from: message.from,
                text: message.text,
            });
        }
    }

    /// `HISTORY`: one `HIST` line per message, oldest first, then `OK HISTORY <n>`. The lines
    /// are read a page at a time and queued only as the client takes them, so that however
    /// long the answer, a client that does not read pins little more than a page and a part
    /// of its outbox. One that takes nothing for `idle_timeout_secs` counts as not reading.
    async fn history(
        &self,
        presence: &Presence,
        target: HistoryTarget,
        count: Option<u32>,
    ) -> Reply {
        let settings = &self.context.settings;
        let count = count
            .unwrap_or(settings.history_default_count)
            .min(settings.history_max_count);
        let conversation = match &target {
            HistoryTarget::Global => Conversation::Global,
            HistoryTarget::Named(room) if presence.rooms.contains_key(room) => {
                Conversation::Room(room.clone())
            }
            // Your conversation with whoever the name stands for now: a guest's lasts as long
            // as their session, an account's as long as the account.
            HistoryTarget::Named(user) => {
                match self.context.server.users.resolve(user.clone()).await {
                    Some(other) => Conversation::Private(presence.member.id, other),
                    None => return Reply::ok_with(Verb::History, 0),
                }
            }
        };
        let stalled_after = settings.idle_timeout().max(Duration::from_secs(1));
        let store = &self.context.server.store;
        let mut sent = 0;
        let mut after = None;
        'pages: while sent < count {
            let limit = (count - sent).min(HISTORY_PAGE);
            let page = match store
                .history_page(conversation.clone(), count, after, limit)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    warn!(%error, "history unavailable");
                    return Reply::err(ErrorCode::Internal, "history is unavailable; try again");
                }
            };
            if page.is_empty() {
                break;
            }
            for message in page {
                let id = message.id;
                let line = Delivery::new(Reply::Hist {
                    target: target.clone(),
                    at: message.at,
                    from: message.from,
                    text: message.text,
                });
                let room = timeout(stalled_after, self.outbox.wait_for_room(line.size()));
                let ready = tokio::select! {
                    room = room => match room {
                        Ok(room) => room.is_ok(),
                        Err(_) => {
                            self.outbox.close_not_reading();
                            false
                        }
                    },
                    // The lines sent so far are counted in the final line.
                    () = self.context.shutdown.cancelled() => false,
                };
                if !ready || self.outbox.push(line).is_err() {
                    break 'pages;
                }
                sent += 1;
                after = Some(id);
            }
        }
        Reply::ok_with(Verb::History, sent)
    }

    /// Says goodbye as fits the end, closes the outbox, logs, and lets the [`Presence`] go.
    fn finish(&mut self, end: End) {
        let user = self.presence.as_ref().map(|p| p.member.name.to_string());
        let user = user.as_deref().unwrap_or("-");
        let mut parting = None;
        let how = match end {
            End::Quit(reason) => {
                parting = Some(Reply::ok(Verb::Quit));
                Departure::Quit(reason)
            }
            End::Eof => Departure::Closed,
            End::ReadError(error) => {
                debug!(peer = %self.peer, %error, "read failed");
                Departure::Lost
            }
            // The client is not reading, so a parting line would not reach it: only log.
            End::Closed if self.outbox.overflowed() => {
                warn!(peer = %self.peer, user, "disconnected: not reading, outbox full");
                Departure::NotReading
            }
            // The user logged in on another connection, which has their rooms now.
            End::Closed if self.outbox.replaced() => {
                info!(peer = %self.peer, user, "replaced by a new login");
                if let Some(presence) = &mut self.presence {
                    presence.rooms.clear();
                }
                Departure::Lost
            }
            End::Closed => Departure::Lost,
            End::LoginTimeout => {
                info!(peer = %self.peer, "disconnected: no login in time");
                parting = Some(Reply::Notice(Notice::Closing {
                    reason: CloseReason::LoginTimeout,
                }));
                Departure::Lost
            }
            End::IdleTimeout => {
                info!(peer = %self.peer, user, "disconnected: no answer to PING");
                parting = Some(Reply::Notice(Notice::Closing {
                    reason: CloseReason::IdleTimeout,
                }));
                Departure::TimedOut
            }
            End::Flood => {
                warn!(peer = %self.peer, user, "disconnected: flooding");
                parting = Some(Reply::Notice(Notice::Closing {
                    reason: CloseReason::Flood,
                }));
                Departure::Flooding
            }
            End::Shutdown => {
                parting = Some(Reply::Notice(Notice::Shutdown));
                Departure::Shutdown
            }
        };
        // Nothing queued after this point is written: the parting line is the last one, even
        // if others' departures reach this outbox while the user is taken offline.
        self.outbox.finish(parting);
        if let Some(mut presence) = self.presence.take() {
            info!(peer = %self.peer, user, %how, "logged out");
            presence.how = how;
        }
    }

    /// Sends the replies of the messages still in flight, in order.
    async fn settle(&mut self) {
        while let Some(mut oldest) = self.in_flight.pop_front() {
            let answered = oldest.answered().await;
            self.deliver(answered);
        }
    }

    /// Sends a final reply after those of the commands before it, without waiting for them.
    async fn reply_in_order(&mut self, reply: Reply) {
        self.pipeline(InFlight::Ready(Delivery::new(reply))).await;
    }

    fn send(&self, reply: Reply) {
        // A full outbox closes the connection; the session loop sees that and ends.
        let _ = self.outbox.send(reply);
    }
}

/// A deadline that never comes, for a timer with nothing to wait for.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}

/// Messages `HISTORY` reads from the store at a time.
const HISTORY_PAGE: u32 = 100;

/// Whether a frame is a blank line, which `Command::parse` ignores.
fn is_blank(frame: &Frame) -> bool {
    matches!(frame, Frame::Line(line) if line.trim_matches([' ', '\t']).is_empty())
}

/// What the oldest message in flight came to. Cancel-safe: the message stays in flight until
/// the caller pops it.
async fn next_answer(in_flight: &mut VecDeque<InFlight>) -> Answered {
    match in_flight.front_mut() {
        Some(oldest) => oldest.answered().await,
        None => std::future::pending().await,
    }
}

fn not_logged_in() -> Reply {
    Reply::err(
        ErrorCode::NotLoggedIn,
        "log in first: LOGIN <name> <password>, REGISTER <name> <password> or NICK <name>",
    )
}

/// `NAME_TAKEN`, worded for the command that was refused; `name` as the client wrote it.
fn name_refused(name: &Name, refusal: NameRefusal, verb: Verb) -> Reply {
    let message = match refusal {
        NameRefusal::Online => format!("{name} is online already"),
        NameRefusal::Registered if verb == Verb::Register => {
            format!("{name} is already registered")
        }
        NameRefusal::Registered => format!("{name} is a registered account; use LOGIN"),
        NameRefusal::LooksLike(_) => refusal.to_string(),
    };
    Reply::err(ErrorCode::NameTaken, message)
}

fn account_failure(error: AccountError) -> Reply {
    let code = match error {
        AccountError::Throttled(_) => ErrorCode::TooManyAttempts,
        AccountError::Storage => ErrorCode::Storage,
        _ => ErrorCode::Internal,
    };
    Reply::err(code, error.to_string())
}
