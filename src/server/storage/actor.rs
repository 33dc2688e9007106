//! The writer task and its SQL: every write goes through here, in order, on the one
//! read-write connection. Everything here is plain SQL that PostgreSQL also accepts, but for
//! the pool type and the connection options.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, SqlSafeStr, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use super::chunk::{self, ChunkWriter, Entry};
use super::{
    Conversation, Loaded, Record, StorageError, StorageOptions, StoreRequest, StoredMessage, files,
    key,
};
use crate::server::log_tally::LogTally;
use crate::server::member::UserId;
use crate::server::request::Backlog;
use linechat_protocol::Name;

/// A batch this large is written at once, whatever the window. Large, because a commit
/// writes every page it touched, and messages to many conversations touch as many pages of
/// the index HISTORY reads by: the more rows per commit, the fewer times each page is written.
const MAX_BATCH: usize = 16_384;
/// Most rows per `INSERT` statement: 7 parameters each, well under SQLite's limit of 32766.
/// Statements come in the powers of two up to it, so that every batch is written with a few
/// statements that SQLite has already prepared (sqlx caches them by their text).
const ROWS_PER_INSERT: usize = 1024;
/// The columns a message row is written with, and a chunk (see `chunk.rs`).
const MESSAGE_COLUMNS: &str =
    "messages (id, conversation, sender, recipient_key, body, sent_at, pending)";
const CHUNK_COLUMNS: &str = "chunks (id, conversation, first_id, count, first_at, last_at, body)";
/// Requests taken from the inbox at once.
const RECEIVED_AT_ONCE: usize = 1024;
/// While a batch gathers, how often the writer takes what has come to its inbox: the most a
/// write acknowledged to a client (an account, a room) waits behind a busy history.
const DRAIN_EVERY: Duration = Duration::from_millis(2);
/// Conversations the writer keeps in memory; past this, it forgets them all and looks them
/// up again.
const KEYS_KEPT: usize = 65_536;
/// How often old history is pruned while running (it is also pruned at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// At most one log line per this long about history batches that could not be written, with
/// the count lost since the last line: a full disk must not flood the log.
const REPORT_LOSS_EVERY: Duration = Duration::from_secs(10);
pub(super) const DATABASE_FILE: &str = "linechat.db";
/// The page size of a new database.
const PAGE_SIZE: u32 = 16_384;

/// The schema's migrations, in `migrations/`, embedded in the binary. Listed here rather
/// than found by `sqlx::migrate!`, whose procedural macro builds a second SQLite (for the
/// build machine) into every build; the checksums are the same as the macro's, so databases
/// it migrated are recognised. A test checks that every file of the folder is listed.
pub(super) fn migrator() -> Migrator {
    macro_rules! migration {
        ($version:literal, $description:literal, $file:literal) => {
            Migration::new(
                $version,
                Cow::Borrowed($description),
                MigrationType::Simple,
                include_str!(concat!("migrations/", $file)).into_sql_str(),
                false,
            )
        };
    }
    Migrator::with_migrations(vec![
        migration!(1, "initial", "0001_initial.sql"),
        migration!(2, "identities", "0002_identities.sql"),
        migration!(3, "conversation ids", "0003_conversation_ids.sql"),
        migration!(4, "history chunks", "0004_history_chunks.sql"),
    ])
}

/// Opens the database, migrates it, and reads what is kept in memory. Also returns the
/// highest message id stored, in rows or chunks (0 if none), which the writer goes on from.
pub(super) async fn open(
    options: &StorageOptions,
) -> Result<(SqlitePool, Loaded, i64), StorageError> {
    let path = files::prepare(&options.data_dir, DATABASE_FILE)?;
    let connect = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL survives a crash of the process (not of the machine) with every
        // committed transaction, and saves an fsync per commit.
        .synchronous(SqliteSynchronous::Normal)
        // A statement that writes many rows keeps a journal of its own, to undo just itself;
        // on disk (the default) it cost a third of every row written.
        .pragma("temp_store", "memory")
        // Room for a whole batch's pages (the default is 2 MiB): a transaction larger than
        // its cache spills pages to the log before it commits, and may write them twice.
        .pragma("cache_size", "-16384")
        // A new database's pages are 16 KiB instead of 4: a batch's chunk for a busy
        // conversation (a few KiB) then fits in its page instead of a chain of overflow
        // pages, and the log and the checkpoint write a quarter as many pages. It halved
        // SQLite's CPU per stored message; 64 KiB saved little more, and would write 64 KiB
        // pages for every commit of a quiet server. (An existing database keeps its size.)
        .page_size(PAGE_SIZE)
        .busy_timeout(Duration::from_secs(5));
    // One connection: the writer task is its only user, and it works in order. Reads have
    // connections of their own (`reader.rs`).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await?;
    migrator().run(&pool).await?;
    info!(path = %path.display(), "database open");

    let mut loaded = Loaded::default();
    let accounts: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, name, password_hash FROM accounts")
            .fetch_all(&pool)
            .await?;
    for (id, name, hash) in accounts {
        match Name::parse(&name) {
            Ok(name) => loaded.accounts.push((id, name, hash)),
            Err(error) => warn!(name, %error, "skipping an account with a bad name"),
        }
    }
    let rooms: Vec<(String, String)> = sqlx::query_as("SELECT name, creator FROM rooms")
        .fetch_all(&pool)
        .await?;
    for (room, creator) in rooms {
        match (Name::parse(&room), Name::parse(&creator)) {
            (Ok(room), Ok(creator)) => loaded.rooms.push((room, creator)),
            _ => warn!(room, creator, "skipping a room with a bad name"),
        }
    }
    let (last_id,): (Option<i64>,) = sqlx::query_as(
        "SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM messages \
         UNION ALL SELECT MAX(id) AS id FROM chunks) AS latest",
    )
    .fetch_one(&pool)
    .await?;
    Ok((pool, loaded, last_id.unwrap_or(0)))
}

/// A conversation the writer knows: its id, and which chunk of the batch being gathered it
/// adds to (one lookup per message finds both).
struct Known {
    /// Its id in the `conversations` table; 0 until a commit has filed it there.
    id: i64,
    /// The batch in which `chunk` is its open chunk; another batch's number means none.
    batch: u64,
    /// Its chunk's index in the batch's chunks.
    chunk: usize,
}

/// The messages of the next group commit. Each history message is encoded into its
/// conversation's chunk as it arrives, and its record dropped, while both are still in the
/// actor's cache: holding thousands of records until the commit cost more than encoding
/// them.
#[derive(Default)]
struct Batch {
    /// Its number (see `Known::batch`).
    number: u64,
    chunks: Vec<ChunkWriter>,
    /// Chunks of conversations not filed yet, by index in `chunks`: filed at the commit.
    unfiled: Vec<(usize, Conversation)>,
    /// Messages stored as rows: queued private messages, with their ids.
    rows: Vec<(i64, Record)>,
    /// Messages in it.
    messages: usize,
}

pub(super) struct StoreActor {
    pool: SqlitePool,
    batch: Batch,
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
    /// The last message id handed out: ids are one sequence over rows and chunks, in the
    /// order messages arrive. Ids of a batch that failed are not used again.
    last_id: i64,
    /// `INSERT` statements for `1 << n` message rows, by `n`.
    message_inserts: Vec<Arc<str>>,
    /// The same for chunks.
    chunk_inserts: Vec<Arc<str>>,
    backlog: Backlog,
}

impl StoreActor {
    pub(super) fn new(
        pool: SqlitePool,
        options: &StorageOptions,
        last_id: i64,
        backlog: Backlog,
    ) -> Self {
        Self {
            pool,
            batch: Batch {
                number: 1,
                ..Batch::default()
            },
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
            last_id,
            message_inserts: insert_statements(MESSAGE_COLUMNS),
            chunk_inserts: insert_statements(CHUNK_COLUMNS),
            backlog,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<StoreRequest>) {
        self.prune().await;
        let mut prune = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        // Requests are taken many at a time: at chat rates a wake-up for every message (each
        // sender wakes the writer that waits for its inbox) would cost as much as writing it.
        // So the inbox wakes the writer only for the first record of a batch; while a batch
        // gathers, the writer takes what has come every `DRAIN_EVERY`, and at its deadline.
        let mut requests = Vec::with_capacity(RECEIVED_AT_ONCE);
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
                () = sleep_until(drain_at.unwrap_or_else(Instant::now)), if gathering => {
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
                _ = prune.tick() => self.prune().await,
            }
            if !self.take_all(&mut requests).await {
                return;
            }
        }
    }

    /// Takes the requests received; false once the store is closed. A history record is
    /// only put in the batch: that path stays out of `take`, whose future is large.
    async fn take_all(&mut self, requests: &mut Vec<StoreRequest>) -> bool {
        for request in requests.drain(..) {
            match request {
                StoreRequest::Record(record) => {
                    self.gather(record);
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
                self.flush().await;
                self.handle(request).await;
            }
        }
        true
    }

    /// Answers `done` once every record sent before it is committed: with the batch it
    /// waits for, without a commit of its own.
    fn barrier(&mut self, done: oneshot::Sender<()>) {
        if self.batch.messages == 0 {
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
        self.pool.close().await;
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
            StoreRequest::QueuePrivate { record, reply } => self.queue_private(record, reply).await,
            StoreRequest::TakePending { account, reply } => self.take_pending(account, reply).await,
            #[cfg(test)]
            StoreRequest::FillUp { done } => self.fill_up(done).await,
            StoreRequest::UnrememberedRooms { rooms, reply } => {
                self.unremembered_rooms(rooms, reply).await;
            }
            StoreRequest::DeleteRooms { rooms } => self.delete_rooms(rooms).await,
            StoreRequest::Record(_) | StoreRequest::Barrier { .. } | StoreRequest::Close { .. } => {
            }
        }
    }

    /// Stores a new account and answers its id.
    async fn create_account(
        &self,
        name: Name,
        hash: String,
        reply: oneshot::Sender<Result<i64, StorageError>>,
    ) {
        let result = self.insert_account(&name, hash).await;
        let _ = reply.send(self.settle("saving an account", result).await);
    }

    /// Stores a new room; one of the same name already stored is left as it is.
    async fn create_room(
        &self,
        room: Name,
        creator: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = sqlx::query(
            "INSERT INTO rooms (name_key, name, creator, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key(&room))
        .bind(room.as_str())
        .bind(creator.as_str())
        .bind(millis(SystemTime::now()))
        .execute(&self.pool)
        .await;
        let _ = reply.send(self.settle("saving a room", result.map(drop)).await);
    }

    /// Remembers that a registered user is in a room (kept if it is already).
    async fn join(
        &self,
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = sqlx::query(
            "INSERT INTO memberships (account_key, room_key) VALUES (?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key(&account))
        .bind(key(&room))
        .execute(&self.pool)
        .await;
        let _ = reply.send(self.settle("saving a membership", result.map(drop)).await);
    }

    /// Forgets that a registered user is in a room.
    async fn leave(
        &self,
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        let result = sqlx::query("DELETE FROM memberships WHERE account_key = ? AND room_key = ?")
            .bind(key(&account))
            .bind(key(&room))
            .execute(&self.pool)
            .await;
        let _ = reply.send(self.settle("removing a membership", result.map(drop)).await);
    }

    /// Writes a private message for an offline user at once, in a batch of its own, and
    /// answers whether it is stored.
    async fn queue_private(
        &mut self,
        record: Record,
        reply: oneshot::Sender<Result<(), StorageError>>,
    ) {
        // Alone in its batch: the batch was committed just before.
        self.gather(record);
        let batch = self.next_batch();
        let result = self.write(batch).await;
        let _ = reply.send(self.settle("queueing a private message", result).await);
    }

    /// Answers the messages queued for `account`, which become delivered; none if they
    /// cannot be read.
    async fn take_pending(&self, account: UserId, reply: oneshot::Sender<Vec<StoredMessage>>) {
        let pending = self.deliver_pending(&account).await;
        if pending.is_err() {
            self.roll_back_leftovers().await;
        }
        let pending = log_failure("taking queued messages", pending);
        let _ = reply.send(pending.unwrap_or_default());
    }

    /// Makes the database "full" at its current size, to test the failure paths.
    #[cfg(test)]
    async fn fill_up(&self, done: oneshot::Sender<()>) {
        // Free pages (left by migrations that rebuild tables) would still take rows.
        sqlx::query("VACUUM")
            .execute(&self.pool)
            .await
            .expect("vacuum");
        let pages: (i64,) = sqlx::query_as("PRAGMA page_count")
            .fetch_one(&self.pool)
            .await
            .expect("page count");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {}",
            pages.0
        )))
        .execute(&self.pool)
        .await
        .expect("max page count");
        let _ = done.send(());
    }

    /// Answers which of `rooms` no registered user remembers, one query per room.
    async fn unremembered_rooms(&self, rooms: Vec<Name>, reply: oneshot::Sender<Vec<Name>>) {
        let mut unremembered = Vec::new();
        for room in rooms {
            let remembered: Result<Option<(i64,)>, _> =
                sqlx::query_as("SELECT 1 FROM memberships WHERE room_key = ? LIMIT 1")
                    .bind(key(&room))
                    .fetch_optional(&self.pool)
                    .await;
            // A room whose memberships cannot be read is kept.
            if let Some(None) = log_failure("reading a room's memberships", remembered) {
                unremembered.push(room);
            }
        }
        let _ = reply.send(unremembered);
    }

    /// Deletes expired rooms with their history, each in a transaction of its own: one
    /// that fails is logged and the others go on.
    async fn delete_rooms(&self, rooms: Vec<Name>) {
        for room in rooms {
            let result = self.delete_room(&room).await;
            if result.is_err() {
                self.roll_back_leftovers().await;
            }
            log_failure("deleting an expired room", result);
        }
    }

    /// Logs a failed write (the client is told) and rolls back whatever it left open.
    async fn settle<T>(
        &self,
        what: &str,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, StorageError> {
        if let Err(error) = &result {
            error!(%error, "{what} failed; the client is told");
            self.roll_back_leftovers().await;
        }
        result.map_err(StorageError::from)
    }

    /// After a failed write. SQLite may keep a transaction open when its `COMMIT` fails (a
    /// full disk, for one), and the pool would hand the same connection on with it: every
    /// later write would then run inside it, be acknowledged, and never be committed. An
    /// explicit `ROLLBACK` ends it; with no transaction open it only fails harmlessly.
    async fn roll_back_leftovers(&self) {
        let _ = sqlx::query("ROLLBACK").execute(&self.pool).await;
    }

    /// Inserts an account and returns its id. In an explicit transaction: with `RETURNING`,
    /// the id comes back before the statement's own commit, whose failure (a full disk)
    /// would otherwise go unseen.
    async fn insert_account(&self, name: &Name, hash: String) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO accounts (name_key, name, password_hash, created_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(key(name))
        .bind(name.as_str())
        .bind(hash)
        .bind(millis(SystemTime::now()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes a room nobody remembers, and its history, in one transaction.
    async fn delete_room(&self, room: &Name) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM rooms WHERE name_key = ? \
             AND NOT EXISTS (SELECT 1 FROM memberships WHERE room_key = ?)",
        )
        .bind(key(room))
        .bind(key(room))
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() > 0 {
            for table in ["messages", "chunks"] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE conversation IN \
                     (SELECT id FROM conversations WHERE key = ?)"
                )))
                .bind(Conversation::Room(room.clone()).key())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    /// Reads the messages queued for `account` and marks them delivered, in one transaction.
    async fn deliver_pending(&self, account: &UserId) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, sender, body, sent_at FROM messages \
             WHERE recipient_key = ? AND pending = 1 ORDER BY id",
        )
        .bind(account.key())
        .fetch_all(&mut *tx)
        .await?;
        // Delivered, they become history, unless no history is kept.
        let delivered = if self.history {
            "UPDATE messages SET pending = 0 WHERE recipient_key = ? AND pending = 1"
        } else {
            "DELETE FROM messages WHERE recipient_key = ? AND pending = 1"
        };
        sqlx::query(delivered)
            .bind(account.key())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored(rows))
    }

    /// Writes the batch in one transaction (the group commit), then answers the readers
    /// that waited for it. A batch that cannot be written is lost: counted and reported, and
    /// chat goes on.
    async fn flush(&mut self) {
        self.deadline = None;
        if self.batch.messages > 0 {
            let batch = self.next_batch();
            let messages = batch.messages as u64;
            let lost = match self.write(batch).await {
                Ok(()) => {
                    self.written += messages;
                    0
                }
                Err(error) => {
                    self.roll_back_leftovers().await;
                    self.last_error = Some(error.to_string());
                    messages
                }
            };
            self.lost += lost;
            // Also after a success: losses not yet reported are, once their line is due.
            let due = self.loss_log.count(lost);
            self.report_loss(due);
        }
        for done in self.barriers.drain(..) {
            let _ = done.send(());
        }
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

    /// Adds a message to the batch, with the next id. History goes in chunks, one per
    /// conversation of the batch, so that a batch of thousands of messages to a hundred
    /// conversations is a hundred rows. Queued private messages are rows of `messages`, as
    /// they are taken one by one at their recipient's login.
    fn gather(&mut self, record: Record) {
        let batch = &mut self.batch;
        batch.messages += 1;
        self.last_id += 1;
        let id = self.last_id;
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
        if record.pending {
            // A row ends its conversation's chunk: a chunk never spans another message of
            // its conversation, so that rows and chunks merge by id.
            known.batch = 0;
            batch.rows.push((id, record));
            return;
        }
        let entry = Entry {
            id,
            at: millis(record.at),
            from: record.from.as_str(),
            text: &record.text,
        };
        if known.batch == batch.number && batch.chunks[known.chunk].push(entry).is_ok() {
            return;
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

    /// Writes a batch in one transaction, a few `INSERT`s of many rows each: per-statement
    /// overhead, not the disk, is what storing costs at chat rates.
    async fn write(&mut self, batch: Batch) -> Result<(), sqlx::Error> {
        let Batch {
            mut chunks,
            unfiled,
            rows,
            ..
        } = batch;
        let mut tx = self.pool.begin().await?;
        // Conversations first filed by this transaction: known only once it is committed.
        let mut filed: HashMap<Conversation, i64> = HashMap::new();
        for (index, conversation) in unfiled {
            chunks[index].conversation =
                file(&mut tx, &self.conversations, &mut filed, &conversation).await?;
        }
        let mut filed_rows = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            let conversation = file(
                &mut tx,
                &self.conversations,
                &mut filed,
                &record.conversation,
            )
            .await?;
            filed_rows.push((id, conversation, record));
        }
        let rows = filed_rows;
        insert_all(&mut tx, &self.message_inserts, rows, |arguments, row| {
            let (id, conversation, record) = row;
            // Only a queued message needs its recipient (to be found at their login); in
            // history the conversation says who it was for.
            let recipient = record.to.filter(|_| record.pending).map(|to| to.key());
            arguments.add(id)?;
            arguments.add(conversation)?;
            arguments.add(record.from.as_str().to_owned())?;
            arguments.add(recipient)?;
            arguments.add(record.text)?;
            arguments.add(millis(record.at))?;
            arguments.add(i64::from(record.pending))
        })
        .await?;
        insert_all(&mut tx, &self.chunk_inserts, chunks, |arguments, chunk| {
            arguments.add(chunk.last_id)?;
            arguments.add(chunk.conversation)?;
            arguments.add(chunk.first_id)?;
            arguments.add(chunk.count)?;
            arguments.add(chunk.first_at)?;
            arguments.add(chunk.last_at)?;
            arguments.add(chunk.body)
        })
        .await?;
        tx.commit().await?;
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

    /// Applies the retention settings. Whole rows and chunks beyond them are deleted; a
    /// chunk that holds messages on both sides of a limit is rewritten without those beyond
    /// it, so that the limits hold to the message. Queued private messages are kept until
    /// delivered.
    async fn prune(&self) {
        let mut removed = 0;
        let mut trimmed = 0;
        if self.keep_days > 0 {
            let cutoff = SystemTime::now()
                .checked_sub(Duration::from_secs(self.keep_days * 86_400))
                .unwrap_or(UNIX_EPOCH);
            let cutoff = millis(cutoff);
            // An hourly scan needs no index on the time, which would cost every insert.
            for (table, old) in [
                ("messages", "pending = 0 AND sent_at < ?"),
                ("chunks", "last_at < ?"),
            ] {
                let result = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE {old}")))
                    .bind(cutoff)
                    .execute(&self.pool)
                    .await;
                removed +=
                    log_failure("pruning old history", result).map_or(0, |r| r.rows_affected());
            }
            let straddling = sqlx::query_as(
                "SELECT id, first_id, body, 0 FROM chunks WHERE first_at < ? AND last_at >= ?",
            )
            .bind(cutoff)
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await;
            if let Some(chunks) = log_failure("reading old history", straddling) {
                let result = self.trim(chunks, cutoff).await;
                trimmed += log_failure("trimming old history", result).unwrap_or(0);
            }
        }
        if self.keep_per_conversation > 0 {
            let keep = i64::try_from(self.keep_per_conversation).unwrap_or(i64::MAX);
            // Rows and chunks newest first per conversation, each with the count of messages
            // newer than it: one is deleted once that many are kept without it. Queued rows
            // count, as they are history too once delivered.
            const RANKED: &str = "WITH ranked AS ( \
                SELECT id, kind, n, COALESCE(SUM(n) OVER (PARTITION BY conversation \
                  ORDER BY id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer \
                FROM (SELECT id, conversation, 1 AS n, 'messages' AS kind FROM messages \
                      UNION ALL \
                      SELECT id, conversation, count AS n, 'chunks' AS kind FROM chunks) AS items)";
            for (table, which) in [("messages", "pending = 0 AND "), ("chunks", "")] {
                let result = sqlx::query(AssertSqlSafe(format!(
                    "{RANKED} DELETE FROM {table} WHERE {which}id IN ( \
                       SELECT id FROM ranked WHERE kind = '{table}' AND newer >= ?)"
                )))
                .bind(keep)
                .execute(&self.pool)
                .await;
                removed +=
                    log_failure("pruning long history", result).map_or(0, |r| r.rows_affected());
            }
            // The chunk that holds the limit loses its messages beyond it.
            let straddling = sqlx::query_as(AssertSqlSafe(format!(
                "{RANKED} SELECT chunks.id, chunks.first_id, chunks.body, \
                   ranked.n - (?1 - ranked.newer) \
                 FROM ranked JOIN chunks ON chunks.id = ranked.id \
                 WHERE ranked.kind = 'chunks' AND ranked.newer < ?1 AND ranked.newer + ranked.n > ?1"
            )))
            .bind(keep)
            .fetch_all(&self.pool)
            .await;
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
    async fn trim(
        &self,
        chunks: Vec<(i64, i64, Vec<u8>, i64)>,
        cutoff: i64,
    ) -> Result<u64, sqlx::Error> {
        if chunks.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut trimmed = 0;
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
            match kept {
                Some(chunk) => {
                    sqlx::query(
                        "UPDATE chunks SET id = ?, first_id = ?, count = ?, first_at = ?, \
                         last_at = ?, body = ? WHERE id = ?",
                    )
                    .bind(chunk.last_id)
                    .bind(chunk.first_id)
                    .bind(chunk.count)
                    .bind(chunk.first_at)
                    .bind(chunk.last_at)
                    .bind(chunk.body)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM chunks WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
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

/// `INSERT INTO <columns> VALUES (?, ...), ...` for 1, 2, 4, ... `ROWS_PER_INSERT` rows.
fn insert_statements(columns: &str) -> Vec<Arc<str>> {
    let width = columns.matches(',').count() + 1;
    let row = format!("({})", vec!["?"; width].join(", "));
    (0..=ROWS_PER_INSERT.ilog2())
        .map(|n| {
            let rows = vec![row.as_str(); 1 << n].join(", ");
            format!("INSERT INTO {columns} VALUES {rows}").into()
        })
        .collect()
}

/// Inserts `items` with the fewest statements of `statements` (see `insert_statements`):
/// `ROWS_PER_INSERT`-row ones, then at most one of each smaller power of two. `bind` adds
/// an item's parameters, consuming it, so that its strings become parameters without a copy.
async fn insert_all<T>(
    connection: &mut SqliteConnection,
    statements: &[Arc<str>],
    items: Vec<T>,
    mut bind: impl FnMut(&mut SqliteArguments, T) -> Result<(), sqlx::error::BoxDynError>,
) -> Result<(), sqlx::Error> {
    let mut left = items.len();
    let mut items = items.into_iter();
    while left > 0 {
        let n = left.min(ROWS_PER_INSERT).ilog2();
        let size = 1 << n;
        let mut arguments = SqliteArguments::default();
        for item in items.by_ref().take(size) {
            bind(&mut arguments, item).map_err(sqlx::Error::Encode)?;
        }
        let insert = AssertSqlSafe(Arc::clone(&statements[n as usize]));
        sqlx::query_with(insert, arguments)
            .execute(&mut *connection)
            .await?;
        left -= size;
    }
    Ok(())
}

/// The id of `conversation`: known, filed earlier in this transaction, or filed now.
async fn file(
    connection: &mut SqliteConnection,
    known: &HashMap<Conversation, Known>,
    filed: &mut HashMap<Conversation, i64>,
    conversation: &Conversation,
) -> Result<i64, sqlx::Error> {
    if let Some(id) = known
        .get(conversation)
        .map(|known| known.id)
        .filter(|&id| id != 0)
    {
        return Ok(id);
    }
    if let Some(&id) = filed.get(conversation) {
        return Ok(id);
    }
    let id = file_conversation(connection, conversation).await?;
    filed.insert(conversation.clone(), id);
    Ok(id)
}

/// The id of `conversation` in the `conversations` table, which files it if it is new.
async fn file_conversation(
    connection: &mut SqliteConnection,
    conversation: &Conversation,
) -> Result<i64, sqlx::Error> {
    let key = conversation.key();
    sqlx::query("INSERT INTO conversations (key) VALUES (?) ON CONFLICT DO NOTHING")
        .bind(&key)
        .execute(&mut *connection)
        .await?;
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM conversations WHERE key = ?")
        .bind(&key)
        .fetch_one(&mut *connection)
        .await?;
    Ok(id)
}

/// Rows of `(id, sender, body, sent_at)` as messages.
fn stored(rows: Vec<(i64, String, String, i64)>) -> Vec<StoredMessage> {
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
        id,
        from: Name::parse(from).ok()?,
        at: UNIX_EPOCH + Duration::from_millis(u64::try_from(at).ok()?),
        text: text(),
    })
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

fn log_failure<T>(what: &str, result: Result<T, sqlx::Error>) -> Option<T> {
    result
        .inspect_err(|error| error!(%error, "{what} failed"))
        .ok()
}
