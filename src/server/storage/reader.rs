//! The read side: a small pool of read-only connections. SQLite's write-ahead log lets them
//! read a committed snapshot while the writer task writes, so reads never hold up writes and
//! writes never queue behind reads.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::Semaphore;

use super::actor::{DATABASE_FILE, stored};
use super::{Conversation, StorageError, StorageOptions, StoredMessage, key};
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

    /// See [`super::Store::history_page`]. The first page finds where the window starts
    /// from the index alone.
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
        let target = conversation.key();
        let rows: Vec<(i64, String, String, i64)> = match after {
            None => {
                sqlx::query_as(
                    "SELECT id, sender, body, sent_at FROM messages \
                     WHERE conversation = (SELECT id FROM conversations WHERE key = ?1) \
                     AND id >= COALESCE( \
                       (SELECT id FROM messages \
                        WHERE conversation = (SELECT id FROM conversations WHERE key = ?1) \
                        ORDER BY id DESC LIMIT 1 OFFSET ?2), 0) \
                     ORDER BY id LIMIT ?3",
                )
                .bind(&target)
                .bind(i64::from(window.max(1)) - 1)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some(after) => {
                sqlx::query_as(
                    "SELECT id, sender, body, sent_at FROM messages \
                     WHERE conversation = (SELECT id FROM conversations WHERE key = ?) \
                     AND id > ? ORDER BY id LIMIT ?",
                )
                .bind(&target)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(stored(rows))
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
