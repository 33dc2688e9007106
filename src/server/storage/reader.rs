//! The read side: a small pool of connections of its own, so that reads never hold up writes
//! and writes never queue behind reads (SQLite's write-ahead log lets its read-only
//! connections read a committed snapshot while the writer writes; PostgreSQL does that
//! anyway). The queries, the same for both kinds of database, are `backend::Sql`'s; the
//! merging of rows and chunks into pages is here.

use std::iter::Peekable;
use std::ops;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{PgPool, SqlitePool};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::actor::stored_message;
use super::backend::Sql;
use super::{
    Conversation, End, MessageId, PageError, Range, SearchQuery, StorageError, StorageOptions,
    StoredMessage, Unread, chunk, postgres, sqlite,
};
use linechat_protocol::{HistoryPage, Name};

#[derive(Debug, Clone)]
pub(super) struct Reader {
    pool: Pool,
    /// `HISTORY` pages being read. Fewer than the pool's connections, so that one is always
    /// left for the small reads of a login.
    history_slots: Arc<Semaphore>,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Reader {
    /// Opens the read connections; the database must exist (the writer creates and migrates
    /// it first).
    pub(super) async fn open(options: &StorageOptions) -> Result<Self, StorageError> {
        let slots = options.read_connections.max(1);
        let connections = u32::try_from(slots + 1).unwrap_or(u32::MAX);
        let pool = match &options.database_url {
            None => Pool::Sqlite(sqlite::open_reads(options, connections).await?),
            Some(url) => Pool::Postgres(postgres::open_reads(url, connections).await?),
        };
        Ok(Self {
            pool,
            history_slots: Arc::new(Semaphore::new(slots)),
        })
    }

    /// See [`super::Store::history_range`]. History is in rows (`messages`) and chunks
    /// (`chunks`, see `chunk.rs`), merged by id; every query of a page reads one snapshot.
    pub(super) async fn history_range(
        &self,
        conversation: &Conversation,
        range: Range,
        count: u32,
        from: End,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let _slot = self.history_slot().await?;
        match &self.pool {
            Pool::Sqlite(pool) => {
                let tx = pool.begin().await?;
                Sql::history_range(tx, conversation, range, count, from, limit).await
            }
            Pool::Postgres(pool) => {
                let tx = pool.begin_with(postgres::SNAPSHOT).await?;
                Sql::history_range(tx, conversation, range, count, from, limit).await
            }
        }
    }

    /// See [`super::Store::search`]: a read of history, so it takes a history slot.
    pub(super) async fn search(
        &self,
        conversation: &Conversation,
        query: &SearchQuery,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, sqlx::Error> {
        let _slot = self.history_slot().await?;
        match &self.pool {
            Pool::Sqlite(pool) => {
                let tx = pool.begin().await?;
                Sql::search(tx, conversation, sqlite::SEARCH, query.fts5(), limit).await
            }
            Pool::Postgres(pool) => {
                let tx = pool.begin_with(postgres::SNAPSHOT).await?;
                Sql::search(tx, conversation, postgres::SEARCH, query.tsquery(), limit).await
            }
        }
    }

    /// See [`super::Store::resolve_page`]: a read of history, so it takes a history slot.
    pub(super) async fn resolve_page(
        &self,
        conversation: &Conversation,
        page: HistoryPage,
    ) -> Result<Option<(Range, End)>, PageError> {
        let _slot = self.history_slot().await?;
        match &self.pool {
            Pool::Sqlite(pool) => {
                let tx = pool.begin().await?;
                Sql::resolve_page(tx, conversation, page).await
            }
            Pool::Postgres(pool) => {
                let tx = pool.begin_with(postgres::SNAPSHOT).await?;
                Sql::resolve_page(tx, conversation, page).await
            }
        }
    }

    /// One of the `history_slots`, held while a read of history runs.
    async fn history_slot(&self) -> Result<SemaphorePermit<'_>, sqlx::Error> {
        self.history_slots
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)
    }

    /// The rooms `account` is in, by their names as created.
    pub(super) async fn memberships(&self, account: &Name) -> Result<Vec<Name>, sqlx::Error> {
        let rooms = match &self.pool {
            Pool::Sqlite(pool) => Sql::memberships(pool, account).await?,
            Pool::Postgres(pool) => Sql::memberships(pool, account).await?,
        };
        Ok(rooms
            .into_iter()
            .filter_map(|(room,)| Name::parse(&room).ok())
            .collect())
    }

    /// See [`super::Store::unread`].
    pub(super) async fn unread(&self, account: i64) -> Result<Vec<Unread>, sqlx::Error> {
        let unread = match &self.pool {
            Pool::Sqlite(pool) => Sql::unread(pool.begin().await?, account).await?,
            Pool::Postgres(pool) => {
                Sql::unread(pool.begin_with(postgres::SNAPSHOT).await?, account).await?
            }
        };
        Ok(unread
            .into_iter()
            .map(|(key, target, marker, count)| Unread {
                room: key.starts_with("room:"),
                target,
                marker: MessageId::from_stored(marker),
                count: u64::try_from(count).unwrap_or_default(),
            })
            .collect())
    }

    /// See [`super::Store::read_marker`].
    pub(super) async fn read_marker(
        &self,
        account: i64,
        conversation: &Conversation,
    ) -> Result<Option<MessageId>, sqlx::Error> {
        let key = conversation.key();
        let marker = match &self.pool {
            Pool::Sqlite(pool) => Sql::read_marker(pool, account, &key).await?,
            Pool::Postgres(pool) => Sql::read_marker(pool, account, &key).await?,
        };
        Ok(marker.map(MessageId::from_stored))
    }

    /// The account registered as `name` in any case: its id, name as registered, and
    /// password hash.
    pub(super) async fn account(
        &self,
        name: &Name,
    ) -> Result<Option<(i64, Name, String)>, sqlx::Error> {
        let account = match &self.pool {
            Pool::Sqlite(pool) => Sql::account(pool, name).await?,
            Pool::Postgres(pool) => Sql::account(pool, name).await?,
        };
        Ok(account.and_then(|(id, name, hash)| Some((id, Name::parse(&name).ok()?, hash))))
    }

    /// The room `name` in any case: its name as created, and its creator.
    pub(super) async fn room(&self, name: &Name) -> Result<Option<(Name, Name)>, sqlx::Error> {
        let room = match &self.pool {
            Pool::Sqlite(pool) => Sql::room(pool, name).await?,
            Pool::Postgres(pool) => Sql::room(pool, name).await?,
        };
        Ok(room.and_then(|(room, creator)| {
            Some((Name::parse(&room).ok()?, Name::parse(&creator).ok()?))
        }))
    }

    pub(super) async fn close(&self) {
        self.history_slots.close();
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Where the last `window` messages of a span of a conversation start, from the ids of its
/// newest rows (`rows`) and its newest chunks (`chunks`: id, first id, and how many of its
/// messages are in the span), each newest first and at least `window` of each if it has that
/// many: an id from which on there are at least `window` messages, none of them before the
/// window; `None` if the span has no messages. The reader then counts the messages from
/// there on exactly (`Sql::count_in`) and skips those before the window.
///
/// Rows and chunks are taken newest first by their newest id until they hold `window`
/// messages; the id is the lowest of theirs. Every message before it has at least `window`
/// newer ones, so the window starts there or after, whatever the overlap: a conversation's
/// chunks and rows may cover overlapping ranges of ids, as ids are given where messages are
/// accepted and reach the writer in any order (a message taken into the batch after the
/// one of a message accepted after it, rows of queued messages, and on a shared store the
/// blocks of several nodes: `ids.rs`). Mostly they do not, and then the count from there
/// is the one taken here.
pub(super) fn window_start(
    rows: Vec<(i64,)>,
    chunks: Vec<(i64, i64, i64)>,
    window: i64,
) -> Option<i64> {
    let (mut rows, mut chunks) = (rows.into_iter().peekable(), chunks.into_iter().peekable());
    let mut left = window;
    let mut start: Option<i64> = None;
    while left > 0 {
        let row_is_newer = match (rows.peek(), chunks.peek()) {
            (Some(row), Some(chunk)) => row.0 > chunk.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (first, count) = if row_is_newer {
            let Some((id,)) = rows.next() else { break };
            (id, 1)
        } else {
            let Some((_, first_id, count)) = chunks.next() else {
                break;
            };
            (first_id, count)
        };
        start = Some(start.map_or(first, |start| start.min(first)));
        left -= count;
    }
    start
}

/// The ids a read covers: from `from` on, up to `until` (not included); a [`Range`] with its
/// open ends made the lowest and highest ids there are, so that one query serves every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub from: i64,
    pub until: i64,
}

impl Span {
    pub(super) fn of(range: Range) -> Self {
        Self {
            from: range
                .after
                .map_or(i64::MIN, |after| after.get().saturating_add(1)),
            until: range.before.map_or(i64::MAX, MessageId::get),
        }
    }

    pub(super) fn is_empty(self) -> bool {
        self.from >= self.until
    }

    pub(super) fn contains(self, id: i64) -> bool {
        (self.from..self.until).contains(&id)
    }

    /// How many of a chunk's messages it covers, read from the chunk's body.
    pub(super) fn count_in(self, first_id: i64, body: &[u8]) -> i64 {
        chunk::entries(first_id, body)
            .filter(|entry| self.contains(entry.id))
            .count() as i64
    }
}

/// A time in whole Unix milliseconds, rounded down: the messages after it are those kept at
/// the millisecond after this one or later.
pub(super) fn floor_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX - 1),
        // Before every message kept.
        Err(_) => i64::MIN / 2,
    }
}

/// A time in whole Unix milliseconds, rounded up: the messages before it are those kept
/// before this millisecond.
pub(super) fn ceil_millis(time: SystemTime) -> i64 {
    let finer = time
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since.subsec_nanos() % 1_000_000 != 0);
    floor_millis(time) + i64::from(finer)
}

/// A row of history as read: id, sender, body, sent_at.
pub(super) type MessageRow = (i64, String, String, i64);

/// A chunk being merged into a page: its body, and where its messages in the page's span
/// are in it (id, time, and the byte ranges of the sender and text), next first.
pub(super) struct OpenChunk {
    body: Vec<u8>,
    entries: std::vec::IntoIter<(i64, i64, ops::Range<usize>, ops::Range<usize>)>,
    next: Option<(i64, i64, ops::Range<usize>, ops::Range<usize>)>,
}

impl OpenChunk {
    pub(super) fn new(first_id: i64, body: Vec<u8>, span: Span) -> Self {
        let base = body.as_ptr() as usize;
        let range = |text: &str| {
            let start = text.as_ptr() as usize - base;
            start..start + text.len()
        };
        let entries: Vec<_> = chunk::entries(first_id, &body)
            .filter(|entry| span.contains(entry.id))
            .map(|entry| (entry.id, entry.at, range(entry.from), range(entry.text)))
            .collect();
        let mut entries = entries.into_iter();
        let next = entries.next();
        Self {
            body,
            entries,
            next,
        }
    }

    /// The id of its next message, if any is left.
    pub(super) fn next_id(&self) -> Option<i64> {
        self.next.as_ref().map(|next| next.0)
    }

    fn text(&self, range: ops::Range<usize>) -> &str {
        std::str::from_utf8(&self.body[range]).unwrap_or_default()
    }
}

/// A page being gathered.
pub(super) struct Page {
    /// Messages still to pass over before the page starts.
    skip: i64,
    limit: usize,
    pub messages: Vec<StoredMessage>,
}

impl Page {
    pub(super) fn new(skip: i64, limit: u32) -> Self {
        Self {
            skip,
            limit: limit as usize,
            messages: Vec::with_capacity(limit.min(1024) as usize),
        }
    }

    /// Adds the next message of `chunk`, after the rows before it; true once the page is
    /// full. Only the messages kept are copied out of the chunk.
    pub(super) fn add_next(
        &mut self,
        chunk: &mut OpenChunk,
        rows: &mut Peekable<impl Iterator<Item = MessageRow>>,
    ) -> bool {
        let Some((id, at, from, text)) = chunk.next.take() else {
            return self.is_full();
        };
        chunk.next = chunk.entries.next();
        while let Some((id, sender, text, at)) = rows.next_if(|row| row.0 < id) {
            if self.add(id, &sender, || text, at) {
                return true;
            }
        }
        self.add(id, chunk.text(from), || chunk.text(text).to_owned(), at)
    }

    /// The page, with the rows after the last chunk.
    pub(super) fn finish(mut self, rows: impl Iterator<Item = MessageRow>) -> Vec<StoredMessage> {
        for (id, sender, text, at) in rows {
            if self.is_full() {
                break;
            }
            self.add(id, &sender, || text, at);
        }
        self.messages
    }

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

    pub(super) fn is_full(&self) -> bool {
        self.messages.len() >= self.limit
    }
}
