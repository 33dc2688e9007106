//! Message ids, handed out where a message is accepted ([`super::Store::record`]), so that
//! the node that accepted it, the database and every device that receives it know it by the
//! same id from the start.
//!
//! Ids come in blocks of consecutive ids ([`BLOCK_ALONE`], [`BLOCK_SHARED`]), reserved from
//! the database's `message_ids` counter by the writer task: on a shared PostgreSQL store each node takes
//! blocks of its own, so no two nodes ever hand out one id, and on either database a
//! restarted node starts above every block reserved before (ids of messages that were never
//! stored, with history off, are not handed out again either). Within a node, ids grow in
//! the order it accepts messages.
//!
//! On a shared store a node also moves on to a freshly reserved block every batch window,
//! used up or not: the counter hands blocks out in time order, so messages accepted on
//! different nodes then order by id as they were accepted, to within a batch window (as
//! `HISTORY` shows them). That costs one `UPDATE` of one row per window and node, and a
//! block's worth of ids, of which an `i64` has enough for thousands of years of it.
//!
//! Handing one out never waits: the writer keeps one whole block in reserve beyond the one in
//! use, and reserves another each time a block is entered, so that a block runs out only if
//! a whole block's worth of messages (over a million) is accepted while the database does
//! not answer. Then, rather than hold chat up or guess an id another node may own, the
//! messages are given negative ids ([`MessageId::is_stored`] is false), which are never
//! stored and never collide with a stored one; their history is lost, as it is by then
//! anyway (the writer keeps only `KEPT_AT_MOST` messages through an outage).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering, fence};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The id of a message: the one history stores it under, and every delivery of it carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct MessageId(i64);

impl MessageId {
    /// The id as the database has it.
    pub fn get(self) -> i64 {
        self.0
    }

    /// An id as read from the database.
    pub(super) fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// Whether the message may be in history: false for the ids given out while the node had
    /// no block of ids (see the module's comment), which are never stored.
    pub fn is_stored(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Ids per block of a node alone on its database (SQLite): with the spare one, a node has at
/// least this many in hand, seconds of the most messages one node accepts, while the writer,
/// running below chat, gets to reserving the next (senders wait for it well before: at most
/// `queued::QUEUED_AT_MOST` of records, half a million, wait for the writer). Ids a block
/// leaves unused at a restart are never given out; an `i64` has room for billions of them.
pub(super) const BLOCK_ALONE: u64 = 1 << 22;
/// Ids per block of a node that shares its database (PostgreSQL). Smaller, as the node
/// moves on to a fresh one every batch window: a second of the most messages one node
/// accepts, with the spare two, and ten million ids a second burnt, for which an `i64` lasts
/// ten thousand years.
pub(super) const BLOCK_SHARED: u64 = 1 << 20;
/// Blocks whose starts are kept; a block's slot is reused for the block `SLOTS` later (a
/// few seconds later at the least, when a shared store moves on to a fresh block every
/// window): a sender holding an id of an older block, taken a moment ago, still finds its
/// start.
const SLOTS: usize = 64;
/// A slot being written.
const WRITING: u64 = u64::MAX;

/// The start of one reserved block, tagged with the block's number on this node: a
/// sequence lock, so that a sender never reads a start half replaced by a later block's.
#[derive(Debug)]
struct Slot {
    block: AtomicU64,
    start: AtomicI64,
}

/// The ids of this node: shared by the store's handles (which hand them out) and the writer
/// (which reserves blocks). Ids are numbered on this node from 0 (`taken`); the `n`th is the
/// `n % block`th of the node's block `n / block`.
#[derive(Debug)]
pub(super) struct MessageIds {
    /// Ids per block.
    block: u64,
    /// Ids handed out since start.
    taken: AtomicU64,
    /// Blocks reserved since start: block `k` is usable once this is above `k`.
    reserved: AtomicU64,
    slots: [Slot; SLOTS],
    /// Wakes the writer when it should reserve another block.
    wanted: Notify,
    /// Ids handed out without a block (negative), counted since start, so that the node
    /// never gives one twice.
    unblocked: AtomicU64,
    /// Whether the node is out of ids: said once in the log when it runs out, and once when
    /// ids are back.
    out: AtomicBool,
}

impl MessageIds {
    pub fn new(block: u64) -> Self {
        Self {
            block,
            taken: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot {
                block: AtomicU64::new(WRITING),
                start: AtomicI64::new(0),
            }),
            wanted: Notify::new(),
            unblocked: AtomicU64::new(0),
            out: AtomicBool::new(false),
        }
    }

    /// The next id. Never waits.
    pub fn next(&self) -> MessageId {
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        let (block, offset) = (n / self.block, n % self.block);
        if offset == 0 && n > 0 {
            // A block entered: the one after the next is wanted.
            self.wanted.notify_one();
        }
        match self.start_of(block) {
            Some(start) => MessageId(start + offset as i64),
            None => {
                let unblocked = self.unblocked.fetch_add(1, Ordering::Relaxed);
                if !self.out.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "out of message ids: the database has not given this node a block in \
                         time; messages get ids that are not stored until it does"
                    );
                }
                MessageId(-1 - i64::try_from(unblocked).unwrap_or(i64::MAX - 1))
            }
        }
    }

    /// Where block `block` starts, if it is reserved and its slot still holds it.
    fn start_of(&self, block: u64) -> Option<i64> {
        if block >= self.reserved.load(Ordering::Acquire) {
            return None;
        }
        let slot = &self.slots[block as usize % SLOTS];
        let before = slot.block.load(Ordering::Acquire);
        let start = slot.start.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let after = slot.block.load(Ordering::Relaxed);
        (before == block && after == block).then_some(start)
    }

    /// How many more blocks the writer should reserve now: enough that the block in use and
    /// the one after it are reserved.
    pub fn blocks_wanted(&self) -> u64 {
        let in_use = self.taken.load(Ordering::Relaxed) / self.block;
        (in_use + 2).saturating_sub(self.reserved.load(Ordering::Acquire))
    }

    /// Ids per block.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// Adds a block the writer reserved: ids `start ..= start + block - 1`. Only the writer
    /// calls this, one block at a time. A block that comes after the node ran out serves
    /// from the id now being handed out: the numbers passed meanwhile went to negative ids.
    /// Returns the block's number on this node.
    pub fn add_block(&self, start: i64) -> u64 {
        let in_use = self.taken.load(Ordering::Relaxed) / self.block;
        let block = self.reserved.load(Ordering::Relaxed).max(in_use);
        let slot = &self.slots[block as usize % SLOTS];
        slot.block.store(WRITING, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.start.store(start, Ordering::Relaxed);
        slot.block.store(block, Ordering::Release);
        self.reserved.store(block + 1, Ordering::Release);
        if self.out.swap(false, Ordering::Relaxed) {
            tracing::info!("message ids are back: messages are stored again");
        }
        block
    }

    /// Moves on to block `block` (added already), leaving the rest of the one in use: the
    /// next id is its first.
    pub fn move_to(&self, block: u64) {
        self.taken.fetch_max(block * self.block, Ordering::Relaxed);
    }

    /// The number of the block ids are handed out from.
    #[cfg(test)]
    pub fn in_use(&self) -> u64 {
        self.taken.load(Ordering::Relaxed) / self.block
    }

    /// Returns when a sender has entered a new block since the last call (the writer's).
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 1000;

    #[test]
    fn ids_run_through_a_block_then_on_into_the_next() {
        let ids = MessageIds::new(BLOCK);
        assert_eq!(ids.blocks_wanted(), 2);
        ids.add_block(1);
        ids.add_block(5_000_001);
        assert_eq!(ids.blocks_wanted(), 0);
        assert_eq!(ids.next(), MessageId(1));
        assert_eq!(ids.next(), MessageId(2));
        ids.taken.store(BLOCK - 1, Ordering::Relaxed);
        assert_eq!(ids.next().get(), BLOCK as i64);
        assert_eq!(ids.next(), MessageId(5_000_001));
        assert_eq!(ids.blocks_wanted(), 1, "the block after the one entered");
    }

    #[test]
    fn without_a_block_ids_are_negative_and_never_stored() {
        let ids = MessageIds::new(BLOCK);
        ids.add_block(100);
        ids.taken.store(BLOCK, Ordering::Relaxed);
        let first = ids.next();
        let second = ids.next();
        assert!(!first.is_stored() && !second.is_stored());
        assert_ne!(first, second);
        ids.add_block(10_000_000);
        assert_eq!(
            ids.next(),
            MessageId(10_000_002),
            "on in the block that came"
        );
    }

    #[test]
    fn moving_on_to_a_fresh_block_leaves_the_rest_of_the_old_one() {
        let ids = MessageIds::new(BLOCK);
        ids.add_block(1);
        ids.add_block(BLOCK as i64 + 1);
        assert_eq!(ids.next(), MessageId(1));
        let fresh = ids.add_block(10 * BLOCK as i64);
        ids.move_to(fresh);
        assert_eq!(ids.next().get(), 10 * BLOCK as i64);
        assert_eq!(ids.blocks_wanted(), 1, "a spare after the fresh one");
    }

    #[test]
    fn a_slot_reused_for_a_later_block_is_not_read_as_the_old_one() {
        let ids = MessageIds::new(BLOCK);
        for k in 0..=SLOTS as i64 {
            ids.add_block(k * BLOCK as i64 + 1);
        }
        assert_eq!(ids.start_of(0), None);
        assert_eq!(
            ids.start_of(SLOTS as u64),
            Some(SLOTS as i64 * BLOCK as i64 + 1)
        );
    }

    #[test]
    fn an_id_travels_as_its_number() {
        let id = MessageId(42);
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<MessageId>(&bytes).unwrap(), id);
        assert_eq!(id.to_string(), "42");
    }
}
