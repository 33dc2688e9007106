//! The directory's presence notices: `NOTICE ONLINE` and `NOTICE OFFLINE` lines, encoded
//! once and sent together, at most every [`PRESENCE_EVERY`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::connection::Delivery;
use linechat_protocol::{Name, Notice, Reply};

/// Presence notices are sent at most this often while users keep coming and going: under a
/// login storm each online user then gets one write of many notices per period.
const PRESENCE_EVERY: Duration = Duration::from_millis(25);

/// The `NOTICE ONLINE` and `NOTICE OFFLINE` lines waiting to go out, encoded once, together.
pub(super) struct PresenceNotices {
    /// The notices are sent only while at most this many users are online.
    max_online: usize,
    lines: BytesMut,
    /// Who came online since the last flush, and where the lines after their arrival start:
    /// a newcomer is told only of what happened after they arrived.
    newcomers: HashMap<Name, usize>,
    /// When the last notices went out.
    last_flush: Option<Instant>,
}

impl PresenceNotices {
    pub(super) fn new(max_online: usize) -> Self {
        Self {
            max_online,
            lines: BytesMut::new(),
            newcomers: HashMap::new(),
            last_flush: None,
        }
    }

    /// Queues `notice` about a user for everyone else online; `online` counts them all, and
    /// the user concerned.
    pub(super) fn add(&mut self, notice: Notice, online: usize) {
        if online > 1 && online <= self.max_online {
            Delivery::encode_into(&Reply::Notice(notice), &mut self.lines);
        }
    }

    /// `name` came online after the notices queued so far.
    pub(super) fn arrived(&mut self, name: Name) {
        if !self.lines.is_empty() {
            self.newcomers.insert(name, self.lines.len());
        }
    }

    /// When the waiting notices are due, if any wait.
    pub(super) fn due(&self) -> Option<Instant> {
        if self.lines.is_empty() {
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

    /// The waiting lines and the newcomers' starting points; `None` if nothing waits.
    pub(super) fn take(&mut self) -> Option<(Bytes, HashMap<Name, usize>)> {
        if self.lines.is_empty() {
            return None;
        }
        self.last_flush = Some(Instant::now());
        let lines = self.lines.split().freeze();
        // The buffer is not kept: an idle server holds nothing for presence.
        self.lines = BytesMut::new();
        Some((lines, std::mem::take(&mut self.newcomers)))
    }
}
