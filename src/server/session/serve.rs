//! The connection loop, the same for every front-end: framing, the login deadline, flood
//! control, the idle watch, the outbox and its writer, shutdown, the parting line, and the log
//! of how the connection ended. What differs between protocols is a [`FrontEnd`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use tracing::{Instrument, debug, info, warn};

use linechat_protocol::{CloseReason, Departure};

use super::front_end::{Flow, FrontEnd, Refusal};
use super::{Session, SessionContext, next_answer};
use crate::connection::{Frame, LineCodec, MIN_READ_BUFFER};
use crate::server::event::Event;
use crate::server::limits::{Admission, FloodGuard, IdleAction, IdleWatch};

/// Serves one connection, given as its two halves, to its end, in the protocol of `F`. Never
/// fails: what goes wrong is logged and ends only this connection.
/// `connected_at` is when the TCP connection was accepted: the login deadline counts from it.
/// `slot` is held until the connection ends: dropping it counts the connection out.
///
/// Not an `async fn`: those keep a copy of each argument beside what is built from it, for
/// the whole connection; the block below captures each argument once.
pub(in crate::server) fn serve<F, R, W>(
    read: R,
    write: W,
    peer: SocketAddr,
    context: Arc<SessionContext>,
    connected_at: Instant,
    slot: impl Send + 'static,
) -> impl Future<Output = ()> + Send
where
    F: FrontEnd + 'static,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbox, writer) = context
        .server
        .output
        .outbox(context.settings.outbox_limit_bytes);
    let codec = F::codec(&context.settings);
    let mut lines = FramedRead::with_capacity(read, codec, MIN_READ_BUFFER);
    let mut front = F::new(Session::new(peer, outbox, context, connected_at));
    front.greet();
    async move {
        debug!("connected");
        // Made here, not outside the block: it moves into the writer before the first wait,
        // so it takes no room of its own beside the writer's copy in the connection's task.
        let wording = front.wording();
        // Answers how long the writer may take to write the parting line: read from the
        // settings at the end, so that no copy of it waits in every connection's task.
        let serving = async {
            let end = run(&mut front, &mut lines).await;
            finish(&mut front, end);
            front.session().context.settings.shutdown_grace()
        };
        // The writer runs in the session's task rather than a task of its own: one task per
        // connection costs less memory, and a wake-up for output polls both at little cost.
        let writing = writer.run_worded(write, wording);
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
    .instrument(F::span(peer))
}

/// Why a connection ended.
#[derive(Debug)]
pub enum End {
    Quit(Option<String>),
    /// The front-end refused the client, for this reason.
    Refused(String),
    Eof,
    ReadError(std::io::Error),
    /// The outbox closed: the client stopped reading, the socket failed, or the user logged
    /// in on another connection.
    Closed,
    LoginTimeout,
    IdleTimeout,
    Flood,
    Shutdown,
}

impl End {
    /// The notice that tells the client why the server closed its connection, for the ends
    /// that have one: a parting every front-end words as its own.
    pub(in crate::server) fn notice(&self) -> Option<Event> {
        let reason = match self {
            End::LoginTimeout => CloseReason::LoginTimeout,
            End::IdleTimeout => CloseReason::IdleTimeout,
            End::Flood => CloseReason::Flood,
            End::Shutdown => return Some(Event::ShuttingDown),
            _ => return None,
        };
        Some(Event::Closing(reason))
    }
}

/// Reads and runs lines until the connection ends; why it did.
async fn run<F: FrontEnd, R: AsyncRead + Unpin>(
    front: &mut F,
    lines: &mut FramedRead<R, LineCodec>,
) -> End {
    let session = front.session();
    let settings = session.context.settings.clone();
    let mut flood = FloodGuard::new(&settings);
    let mut idle = IdleWatch::new(&settings);
    // Made once, not at every turn of the loop: a timer or a wait on a token registers
    // itself (under a lock) when first polled, which would cost every line twice.
    let closed = session.outbox.closed_owned();
    let shutdown = session.context.shutdown.clone().cancelled_owned();
    // One timer: the login deadline until login, then the idle deadline. It is moved only
    // when it fires: a line heard meanwhile makes it fire early, and it is set again.
    let timer = sleep_until(session.login_deadline);
    tokio::pin!(closed, shutdown, timer);
    let mut timing_login = true;
    loop {
        let frame = tokio::select! {
            answered = next_answer(&mut front.session().in_flight),
                if !front.session().in_flight.is_empty() =>
            {
                let session = front.session();
                session.in_flight.pop_front();
                session.deliver(answered);
                continue;
            }
            frame = lines.next() => frame,
            () = &mut closed => return End::Closed,
            () = &mut shutdown => return End::Shutdown,
            () = &mut timer => {
                if !front.logged_in() {
                    return End::LoginTimeout;
                }
                match idle.deadline() {
                    Some(due) if due <= Instant::now() => match idle.fired() {
                        IdleAction::Ping => front.ping(),
                        IdleAction::Close => return End::IdleTimeout,
                    },
                    _ => {}
                }
                timer.as_mut().reset(idle.deadline().unwrap_or_else(far_future));
                continue;
            }
        };
        // The end of input is no line: what came before it within the limit is served, and
        // the session ends as the client closed it, never as a flood. The answers still owed
        // go out first, whatever the front-end: the client may read them after it stopped
        // writing.
        let frame = match frame {
            None => {
                front.session().settle().await;
                return End::Eof;
            }
            Some(Err(error)) => return End::ReadError(error),
            Some(Ok(frame)) => frame,
        };
        // Every line counts for flood control, blank ones too.
        let refusal = match flood.admit() {
            Admission::Accept => None,
            Admission::Drop => Some(Refusal::Flood),
            Admission::Close => return End::Flood,
        };
        let line = match (refusal, frame) {
            (Some(refusal), _) => Err(refusal),
            (None, Frame::TooLong) => Err(Refusal::TooLong),
            (None, Frame::BadUtf8) => Err(Refusal::BadUtf8),
            (None, Frame::Line(line)) => Ok(line),
        };
        let action = match line {
            Err(refusal) => {
                // Answered, so activity: a client that never reads fills its outbox with
                // these and is closed for it.
                idle.heard();
                front.refuse(refusal).await;
                continue;
            }
            Ok(line) => match front.decode(&line) {
                Some(action) => action,
                // A blank line gets no answer, so one now and then would keep a client that
                // never reads connected for ever: only lines that are answered count as
                // activity.
                None => continue,
            },
        };
        idle.heard();
        // Boxed: an idle connection then holds only the loop's own state, not room for the
        // largest action; one small allocation per line.
        match Box::pin(front.handle(action)).await {
            Flow::Continue => {}
            Flow::Quit(reason) => return End::Quit(reason),
            Flow::Refuse(why) => return End::Refused(why),
        }
        if timing_login && front.logged_in() {
            timing_login = false;
            timer
                .as_mut()
                .reset(idle.deadline().unwrap_or_else(far_future));
        }
    }
}

/// Says goodbye as fits the end, closes the outbox, logs, and lets the user go offline.
fn finish<F: FrontEnd>(front: &mut F, end: End) {
    let parting = front.parting(&end);
    let session = front.session();
    let how = match end {
        End::Quit(reason) => Departure::Quit(reason),
        End::Refused(why) => {
            info!(%why, "disconnected: refused");
            Departure::Lost
        }
        End::Eof => Departure::Closed,
        End::ReadError(error) => {
            debug!(%error, "read failed");
            Departure::Lost
        }
        // The client is not reading, so a parting line would not reach it: only log.
        End::Closed if session.outbox.overflowed() => {
            warn!("disconnected: not reading, outbox full");
            Departure::NotReading
        }
        // The user logged in on another connection, which has their rooms now.
        End::Closed if session.outbox.replaced() => {
            info!("replaced by a new login");
            if let Some(presence) = &mut session.presence {
                presence.rooms.clear();
            }
            Departure::Lost
        }
        End::Closed => Departure::Lost,
        // Logged as the client is told it, whatever the front-end calls its login (IRC's
        // registration).
        End::LoginTimeout => {
            info!("disconnected: no login in time");
            Departure::Lost
        }
        End::IdleTimeout => {
            info!("disconnected: no answer to PING");
            Departure::TimedOut
        }
        End::Flood => {
            warn!("disconnected: flooding");
            Departure::Flooding
        }
        End::Shutdown => Departure::Shutdown,
    };
    // Nothing queued after this point is written: the parting line is the last one, even if
    // others' departures reach this outbox while the user is taken offline.
    session.outbox.finish(parting);
    if let Some(mut presence) = session.presence.take() {
        info!(%how, "logged out");
        presence.how = how;
    }
}

/// A deadline that never comes, for a timer with nothing to wait for.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}
