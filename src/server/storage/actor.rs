//! The storage task and its SQL. Everything here is plain SQL that PostgreSQL also accepts,
//! but for the pool type and the connection options.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use super::{Loaded, Record, StorageError, StorageOptions, StorageRequest, StoredMessage, key};
use crate::common::Name;

/// A batch this large is written at once, whatever the window.
const MAX_BATCH: usize = 4096;
/// Rows per `INSERT` statement: 6 parameters each, well under SQLite's limit of 32766.
const ROWS_PER_INSERT: usize = 256;
/// How often old history is pruned while running (it is also pruned at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const DATABASE_FILE: &str = "linechat.db";

/// Opens the database, migrates it, and reads what is kept in memory.
pub(super) async fn open(options: &StorageOptions) -> Result<(SqlitePool, Loaded), StorageError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StorageError::DataDir {
        path: options.data_dir.clone(),
        source,
    })?;
    let path = options.data_dir.join(DATABASE_FILE);
    let connect = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL survives a crash of the process (not of the machine) with every
        // committed transaction, and saves an fsync per commit.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    // One connection: the storage task is the only user, and it works in order.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await?;
    sqlx::migrate!("src/server/storage/migrations")
        .run(&pool)
        .await?;
    info!(path = %path.display(), "database open");

    let mut loaded = Loaded::default();
    let accounts: Vec<(String, String)> =
        sqlx::query_as("SELECT name, password_hash FROM accounts")
            .fetch_all(&pool)
            .await?;
    for (name, hash) in accounts {
        match Name::parse(&name) {
            Ok(name) => loaded.accounts.push((name, hash)),
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
    Ok((pool, loaded))
}

pub(super) struct StorageActor {
    pool: SqlitePool,
    batch: Vec<Record>,
    /// When the oldest record of the batch must be committed.
    deadline: Option<Instant>,
    batch_window: Duration,
    keep_per_conversation: u64,
    keep_days: u64,
    /// Messages written since start, for the log at close.
    written: u64,
    /// Whether chat history is kept (queued private messages always are, until delivered).
    history: bool,
}

impl StorageActor {
    pub(super) fn new(pool: SqlitePool, options: &StorageOptions) -> Self {
        Self {
            pool,
            batch: Vec::new(),
            deadline: None,
            batch_window: options.batch_window,
            keep_per_conversation: options.keep_per_conversation,
            keep_days: options.keep_days,
            written: 0,
            history: options.history,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<StorageRequest>) {
        self.prune().await;
        let mut prune = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        loop {
            tokio::select! {
                request = rx.recv() => match request {
                    Some(StorageRequest::Record(record)) => {
                        self.batch.push(record);
                        if self.batch.len() >= MAX_BATCH {
                            self.flush().await;
                        } else if self.deadline.is_none() {
                            self.deadline = Some(Instant::now() + self.batch_window);
                        }
                    }
                    Some(StorageRequest::Close { reply }) => {
                        self.flush().await;
                        self.pool.close().await;
                        info!(messages = self.written, "history written, database closed");
                        let _ = reply.send(());
                        return;
                    }
                    Some(request) => {
                        // Anything else sees every record sent before it.
                        self.flush().await;
                        self.handle(request).await;
                    }
                    None => {
                        self.flush().await;
                        return;
                    }
                },
                () = sleep_until(self.deadline.unwrap_or_else(Instant::now)), if self.deadline.is_some() => {
                    self.flush().await;
                }
                _ = prune.tick() => self.prune().await,
            }
        }
    }

    async fn handle(&mut self, request: StorageRequest) {
        match request {
            StorageRequest::CreateAccount { name, hash, reply } => {
                let result = sqlx::query(
                    "INSERT INTO accounts (name_key, name, password_hash, created_at) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(key(&name))
                .bind(name.as_str())
                .bind(hash)
                .bind(millis(SystemTime::now()))
                .execute(&self.pool)
                .await;
                let _ = reply.send(result.map(drop).map_err(StorageError::from));
            }
            StorageRequest::CreateRoom { room, creator } => {
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
                log_failure("saving a room", result);
            }
            StorageRequest::Sync { done } => {
                let _ = done.send(());
            }
            StorageRequest::Join {
                account,
                room,
                done,
            } => {
                let result = sqlx::query(
                    "INSERT INTO memberships (account_key, room_key) VALUES (?, ?) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(key(&account))
                .bind(key(&room))
                .execute(&self.pool)
                .await;
                log_failure("saving a membership", result);
                let _ = done.send(());
            }
            StorageRequest::Leave {
                account,
                room,
                done,
            } => {
                let result =
                    sqlx::query("DELETE FROM memberships WHERE account_key = ? AND room_key = ?")
                        .bind(key(&account))
                        .bind(key(&room))
                        .execute(&self.pool)
                        .await;
                log_failure("removing a membership", result);
                let _ = done.send(());
            }
            StorageRequest::Memberships { account, reply } => {
                let rooms: Result<Vec<(String,)>, _> = sqlx::query_as(
                    "SELECT rooms.name FROM memberships \
                     JOIN rooms ON rooms.name_key = memberships.room_key \
                     WHERE memberships.account_key = ? ORDER BY rooms.name_key",
                )
                .bind(key(&account))
                .fetch_all(&self.pool)
                .await;
                let rooms = log_failure("reading memberships", rooms).unwrap_or_default();
                let rooms = rooms
                    .into_iter()
                    .filter_map(|(room,)| Name::parse(&room).ok())
                    .collect();
                let _ = reply.send(rooms);
            }
            StorageRequest::TakePending { account, reply } => {
                let pending =
                    log_failure("reading queued messages", self.take_pending(&account).await);
                let _ = reply.send(pending.unwrap_or_default());
            }
            StorageRequest::History {
                conversation,
                count,
                reply,
            } => {
                let rows: Result<Vec<(String, String, i64)>, _> = sqlx::query_as(
                    "SELECT sender, body, sent_at FROM \
                     (SELECT id, sender, body, sent_at FROM messages WHERE target = ? \
                      ORDER BY id DESC LIMIT ?) AS latest \
                     ORDER BY id",
                )
                .bind(conversation.key())
                .bind(i64::from(count))
                .fetch_all(&self.pool)
                .await;
                let _ = reply.send(rows.map(stored).map_err(StorageError::from));
            }
            StorageRequest::Record(_) | StorageRequest::Close { .. } => {}
            StorageRequest::HistoryPage {
                conversation,
                window,
                after,
                limit,
                reply,
            } => {
                let page = self
                    .history_page(&conversation.key(), window, after, limit)
                    .await;
                let _ = reply.send(page.map_err(StorageError::from));
            }
        }
    }

    /// See [`super::Store::history_page`]. The first page finds where the window starts from
    /// the index alone; later pages continue from the last row sent.
    async fn history_page(
        &self,
        target: &str,
        window: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, StoredMessage)>, sqlx::Error> {
        let rows: Vec<(i64, String, String, i64)> = match after {
            None => {
                sqlx::query_as(
                    "SELECT id, sender, body, sent_at FROM messages \
                     WHERE target = ?1 AND id >= COALESCE( \
                       (SELECT id FROM messages WHERE target = ?1 \
                        ORDER BY id DESC LIMIT 1 OFFSET ?2), 0) \
                     ORDER BY id LIMIT ?3",
                )
                .bind(target)
                .bind(i64::from(window.max(1)) - 1)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some(after) => {
                sqlx::query_as(
                    "SELECT id, sender, body, sent_at FROM messages \
                     WHERE target = ? AND id > ? ORDER BY id LIMIT ?",
                )
                .bind(target)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(id, from, text, at)| {
                let message = StoredMessage {
                    from: Name::parse(&from).ok()?,
                    text,
                    at: UNIX_EPOCH + Duration::from_millis(u64::try_from(at).ok()?),
                };
                Some((id, message))
            })
            .collect())
    }

    async fn take_pending(&self, account: &Name) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT sender, body, sent_at FROM messages \
             WHERE recipient_key = ? AND pending = 1 ORDER BY id",
        )
        .bind(key(account))
        .fetch_all(&mut *tx)
        .await?;
        // Delivered, they become history, unless no history is kept.
        let delivered = if self.history {
            "UPDATE messages SET pending = 0 WHERE recipient_key = ? AND pending = 1"
        } else {
            "DELETE FROM messages WHERE recipient_key = ? AND pending = 1"
        };
        sqlx::query(delivered)
            .bind(key(account))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored(rows))
    }

    /// Writes the batch in one transaction.
    async fn flush(&mut self) {
        self.deadline = None;
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.write(&batch).await {
            Ok(()) => self.written += batch.len() as u64,
            Err(error) => error!(%error, lost = batch.len(), "could not write a history batch"),
        }
    }

    /// Writes a batch in one transaction, many rows per statement: per-statement overhead,
    /// not the disk, is what storing costs at chat rates.
    async fn write(&self, batch: &[Record]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for rows in batch.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (target, sender, recipient_key, body, sent_at, pending) ",
            );
            insert.push_values(rows, |mut row, record| {
                row.push_bind(record.conversation.key())
                    .push_bind(record.from.as_str().to_owned())
                    .push_bind(record.to.as_ref().map(key))
                    .push_bind(record.text.clone())
                    .push_bind(millis(record.at))
                    .push_bind(i64::from(record.pending));
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Applies the retention settings. Queued private messages are kept until delivered.
    async fn prune(&self) {
        let mut removed = 0;
        if self.keep_days > 0 {
            let cutoff = SystemTime::now()
                .checked_sub(Duration::from_secs(self.keep_days * 86_400))
                .unwrap_or(UNIX_EPOCH);
            // Rows are in time order by id, so this hourly scan needs no index on the time,
            // which would cost every insert.
            let result = sqlx::query("DELETE FROM messages WHERE pending = 0 AND sent_at < ?")
                .bind(millis(cutoff))
                .execute(&self.pool)
                .await;
            removed += log_failure("pruning old history", result).map_or(0, |r| r.rows_affected());
        }
        if self.keep_per_conversation > 0 {
            let keep = i64::try_from(self.keep_per_conversation).unwrap_or(i64::MAX);
            let result = sqlx::query(
                "DELETE FROM messages WHERE pending = 0 AND id IN ( \
                   SELECT id FROM ( \
                     SELECT id, ROW_NUMBER() OVER (PARTITION BY target ORDER BY id DESC) AS newer \
                     FROM messages) AS ranked \
                   WHERE newer > ?)",
            )
            .bind(keep)
            .execute(&self.pool)
            .await;
            removed += log_failure("pruning long history", result).map_or(0, |r| r.rows_affected());
        }
        if removed > 0 {
            info!(removed, "pruned history");
        }
    }
}

fn stored(rows: Vec<(String, String, i64)>) -> Vec<StoredMessage> {
    rows.into_iter()
        .filter_map(|(from, text, at)| {
            Some(StoredMessage {
                from: Name::parse(&from).ok()?,
                text,
                at: UNIX_EPOCH + Duration::from_millis(u64::try_from(at).ok()?),
            })
        })
        .collect()
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
