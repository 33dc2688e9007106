//! What the writer task asks of a database: each kind (`sqlite.rs`, `postgres.rs`) implements
//! [`Database`] with its own SQL, and the writer (`actor.rs`) is generic over it, so that the
//! embedded default pays for no choice at run time. The read side picks its database with
//! an enum (`reader.rs`), as the `Store` handle that holds it is one type whatever the kind.

use std::collections::HashMap;

use super::actor::{Batch, Known};
use super::chunk::ChunkWriter;
use super::{Conversation, StoredMessage};
use crate::server::member::UserId;
use linechat_protocol::{Name, Topic};

/// A chunk that holds messages on both sides of a retention limit: `(id, first_id, body,
/// skip)`, where `skip` is how many of its oldest messages are beyond it.
pub(super) type Straddling = (i64, i64, Vec<u8>, i64);

/// A batch that was not written, and why. The batch comes back when the failure may pass
/// by itself (a database server out of reach), to be written again later; otherwise it is
/// lost.
pub(super) struct Unwritten {
    pub error: sqlx::Error,
    pub batch: Option<Batch>,
}

/// The writes (and the reads that are part of a write) of the store, on one kind of database.
/// Every method is one transaction, or one statement.
pub(super) trait Database: Send + Sync + 'static {
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// Stores a new account and returns its id; a name taken in any case is refused by the
    /// database's unique key.
    fn insert_account(
        &self,
        name: &Name,
        hash: String,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;

    /// Stores a room; one of the same name already stored is left as it is. Whether this
    /// call stored it: on a shared store, of two nodes creating one room at once, exactly one
    /// does.
    fn create_room(
        &self,
        room: &Name,
        creator: &Name,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Sets a stored room's topic, or clears it (`None`).
    fn set_topic(
        &self,
        room: &Name,
        topic: Option<&Topic>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Remembers that a registered user is in a room (kept if it is already).
    fn join(
        &self,
        account: &Name,
        room: &Name,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Forgets that a registered user is in a room.
    fn leave(
        &self,
        account: &Name,
        room: &Name,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Whether a registered user remembers `room`.
    fn is_remembered(&self, room: &Name) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Deletes a room nobody remembers, and its history, in one transaction.
    fn delete_room(&self, room: &Name) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// The messages queued for `account`, oldest first, which become delivered (history if
    /// `keep_history`, else deleted), in one transaction: taken once, whichever node asks.
    fn deliver_pending(
        &self,
        account: &UserId,
        keep_history: bool,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, sqlx::Error>> + Send;

    /// Writes a batch in one transaction. Returns the conversations it filed (those of
    /// `known` with no id yet), with their ids.
    fn write(
        &self,
        batch: Batch,
        known: &HashMap<Conversation, Known>,
    ) -> impl Future<Output = Result<HashMap<Conversation, i64>, Unwritten>> + Send;

    /// Deletes the rows and chunks of history all older than `cutoff` (Unix milliseconds);
    /// how many.
    fn delete_older(&self, cutoff: i64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The chunks with messages on both sides of `cutoff`.
    fn straddling_older(
        &self,
        cutoff: i64,
    ) -> impl Future<Output = Result<Vec<Straddling>, sqlx::Error>> + Send;

    /// Deletes the rows and chunks of history wholly beyond the newest `keep` messages of
    /// their conversation; how many.
    fn delete_beyond(&self, keep: i64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The chunks that hold the `keep`th newest message of their conversation, with how
    /// many of theirs are beyond it.
    fn straddling_beyond(
        &self,
        keep: i64,
    ) -> impl Future<Output = Result<Vec<Straddling>, sqlx::Error>> + Send;

    /// Replaces chunks (by id) with what is kept of them, deleting those of which nothing
    /// is, in one transaction.
    fn rewrite_chunks(
        &self,
        chunks: Vec<(i64, Option<ChunkWriter>)>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Ends whatever transaction a failed write may have left open.
    fn roll_back_leftovers(&self) -> impl Future<Output = ()> + Send;

    /// Makes the database refuse to grow, to test the failure paths (SQLite only).
    #[cfg(test)]
    fn fill_up(&self) -> impl Future<Output = ()> + Send;
}
