//! The writer task: every write goes through here, in order, on the writer's own
//! connection. It batches history (group commit) and answers acknowledged writes; the SQL is
//! its database's (`backend.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tracing::{error, info};

use super::backend::{Database, Straddling, Unwritten};
use super::chunk::{self, ChunkWriter, Entry};
use super::ids::MessageIds;
use super::queued::Queued;
use super::{
    Conversation, Loaded, MessageId, Record, StorageError, StorageOptions, StoreRequest,
    StoredMessage, postgres, sqlite,
};
use crate::server::log_tally::LogTally;
use crate::server::mailbox::Backlog;
use crate::server::member::UserId;
use linechat_protocol::{Name, Topic};

/// A batch this large is written at once, whatever the window. Large, because a commit
/// writes every page it touched, and messages to many conversations touch as many pages of
/// the index HISTORY reads by: the more rows per commit, the fewer times each page is written.
const MAX_BATCH: usize = 16_384;
/// Requests taken from the inbox at once.
const RECEIVED_AT_ONCE: usize = 1024;
/// While a batch gathers, how often the writer takes what has come to its inbox: the most a
/// write acknowledged to a client (an account, a room) waits behind a busy history.
const DRAIN_EVERY: Duration = Duration::from_millis(2);
/// Conversations the writer keeps in memory; past this, it forgets them all and looks them
/// up again.
const KEYS_KEPT: usize = 65_536;
/// Shortest time between moves to a fresh block of ids on a shared store (`ids.rs`), however
/// short the batch window.
const MIN_FRESH_IDS_EVERY: Duration = Duration::from_millis(10);
/// How often old history is pruned while running (it is also pruned at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// At most one log line per this long about history batches that could not be written, with
/// the count lost since the last line: a full disk must not flood the log.
const REPORT_LOSS_EVERY: Duration = Duration::from_secs(10);
/// How often batches kept after a failure that may pass (see `Unwritten`) are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Most history messages kept in batches waiting to be tried again; past it, the oldest
/// batches are lost (and counted), so that a long outage cannot take all the memory.
const KEPT_AT_MOST: usize = 16 * MAX_BATCH;

/// A conversation the writer knows: its id, and which chunk of the batch being gathered it
/// adds to (one lookup per message finds both).
pub(super) struct Known {
    /// Its id in the `conversations` table; 0 until a commit has filed it there.
    pub id: i64,
    /// The batch in which `chunk` is its open chunk; another batch's number means none.
    batch: u64,
    /// Its chunk's index in the batch's chunks.
    chunk: usize,
}

/// The messages of the next group commit. Each history message is encoded into its
/// conversation's chunk as it arrives, and its record dropped, while both are still in the
/// actor's cache: holding thousands of records until the commit cost more than encoding
/// them.
///
/// Its messages carry the ids they were given when accepted (`ids.rs`), which need not
/// arrive in order: a conversation's chunk keeps them in id order (`ChunkWriter::insert`).
#[derive(Default)]
pub(super) struct Batch {
    /// Its number (see `Known::batch`).
    pub number: u64,
    pub chunks: Vec<ChunkWriter>,
    /// Chunks of conversations not filed yet, by index in `chunks`: filed at the commit.
    pub unfiled: Vec<(usize, Conversation)>,
    /// Messages stored as rows: queued private messages, with their ids.
    pub rows: Vec<(MessageId, Record)>,
    /// Messages in it.
    pub messages: usize,
}

/// The writer, before its database is open: what its thread runs.
pub(super) struct Writer {
    pub options: StorageOptions,
    pub backlog: Backlog,
    pub queued: Arc<Queued>,
    pub ids: Arc<MessageIds>,
}

impl Writer {
    /// Opens the database (answering `opened` with what was loaded, or why it failed), then
    /// takes requests until the store is closed.
    pub(super) async fn run(
        self,
        rx: mpsc::UnboundedReceiver<StoreRequest>,
        opened: oneshot::Sender<Result<Loaded, StorageError>>,
    ) {
        let Writer {
            options,
            backlog,
            queued,
            ids,
        } = self;
        match &options.database_url {
            None => match sqlite::open(&options).await {
                Ok((db, loaded)) => {
                    let actor = StoreActor::new(db, &options, backlog, queued, ids);
                    actor.serve(loaded, rx, opened).await;
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            },
            Some(url) => match postgres::open(url).await {
                Ok((db, loaded)) => {
                    let actor = StoreActor::new(db, &options, backlog, queued, ids);
                    actor.serve(loaded, rx, opened).await;
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            },
        }
    }
}

pub(super) struct StoreActor<D> {
    db: D,
    batch: Batch,
    /// Batches the database could not take for a reason that may pass, oldest first: written
    /// before any later one, at the next commit or every `RETRY_EVERY`.
    kept: VecDeque<Batch>,
    /// When the kept batches are tried again.
    retry_at: Option<Instant>,
    /// Until when writes acknowledged to a client are refused without being tried, as the
    /// database was found out of reach less than `RETRY_EVERY` ago: each try takes the pool's
    /// whole acquire timeout to fail, and the writes behind it would queue for as long.
    away_until: Option<Instant>,
    /// When the oldest record of the batch must be committed.
    deadline: Option<Instant>,
    batch_window: Duration,
    keep_per_conversation: u64,
    keep_days: u64,
    /// Messages written since start, for the log at close.
    written: u64,
    /// Whether chat history is kept (queued private messages always are, until delivered).
    history: bool,
    /// Readers waiting for the batch being gathered to be committed.
    barriers: Vec<oneshot::Sender<()>>,
    /// History messages lost to failed batches since start.
    lost: u64,
    /// The same, counted between log lines.
    loss_log: LogTally,
    last_error: Option<String>,
    /// The conversations met, by conversation (each order of a private pair on its own),
    /// with their ids in the `conversations` table once a commit has filed them.
    conversations: HashMap<Conversation, Known>,
    /// The ids this node hands out, for which the writer reserves blocks (`ids.rs`).
    ids: Arc<MessageIds>,
    /// Whether other nodes write to the same database: then the node moves on to a fresh
    /// block of ids every batch window (`ids.rs`).
    shared: bool,
    backlog: Backlog,
    /// History records sent and not taken yet, which the writer counts down as it takes them.
    queued: Arc<Queued>,
}

impl<D: Database> StoreActor<D> {
    fn new(
        db: D,
        options: &StorageOptions,
        backlog: Backlog,
        queued: Arc<Queued>,
        ids: Arc<MessageIds>,
    ) -> Self {
        Self {
            db,
            batch: Batch {
                number: 1,
                ..Batch::default()
            },
            kept: VecDeque::new(),
            retry_at: None,
            away_until: None,
            deadline: None,
            batch_window: options.batch_window,
            keep_per_conversation: options.keep_per_conversation,
            keep_days: options.keep_days,
            written: 0,
            history: options.history,
            barriers: Vec::new(),
            lost: 0,
            loss_log: LogTally::new(REPORT_LOSS_EVERY),
            last_error: None,
            conversations: HashMap::new(),
            ids,
            shared: options.database_url.is_some(),
            backlog,
            queued,
        }
    }

    /// Reserves the first blocks of ids, so that the store hands ids out from its first
    /// message, then answers `opened` and takes requests until the store is closed.
    async fn serve(
        mut self,
        loaded: Loaded,
        rx: mpsc::UnboundedReceiver<StoreRequest>,
        opened: oneshot::Sender<Result<Loaded, StorageError>>,
    ) {
        if let Err(error) = self.reserve_ids().await {
            self.db.close().await;
            let _ = opened.send(Err(error.into()));
            return;
        }
        let _ = opened.send(Ok(loaded));
        self.run(rx).await;
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<StoreRequest>) {
        self.prune().await;
        let mut prune = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        let window = self.batch_window.max(MIN_FRESH_IDS_EVERY);
        let mut fresh_ids = tokio::time::interval_at(Instant::now() + window, window);
        fresh_ids.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Requests are taken many at a time: at chat rates a wake-up for every message (each
        // sender wakes the writer that waits for its inbox) would cost as much as writing it.
        // So the inbox wakes the writer only for the first record of a batch; while a batch
        // gathers, the writer takes what has come every `DRAIN_EVERY`, and at its deadline.
        let mut requests = Vec::with_capacity(RECEIVED_AT_ONCE);
        let queued = self.queued.clone();
        let ids = self.ids.clone();
        loop {
            let gathering = self.deadline.is_some();
            let drain_at = self
                .deadline
                .map(|deadline| deadline.min(Instant::now() + DRAIN_EVERY));
            tokio::select! {
                received = rx.recv_many(&mut requests, RECEIVED_AT_ONCE), if !gathering => {
                    if received == 0 {
                        self.flush().await;
                        return;
                    }
                    self.backlog.note(&rx);
                }
                () = drain_due(drain_at, &queued), if gathering => {
                    // Whatever has come, without waiting (and without asking to be woken).
                    while received_now(&mut rx, &mut requests) > 0 {
                        self.backlog.note(&rx);
                        if !self.take_all(&mut requests).await {
                            return;
                        }
                    }
                    if self.deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                        self.flush().await;
                    }
                }
                () = sleep_until(self.retry_at.unwrap_or_else(Instant::now)),
                    if self.retry_at.is_some() && !gathering => self.flush().await,
                _ = prune.tick() => self.prune().await,
                () = ids.wanted() => self.reserve_ids_or_retry().await,
                _ = fresh_ids.tick(), if self.shared => self.fresh_ids().await,
            }
            if !self.take_all(&mut requests).await {
                return;
            }
        }
    }

    /// Takes the requests received; false once the store is closed. A history record is
    /// only put in the batch: that path stays out of `take`, whose future is large.
    async fn take_all(&mut self, requests: &mut Vec<StoreRequest>) -> bool {
        let taken = requests.iter().map(|request| match request {
            StoreRequest::Record(record, _) => Queued::cost(record),
            _ => 0,
        });
        self.queued.take(taken.sum());
        for request in requests.drain(..) {
            match request {
                StoreRequest::Record(record, id) => {
                    self.gather(record, id);
                    if self.batch.messages >= MAX_BATCH {
                        self.flush().await;
                    } else if self.deadline.is_none() {
                        self.deadline = Some(Instant::now() + self.batch_window);
                    }
                }
                request => {
                    if !self.take(request).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Takes one request other than a record; false once the store is closed.
    async fn take(&mut self, request: StoreRequest) -> bool {
        match request {
            StoreRequest::Barrier { done } => self.barrier(done),
            StoreRequest::Close { reply } => {
                self.close(reply).await;
                return false;
            }
            request => {
                // Any other write is acknowledged to a client, and is rare: it commits now,
                // after the records sent before it (ids stay in the order sent).
                if !self.away() {
                    self.flush().await;
                }
                if self.away() {
                    request.refuse();
                } else {
                    self.handle(request).await;
                }
            }
        }
        true
    }

    /// Answers `done` once every record sent before it is committed: with the batch it
    /// waits for, without a commit of its own. (With batches kept after a failure, at their
    /// next attempt, whatever its outcome.)
    fn barrier(&mut self, done: oneshot::Sender<()>) {
        if self.batch.messages == 0 && self.kept.is_empty() {
            let _ = done.send(());
        } else {
            self.barriers.push(done);
        }
    }

    /// Writes what is gathered, reports the losses not reported yet, and closes the
    /// database; the writer stops once `reply` is answered.
    async fn close(&mut self, reply: oneshot::Sender<()>) {
        self.flush().await;
        let unreported = self.loss_log.take();
        self.report_loss(unreported);
        if !self.kept.is_empty() {
            let lost: usize = self.kept.iter().map(|batch| batch.messages).sum();
            error!(
                lost,
                "HISTORY LOST: the database is still out of reach at shutdown"
            );
        }
        self.db.close().await;
        info!(messages = self.written, "history written, database closed");
        let _ = reply.send(());
    }

    /// Hands each write acknowledged to a client to its method, once the batch before it
    /// is committed (see `take`).
    async fn handle(&mut self, request: StoreRequest) {
        match request {
            StoreRequest::CreateAccount { name, hash, reply } => {
                self.create_account(name, hash, reply).await;
            }
            StoreRequest::CreateRoom {
                room,
                creator,
                reply,
            } => self.create_room(room, creator, reply).await,
            StoreRequest::SetTopic { room, topic, reply } => {
                self.set_topic(room, topic.map(|topic| *topic), reply).await;
            }
            StoreRequest::Join {
                account,
                room,
                reply,
            } => self.join(account, room, reply).await,
            StoreRequest::Leave {
                account,
                room,
                reply,
            } => self.leave(account, room, reply).await,
            StoreRequest::MarkRead { marker, reply } => {
                let result = self.db.mark_read(&marker).await;
                let stored = self.settle("saving a read marker", result).await;
                let _ = reply.send(stored.map(MessageId::from_stored));
            }
            StoreRequest::QueuePrivate(queued) => {
                let (record, id, reply) = *queued;
                self.queue_private(record, id, reply).await;
            }
            StoreRequest::TakePending { account, reply } => self.take_pending(account, reply).await,
            #[cfg(test)]
            StoreRequest::FillUp { done } => self.fill_up(done).await,
            StoreRequest::UnrememberedRooms { rooms, reply } => {
                self.unremembered_rooms(rooms, reply).await;
            }
            StoreRequest::DeleteRooms { rooms, done } => {
                self.delete_rooms(rooms).await;
                let _ = done.send(());
            }
            StoreRequest::Record(..)
            | StoreRequest::Barrier { .. }
            | StoreRequest::Close { .. } => {}
        }
    }

    /// Stores a new account and answers its id.
    async fn create_account(
        &mut self,
        name: Name,
        hash: String,
        reply: oneshot::Sender<Result<i64, StorageError>>,
    ) {
        let result = self.db.insert_account(&name, hash).await;
        let _ = reply.send(self.settle("saving an account", result).await);
    }

    /// Stores a new room; one of the same name already stored is left as it is, and the
    /// answer says so (`false`).
    async fn create_room(
        &mut self,
        room: Name,
        creator: Name,
        reply: oneshot::Sender<Result<bool, StorageError>>,
    ) {
        let result = self.db.create_room(&room, &creator).await;
        let _ = reply.send(self.settle("saving a room", result).await);
    }

    /// Sets a room's topic, or clears it.
    async fn set_topic(
        &mut self,
        room: Name,
        topic: Option<Topic>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = self.db.set_topic(&room, topic.as_ref()).await;
        let _ = reply.send(self.settle("saving a topic", result).await);
    }

    /// Remembers that a registered user is in a room (kept if it is already).
    async fn join(
        &mut self,
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = self.db.join(&account, &room).await;
        let _ = reply.send(self.settle("saving a membership", result).await);
    }

    /// Forgets that a registered user is in a room.
    async fn leave(
        &mut self,
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = self.db.leave(&account, &room).await;
        let _ = reply.send(self.settle("removing a membership", result).await);
    }

    /// Writes a private message for an offline user at once, in a batch of its own, and
    /// answers whether it is stored. One that fails is not kept to be tried again: its
    /// sender is told it was not stored.
    async fn queue_private(
        &mut self,
        record: Record,
        id: MessageId,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        // Alone in its batch: the batch was committed just before.
        self.batch.messages += 1;
        self.batch.rows.push((id, record));
        let batch = self.next_batch();
        let result = self.write(batch).await.map_err(|unwritten| unwritten.error);
        let _ = reply.send(self.settle("queueing a private message", result).await);
    }

    /// Answers the messages queued for `account`, which become delivered; none if they
    /// cannot be read.
    async fn take_pending(&self, account: UserId, reply: oneshot::Sender<Vec<StoredMessage>>) {
        let pending = self.db.deliver_pending(&account, self.history).await;
        if pending.is_err() {
            self.db.roll_back_leftovers().await;
        }
        let pending = log_failure("taking queued messages", pending);
        let _ = reply.send(pending.unwrap_or_default());
    }

    /// Makes the database "full" at its current size, to test the failure paths.
    #[cfg(test)]
    async fn fill_up(&self, done: oneshot::Sender<()>) {
        self.db.fill_up().await;
        let _ = done.send(());
    }

    /// Answers which of `rooms` no registered user remembers, one query per room.
    async fn unremembered_rooms(&self, rooms: Vec<Name>, reply: oneshot::Sender<Vec<Name>>) {
        let mut unremembered = Vec::new();
        for room in rooms {
            let remembered = self.db.is_remembered(&room).await;
            // A room whose memberships cannot be read is kept.
            if let Some(false) = log_failure("reading a room's memberships", remembered) {
                unremembered.push(room);
            }
        }
        let _ = reply.send(unremembered);
    }

    /// Deletes expired rooms with their history, each in a transaction of its own: one
    /// that fails is logged and the others go on.
    async fn delete_rooms(&self, rooms: Vec<Name>) {
        for room in rooms {
            let result = self.db.delete_room(&room).await;
            if result.is_err() {
                self.db.roll_back_leftovers().await;
            }
            log_failure("deleting an expired room", result);
        }
    }

    /// Logs a failed write (the client is told) and rolls back whatever it left open.
    async fn settle<T>(
        &mut self,
        what: &str,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, StorageError> {
        if let Err(error) = &result {
            error!(%error, "{what} failed; the client is told");
            self.db.roll_back_leftovers().await;
        }
        let result = result.map_err(StorageError::from);
        if result.as_ref().is_err_and(StorageError::is_out_of_reach) {
            self.found_away();
        }
        result
    }

    /// Whether writes acknowledged to a client are refused at once (see `away_until`).
    fn away(&self) -> bool {
        self.away_until.is_some_and(|until| Instant::now() < until)
    }

    /// Notes that the database was just found out of reach.
    fn found_away(&mut self) {
        self.away_until = Some(Instant::now() + RETRY_EVERY);
    }

    /// Writes the batch in one transaction (the group commit), after any kept from an
    /// earlier failure that may pass, then answers the readers that waited for it. A batch
    /// that cannot be written is lost (counted and reported, and chat goes on), unless the
    /// failure may pass: then it is kept, and tried again first at the next commit or in
    /// `RETRY_EVERY`.
    async fn flush(&mut self) {
        self.deadline = None;
        self.retry_at = None;
        if self.ids.blocks_wanted() > 0 {
            self.reserve_ids_or_retry().await;
        }
        if self.batch.messages > 0 {
            let batch = self.next_batch();
            self.kept.push_back(batch);
        }
        while let Some(batch) = self.kept.pop_front() {
            let messages = batch.messages as u64;
            let lost = match self.write(batch).await {
                Ok(()) => {
                    self.written += messages;
                    0
                }
                Err(Unwritten { error, batch }) => {
                    self.db.roll_back_leftovers().await;
                    self.last_error = Some(error.to_string());
                    match batch {
                        Some(batch) => {
                            // The database is out of reach: so are the later batches.
                            self.keep(batch);
                            self.found_away();
                            break;
                        }
                        None => messages,
                    }
                }
            };
            self.count_loss(lost);
        }
        if !self.kept.is_empty() || self.ids.blocks_wanted() > 0 {
            self.retry_at = Some(Instant::now() + RETRY_EVERY);
        }
        for done in self.barriers.drain(..) {
            let _ = done.send(());
        }
    }

    /// Puts a batch that failed back at the front of those kept, and drops the oldest
    /// beyond `KEPT_AT_MOST` messages, counted as lost.
    fn keep(&mut self, batch: Batch) {
        self.kept.push_front(batch);
        let mut kept: usize = self.kept.iter().map(|batch| batch.messages).sum();
        while kept > KEPT_AT_MOST {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            kept -= oldest.messages;
            self.count_loss(oldest.messages as u64);
        }
    }

    /// Counts `lost` history messages, and reports those not reported yet once their line
    /// is due (also after a success).
    fn count_loss(&mut self, lost: u64) {
        self.lost += lost;
        let due = self.loss_log.count(lost);
        self.report_loss(due);
    }

    /// Writes a batch and files its new conversations' ids.
    async fn write(&mut self, batch: Batch) -> Result<(), Unwritten> {
        let filed = self.db.write(batch, &self.conversations).await?;
        self.away_until = None;
        if self.conversations.len() > KEYS_KEPT {
            self.conversations.clear();
        }
        for (conversation, id) in filed {
            if let Some(known) = self.conversations.get_mut(&conversation) {
                known.id = id;
            }
        }
        Ok(())
    }

    /// The batch gathered so far, replaced by an empty one.
    fn next_batch(&mut self) -> Batch {
        let next = Batch {
            number: self.batch.number + 1,
            chunks: Vec::with_capacity(self.batch.chunks.len()),
            ..Batch::default()
        };
        std::mem::replace(&mut self.batch, next)
    }

    /// Logs `lost` history messages, if any: those since the last line.
    fn report_loss(&self, lost: Option<u64>) {
        let Some(lost) = lost else {
            return;
        };
        error!(
            lost,
            lost_since_start = self.lost,
            error = self.last_error.as_deref().unwrap_or(""),
            "HISTORY LOST: messages could not be written to the database (disk full?); \
             chat goes on, they will be missing from history"
        );
    }

    /// Reserves the blocks of ids the node wants (`ids.rs`): the one in use and the next.
    async fn reserve_ids(&mut self) -> Result<(), sqlx::Error> {
        self.reserve_blocks(self.ids.blocks_wanted())
            .await
            .map(drop)
    }

    /// Reserves `blocks` blocks of ids in one statement and adds them; the number of the
    /// first on this node, if any.
    async fn reserve_blocks(&mut self, blocks: u64) -> Result<Option<u64>, sqlx::Error> {
        if blocks == 0 {
            return Ok(None);
        }
        let block = i64::try_from(self.ids.block()).unwrap_or(i64::MAX);
        let count = block.saturating_mul(i64::try_from(blocks).unwrap_or(i64::MAX));
        let last = self.db.reserve_ids(count).await?;
        let mut start = last - count + 1;
        let first = self.ids.add_block(start);
        for _ in 1..blocks {
            start += block;
            self.ids.add_block(start);
        }
        Ok(Some(first))
    }

    /// Moves on to a freshly reserved block of ids, with a fresh spare (a shared store's,
    /// every batch window: `ids.rs`). Not tried while the database is found out of reach;
    /// on a failure the node goes on with the block it has, which only orders its messages
    /// among other nodes' less closely.
    async fn fresh_ids(&mut self) {
        if self.away() {
            return;
        }
        match self.reserve_blocks(2).await {
            Ok(Some(fresh)) => self.ids.move_to(fresh),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "reserving fresh message ids failed");
                self.db.roll_back_leftovers().await;
                if postgres::out_of_reach(&error) {
                    self.found_away();
                }
            }
        }
    }

    /// The same, at a moment of the writer's own: a failure is logged, and tried again with
    /// the next commit, or in `RETRY_EVERY`. The node has a whole block in hand meanwhile.
    async fn reserve_ids_or_retry(&mut self) {
        if self.away() {
            // Tried again with the kept batches.
            self.retry_at
                .get_or_insert_with(|| Instant::now() + RETRY_EVERY);
            return;
        }
        if let Err(error) = self.reserve_ids().await {
            error!(%error, "reserving message ids failed; trying again");
            self.db.roll_back_leftovers().await;
            if postgres::out_of_reach(&error) {
                self.found_away();
            }
            if self.retry_at.is_none() {
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
            }
        }
    }

    /// Adds a message for history to the batch. History goes in chunks, one per
    /// conversation of the batch, so that a batch of thousands of messages to a hundred
    /// conversations is a hundred rows. A chunk keeps its messages in id order whatever
    /// order they arrive in; one that arrives after its conversation's chunk of this batch
    /// filled up, or after the batch before was written, may start a chunk whose ids overlap
    /// another's, which reads merge by id (`reader.rs`).
    fn gather(&mut self, record: Record, id: MessageId) {
        self.batch.messages += 1;
        let batch = &mut self.batch;
        let known = match self.conversations.get_mut(&record.conversation) {
            Some(known) => known,
            None => self
                .conversations
                .entry(record.conversation.clone())
                .or_insert(Known {
                    id: 0,
                    batch: 0,
                    chunk: 0,
                }),
        };
        let entry = Entry {
            id: id.get(),
            at: record.at,
            from: record.from.as_str(),
            text: &record.text,
        };
        if known.batch == batch.number {
            let chunk = &mut batch.chunks[known.chunk];
            if entry.id < chunk.last_id {
                chunk.insert(entry);
                return;
            }
            if chunk.push(entry).is_ok() {
                return;
            }
        }
        known.batch = batch.number;
        known.chunk = batch.chunks.len();
        if known.id == 0 {
            batch
                .unfiled
                .push((batch.chunks.len(), record.conversation.clone()));
        }
        batch.chunks.push(ChunkWriter::new(known.id, entry));
    }

    /// Applies the retention settings. Whole rows and chunks beyond them are deleted; a
    /// chunk that holds messages on both sides of a limit is rewritten without those beyond
    /// it, so that the limits hold to the message. Queued private messages are kept until
    /// delivered. The count per conversation ranks rows and chunks by their newest ids: where
    /// a conversation's chunks overlap (`reader.rs`), it holds to within the messages they
    /// share.
    async fn prune(&self) {
        let mut removed = 0;
        let mut trimmed = 0;
        if self.keep_days > 0 {
            let cutoff = SystemTime::now()
                .checked_sub(Duration::from_secs(self.keep_days * 86_400))
                .unwrap_or(UNIX_EPOCH);
            let cutoff = millis(cutoff);
            let result = self.db.delete_older(cutoff).await;
            removed += log_failure("pruning old history", result).unwrap_or(0);
            let straddling = self.db.straddling_older(cutoff).await;
            if let Some(chunks) = log_failure("reading old history", straddling) {
                let result = self.trim(chunks, cutoff).await;
                trimmed += log_failure("trimming old history", result).unwrap_or(0);
            }
        }
        if self.keep_per_conversation > 0 {
            let keep = i64::try_from(self.keep_per_conversation).unwrap_or(i64::MAX);
            let result = self.db.delete_beyond(keep).await;
            removed += log_failure("pruning long history", result).unwrap_or(0);
            // The chunk that holds the limit loses its messages beyond it.
            let straddling = self.db.straddling_beyond(keep).await;
            if let Some(chunks) = log_failure("reading long history", straddling) {
                let result = self.trim(chunks, i64::MIN).await;
                trimmed += log_failure("trimming long history", result).unwrap_or(0);
            }
        }
        if removed > 0 || trimmed > 0 {
            info!(
                rows_and_chunks = removed,
                messages_of_chunks = trimmed,
                "pruned history"
            );
        }
    }

    /// Rewrites chunks `(id, first_id, body, skip)` without their `skip` oldest messages and
    /// those sent before `cutoff`, in one transaction; a chunk left empty is deleted. A chunk's
    /// id stays the id of its last message. Returns how many messages were taken out.
    async fn trim(&self, chunks: Vec<Straddling>, cutoff: i64) -> Result<u64, sqlx::Error> {
        if chunks.is_empty() {
            return Ok(0);
        }
        let mut trimmed = 0;
        let mut rewritten = Vec::with_capacity(chunks.len());
        for (id, first_id, body, skip) in chunks {
            let mut kept: Option<ChunkWriter> = None;
            let mut count = 0;
            for (index, entry) in chunk::entries(first_id, &body).enumerate() {
                count += 1;
                if (index as i64) < skip || entry.at < cutoff {
                    continue;
                }
                match &mut kept {
                    // Ids grow in a chunk: it always fits.
                    Some(chunk) => chunk.push(entry).unwrap_or_default(),
                    None => kept = Some(ChunkWriter::new(0, entry)),
                }
            }
            let kept_count = kept.as_ref().map_or(0, |chunk| chunk.count);
            trimmed += u64::try_from(count - kept_count).unwrap_or(0);
            rewritten.push((id, kept));
        }
        self.db.rewrite_chunks(rewritten).await?;
        Ok(trimmed)
    }
}

/// Takes what the inbox holds into `requests`, without waiting; how many.
fn received_now(
    rx: &mut mpsc::UnboundedReceiver<StoreRequest>,
    requests: &mut Vec<StoreRequest>,
) -> usize {
    rx.recv_many(requests, RECEIVED_AT_ONCE)
        .now_or_never()
        .unwrap_or(0)
}

/// Rows of `(id, sender, body, sent_at)` as messages.
pub(super) fn stored(rows: Vec<(i64, String, String, i64)>) -> Vec<StoredMessage> {
    rows.into_iter()
        .filter_map(|(id, from, text, at)| stored_message(id, &from, || text, at))
        .collect()
}

/// A message as read back; `None` for a sender's name or a time that is not valid (which
/// only a damaged or hand-edited database has). The text is made only if it is.
pub(super) fn stored_message(
    id: i64,
    from: &str,
    text: impl FnOnce() -> String,
    at: i64,
) -> Option<StoredMessage> {
    Some(StoredMessage {
        id: MessageId::from_stored(id),
        from: Name::parse(from).ok()?,
        at: UNIX_EPOCH + Duration::from_millis(u64::try_from(at).ok()?),
        text: text(),
    })
}

pub(super) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

fn log_failure<T>(what: &str, result: Result<T, sqlx::Error>) -> Option<T> {
    result
        .inspect_err(|error| error!(%error, "{what} failed"))
        .ok()
}

/// Returns at `drain_at`, or sooner if a sender waits for the writer to make room: then the
/// server has nothing else to do, and the inbox is taken at once.
async fn drain_due(drain_at: Option<Instant>, queued: &Queued) {
    tokio::select! {
        () = sleep_until(drain_at.unwrap_or_else(Instant::now)) => {}
        () = queued.waited_for() => {}
    }
}
