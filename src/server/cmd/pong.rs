//! `PONG [token]`: the answer to the server's `PING`. Hearing it was all that mattered (the
//! session counts every line as activity), so it gets no reply.

use super::Step;
use crate::server::session::Session;

pub(super) async fn apply(_: &mut Session, _token: Option<String>) -> Step {
    Step::Done
}
