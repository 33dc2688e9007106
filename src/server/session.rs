//! One client's session: the greeting, login under a deadline, then commands until the client
//! quits, disconnects, stops reading, or the server shuts down.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::accounts::AccountError;
use super::limits::{Admission, FloodGuard, IdleAction, IdleWatch, RoomCreations};
use super::member::{Member, UserId};
use super::processor::ServerHandle;
use super::storage::Conversation;
use super::user::{NameRefusal, RegisterError};
use crate::common::{
    CloseReason, Command, Departure, ErrorCode, HistoryTarget, Name, Notice, Reply, Verb,
};
use crate::connection::{Delivery, Frame, LineCodec, MIN_READ_BUFFER, Outbox};
use crate::settings::Settings;

/// What every session shares.
#[derive(Debug, Clone)]
pub(super) struct SessionContext {
    pub server: ServerHandle,
    pub settings: Arc<Settings>,
    pub shutdown: CancellationToken,
}

/// Serves one connection, given as its two halves, to its end. Never fails: what goes wrong
/// is logged and ends only this connection.
/// `connected_at` is when the TCP connection was accepted: the login deadline counts from it.
pub(super) async fn serve<R, W>(
    read: R,
    write: W,
    peer: SocketAddr,
    context: SessionContext,
    connected_at: Instant,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbox, writer) = context
        .server
        .output
        .outbox(context.settings.outbox_limit_bytes);
    let writing = tokio::spawn(writer.run(write));
    let codec = LineCodec::new(context.settings.max_line_length);
    let mut lines = FramedRead::with_capacity(read, codec, MIN_READ_BUFFER);

    debug!(%peer, "connected");
    let _ = outbox.send(Reply::Hello);
    let mut session = Session {
        peer,
        outbox: outbox.clone(),
        context: context.clone(),
        presence: None,
        in_flight: VecDeque::new(),
        room_creations: RoomCreations::new(&context.settings),
    };
    let end = session.run(&mut lines, connected_at).await;
    session.finish(end);

    let stop_writing = writing.abort_handle();
    if timeout(context.settings.shutdown_grace(), writing)
        .await
        .is_err()
    {
        stop_writing.abort();
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
    server: ServerHandle,
    member: Member,
    /// Registered users' rooms are remembered across logins; guests' are not.
    registered: bool,
    rooms: BTreeSet<Name>,
    /// What others are told; stays `Lost` if the session's task panics.
    how: Departure,
}

impl Drop for Presence {
    fn drop(&mut self) {
        let rooms = std::mem::take(&mut self.rooms).into_iter().collect();
        self.server
            .disconnect(self.member.clone(), rooms, self.how.clone());
    }
}

struct Session {
    peer: SocketAddr,
    outbox: Outbox,
    context: SessionContext,
    presence: Option<Presence>,
    /// Messages (`RM`, `MSG`, `PM`) sent on without waiting, oldest first. Their replies go
    /// out in this order, and before the reply of any later command, so a burst of messages
    /// costs no round trip each, yet every command still gets its final line in order.
    in_flight: VecDeque<oneshot::Receiver<Reply>>,
    room_creations: RoomCreations,
}

/// Messages a session lets run ahead of their replies.
const MAX_IN_FLIGHT: usize = 64;

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
        loop {
            let idle_deadline = idle.deadline().filter(|_| self.presence.is_some());
            let frame = tokio::select! {
                reply = next_answer(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    self.in_flight.pop_front();
                    self.send(reply);
                    continue;
                }
                frame = lines.next() => frame,
                () = self.outbox.closed() => return End::Closed,
                () = self.context.shutdown.cancelled() => return End::Shutdown,
                () = sleep_until(login_deadline), if self.presence.is_none() => {
                    return End::LoginTimeout;
                }
                () = sleep_until(idle_deadline.unwrap_or(login_deadline)), if idle_deadline.is_some() => {
                    match idle.fired() {
                        IdleAction::Ping => self.send(Reply::Ping("idle".into())),
                        IdleAction::Close => return End::IdleTimeout,
                    }
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
                    self.answer(Reply::err(ErrorCode::Flood, message)).await;
                    continue;
                }
                Admission::Close => return End::Flood,
            }
            let line = match frame {
                Frame::TooLong => {
                    let max = self.context.settings.max_line_length;
                    let message = format!("lines are at most {max} bytes; the line was dropped");
                    self.answer(Reply::err(ErrorCode::LineTooLong, message))
                        .await;
                    continue;
                }
                Frame::BadUtf8 => {
                    let message = "lines must be UTF-8 text; the line was dropped";
                    self.answer(Reply::err(ErrorCode::BadUtf8, message)).await;
                    continue;
                }
                Frame::Line(line) => line,
            };
            match Command::parse(&line) {
                Ok(None) => {}
                Ok(Some(command)) => {
                    if let Break(reason) = self.execute(command).await {
                        return End::Quit(reason);
                    }
                }
                Err(error) => {
                    let code = ErrorCode::from(&error);
                    self.answer(Reply::err(code, error.to_string())).await;
                }
            }
        }
    }

    /// Runs one command and sends its final reply; `Break` with the reason after `QUIT`.
    async fn execute(&mut self, command: Command) -> ControlFlow<Option<String>> {
        let pipelined = matches!(
            command,
            Command::RoomMessage { .. } | Command::Msg { .. } | Command::Pm { .. }
        );
        if let (true, Some(presence)) = (pipelined, &self.presence) {
            let answer = self.context.server.submit(&presence.member, command);
            self.in_flight.push_back(answer);
            if self.in_flight.len() > MAX_IN_FLIGHT
                && let Some(oldest) = self.in_flight.pop_front()
            {
                self.send(ServerHandle::answer(oldest).await);
            }
            return Continue(());
        }
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
                    None => self.log_in(command).await,
                }
            }
            Command::History { target, count } => match &self.presence {
                None => not_logged_in(),
                Some(presence) => self.history(presence, target, count).await,
            },
            command => match &mut self.presence {
                None => not_logged_in(),
                Some(presence) => {
                    let room = match &command {
                        Command::CreateRoom { room }
                        | Command::JoinRoom { room }
                        | Command::LeaveRoom { room } => Some(room.clone()),
                        _ => None,
                    };
                    let server = &self.context.server;
                    let account = presence.member.name.clone();
                    let remembered = presence.registered;
                    // A registered user's membership is on disk before the OK goes out: `LR`
                    // deletes it first and leaves only once that is stored...
                    if let (Command::LeaveRoom { room }, true) = (&command, remembered)
                        && presence.rooms.contains(room)
                        && let Err(error) = server.store.leave(account.clone(), room.clone()).await
                    {
                        let message = format!("leaving {room}: {}", error.client_message());
                        self.send(Reply::err(ErrorCode::Storage, message));
                        return Continue(());
                    }
                    let mut reply = server.execute(&presence.member, command).await;
                    // ...and `CR`/`JR` join in memory, then store the membership, and leave
                    // again if it cannot be stored. (`CR` stores the room itself first.)
                    if let (Some(room), Reply::Ok { verb, .. }) = (room, &reply) {
                        if *verb == Verb::Lr {
                            presence.rooms.remove(&room);
                        } else if remembered
                            && let Err(error) = server.store.join(account, room.clone()).await
                        {
                            let leave = Command::LeaveRoom { room: room.clone() };
                            let _ = server.execute(&presence.member, leave).await;
                            let message = format!("joining {room}: {}", error.client_message());
                            reply = Reply::err(ErrorCode::Storage, message);
                        } else {
                            presence.rooms.insert(room);
                        }
                    }
                    reply
                }
            },
        };
        self.send(reply);
        Continue(())
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
            server: server.clone(),
            member,
            registered: verb != Verb::Nick,
            rooms: BTreeSet::new(),
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
            let join = Command::JoinRoom { room: room.clone() };
            if let Reply::Ok { .. } = server.execute(&presence.member, join).await {
                presence.rooms.insert(room.clone());
                self.send(Reply::Joined {
                    room,
                    user: name.clone(),
                });
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
            HistoryTarget::Named(room) if presence.rooms.contains(room) => {
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
        while let Some(oldest) = self.in_flight.pop_front() {
            self.send(ServerHandle::answer(oldest).await);
        }
    }

    /// Sends a final reply after those of the commands before it.
    async fn answer(&mut self, reply: Reply) {
        self.settle().await;
        self.send(reply);
    }

    fn send(&self, reply: Reply) {
        // A full outbox closes the connection; the session loop sees that and ends.
        let _ = self.outbox.send(reply);
    }
}

/// Messages `HISTORY` reads from the store at a time.
const HISTORY_PAGE: u32 = 100;

/// Whether a frame is a blank line, which `Command::parse` ignores.
fn is_blank(frame: &Frame) -> bool {
    matches!(frame, Frame::Line(line) if line.trim_matches([' ', '\t']).is_empty())
}

/// The reply of the oldest message in flight.
async fn next_answer(in_flight: &mut VecDeque<oneshot::Receiver<Reply>>) -> Reply {
    match in_flight.front_mut() {
        Some(oldest) => ServerHandle::answer_ref(oldest).await,
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
