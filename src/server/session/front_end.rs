//! What a front-end (a client protocol) gives the connection loop: how it frames and decodes
//! lines, runs them, and words what the loop itself says (the idle `PING`, a dropped line, the
//! parting line). Everything else about a connection is the loop's (`serve`).
//!
//! Public, so that a front-end can live outside the crate: the tests' own
//! (`tests/server/front_end.rs`) is the smallest, served with
//! [`crate::server::Server::serve_front_end`].

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info_span;

use super::Session;
use super::serve::End;
use crate::connection::{Delivery, LineCodec, Wording};
use crate::settings::Settings;

/// A client protocol, one connection's worth: the [`Session`] it drives and what the protocol
/// keeps beside it.
pub trait FrontEnd: Send + Sized {
    /// How the connection's writer words what is delivered to the session.
    type Wording: Wording + Send;
    /// A line decoded, ready to run.
    type Action: Send;

    /// The front-end of a session not logged in yet. Says nothing: see [`FrontEnd::greet`].
    fn new(session: Session) -> Self;

    /// The span every line logged for the connection carries: the peer, and once logged in,
    /// the user (an empty `user` field, which the session fills at login).
    fn span(peer: SocketAddr) -> tracing::Span {
        info_span!("session", %peer, user = tracing::field::Empty)
    }

    /// How lines are framed: the longest line the protocol takes (by default the line
    /// protocol's `max_line_length`).
    fn codec(settings: &Settings) -> LineCodec {
        LineCodec::new(settings.max_line_length)
    }

    /// The writer's wording for this connection.
    fn wording(&self) -> Self::Wording;

    /// What is said to a client when it connects, if anything.
    fn greet(&mut self);

    fn session(&mut self) -> &mut Session;

    /// Whether the client got past the login deadline: until then the deadline, not the idle
    /// watch, decides how long the connection may last.
    fn logged_in(&self) -> bool;

    /// The action a line asks for; `None` for a line that gets no answer at all (a blank
    /// one), which the loop does not count as activity.
    fn decode(&self, line: &str) -> Option<Self::Action>;

    /// Runs an action to its final answer. Whatever it awaits is boxed by the loop, so that
    /// an idle connection holds no room for it.
    fn handle(&mut self, action: Self::Action) -> impl Future<Output = Flow> + Send + '_;

    /// Asks a silent client whether it is still there.
    fn ping(&mut self);

    /// Says that a line was dropped, and why, in order with the answers before it.
    fn refuse(&mut self, refusal: Refusal) -> impl Future<Output = ()> + Send + '_;

    /// The parting for a connection that ends so, if any: written last, after all that was
    /// queued before it. A front-end may queue lines of its own before it. It is lines of the
    /// front-end's own, or an event its wording words like any other: the server's notice of
    /// why it closes the connection is one ([`Event::Closing`], [`Event::ShuttingDown`]). The
    /// writer stops after it, so a wording writes it at once, even where it holds other
    /// events back.
    ///
    /// [`Event::Closing`]: crate::server::event::Event::Closing
    /// [`Event::ShuttingDown`]: crate::server::event::Event::ShuttingDown
    fn parting(&mut self, end: &End) -> Option<Arc<Delivery>>;
}

/// What comes after an action.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// The client quits, with its reason if it gave one.
    Quit(Option<String>),
    /// Close the connection, refused for this reason (a wrong password, guests not allowed).
    Refuse(String),
}

/// Why a line was dropped unread.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// Over the flood limit.
    Flood,
    /// Longer than the codec takes.
    TooLong,
    BadUtf8,
}
