//! The directory's presence notices: users coming online and going offline, sent together
//! as one event, at most every [`PRESENCE_EVERY`].

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::server::event::{PresenceBatch, PresenceChange};
use linechat_protocol::Name;

/// Presence notices are sent at most this often while users keep coming and going: under a
/// login storm each online user then gets one write of many notices per period.
const PRESENCE_EVERY: Duration = Duration::from_millis(25);

/// The presence changes waiting to go out together.
pub(super) struct PresenceNotices {
    /// The notices are sent only while at most this many users are online.
    max_online: usize,
    changes: Vec<PresenceChange>,
    /// Who came online since the last flush, and how many changes came before their arrival:
    /// a newcomer is told only of what happened after they arrived.
    newcomers: HashMap<Name, usize>,
    /// When the last notices went out.
    last_flush: Option<Instant>,
}

impl PresenceNotices {
    pub(super) fn new(max_online: usize) -> Self {
        Self {
            max_online,
            changes: Vec::new(),
            newcomers: HashMap::new(),
            last_flush: None,
        }
    }

    /// Queues `notice` about a user for everyone else online; `online` counts them all, and
    /// the user concerned.
    pub(super) fn add(&mut self, change: PresenceChange, online: usize) {
        if online > 1 && online <= self.max_online {
            self.changes.push(change);
        }
    }

    /// `name` came online after the notices queued so far.
    pub(super) fn arrived(&mut self, name: Name) {
        if !self.changes.is_empty() {
            self.newcomers.insert(name, self.changes.len());
        }
    }

    /// When the waiting notices are due, if any wait.
    pub(super) fn due(&self) -> Option<Instant> {
        if self.changes.is_empty() {
            return None;
        }
        Some(
            self.last_flush
                .map_or_else(Instant::now, |last| last + PRESENCE_EVERY),
        )
    }

    pub(super) fn may_flush_now(&self) -> bool {
        self.due().is_some_and(|due| due <= Instant::now())
    }

    /// The waiting changes and the newcomers' starting points; `None` if nothing waits.
    pub(super) fn take(&mut self) -> Option<(PresenceBatch, HashMap<Name, usize>)> {
        if self.changes.is_empty() {
            return None;
        }
        self.last_flush = Some(Instant::now());
        // The buffer is not kept: an idle server holds nothing for presence.
        let changes = std::mem::take(&mut self.changes);
        Some((changes.into(), std::mem::take(&mut self.newcomers)))
    }
}
