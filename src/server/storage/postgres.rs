//! PostgreSQL, and the SQL that is its own (what both kinds run alike is `backend::Sql`'s):
//! the store several nodes share (`database_url`). The schema is SQLite's
//! (`migrations/postgres/` says what differs); the writer batches and chunks history the
//! same way.
//!
//! Nothing here assumes this process is the only writer:
//! - message ids come from the database: each node hands them out from blocks it reserves
//!   from the `message_ids` counter ahead of need (`ids.rs`), so no two nodes give out one
//!   id; a conversation's chunks from several nodes may cover overlapping ranges of ids,
//!   which reads merge by id (`reader.rs`);
//! - accounts' and conversations' ids are identity columns; unique keys decide a race for an
//!   account name (the loser's `REGISTER` fails), and rooms, memberships and conversations
//!   are inserted with `ON CONFLICT DO NOTHING`, so that the same one made on two nodes at
//!   once is one row and neither fails;
//! - queued private messages are taken with one `UPDATE ... RETURNING`, so that two nodes
//!   never both deliver one.
//!
//! When PostgreSQL is out of reach, sqlx's pools reconnect by themselves; until then a
//! write fails within `ACQUIRE_TIMEOUT` and its client is told (and the writer refuses the
//! next ones at once for a while: `StoreActor::away_until`). A history batch that fails
//! so is given back to the writer, which keeps it and writes it once the database is back.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tracing::info;

use super::actor::{Batch, Known, stored};
use super::backend::{Database, Sql, Straddling, Unwritten, embedded_migrator};
use super::{Conversation, Loaded, ReadMarker, StorageError, StoredMessage, chunk, key, search};
use crate::server::member::UserId;
use linechat_protocol::{Name, Topic};

/// How long a query waits for a connection: while PostgreSQL is out of reach, the time a
/// write takes to fail (and its client to hear so), and that the writer is held up by each.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How a page of history is read: all its queries in one snapshot.
pub(super) const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// The schema's migrations, in `migrations/postgres/`, embedded in the binary (listed by
/// hand, as SQLite's are; a test checks the folder against the list).
pub(super) fn migrator() -> Migrator {
    embedded_migrator!(
        "migrations/postgres/",
        (1, "initial", "0001_initial.sql"),
        (2, "room topics", "0002_room_topics.sql"),
        (3, "message id blocks", "0003_message_id_blocks.sql"),
        (4, "read markers", "0004_read_markers.sql"),
        (5, "message search", "0005_message_search.sql"),
    )
}

/// Whether `error` says the database is out of reach (down, restarting, refusing
/// connections, or the connection broke), which passes by itself, rather than refusing what
/// was asked.
pub(super) fn out_of_reach(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            // Connection exceptions; shut down by an administrator, crashed, starting up;
            // too many connections; a deadlock or serialisation failure (tried again).
            code.starts_with("08")
                || code.starts_with("57P0")
                || matches!(&*code, "53300" | "40001" | "40P01")
        }),
        _ => false,
    }
}

/// The options of a pool of `connections` to `url`.
fn pool_options(
    url: &str,
    connections: u32,
) -> Result<(PgPoolOptions, PgConnectOptions), sqlx::Error> {
    let connect = PgConnectOptions::from_str(url)?.application_name("linechat");
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    Ok((pool, connect))
}

/// The writer's side: one connection.
pub(super) struct Writer {
    pool: PgPool,
}

/// Connects, creates or migrates the schema (sqlx's migrator takes an advisory lock, so
/// nodes starting at once take turns), and reads what is kept in memory.
pub(super) async fn open(url: &str) -> Result<(Writer, Loaded), StorageError> {
    let (pool, connect) = pool_options(url, 1)?;
    let pool = pool.connect_with(connect).await?;
    migrator().run(&pool).await?;
    info!("PostgreSQL database open");

    let loaded = Sql::load(&pool).await?;
    let writer = Writer { pool };
    writer.backfill_search().await?;
    Ok((writer, loaded))
}

/// The ids of a conversation's messages that match a `to_tsquery` query, newest first
/// (`Sql::search`): the GIN index finds the matches, which are then sorted by id.
pub(super) const SEARCH: &str = "SELECT id FROM message_search \
    WHERE conversation = $1 AND words @@ to_tsquery('simple', $2) ORDER BY id DESC LIMIT $3";

/// Inserts search index entries `(id, conversation, text)`; the text is indexed as the
/// server cuts it into tokens (`search::tokens`), the same way it cuts a query's words.
const INDEX: &str = "INSERT INTO message_search (id, conversation, words) \
    SELECT id, conversation, to_tsvector('simple', text) \
    FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS entries (id, conversation, text) \
    ON CONFLICT (id) DO NOTHING";

/// Chunks decoded at a time when the search index is filled from those stored before it.
const BACKFILL_CHUNKS: i64 = 256;

async fn index_entries(
    connection: &mut sqlx::PgConnection,
    entries: &[(i64, i64, String)],
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(INDEX)
        .bind(entries.iter().map(|e| e.0).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.1).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| search::tokens(&e.2).join(" "))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Rows and chunks newest first per conversation, each with the count of messages newer
/// than it (as SQLite's, with PostgreSQL's types: a `SUM` of `BIGINT` is `NUMERIC`).
macro_rules! concat_ranked {
    ($statement:literal) => {
        concat!(
            "WITH ranked AS ( \
               SELECT id, kind, n, COALESCE(SUM(n) OVER (PARTITION BY conversation \
                 ORDER BY id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::BIGINT \
                 AS newer \
               FROM (SELECT id, conversation, 1::BIGINT AS n, 'messages' AS kind FROM messages \
                     UNION ALL \
                     SELECT id, conversation, count AS n, 'chunks' AS kind FROM chunks) AS items) ",
            $statement
        )
    };
}

impl Database for Writer {
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_account(&self, name: &Name, hash: String) -> Result<i64, sqlx::Error> {
        Sql::insert_account(&self.pool, name, hash).await
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
        let (remembered,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM memberships WHERE room_key = $1)")
                .bind(key(room))
                .fetch_one(&self.pool)
                .await?;
        Ok(remembered)
    }

    async fn delete_room(&self, room: &Name) -> Result<(), sqlx::Error> {
        Sql::delete_room(&self.pool, room).await
    }

    async fn deliver_pending(
        &self,
        account: &UserId,
        keep_history: bool,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        // One statement: a node that asks at the same time waits for its row locks, then
        // finds the messages no longer queued.
        let delivered = if keep_history {
            "UPDATE messages SET pending = FALSE WHERE recipient_key = $1 AND pending \
             RETURNING id, sender, body, sent_at"
        } else {
            "WITH gone AS (DELETE FROM messages WHERE recipient_key = $1 AND pending \
               RETURNING id, sender, body, sent_at), \
             unindexed AS (DELETE FROM message_search WHERE id IN (SELECT id FROM gone)) \
             SELECT id, sender, body, sent_at FROM gone"
        };
        let mut rows: Vec<(i64, String, String, i64)> = sqlx::query_as(delivered)
            .bind(account.key())
            .fetch_all(&self.pool)
            .await?;
        rows.sort_unstable_by_key(|row| row.0);
        Ok(stored(rows))
    }

    /// Writes a batch. A batch that fails because the database is out of reach is given
    /// back, to be written later.
    async fn write(
        &self,
        batch: Batch,
        known: &HashMap<Conversation, Known>,
    ) -> Result<HashMap<Conversation, i64>, Unwritten> {
        match self.write_batch(&batch, known).await {
            Ok(filed) => Ok(filed),
            Err(error) => {
                let batch = out_of_reach(&error).then_some(batch);
                Err(Unwritten { error, batch })
            }
        }
    }

    async fn delete_older(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        // An hourly scan needs no index on the time, which would cost every insert.
        // The search index first: its entries are found through the rows and chunks.
        let unindex = [
            "DELETE FROM message_search WHERE id IN \
             (SELECT id FROM messages WHERE NOT pending AND sent_at < $1)",
            "DELETE FROM message_search s USING chunks c WHERE c.last_at < $1 \
             AND s.conversation = c.conversation AND s.id >= c.first_id AND s.id <= c.id",
        ];
        Sql::delete_each(&self.pool, unindex, cutoff).await?;
        let deletes = [
            "DELETE FROM messages WHERE NOT pending AND sent_at < $1",
            "DELETE FROM chunks WHERE last_at < $1",
        ];
        Sql::delete_each(&self.pool, deletes, cutoff).await
    }

    async fn straddling_older(&self, cutoff: i64) -> Result<Vec<Straddling>, sqlx::Error> {
        let select = "SELECT id, first_id, body, 0::BIGINT FROM chunks \
                      WHERE first_at < $1 AND last_at >= $1";
        Sql::straddling(&self.pool, select, cutoff).await
    }

    async fn delete_beyond(&self, keep: i64) -> Result<u64, sqlx::Error> {
        let unindex = [
            concat_ranked!(
                "DELETE FROM message_search WHERE id IN ( \
                   SELECT m.id FROM ranked r JOIN messages m ON m.id = r.id \
                   WHERE r.kind = 'messages' AND NOT m.pending AND r.newer >= $1)"
            ),
            concat_ranked!(
                "DELETE FROM message_search s USING ranked r, chunks c \
                 WHERE r.kind = 'chunks' AND r.newer >= $1 AND c.id = r.id \
                 AND s.conversation = c.conversation AND s.id >= c.first_id AND s.id <= c.id"
            ),
        ];
        Sql::delete_each(&self.pool, unindex, keep).await?;
        let deletes = [
            concat_ranked!(
                "DELETE FROM messages WHERE NOT pending AND id IN ( \
                   SELECT id FROM ranked WHERE kind = 'messages' AND newer >= $1)"
            ),
            concat_ranked!(
                "DELETE FROM chunks WHERE id IN ( \
                   SELECT id FROM ranked WHERE kind = 'chunks' AND newer >= $1)"
            ),
        ];
        Sql::delete_each(&self.pool, deletes, keep).await
    }

    async fn straddling_beyond(&self, keep: i64) -> Result<Vec<Straddling>, sqlx::Error> {
        let select = concat_ranked!(
            "SELECT chunks.id, chunks.first_id, chunks.body, ranked.n - ($1 - ranked.newer) \
             FROM ranked JOIN chunks ON chunks.id = ranked.id \
             WHERE ranked.kind = 'chunks' AND ranked.newer < $1 AND ranked.newer + ranked.n > $1"
        );
        Sql::straddling(&self.pool, select, keep).await
    }

    async fn rewrite_chunks(
        &self,
        chunks: Vec<(i64, Option<chunk::ChunkWriter>)>,
    ) -> Result<(), sqlx::Error> {
        Sql::rewrite_chunks(&self.pool, chunks).await
    }

    /// Nothing to do: PostgreSQL ends a transaction whose `COMMIT` fails, and sqlx rolls
    /// back one dropped unfinished.
    async fn roll_back_leftovers(&self) {}

    #[cfg(test)]
    async fn fill_up(&self) {
        unimplemented!("a full disk is SQLite's test")
    }
}

impl Writer {
    async fn write_batch(
        &self,
        batch: &Batch,
        known: &HashMap<Conversation, Known>,
    ) -> Result<HashMap<Conversation, i64>, sqlx::Error> {
        // Conversations are filed before the transaction, each in a statement of its own:
        // a row that is never deleted, which no lock of the batch's transaction should hold
        // while other nodes file the same conversation.
        let mut filed: HashMap<Conversation, i64> = HashMap::new();
        let mut chunk_conversations: Vec<i64> = batch
            .chunks
            .iter()
            .map(|chunk| chunk.conversation)
            .collect();
        for (index, conversation) in &batch.unfiled {
            chunk_conversations[*index] =
                Sql::file(&self.pool, known, &mut filed, conversation).await?;
        }
        let mut row_conversations = Vec::with_capacity(batch.rows.len());
        for (_, record) in &batch.rows {
            row_conversations
                .push(Sql::file(&self.pool, known, &mut filed, &record.conversation).await?);
        }
        if batch.messages == 0 {
            return Ok(filed);
        }
        let mut tx = self.pool.begin().await?;
        if !batch.rows.is_empty() {
            let rows = &batch.rows;
            sqlx::query(
                "INSERT INTO messages (id, conversation, sender, recipient_key, body, sent_at, \
                   pending) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], \
                   $5::TEXT[], $6::BIGINT[], $7::BOOLEAN[])",
            )
            .bind(rows.iter().map(|(id, _)| id.get()).collect::<Vec<_>>())
            .bind(&row_conversations)
            .bind(
                rows.iter()
                    .map(|(_, r)| r.from.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.recipient().map(|to| to.key()))
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|(_, r)| &*r.text).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, r)| r.at).collect::<Vec<_>>())
            // Every row is a message queued for its recipient.
            .bind(vec![true; rows.len()])
            .execute(&mut *tx)
            .await?;
        }
        if !batch.chunks.is_empty() {
            let chunks = &batch.chunks;
            sqlx::query(
                "INSERT INTO chunks (id, conversation, first_id, count, first_at, last_at, body) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                   $5::BIGINT[], $6::BIGINT[], $7::BYTEA[])",
            )
            .bind(chunks.iter().map(|c| c.last_id).collect::<Vec<_>>())
            .bind(&chunk_conversations)
            .bind(chunks.iter().map(|c| c.first_id).collect::<Vec<_>>())
            .bind(chunks.iter().map(|c| c.count).collect::<Vec<_>>())
            .bind(chunks.iter().map(|c| c.first_at).collect::<Vec<_>>())
            .bind(chunks.iter().map(|c| c.last_at).collect::<Vec<_>>())
            .bind(chunks.iter().map(|c| c.body.as_slice()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        let mut entries: Vec<(i64, i64, String)> = batch
            .rows
            .iter()
            .zip(&row_conversations)
            .map(|((id, record), &conversation)| (id.get(), conversation, record.text.to_string()))
            .collect();
        for (chunk, &conversation) in batch.chunks.iter().zip(&chunk_conversations) {
            entries.extend(
                chunk::entries(chunk.first_id, &chunk.body)
                    .map(|entry| (entry.id, conversation, entry.text.to_owned())),
            );
        }
        index_entries(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(filed)
    }

    /// Fills the search index from the chunks stored before it was made, once (see
    /// `Sql::backfill_pending`), in one transaction; the row of `search_backfill` is locked
    /// first, so that of nodes starting at once one fills it and the others find it done.
    async fn backfill_search(&self) -> Result<(), sqlx::Error> {
        if !Sql::backfill_pending(&self.pool).await? {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query("DELETE FROM search_backfill")
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() == 0 {
            return Ok(());
        }
        let mut after = i64::MIN;
        let mut indexed = 0;
        loop {
            let mut entries = Vec::new();
            let last =
                <Postgres as Sql>::chunk_entries(&mut tx, after, BACKFILL_CHUNKS, &mut entries)
                    .await?;
            indexed += entries.len();
            index_entries(&mut tx, &entries).await?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        tx.commit().await?;
        info!(indexed, "search index filled from stored history");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

/// Opens the read connections (lazily: the writer has just reached the database).
pub(super) async fn open_reads(url: &str, connections: u32) -> Result<PgPool, sqlx::Error> {
    let (pool, connect) = pool_options(url, connections)?;
    Ok(pool.connect_lazy_with(connect))
}
