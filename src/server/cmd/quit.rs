//! `QUIT [reason]`: the session ends; `OK QUIT` is the parting line, which it sends last.

use super::Step;
use crate::server::session::Session;

pub(super) async fn apply(_: &mut Session, reason: Option<String>) -> Step {
    Step::Quit(reason)
}
