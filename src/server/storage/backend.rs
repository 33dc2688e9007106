//! What the writer task asks of a database: each kind (`sqlite.rs`, `postgres.rs`) implements
//! [`Database`], and the writer (`actor.rs`) is generic over it, so that the embedded default
//! pays for no choice at run time. The read side picks its database with an enum
//! (`reader.rs`), as the `Store` handle that holds it is one type whatever the kind.
//!
//! The statements both kinds run alike are written once, here ([`Sql`]); each kind's module
//! has only what is its own (SQLite's batch inserts, PostgreSQL's id blocks, SQL whose text
//! differs with the column types).

use std::collections::HashMap;
use std::time::SystemTime;

use futures::TryStreamExt;
use sqlx::{
    Acquire, AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Postgres,
    Row, SqlSafeStr, Sqlite, Transaction, Type,
};
use tracing::warn;

use super::actor::{Batch, Known, millis};
use super::chunk::{self, ChunkWriter};
use super::reader::{OpenChunk, Page, Span, ceil_millis, floor_millis, window_start};
use super::{
    Conversation, End, Loaded, LoadedRoom, PageError, Range, ReadMarker, StoredMessage, key,
};
use crate::server::member::UserId;
use linechat_protocol::{Bound, HistoryPage, Name, Topic};

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

    /// Moves an account's read marker in a conversation forward to `marker.id` (a marker
    /// further on is kept); the marker now.
    fn mark_read(
        &self,
        marker: &ReadMarker,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;

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

    /// Reserves `count` message ids from the `message_ids` counter, in a transaction of its
    /// own; returns the last of them (the first is `count - 1` below it).
    fn reserve_ids(&self, count: i64) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;

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

/// The migrator of a schema whose migration files, in `$folder` of this one, are embedded in
/// the binary: `(version, description, file)` each. The checksums are those `sqlx::migrate!`
/// gives, so that databases it migrated are recognised.
macro_rules! embedded_migrator {
    ($folder:literal, $(($version:literal, $description:literal, $file:literal)),* $(,)?) => {
        sqlx::migrate::Migrator::with_migrations(vec![$(
            sqlx::migrate::Migration::new(
                $version,
                std::borrow::Cow::Borrowed($description),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(include_str!(concat!($folder, $file))),
                false,
            )
        ),*])
    };
}
pub(super) use embedded_migrator;

/// A kind of database the store runs on (sqlx's [`Sqlite`] and [`Postgres`]), with the
/// statements both run alike, written once. Their SQL is one text: SQLite reads PostgreSQL's
/// `$1` placeholders, and sqlx binds them by number on both. The where clauses are what the
/// statements bind and read; a statement whose text has to differ (a cast, a boolean column
/// that is an integer in SQLite) is passed in by its kind's module.
pub(super) trait Sql: sqlx::Database
where
    Self::Arguments: IntoArguments<Self>,
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
    for<'q> i64: Encode<'q, Self> + Decode<'q, Self> + Type<Self>,
    for<'q> String: Encode<'q, Self> + Decode<'q, Self> + Type<Self>,
    for<'q> &'q str: Encode<'q, Self> + Type<Self>,
    for<'q> Option<&'q str>: Encode<'q, Self>,
    for<'q> Option<i64>: Encode<'q, Self>,
    for<'q> Vec<u8>: Encode<'q, Self> + Decode<'q, Self> + Type<Self>,
    for<'r> &'r [u8]: Decode<'r, Self> + Type<Self>,
    usize: ColumnIndex<Self::Row>,
{
    /// How many rows a statement changed (sqlx has it on each kind's result, not on a trait).
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// The column of `message_search` that holds a message's id: FTS5's `rowid` on SQLite,
    /// an ordinary column on PostgreSQL.
    const SEARCH_ID: &'static str;

    /// What the server keeps in memory: the accounts and the rooms.
    async fn load(pool: &Pool<Self>) -> Result<Loaded, sqlx::Error> {
        let mut loaded = Loaded::default();
        let accounts: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, name, password_hash FROM accounts")
                .fetch_all(pool)
                .await?;
        for (id, name, hash) in accounts {
            match Name::parse(&name) {
                Ok(name) => loaded.accounts.push((id, name, hash)),
                Err(error) => warn!(name, %error, "skipping an account with a bad name"),
            }
        }
        let rooms: Vec<LoadedRoom> =
            sqlx::query_as("SELECT name, creator, topic, topic_by, topic_at FROM rooms")
                .fetch_all(pool)
                .await?;
        for room in rooms {
            loaded.add_room(room);
        }
        Ok(loaded)
    }

    /// See [`Database::insert_account`]; on `executor`, a transaction or the pool.
    async fn insert_account<'e>(
        executor: impl Executor<'e, Database = Self>,
        name: &Name,
        hash: String,
    ) -> Result<i64, sqlx::Error> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO accounts (name_key, name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(key(name))
        .bind(name.as_str())
        .bind(hash)
        .bind(millis(SystemTime::now()))
        .fetch_one(executor)
        .await?;
        Ok(id)
    }

    /// See [`Database::reserve_ids`].
    async fn reserve_ids(pool: &Pool<Self>, count: i64) -> Result<i64, sqlx::Error> {
        // In an explicit transaction: with `RETURNING`, the value comes back before the
        // statement's own commit, whose failure would otherwise go unseen (SQLite).
        let mut tx = pool.begin().await?;
        let (last,): (i64,) =
            sqlx::query_as("UPDATE message_ids SET last = last + $1 RETURNING last")
                .bind(count)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(last)
    }

    /// See [`Database::create_room`].
    async fn create_room(
        pool: &Pool<Self>,
        room: &Name,
        creator: &Name,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query(
            "INSERT INTO rooms (name_key, name, creator, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key(room))
        .bind(room.as_str())
        .bind(creator.as_str())
        .bind(millis(SystemTime::now()))
        .execute(pool)
        .await
        .map(|done| Self::rows_affected(&done) > 0)
    }

    /// See [`Database::set_topic`].
    async fn set_topic(
        pool: &Pool<Self>,
        room: &Name,
        topic: Option<&Topic>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE rooms SET topic = $1, topic_by = $2, topic_at = $3 WHERE name_key = $4")
            .bind(topic.map(|topic| topic.text.as_str()))
            .bind(topic.map(|topic| topic.by.as_str()))
            .bind(topic.map(|topic| millis(topic.at)))
            .bind(key(room))
            .execute(pool)
            .await
            .map(drop)
    }

    /// See [`Database::join`].
    async fn join(pool: &Pool<Self>, account: &Name, room: &Name) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO memberships (account_key, room_key) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key(account))
        .bind(key(room))
        .execute(pool)
        .await
        .map(drop)
    }

    /// See [`Database::leave`].
    async fn leave(pool: &Pool<Self>, account: &Name, room: &Name) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM memberships WHERE account_key = $1 AND room_key = $2")
            .bind(key(account))
            .bind(key(room))
            .execute(pool)
            .await
            .map(drop)
    }

    /// See [`Database::mark_read`].
    async fn mark_read(pool: &Pool<Self>, marker: &ReadMarker) -> Result<i64, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO read_markers (account, conversation, target, message_id) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, conversation) DO UPDATE \
             SET message_id = excluded.message_id, target = excluded.target \
             WHERE excluded.message_id > read_markers.message_id",
        )
        .bind(marker.account)
        .bind(marker.conversation.key())
        .bind(marker.target.as_str())
        .bind(marker.id.get())
        .execute(&mut *tx)
        .await?;
        let (now,): (i64,) = sqlx::query_as(
            "SELECT message_id FROM read_markers WHERE account = $1 AND conversation = $2",
        )
        .bind(marker.account)
        .bind(marker.conversation.key())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(now)
    }

    /// See [`Database::delete_room`].
    async fn delete_room(pool: &Pool<Self>, room: &Name) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM rooms WHERE name_key = $1 \
             AND NOT EXISTS (SELECT 1 FROM memberships WHERE room_key = $1)",
        )
        .bind(key(room))
        .execute(&mut *tx)
        .await?;
        if Self::rows_affected(&deleted) > 0 {
            let conversation = Conversation::Room(room.clone()).key();
            for delete in [
                "DELETE FROM message_search WHERE conversation IN \
                 (SELECT id FROM conversations WHERE key = $1)",
                "DELETE FROM messages WHERE conversation IN \
                 (SELECT id FROM conversations WHERE key = $1)",
                "DELETE FROM chunks WHERE conversation IN \
                 (SELECT id FROM conversations WHERE key = $1)",
            ] {
                sqlx::query(delete)
                    .bind(&conversation)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Runs each of `deletes` with `value` as its one parameter; how many rows they deleted
    /// in all. For the pruning of history, whose statements differ with the kind.
    async fn delete_each<S: SqlSafeStr>(
        pool: &Pool<Self>,
        deletes: impl IntoIterator<Item = S>,
        value: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut removed = 0;
        for delete in deletes {
            let done = sqlx::query(delete).bind(value).execute(pool).await?;
            removed += Self::rows_affected(&done);
        }
        Ok(removed)
    }

    /// The chunks `select` finds with `value` as its one parameter (see [`Straddling`]).
    async fn straddling(
        pool: &Pool<Self>,
        select: impl SqlSafeStr,
        value: i64,
    ) -> Result<Vec<Straddling>, sqlx::Error> {
        sqlx::query_as(select).bind(value).fetch_all(pool).await
    }

    /// See [`Database::rewrite_chunks`].
    async fn rewrite_chunks(
        pool: &Pool<Self>,
        chunks: Vec<(i64, Option<ChunkWriter>)>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        for (id, kept) in chunks {
            // What the chunk no longer holds leaves the search index: its oldest messages,
            // up to what is kept of it (all of them if nothing is).
            let kept_from = kept.as_ref().map_or(i64::MAX, |chunk| chunk.first_id);
            let id_column = Self::SEARCH_ID;
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM message_search WHERE {id_column} IN ( \
                   SELECT s.{id_column} FROM chunks c JOIN message_search s \
                   ON s.{id_column} >= c.first_id AND s.{id_column} <= c.id \
                   AND s.{id_column} < $2 AND s.conversation = c.conversation \
                   WHERE c.id = $1)"
            )))
            .bind(id)
            .bind(kept_from)
            .execute(&mut *tx)
            .await?;
            match kept {
                Some(chunk) => {
                    sqlx::query(
                        "UPDATE chunks SET id = $1, first_id = $2, count = $3, first_at = $4, \
                         last_at = $5, body = $6 WHERE id = $7",
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
                    sqlx::query("DELETE FROM chunks WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await
    }

    /// The id of `conversation`: known, filed earlier for this batch, or filed now, on a
    /// connection of `connection` (taken only then). Its future is declared `Send` rather
    /// than left to be inferred, which the compiler cannot do through `Acquire`'s lifetimes.
    fn file<'a>(
        connection: impl Acquire<'a, Database = Self> + Send + 'a,
        known: &'a HashMap<Conversation, Known>,
        filed: &'a mut HashMap<Conversation, i64>,
        conversation: &'a Conversation,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send + 'a {
        async move {
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
            let mut connection = connection.acquire().await?;
            let key = conversation.key();
            sqlx::query("INSERT INTO conversations (key) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(&key)
                .execute(&mut *connection)
                .await?;
            let (id,): (i64,) = sqlx::query_as("SELECT id FROM conversations WHERE key = $1")
                .bind(&key)
                .fetch_one(&mut *connection)
                .await?;
            filed.insert(conversation.clone(), id);
            Ok(id)
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reads (`reader.rs`)
    // -----------------------------------------------------------------------------------------

    /// The id `conversation` is filed under, if it has ever had a message.
    async fn conversation_id(
        connection: &mut Self::Connection,
        conversation: &Conversation,
    ) -> Result<Option<i64>, sqlx::Error> {
        let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM conversations WHERE key = $1")
            .bind(conversation.key())
            .fetch_optional(&mut *connection)
            .await?;
        Ok(id.map(|(id,)| id))
    }

    /// See [`super::Store::history_range`]: every query of a page reads the snapshot of `tx`,
    /// which it ends.
    async fn history_range(
        mut tx: Transaction<'static, Self>,
        conversation: &Conversation,
        range: Range,
        count: u32,
        from: End,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let Some(conversation) = Self::conversation_id(&mut tx, conversation).await? else {
            return Ok(Vec::new());
        };
        let span = Span::of(range);
        let start = match from {
            _ if span.is_empty() => None,
            End::Oldest => Some((span.from, 0)),
            End::Newest => Self::window(&mut tx, conversation, span, count).await?,
        };
        let page = match start {
            Some((from, skip)) => {
                let span = Span { from, ..span };
                Self::read_page(&mut tx, conversation, span, skip, limit).await?
            }
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(page)
    }

    /// Where the last `window` messages of `span` start, and how many messages from there
    /// on precede them: see `reader::window_start`; `None` if the span holds no message.
    async fn window(
        connection: &mut Self::Connection,
        conversation: i64,
        span: Span,
        window: u32,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let window = i64::from(window.max(1));
        // Each row or chunk holds at least one message of the span: `window` of each is
        // enough.
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM messages WHERE conversation = $1 AND id >= $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .bind(window)
        .fetch_all(&mut *connection)
        .await?;
        let mut chunks: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT id, first_id, count FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id < $3 \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .bind(window)
        .fetch_all(&mut *connection)
        .await?;
        // A chunk that runs past the span's end holds fewer of its messages than its count:
        // counted from its body, so that the window is not taken to start later than it does.
        // (One that starts before the span's start makes the window start there anyway.)
        if chunks.iter().any(|&(id, _, _)| id >= span.until) {
            let past_end: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, first_id, body FROM chunks \
                 WHERE conversation = $1 AND id >= $2 AND first_id < $2",
            )
            .bind(conversation)
            .bind(span.until)
            .fetch_all(&mut *connection)
            .await?;
            for (id, first_id, body) in past_end {
                if let Some(chunk) = chunks.iter_mut().find(|chunk| chunk.0 == id) {
                    chunk.2 = span.count_in(first_id, &body);
                }
            }
        }
        let Some(start) = window_start(rows, chunks, window) else {
            return Ok(None);
        };
        let start = start.max(span.from);
        let from_on = Self::count_in(
            connection,
            conversation,
            Span {
                from: start,
                ..span
            },
        )
        .await?;
        Ok(Some((start, (from_on - window).max(0))))
    }

    /// How many messages of a conversation `span` holds: its rows' and its chunks' counts,
    /// and for a chunk that starts before the span or runs past its end (only one whose ids
    /// overlap another's, see `reader.rs`, or one a bound falls in), its messages in the span,
    /// read from its body.
    async fn count_in(
        connection: &mut Self::Connection,
        conversation: i64,
        span: Span,
    ) -> Result<i64, sqlx::Error> {
        let (rows,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE conversation = $1 AND id >= $2 AND id < $3",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .fetch_one(&mut *connection)
        .await?;
        // Chunks wholly in the span, counted from the index alone.
        let (whole,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id >= $2 AND id < $3",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .fetch_one(&mut *connection)
        .await?;
        let straddling: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_id, body FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id < $3 \
             AND (first_id < $2 OR id >= $3)",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .fetch_all(&mut *connection)
        .await?;
        let in_chunks = whole
            + straddling
                .iter()
                .map(|(first_id, body)| span.count_in(*first_id, body))
                .sum::<i64>();
        Ok(rows + in_chunks)
    }

    /// The `limit` messages of a conversation's `span`, after skipping the first `skip` of
    /// them: rows and chunks' messages merged by id. Chunks are read one at a time, in the
    /// order of their ids, and only until the page is full; only the messages returned are
    /// copied out of them. As chunks may overlap (see `reader.rs`), a chunk's message is taken
    /// only once every chunk that starts before it is open: their first ids, listed from the
    /// index first, tell how far to read ahead (no further than the next chunk when none
    /// overlap).
    async fn read_page(
        connection: &mut Self::Connection,
        conversation: i64,
        span: Span,
        skip: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let mut page = Page::new(skip, limit);
        if page.is_full() {
            return Ok(page.messages);
        }
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, sender, body, sent_at FROM messages \
             WHERE conversation = $1 AND id >= $2 AND id < $3 ORDER BY id LIMIT $4",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .bind(skip + i64::from(limit))
        .fetch_all(&mut *connection)
        .await?;
        let mut rows = rows.into_iter().peekable();
        let first_ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT first_id FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id < $3 ORDER BY id",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .fetch_all(&mut *connection)
        .await?;
        // `starts[k]`: the lowest first id of the chunks from the `k`th on.
        let mut starts = vec![i64::MAX; first_ids.len() + 1];
        for (k, (first_id,)) in first_ids.iter().enumerate().rev() {
            starts[k] = starts[k + 1].min(*first_id);
        }
        let mut chunks = sqlx::query(
            "SELECT first_id, body FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id < $3 ORDER BY id",
        )
        .bind(conversation)
        .bind(span.from)
        .bind(span.until)
        .fetch(&mut *connection);
        let mut open: Vec<OpenChunk> = Vec::new();
        let mut opened = 0;
        loop {
            let next = open
                .iter()
                .enumerate()
                .filter_map(|(index, chunk)| Some((chunk.next_id()?, index)))
                .min();
            if opened < first_ids.len() && next.is_none_or(|(next, _)| starts[opened] < next) {
                let Some(chunk) = chunks.try_next().await? else {
                    break;
                };
                open.push(OpenChunk::new(chunk.try_get(0)?, chunk.try_get(1)?, span));
                opened += 1;
                continue;
            }
            let Some((_, index)) = next else {
                break;
            };
            if page.add_next(&mut open[index], &mut rows) {
                return Ok(page.messages);
            }
            if open[index].next_id().is_none() {
                open.swap_remove(index);
            }
        }
        drop(chunks);
        Ok(page.finish(rows))
    }

    /// An account's read markers, with how many messages of each conversation come after
    /// its marker there (`(conversation key, target, marker, count)`), in one snapshot.
    async fn unread(
        mut tx: Transaction<'static, Self>,
        account: i64,
    ) -> Result<Vec<(String, String, i64, i64)>, sqlx::Error> {
        let markers: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT conversation, target, message_id FROM read_markers WHERE account = $1 \
             ORDER BY target",
        )
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        let mut unread = Vec::with_capacity(markers.len());
        for (key, target, marker) in markers {
            let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM conversations WHERE key = $1")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
            let count = match id {
                Some((conversation,)) => {
                    let after = Span {
                        from: marker.saturating_add(1),
                        until: i64::MAX,
                    };
                    Self::count_in(&mut tx, conversation, after).await?
                }
                None => 0,
            };
            unread.push((key, target, marker, count));
        }
        tx.commit().await?;
        Ok(unread)
    }

    /// An account's read marker in the conversation of key `conversation`, if it set one.
    async fn read_marker(
        pool: &Pool<Self>,
        account: i64,
        conversation: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let marker: Option<(i64,)> = sqlx::query_as(
            "SELECT message_id FROM read_markers WHERE account = $1 AND conversation = $2",
        )
        .bind(account)
        .bind(conversation)
        .fetch_optional(pool)
        .await?;
        Ok(marker.map(|(id,)| id))
    }

    /// See [`super::Store::resolve_page`]: the bounds are checked and placed in one snapshot,
    /// that of `tx`, which it ends.
    async fn resolve_page(
        mut tx: Transaction<'static, Self>,
        conversation: &Conversation,
        page: HistoryPage,
    ) -> Result<Option<(Range, End)>, PageError> {
        let mut ids = match page {
            HistoryPage::Latest => [None, None],
            HistoryPage::Before(bound) | HistoryPage::After(bound) => [Some(bound), None],
            HistoryPage::Between(first, second) => [Some(first), Some(second)],
        }
        .into_iter()
        .filter_map(|bound| match bound {
            Some(Bound::Id(id)) => Some(id),
            _ => None,
        });
        let Some(conversation) = Self::conversation_id(&mut tx, conversation).await? else {
            // Nothing was ever said there: no id is one of its messages, and no page holds
            // anything.
            return match ids.next() {
                Some(id) => Err(PageError::NoSuchMessage(id)),
                None => Ok(None),
            };
        };
        for id in ids {
            if !Self::holds(&mut tx, conversation, id).await? {
                return Err(PageError::NoSuchMessage(id));
            }
        }
        let place = match page {
            HistoryPage::Latest => Some((Range::default(), End::Newest)),
            HistoryPage::Before(bound) => {
                let before = Self::before(&mut tx, conversation, bound).await?;
                Some((Range::between(None, before), End::Newest))
            }
            HistoryPage::After(bound) => Self::after(&mut tx, conversation, bound)
                .await?
                .map(|after| (Range::between(Some(after), None), End::Oldest)),
            HistoryPage::Between(first, second) => {
                // A time is older than an id when the id is of the messages from that time
                // on (`before` places the time in front of them).
                let first_is_older = match (first, second) {
                    (Bound::Id(a), Bound::Id(b)) => a < b,
                    (Bound::Time(a), Bound::Time(b)) => a < b,
                    (Bound::Id(id), time @ Bound::Time(_)) => {
                        let time = Self::before(&mut tx, conversation, time).await?;
                        time.is_none_or(|time| id < time)
                    }
                    (time @ Bound::Time(_), Bound::Id(id)) => {
                        let time = Self::before(&mut tx, conversation, time).await?;
                        time.is_some_and(|time| id >= time)
                    }
                };
                let (older, newer, from) = if first_is_older {
                    (first, second, End::Oldest)
                } else {
                    (second, first, End::Newest)
                };
                match Self::after(&mut tx, conversation, older).await? {
                    Some(after) => {
                        let before = Self::before(&mut tx, conversation, newer).await?;
                        Some((Range::between(Some(after), before), from))
                    }
                    None => None,
                }
            }
        };
        tx.commit().await?;
        Ok(place)
    }

    /// The id a page after `bound` starts after: the bound's own, or for a time, the one
    /// before the first message kept after it; `None` if no message was kept after it.
    async fn after(
        connection: &mut Self::Connection,
        conversation: i64,
        bound: Bound,
    ) -> Result<Option<i64>, sqlx::Error> {
        match bound {
            Bound::Id(id) => Ok(Some(id)),
            Bound::Time(time) => {
                let first = Self::first_from(connection, conversation, floor_millis(time) + 1);
                Ok(first.await?.map(|id| id - 1))
            }
        }
    }

    /// The id a page before `bound` ends before: the bound's own, or for a time, that of
    /// the first message kept at that time or after; `None` if none was, so that every
    /// message is before it.
    async fn before(
        connection: &mut Self::Connection,
        conversation: i64,
        bound: Bound,
    ) -> Result<Option<i64>, sqlx::Error> {
        match bound {
            Bound::Id(id) => Ok(Some(id)),
            Bound::Time(time) => {
                Self::first_from(connection, conversation, ceil_millis(time)).await
            }
        }
    }

    /// The lowest id of a conversation's messages kept at `at` (Unix milliseconds) or after:
    /// where the messages from that time on begin, in the conversation's order. Ids, not
    /// times, order history, and the times of neighbouring messages need not grow (clocks
    /// of several nodes, a message written a moment late), so the lowest such id is looked
    /// for among every row and chunk that may hold one: rows by their time, a chunk wholly
    /// from then on by its first id, and one whose time span straddles `at` from its body.
    async fn first_from(
        connection: &mut Self::Connection,
        conversation: i64,
        at: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let (row,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(id) FROM messages WHERE conversation = $1 AND sent_at >= $2",
        )
        .bind(conversation)
        .bind(at)
        .fetch_one(&mut *connection)
        .await?;
        let (whole,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(first_id) FROM chunks WHERE conversation = $1 AND first_at >= $2",
        )
        .bind(conversation)
        .bind(at)
        .fetch_one(&mut *connection)
        .await?;
        let straddling: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_id, body FROM chunks \
             WHERE conversation = $1 AND first_at < $2 AND last_at >= $2",
        )
        .bind(conversation)
        .bind(at)
        .fetch_all(&mut *connection)
        .await?;
        let in_straddling = straddling.iter().filter_map(|(first_id, body)| {
            chunk::entries(*first_id, body)
                .find(|entry| entry.at >= at)
                .map(|entry| entry.id)
        });
        Ok(row.into_iter().chain(whole).chain(in_straddling).min())
    }

    /// Whether message `id` is one of the conversation's: a row of it, or in one of its
    /// chunks (only a chunk whose ids span `id` may hold it).
    async fn holds(
        connection: &mut Self::Connection,
        conversation: i64,
        id: i64,
    ) -> Result<bool, sqlx::Error> {
        let (rows,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM messages WHERE conversation = $1 AND id = $2")
                .bind(conversation)
                .bind(id)
                .fetch_one(&mut *connection)
                .await?;
        if rows > 0 {
            return Ok(true);
        }
        let spanning: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_id, body FROM chunks \
             WHERE conversation = $1 AND id >= $2 AND first_id <= $2",
        )
        .bind(conversation)
        .bind(id)
        .fetch_all(&mut *connection)
        .await?;
        Ok(spanning
            .iter()
            .any(|(first_id, body)| chunk::entries(*first_id, body).any(|entry| entry.id == id)))
    }

    /// The rooms `account` is in, by their names as created.
    /// See [`super::Store::search`]: `select` (each kind's, see `search.rs`) finds the ids
    /// of the matching messages of a conversation, newest first, binding the conversation's
    /// id, the query and the count; each is then read back from history as `HISTORY` reads
    /// it, in the same snapshot, so that the index answers only with what history holds.
    async fn search(
        mut tx: Transaction<'static, Self>,
        conversation: &Conversation,
        select: impl SqlSafeStr,
        query: String,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let Some(conversation) = Self::conversation_id(&mut tx, conversation).await? else {
            return Ok(Vec::new());
        };
        let ids: Vec<(i64,)> = sqlx::query_as(select)
            .bind(conversation)
            .bind(query)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut found = Vec::with_capacity(ids.len());
        for (id,) in ids {
            let span = Span {
                from: id,
                until: id.saturating_add(1),
            };
            found.extend(Self::read_page(&mut tx, conversation, span, 0, 1).await?);
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Whether the search index still has to be filled from the chunks stored before it was
    /// made (its migration leaves a row in `search_backfill`: SQL cannot decode a chunk).
    async fn backfill_pending(pool: &Pool<Self>) -> Result<bool, sqlx::Error> {
        let pending: Option<(i64,)> =
            sqlx::query_as("SELECT CAST(1 AS BIGINT) FROM search_backfill LIMIT 1")
                .fetch_optional(pool)
                .await?;
        Ok(pending.is_some())
    }

    /// Up to `count` chunks with ids above `after`, in id order, decoded into the search
    /// index's entries `(id, conversation, text)`; the last chunk's id, `None` when there are
    /// no more.
    async fn chunk_entries(
        connection: &mut Self::Connection,
        after: i64,
        count: i64,
        entries: &mut Vec<(i64, i64, String)>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let chunks: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, conversation, first_id, body FROM chunks WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(count)
        .fetch_all(&mut *connection)
        .await?;
        let last = chunks.last().map(|chunk| chunk.0);
        for (_, conversation, first_id, body) in chunks {
            entries.extend(
                chunk::entries(first_id, &body)
                    .map(|entry| (entry.id, conversation, entry.text.to_owned())),
            );
        }
        Ok(last)
    }

    async fn memberships(pool: &Pool<Self>, account: &Name) -> Result<Vec<(String,)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT rooms.name FROM memberships \
             JOIN rooms ON rooms.name_key = memberships.room_key \
             WHERE memberships.account_key = $1 ORDER BY rooms.name_key",
        )
        .bind(key(account))
        .fetch_all(pool)
        .await
    }

    /// The account registered as `name` (any case): its id, name as registered and hash.
    async fn account(
        pool: &Pool<Self>,
        name: &Name,
    ) -> Result<Option<(i64, String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT id, name, password_hash FROM accounts WHERE name_key = $1")
            .bind(key(name))
            .fetch_optional(pool)
            .await
    }

    /// The room `name` (any case): its name as created and its creator.
    async fn room(pool: &Pool<Self>, name: &Name) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT name, creator FROM rooms WHERE name_key = $1")
            .bind(key(name))
            .fetch_optional(pool)
            .await
    }
}

impl Sql for Sqlite {
    const SEARCH_ID: &'static str = "rowid";

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Sql for Postgres {
    const SEARCH_ID: &'static str = "id";

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}
