//! How much history waits in memory for the writer. The writer runs below chat's priority
//! (`priority::Below::Storage`), so during a burst of chat the records it has not taken yet
//! pile up; past a bound, a session waits for it before it carries out its next message
//! (and reads no more lines meanwhile), which keeps the memory bounded and loses nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::{Record, StoreRequest};

/// Most bytes of history records waiting for the writer before senders wait: about 460,000
/// messages of 64 characters (a record takes its text and 80 bytes), a burst of a third of
/// a second at the most private messages one core delivers (BENCHMARKS.md).
pub(super) const QUEUED_AT_MOST: usize = 64 << 20;

/// Bytes of records sent to the writer and not taken by it yet, shared by the store's
/// handles (which add) and the writer (which takes away). Senders that found it over the
/// bound wait until the writer has brought it down to half: woken at every record it took,
/// they would each send one more and wait again, and the writer would take its inbox a few
/// records at a time.
#[derive(Debug)]
pub(super) struct Queued {
    bytes: AtomicUsize,
    at_most: usize,
    /// Woken when the writer brings `bytes` down to half of `at_most`.
    room: Notify,
    /// Wakes the writer when a sender waits for room.
    waiting: Notify,
}

impl Queued {
    pub fn new(at_most: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            at_most,
            room: Notify::new(),
            waiting: Notify::new(),
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

    /// Counts records the writer has taken, and wakes the senders waiting for room once it
    /// is down to half the bound.
    pub fn take(&self, bytes: usize) {
        let before = self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        if before > self.half() && before - bytes <= self.half() {
            self.room.notify_waiters();
        }
    }

    fn half(&self) -> usize {
        self.at_most / 2
    }

    /// Returns when a sender has waited for room since the last call (the writer's).
    pub async fn waited_for(&self) {
        self.waiting.notified().await;
    }

    /// Returns at once unless over the bound; then once the writer has brought it down to
    /// half.
    pub async fn room(&self) {
        if self.bytes.load(Ordering::Relaxed) <= self.at_most {
            return;
        }
        self.waiting.notify_one();
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so that a wake-up in between is not missed.
            room.as_mut().enable();
            if self.bytes.load(Ordering::Relaxed) <= self.half() {
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
    use crate::server::storage::Conversation;
    use linechat_protocol::Name;

    /// What a record costs while it waits, besides its text, in bytes: `Record` says why it
    /// must stay small. A record and its id take 80: tokio's block of 32 of them fits
    /// jemalloc's 3,072-byte class (96 bytes a record), as 88 would; past 88 it takes
    /// 4,096.
    #[test]
    fn a_record_waiting_for_the_writer_is_small() {
        let record = Record::now(Conversation::Global, Name::parse("ann").unwrap(), "");
        assert!(
            Queued::cost(&record) <= 80,
            "{} bytes",
            Queued::cost(&record)
        );
    }

    #[tokio::test]
    async fn senders_wait_while_the_writer_is_behind_and_go_on_once_it_is_down_to_half() {
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
        tokio::time::timeout(Duration::from_secs(1), queued.waited_for())
            .await
            .expect("the writer hears that a sender waits");
        queued.take(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "back to the bound: still waiting");
        queued.take(500);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken once the writer is down to half")
            .unwrap();
        queued.room().await;
    }
}
