//! How much history waits in memory for the writer. The writer runs below chat's priority
//! (`priority::Below::Storage`), so during a burst of chat the records it has not taken yet
//! pile up; past a bound, the sessions that send messages wait for it before they read their
//! next line, which keeps the memory bounded and loses nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::{Record, StoreRequest};

/// Most bytes of history records waiting for the writer before senders wait: about 300,000
/// chat messages of 64 characters, a few seconds of the busiest chat this server can carry.
pub(super) const QUEUED_AT_MOST: usize = 64 << 20;

/// Bytes of records sent to the writer and not taken by it yet, shared by the store's
/// handles (which add) and the writer (which takes away).
#[derive(Debug)]
pub(super) struct Queued {
    bytes: AtomicUsize,
    at_most: usize,
    /// Woken when the writer brings `bytes` back under `at_most`.
    room: Notify,
}

impl Queued {
    pub fn new(at_most: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            at_most,
            room: Notify::new(),
        }
    }

    /// What a record costs while it waits: its place in the writer's inbox and its text.
    pub fn cost(record: &Record) -> usize {
        size_of::<StoreRequest>() + record.text.len()
    }

    /// Counts records sent to the writer.
    pub fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts records the writer has taken, and wakes the senders waiting for room if there
    /// is room now.
    pub fn take(&self, bytes: usize) {
        let before = self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        if before > self.at_most && before - bytes <= self.at_most {
            self.room.notify_waiters();
        }
    }

    fn is_full(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.at_most
    }

    /// Returns at once while there is room; otherwise once the writer has made some.
    pub async fn room(&self) {
        while self.is_full() {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so that a wake-up in between is not missed.
            room.as_mut().enable();
            if !self.is_full() {
                return;
            }
            room.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn senders_wait_while_the_writer_is_behind_and_go_on_once_it_catches_up() {
        let queued = Arc::new(Queued::new(1000));
        queued.add(1000);
        tokio::time::timeout(Duration::from_secs(1), queued.room())
            .await
            .expect("at the bound: room");
        queued.add(1);
        let waiting = tokio::spawn({
            let queued = queued.clone();
            async move { queued.room().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "over the bound: the sender waits");
        queued.take(1);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken once the writer took some")
            .unwrap();
    }
}
