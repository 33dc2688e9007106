//! `PrivateBatches`: the private messages waiting, per destination node, to cross NATS
//! together. A NATS message of its own for each private message costs more than the rest of
//! its way (publishing, routing and receiving it, and its recipient's node handing it on
//! alone); gathered for at most [`FLUSH_AFTER`], a burst goes out in a few large messages,
//! and the receiving node hands each to its directory in one request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::wire::Pm;

/// The longest a private message waits for others to the same node.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// The most bytes of private messages (about: [`Pm::size`]) to one node put in one NATS
/// message (NATS takes up to 1 MiB by default).
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// One node's private messages, in the order queued.
#[derive(Debug, Default)]
struct Batch {
    pms: Vec<Pm>,
    bytes: usize,
}

/// The batches being gathered, and when they are due: [`FLUSH_AFTER`] after the oldest
/// message among them was added. Owned by the publishing task.
#[derive(Debug, Default)]
pub(crate) struct PrivateBatches {
    batches: HashMap<Arc<str>, Batch>,
    due: Option<Instant>,
}

impl PrivateBatches {
    /// Adds `pm` for `node`. Returns that node's batch if it reached [`BATCH_BYTES`]: to be
    /// published at once.
    pub(crate) fn add(&mut self, node: Arc<str>, pm: Pm) -> Option<(Arc<str>, Vec<Pm>)> {
        self.due.get_or_insert_with(|| Instant::now() + FLUSH_AFTER);
        let batch = self.batches.entry(node.clone()).or_default();
        batch.bytes += pm.size();
        batch.pms.push(pm);
        if batch.bytes < BATCH_BYTES {
            return None;
        }
        let full = self.batches.remove(&node)?;
        if self.batches.is_empty() {
            self.due = None;
        }
        Some((node, full.pms))
    }

    /// When the batches must go out, if there are any.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Every batch, to be published now.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = (Arc<str>, Vec<Pm>)> + use<> {
        self.due = None;
        std::mem::take(&mut self.batches)
            .into_iter()
            .map(|(node, batch)| (node, batch.pms))
    }
}
