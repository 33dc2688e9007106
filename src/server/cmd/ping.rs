//! `PING [token]`: answered at once, logged in or not.

use linechat_protocol::Reply;

use super::Step;
use crate::server::session::Session;

pub(super) async fn apply(_: &mut Session, token: Option<String>) -> Step {
    Reply::Pong(token).into()
}
