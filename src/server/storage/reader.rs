//! The read side: a small pool of read-only connections. SQLite's write-ahead log lets them
//! read a committed snapshot while the writer task writes, so reads never hold up writes and
//! writes never queue behind reads.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Semaphore;

use super::actor::{DATABASE_FILE, stored_message};
use super::{Conversation, StorageError, StorageOptions, StoredMessage, chunk, key};
use linechat_protocol::Name;

#[derive(Debug, Clone)]
pub(super) struct Reader {
    pool: SqlitePool,
    /// `HISTORY` pages being read. Fewer than the pool's connections, so that one is always
    /// left for the small reads of a login.
    history_slots: Arc<Semaphore>,
}

impl Reader {
    /// Opens the read connections; the database must exist (the writer creates and migrates
    /// it first).
    pub(super) async fn open(options: &StorageOptions) -> Result<Self, StorageError> {
        let slots = options.read_connections.max(1);
        let connect = SqliteConnectOptions::new()
            .filename(options.data_dir.join(DATABASE_FILE))
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(u32::try_from(slots + 1).unwrap_or(u32::MAX))
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            history_slots: Arc::new(Semaphore::new(slots)),
        })
    }

    /// See [`super::Store::history_page`]. History is in rows (`messages`) and chunks
    /// (`chunks`, see `chunk.rs`), merged by id; every query of a page reads one snapshot.
    pub(super) async fn history_page(
        &self,
        conversation: &Conversation,
        window: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let _slot = self
            .history_slots
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut tx = self.pool.begin().await?;
        let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM conversations WHERE key = ?")
            .bind(conversation.key())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((conversation,)) = id else {
            return Ok(Vec::new());
        };
        let start = match after {
            Some(after) => Some((after + 1, 0)),
            None => window_start(&mut tx, conversation, window).await?,
        };
        let page = match start {
            Some((from, skip)) => read_page(&mut tx, conversation, from, skip, limit).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(page)
    }

    /// The rooms `account` is in, by their names as created.
    pub(super) async fn memberships(&self, account: &Name) -> Result<Vec<Name>, sqlx::Error> {
        let rooms: Vec<(String,)> = sqlx::query_as(
            "SELECT rooms.name FROM memberships \
             JOIN rooms ON rooms.name_key = memberships.room_key \
             WHERE memberships.account_key = ? ORDER BY rooms.name_key",
        )
        .bind(key(account))
        .fetch_all(&self.pool)
        .await?;
        Ok(rooms
            .into_iter()
            .filter_map(|(room,)| Name::parse(&room).ok())
            .collect())
    }

    pub(super) async fn close(&self) {
        self.history_slots.close();
        self.pool.close().await;
    }
}

/// Where a conversation's last `window` messages start: the lowest id to read from, and
/// how many messages from there to skip (those of the oldest chunk that are not in the
/// window). `None` if the conversation has no messages. Counts from the index alone, newest
/// first: rows count one each, chunks their `count`; no chunk spans a row of its
/// conversation, so the two order by id.
async fn window_start(
    connection: &mut SqliteConnection,
    conversation: i64,
    window: u32,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let window = i64::from(window.max(1));
    // Each row or chunk holds at least one message: `window` of each is enough.
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM messages WHERE conversation = ? ORDER BY id DESC LIMIT ?")
            .bind(conversation)
            .bind(window)
            .fetch_all(&mut *connection)
            .await?;
    let chunks: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, first_id, count FROM chunks WHERE conversation = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(conversation)
    .bind(window)
    .fetch_all(&mut *connection)
    .await?;
    let (mut rows, mut chunks) = (rows.into_iter().peekable(), chunks.into_iter().peekable());
    let mut left = window;
    let mut start = None;
    loop {
        let row_is_newer = match (rows.peek(), chunks.peek()) {
            (Some(row), Some(chunk)) => row.0 > chunk.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(start),
        };
        if row_is_newer {
            let Some((id,)) = rows.next() else { break };
            start = Some((id, 0));
            left -= 1;
            if left == 0 {
                break;
            }
        } else {
            let Some((_, first_id, count)) = chunks.next() else {
                break;
            };
            if count >= left {
                return Ok(Some((first_id, count - left)));
            }
            start = Some((first_id, 0));
            left -= count;
        }
    }
    Ok(start)
}

/// The `limit` messages of a conversation from id `from` on, after skipping the first
/// `skip` of them: rows and chunks' messages merged by id. Chunks are read one at a time
/// and only until the page is full; only the messages returned are copied out of them.
async fn read_page(
    connection: &mut SqliteConnection,
    conversation: i64,
    from: i64,
    skip: i64,
    limit: u32,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let mut page = Page {
        skip,
        limit: limit as usize,
        messages: Vec::with_capacity(limit.min(1024) as usize),
    };
    if page.is_full() {
        return Ok(page.messages);
    }
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT id, sender, body, sent_at FROM messages \
         WHERE conversation = ? AND id >= ? ORDER BY id LIMIT ?",
    )
    .bind(conversation)
    .bind(from)
    .bind(skip + i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    let mut rows = rows.into_iter().peekable();
    let mut chunks = sqlx::query(
        "SELECT first_id, body FROM chunks WHERE conversation = ? AND id >= ? ORDER BY id",
    )
    .bind(conversation)
    .bind(from)
    .fetch(&mut *connection);
    'chunks: while let Some(chunk) = chunks.try_next().await? {
        let first_id: i64 = chunk.try_get(0)?;
        let body: &[u8] = chunk.try_get(1)?;
        for entry in chunk::entries(first_id, body).filter(|entry| entry.id >= from) {
            while let Some((id, sender, text, at)) = rows.next_if(|row| row.0 < entry.id) {
                if page.add(id, &sender, || text, at) {
                    break 'chunks;
                }
            }
            if page.add(entry.id, entry.from, || entry.text.to_owned(), entry.at) {
                break 'chunks;
            }
        }
    }
    drop(chunks);
    for (id, sender, text, at) in rows {
        if page.is_full() {
            break;
        }
        page.add(id, &sender, || text, at);
    }
    Ok(page.messages)
}

/// A page being gathered.
struct Page {
    /// Messages still to pass over before the page starts.
    skip: i64,
    limit: usize,
    messages: Vec<StoredMessage>,
}

impl Page {
    /// Adds the next message (or passes over it); true once the page is full. The text is
    /// made only for a message kept.
    fn add(&mut self, id: i64, from: &str, text: impl FnOnce() -> String, at: i64) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
        } else if let Some(message) = stored_message(id, from, text, at) {
            self.messages.push(message);
        }
        self.is_full()
    }

    fn is_full(&self) -> bool {
        self.messages.len() >= self.limit
    }
}
