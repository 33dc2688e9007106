//! The embedded database, SQLite, and the SQL that is its own (what both kinds run alike is
//! `backend::Sql`'s): the default store, one file in the data directory. One read-write
//! connection is the writer task's; reads have read-only connections of their own, which
//! SQLite's write-ahead log lets read a committed snapshot while the writer writes.
//!
//! Message ids are given out where messages are accepted, in blocks the writer reserves from
//! the `message_ids` counter (`ids.rs`), as on PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool};
use tracing::info;

use super::actor::{Batch, Known, stored};
use super::backend::{Database, Sql, Straddling, Unwritten, embedded_migrator};
use super::{
    Conversation, Loaded, ReadMarker, StorageError, StorageOptions, StoredMessage, chunk, files,
    key,
};
use crate::server::member::UserId;
use linechat_protocol::{Name, Topic};

/// Most rows per `INSERT` statement: 7 parameters each, well under SQLite's limit of 32766.
/// Statements come in the powers of two up to it, so that every batch is written with a few
/// statements that SQLite has already prepared (sqlx caches them by their text).
const ROWS_PER_INSERT: usize = 1024;
/// The columns a message row is written with, and a chunk (see `chunk.rs`).
const MESSAGE_COLUMNS: &str =
    "messages (id, conversation, sender, recipient_key, body, sent_at, pending)";
const CHUNK_COLUMNS: &str = "chunks (id, conversation, first_id, count, first_at, last_at, body)";
/// The columns of a message's entry in the search index.
const SEARCH_COLUMNS: &str = "message_search (rowid, conversation, text)";
/// The ids of a conversation's messages that match an FTS5 query, newest first (`Sql::search`).
/// FTS5 gives its matches in rowid order, so `ORDER BY rowid DESC LIMIT` stops at the count.
pub(super) const SEARCH: &str = "SELECT rowid FROM message_search \
    WHERE message_search MATCH $2 AND conversation = $1 ORDER BY rowid DESC LIMIT $3";
/// Chunks decoded at a time when the search index is filled from those stored before it.
const BACKFILL_CHUNKS: i64 = 256;
pub(super) const DATABASE_FILE: &str = "linechat.db";
/// The page size of a new database.
const PAGE_SIZE: u32 = 16_384;

/// The schema's migrations, in `migrations/`, embedded in the binary. Listed here rather
/// than found by `sqlx::migrate!`, whose procedural macro builds a second SQLite (for the
/// build machine) into every build; the checksums are the same as the macro's, so databases
/// it migrated are recognised. A test checks that every file of the folder is listed.
pub(super) fn migrator() -> Migrator {
    embedded_migrator!(
        "migrations/",
        (1, "initial", "0001_initial.sql"),
        (2, "identities", "0002_identities.sql"),
        (3, "conversation ids", "0003_conversation_ids.sql"),
        (4, "history chunks", "0004_history_chunks.sql"),
        (5, "room topics", "0005_room_topics.sql"),
        (6, "message id blocks", "0006_message_id_blocks.sql"),
        (7, "read markers", "0007_read_markers.sql"),
        (8, "message search", "0008_message_search.sql"),
    )
}

/// The writer's side: its one connection, and its `INSERT` statements.
pub(super) struct Writer {
    pool: SqlitePool,
    /// `INSERT` statements for `1 << n` message rows, by `n`.
    message_inserts: Vec<Arc<str>>,
    /// The same for chunks.
    chunk_inserts: Vec<Arc<str>>,
    /// The same for the search index's entries.
    search_inserts: Vec<Arc<str>>,
}

/// Opens the database, migrates it, and reads what is kept in memory.
pub(super) async fn open(options: &StorageOptions) -> Result<(Writer, Loaded), StorageError> {
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
    // connections of their own (`Reader`).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await?;
    migrator().run(&pool).await?;
    info!(path = %path.display(), "database open");

    let loaded = Sql::load(&pool).await?;
    let writer = Writer {
        pool,
        message_inserts: insert_statements(MESSAGE_COLUMNS),
        chunk_inserts: insert_statements(CHUNK_COLUMNS),
        search_inserts: insert_statements(SEARCH_COLUMNS),
    };
    writer.backfill_search().await?;
    Ok((writer, loaded))
}

impl Database for Writer {
    async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts an account and returns its id. In an explicit transaction: with `RETURNING`,
    /// the id comes back before the statement's own commit, whose failure (a full disk)
    /// would otherwise go unseen.
    async fn insert_account(&self, name: &Name, hash: String) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id = Sql::insert_account(&mut *tx, name, hash).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn create_room(&self, room: &Name, creator: &Name) -> Result<bool, sqlx::Error> {
        Sql::create_room(&self.pool, room, creator).await
    }

    async fn reserve_ids(&self, count: i64) -> Result<i64, sqlx::Error> {
        Sql::reserve_ids(&self.pool, count).await
    }

    async fn set_topic(&self, room: &Name, topic: Option<&Topic>) -> Result<(), sqlx::Error> {
        Sql::set_topic(&self.pool, room, topic).await
    }

    async fn join(&self, account: &Name, room: &Name) -> Result<(), sqlx::Error> {
        Sql::join(&self.pool, account, room).await
    }

    async fn leave(&self, account: &Name, room: &Name) -> Result<(), sqlx::Error> {
        Sql::leave(&self.pool, account, room).await
    }

    async fn mark_read(&self, marker: &ReadMarker) -> Result<i64, sqlx::Error> {
        Sql::mark_read(&self.pool, marker).await
    }

    async fn is_remembered(&self, room: &Name) -> Result<bool, sqlx::Error> {
        let remembered: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM memberships WHERE room_key = ? LIMIT 1")
                .bind(key(room))
                .fetch_optional(&self.pool)
                .await?;
        Ok(remembered.is_some())
    }

    async fn delete_room(&self, room: &Name) -> Result<(), sqlx::Error> {
        Sql::delete_room(&self.pool, room).await
    }

    async fn deliver_pending(
        &self,
        account: &UserId,
        keep_history: bool,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, sender, body, sent_at FROM messages \
             WHERE recipient_key = ? AND pending = 1 ORDER BY id",
        )
        .bind(account.key())
        .fetch_all(&mut *tx)
        .await?;
        // Delivered, they become history, unless no history is kept.
        let delivered = if keep_history {
            "UPDATE messages SET pending = 0 WHERE recipient_key = ? AND pending = 1"
        } else {
            sqlx::query(
                "DELETE FROM message_search WHERE rowid IN \
                 (SELECT id FROM messages WHERE recipient_key = ? AND pending = 1)",
            )
            .bind(account.key())
            .execute(&mut *tx)
            .await?;
            "DELETE FROM messages WHERE recipient_key = ? AND pending = 1"
        };
        sqlx::query(delivered)
            .bind(account.key())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored(rows))
    }

    /// Writes a batch in one transaction, a few `INSERT`s of many rows each: per-statement
    /// overhead, not the disk, is what storing costs at chat rates. A batch that fails is
    /// lost (a full disk does not pass by waiting).
    async fn write(
        &self,
        batch: Batch,
        known: &HashMap<Conversation, Known>,
    ) -> Result<HashMap<Conversation, i64>, Unwritten> {
        self.write_batch(batch, known)
            .await
            .map_err(|error| Unwritten { error, batch: None })
    }

    async fn delete_older(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        // An hourly scan needs no index on the time, which would cost every insert.
        // The search index first: its entries are found through the rows and chunks.
        let unindex = [
            "DELETE FROM message_search WHERE rowid IN \
             (SELECT id FROM messages WHERE pending = 0 AND sent_at < $1)",
            "DELETE FROM message_search WHERE rowid IN (SELECT s.rowid \
             FROM chunks c JOIN message_search s ON s.rowid >= c.first_id AND s.rowid <= c.id \
             AND s.conversation = c.conversation WHERE c.last_at < $1)",
        ];
        Sql::delete_each(&self.pool, unindex, cutoff).await?;
        let deletes = [
            "DELETE FROM messages WHERE pending = 0 AND sent_at < $1",
            "DELETE FROM chunks WHERE last_at < $1",
        ];
        Sql::delete_each(&self.pool, deletes, cutoff).await
    }

    async fn straddling_older(&self, cutoff: i64) -> Result<Vec<Straddling>, sqlx::Error> {
        let select =
            "SELECT id, first_id, body, 0 FROM chunks WHERE first_at < $1 AND last_at >= $1";
        Sql::straddling(&self.pool, select, cutoff).await
    }

    async fn delete_beyond(&self, keep: i64) -> Result<u64, sqlx::Error> {
        let unindex = [AssertSqlSafe(format!(
            "{RANKED} DELETE FROM message_search WHERE rowid IN ( \
               SELECT m.id FROM ranked r JOIN messages m ON m.id = r.id \
               WHERE r.kind = 'messages' AND m.pending = 0 AND r.newer >= $1 \
               UNION ALL \
               SELECT s.rowid FROM ranked r JOIN chunks c ON c.id = r.id \
               JOIN message_search s ON s.rowid >= c.first_id AND s.rowid <= c.id \
               AND s.conversation = c.conversation \
               WHERE r.kind = 'chunks' AND r.newer >= $1)"
        ))];
        Sql::delete_each(&self.pool, unindex, keep).await?;
        let deletes = [("messages", "pending = 0 AND "), ("chunks", "")].map(|(table, which)| {
            AssertSqlSafe(format!(
                "{RANKED} DELETE FROM {table} WHERE {which}id IN ( \
                   SELECT id FROM ranked WHERE kind = '{table}' AND newer >= $1)"
            ))
        });
        Sql::delete_each(&self.pool, deletes, keep).await
    }

    async fn straddling_beyond(&self, keep: i64) -> Result<Vec<Straddling>, sqlx::Error> {
        let select = AssertSqlSafe(format!(
            "{RANKED} SELECT chunks.id, chunks.first_id, chunks.body, \
               ranked.n - ($1 - ranked.newer) \
             FROM ranked JOIN chunks ON chunks.id = ranked.id \
             WHERE ranked.kind = 'chunks' AND ranked.newer < $1 AND ranked.newer + ranked.n > $1"
        ));
        Sql::straddling(&self.pool, select, keep).await
    }

    async fn rewrite_chunks(
        &self,
        chunks: Vec<(i64, Option<chunk::ChunkWriter>)>,
    ) -> Result<(), sqlx::Error> {
        Sql::rewrite_chunks(&self.pool, chunks).await
    }

    /// After a failed write. SQLite may keep a transaction open when its `COMMIT` fails (a
    /// full disk, for one), and the pool would hand the same connection on with it: every
    /// later write would then run inside it, be acknowledged, and never be committed. An
    /// explicit `ROLLBACK` ends it; with no transaction open it only fails harmlessly.
    async fn roll_back_leftovers(&self) {
        let _ = sqlx::query("ROLLBACK").execute(&self.pool).await;
    }

    /// Makes the database "full" at its current size, to test the failure paths.
    #[cfg(test)]
    async fn fill_up(&self) {
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
    }
}

/// Rows and chunks newest first per conversation, each with the count of messages newer
/// than it: one is deleted once that many are kept without it. Queued rows count, as they
/// are history too once delivered.
const RANKED: &str = "WITH ranked AS ( \
    SELECT id, kind, n, COALESCE(SUM(n) OVER (PARTITION BY conversation \
      ORDER BY id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer \
    FROM (SELECT id, conversation, 1 AS n, 'messages' AS kind FROM messages \
          UNION ALL \
          SELECT id, conversation, count AS n, 'chunks' AS kind FROM chunks) AS items)";

impl Writer {
    async fn write_batch(
        &self,
        batch: Batch,
        known: &HashMap<Conversation, Known>,
    ) -> Result<HashMap<Conversation, i64>, sqlx::Error> {
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
                Sql::file(&mut *tx, known, &mut filed, &conversation).await?;
        }
        let mut filed_rows = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            let conversation = Sql::file(&mut *tx, known, &mut filed, &record.conversation).await?;
            filed_rows.push((id.get(), conversation, record));
        }
        let rows = filed_rows;
        let mut entries: Vec<(i64, i64, String)> = rows
            .iter()
            .map(|(id, conversation, record)| (*id, *conversation, record.text.to_string()))
            .collect();
        for chunk in &chunks {
            entries.extend(
                chunk::entries(chunk.first_id, &chunk.body)
                    .map(|entry| (entry.id, chunk.conversation, entry.text.to_owned())),
            );
        }
        insert_all(&mut tx, &self.message_inserts, rows, |arguments, row| {
            let (id, conversation, record) = row;
            // Every row is a message queued for its recipient, found by this at their login.
            let recipient = record.recipient().map(|to| to.key());
            arguments.add(id)?;
            arguments.add(conversation)?;
            arguments.add(record.from.as_str().to_owned())?;
            arguments.add(recipient)?;
            arguments.add(String::from(record.text))?;
            arguments.add(record.at)?;
            arguments.add(1_i64)
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
        insert_all(&mut tx, &self.search_inserts, entries, index_entry).await?;
        tx.commit().await?;
        Ok(filed)
    }

    /// Fills the search index from the chunks stored before it was made, once (see
    /// `Sql::backfill_pending`), in one transaction, so that a crash midway starts over.
    async fn backfill_search(&self) -> Result<(), sqlx::Error> {
        if !Sql::backfill_pending(&self.pool).await? {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut after = i64::MIN;
        let mut indexed = 0;
        loop {
            let mut entries = Vec::new();
            let last =
                <Sqlite as Sql>::chunk_entries(&mut tx, after, BACKFILL_CHUNKS, &mut entries)
                    .await?;
            indexed += entries.len();
            insert_all(&mut tx, &self.search_inserts, entries, index_entry).await?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        sqlx::query("DELETE FROM search_backfill")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        info!(indexed, "search index filled from stored history");
        Ok(())
    }
}

/// Binds a search index entry: `(id, conversation, text)`.
fn index_entry(
    arguments: &mut SqliteArguments,
    (id, conversation, text): (i64, i64, String),
) -> Result<(), sqlx::error::BoxDynError> {
    arguments.add(id)?;
    arguments.add(conversation)?;
    arguments.add(text)
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

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

/// Opens the read-only connections; the database must exist (the writer creates and
/// migrates it first).
pub(super) async fn open_reads(
    options: &StorageOptions,
    connections: u32,
) -> Result<SqlitePool, sqlx::Error> {
    let connect = SqliteConnectOptions::new()
        .filename(options.data_dir.join(DATABASE_FILE))
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(connect)
        .await
}
