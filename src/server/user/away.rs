//! Away messages (`AWAY`): the directory keeps each user's, here and as other nodes said, and
//! tells whoever sends them a private message. Sessions that hold a handle to an away user
//! send through the directory rather than straight to them, so that every sender is told:
//! the away user's session marks its outbox so (`Outbox::set_detoured`) before it tells the
//! directory, and the other nodes' directories replace their handles to the user.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::UsersActor;
use crate::server::cluster::wire;
use crate::server::member::Member;
use linechat_protocol::Name;

/// The longest away message, in bytes, as IRC servers commonly allow.
pub const MAX_AWAY_BYTES: usize = 200;

impl UsersActor {
    /// The user of `member`'s connection is away with `message`, or back (`None`).
    pub(super) fn set_away(&mut self, member: Member, message: Option<Arc<str>>) {
        let Some(online) = self
            .online
            .get_mut(&member.name)
            .filter(|online| online.outbox.same_connection(&member.outbox))
        else {
            return;
        };
        online.away = message.clone();
        self.publish_away(&member.name, message);
    }

    /// Tells the other nodes that this node's user `name` is away with `message`, or back.
    pub(super) fn publish_away(&self, name: &Name, message: Option<Arc<str>>) {
        if let Some(cluster) = &self.cluster {
            cluster.global(&wire::Global::Away {
                node: cluster.node().to_string(),
                name: name.clone(),
                message: message.map(|message| message.to_string()),
            });
        }
    }

    /// What `node` said of its user `name`: away with `message`, or back. The handles
    /// sessions keep to them stop taking messages, so that the next message to them comes
    /// here and its sender is told.
    pub(super) fn remote_away(&mut self, node: &str, name: &Name, message: Option<String>) {
        let Some(user) = self.remote.get_mut(name).filter(|user| &*user.node == node) else {
            return;
        };
        user.away = message.map(Arc::from);
        std::mem::replace(&mut user.present, CancellationToken::new()).cancel();
    }
}
