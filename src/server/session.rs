//! One client's session: the greeting, login under a deadline, then commands until the client
//! quits, disconnects, stops reading, or the server shuts down.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
use tracing::{Instrument, debug, info, info_span, warn};

use linechat_protocol::{CloseReason, Command, Departure, ErrorCode, Name, Notice, Reply, Verb};

use super::cmd::{self, Step};
use super::handle::ServerHandle;
use super::limits::{Admission, FloodGuard, IdleAction, IdleWatch, RoomCreations};
use super::member::Member;
use super::request::unavailable;
use super::room::Room;
use super::user::{Private, Users};
use crate::connection::{Delivery, Frame, LineCodec, MIN_READ_BUFFER, Outbox};
use crate::settings::Settings;

/// What every session shares.
#[derive(Debug)]
pub(super) struct SessionContext {
    pub server: ServerHandle,
    pub settings: Arc<Settings>,
    pub shutdown: CancellationToken,
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
    let _ = outbox.send(Reply::Hello {
        guests: context.settings.allow_guests,
    });
    let mut session = Session::new(peer, outbox, context, connected_at);
    // Every line logged for this connection, here and in the actors it calls, carries the
    // peer and, once logged in, the user.
    let span = info_span!("session", %peer, user = tracing::field::Empty);
    async move {
        debug!("connected");
        // Answers how long the writer may take to write the parting line: read from the
        // settings at the end, so that no copy of it waits in every connection's task.
        let serving = async {
            let end = session.run(&mut lines).await;
            session.finish(end);
            session.context.settings.shutdown_grace()
        };
        // The writer runs in the session's task rather than a task of its own: one task per
        // connection costs less memory, and a wake-up for output polls both at little cost.
        let writing = writer.run_worded(write, super::cmd::wording::LineWording);
        tokio::pin!(serving, writing);
        tokio::select! {
            grace = &mut serving => {
                // The parting line and what was queued before it get a moment to go out.
                // Boxed: the timer would otherwise take room in every connection's state.
                let _ = Box::pin(timeout(grace, writing)).await;
            }
            // The socket failed or the client stopped reading: the session sees its outbox
            // closed and ends.
            _ = &mut writing => {
                serving.await;
            }
        }
        drop(slot);
    }
    .instrument(span)
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
pub(super) struct Presence {
    pub(super) users: Users,
    pub(super) member: Member,
    /// Registered users' rooms are remembered across logins; guests' are not.
    pub(super) registered: bool,
    /// The rooms the user is in, with the handles their messages go to.
    pub(super) rooms: BTreeMap<Name, Room>,
    /// What others are told; stays `Lost` if the session's task panics.
    pub(super) how: Departure,
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
pub(super) struct Recipient {
    pub(super) member: Member,
    /// `OK PM <name>`, encoded once.
    pub(super) sent: Arc<Delivery>,
}

/// The final line of a command sent on without waiting, in the order of the commands.
pub(super) enum InFlight {
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

pub(super) struct Session {
    pub(super) peer: SocketAddr,
    pub(super) outbox: Outbox,
    pub(super) context: Arc<SessionContext>,
    pub(super) presence: Option<Presence>,
    /// Messages (`RM`, `MSG`, `PM`) sent on without waiting, oldest first. Their replies go
    /// out in this order, and before the reply of any later command, so a burst of messages
    /// costs no round trip each, yet every command still gets its final line in order.
    pub(super) in_flight: VecDeque<InFlight>,
    /// How many of those are private messages the directory is delivering. While any is, a
    /// message to someone whose handle the session lacks first waits for their answers.
    pub(super) privates_in_flight: usize,
    /// The users this session sent private messages to lately, by name.
    pub(super) recipients: HashMap<Name, Recipient>,
    pub(super) room_creations: RoomCreations,
    /// When a connection that has not logged in is closed: `login_timeout_secs` after it
    /// was accepted.
    pub(super) login_deadline: Instant,
}

/// Messages a session lets run ahead of their replies.
const MAX_IN_FLIGHT: usize = 64;

/// Recipients a session keeps the handles of.
const MAX_RECIPIENTS: usize = 32;

impl Session {
    /// A connection's session, not logged in yet: the line protocol's, or the one an IRC
    /// connection drives.
    /// `connected_at` is when the TCP connection was accepted: the login deadline counts
    /// from it.
    pub(super) fn new(
        peer: SocketAddr,
        outbox: Outbox,
        context: Arc<SessionContext>,
        connected_at: Instant,
    ) -> Self {
        Session {
            peer,
            login_deadline: connected_at + context.settings.login_timeout(),
            room_creations: RoomCreations::new(&context.settings),
            outbox,
            context,
            presence: None,
            in_flight: VecDeque::new(),
            privates_in_flight: 0,
            recipients: HashMap::new(),
        }
    }

    async fn run<R: AsyncRead + Unpin>(&mut self, lines: &mut FramedRead<R, LineCodec>) -> End {
        let settings = self.context.settings.clone();
        let mut flood = FloodGuard::new(&settings);
        let mut idle = IdleWatch::new(&settings);
        // Made once, not at every turn of the loop: a timer or a wait on a token registers
        // itself (under a lock) when first polled, which would cost every line twice.
        let closed = self.outbox.closed_owned();
        let shutdown = self.context.shutdown.clone().cancelled_owned();
        // One timer: the login deadline until login, then the idle deadline. It is moved only
        // when it fires: a line heard meanwhile makes it fire early, and it is set again.
        let timer = sleep_until(self.login_deadline);
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
        // Messages go on without waiting for the previous ones' answers (only while too much
        // history waits for the writer: `Store::room_for_history`); any other command first
        // waits for theirs, so that it runs after them.
        let pipelined = matches!(
            command,
            Command::RoomMessage { .. } | Command::Pm { .. } | Command::Msg { .. }
        );
        if !pipelined || self.presence.is_none() {
            self.settle().await;
        } else {
            self.context.server.store.room_for_history().await;
        }
        match cmd::apply(self, command).await {
            Step::Reply(reply) => self.send(reply),
            Step::Done => {}
            Step::Quit(reason) => return Break(reason),
        }
        Continue(())
    }

    /// Queues the final line of a message sent on without waiting, after those of the
    /// commands before it; waits for the oldest when too many are in flight.
    pub(super) async fn pipeline(&mut self, item: InFlight) {
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

    /// Keeps the handle of someone the directory delivered a private message to, so that
    /// the next ones go straight to their outbox.
    pub(super) fn keep_recipient(&mut self, member: Member) {
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
    pub(super) fn check_new_name(&self, name: &Name) -> Option<Reply> {
        let max = self.context.settings.max_name_length;
        (name.as_str().len() > max).then(|| {
            let message = format!("bad name \"{name}\": a name is at most {max} characters here");
            Reply::err(ErrorCode::BadName, message)
        })
    }

    /// Names the session's span after the user it is now logged in as.
    pub(super) fn logged_in_as(&self, name: &Name) {
        tracing::Span::current().record("user", name.as_str());
    }

    /// Says goodbye as fits the end, closes the outbox, logs, and lets the [`Presence`] go.
    fn finish(&mut self, end: End) {
        let mut parting = None;
        let how = match end {
            End::Quit(reason) => {
                parting = Some(Reply::ok(Verb::Quit));
                Departure::Quit(reason)
            }
            End::Eof => Departure::Closed,
            End::ReadError(error) => {
                debug!(%error, "read failed");
                Departure::Lost
            }
            // The client is not reading, so a parting line would not reach it: only log.
            End::Closed if self.outbox.overflowed() => {
                warn!("disconnected: not reading, outbox full");
                Departure::NotReading
            }
            // The user logged in on another connection, which has their rooms now.
            End::Closed if self.outbox.replaced() => {
                info!("replaced by a new login");
                if let Some(presence) = &mut self.presence {
                    presence.rooms.clear();
                }
                Departure::Lost
            }
            End::Closed => Departure::Lost,
            End::LoginTimeout => {
                info!("disconnected: no login in time");
                parting = Some(Reply::Notice(Notice::Closing {
                    reason: CloseReason::LoginTimeout,
                }));
                Departure::Lost
            }
            End::IdleTimeout => {
                info!("disconnected: no answer to PING");
                parting = Some(Reply::Notice(Notice::Closing {
                    reason: CloseReason::IdleTimeout,
                }));
                Departure::TimedOut
            }
            End::Flood => {
                warn!("disconnected: flooding");
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
            info!(%how, "logged out");
            presence.how = how;
        }
    }

    /// Sends the replies of the messages still in flight, in order.
    pub(super) async fn settle(&mut self) {
        while let Some(mut oldest) = self.in_flight.pop_front() {
            let answered = oldest.answered().await;
            self.deliver(answered);
        }
    }

    /// Sends a final reply after those of the commands before it, without waiting for them.
    /// Not an `async fn`: that would keep the reply in the session's task beside the line
    /// encoded from it, in the state of every loop that awaits this.
    pub(super) fn reply_in_order(&mut self, reply: Reply) -> impl Future<Output = ()> + '_ {
        self.pipeline(InFlight::Ready(self.outbox.delivery(reply)))
    }

    pub(super) fn send(&self, reply: Reply) {
        // A full outbox closes the connection; the session loop sees that and ends.
        let _ = self.outbox.send(reply);
    }
}

/// A deadline that never comes, for a timer with nothing to wait for.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}

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
