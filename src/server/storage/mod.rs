//! The storage actor: accounts, rooms, memberships and chat history in an embedded SQLite
//! database. One task owns the database; the rest of the server sends it messages and never
//! knows which database it is.
//!
//! Chat never waits for the disk: history records are queued without waiting and written in
//! batched transactions (group commit), at the latest one batch window after they arrive.

mod actor;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::common::Name;

/// Where a message was said, as history is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    Global,
    Room(Name),
    /// The private conversation between two users, in either direction.
    Private(Name, Name),
}

impl Conversation {
    /// The key history is filed under: names lower-cased, a private pair in sorted order.
    fn key(&self) -> String {
        match self {
            Conversation::Global => "*".into(),
            Conversation::Room(room) => format!("room:{}", key(room)),
            Conversation::Private(a, b) => {
                let (a, b) = (key(a), key(b));
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                format!("pm:{low} {high}")
            }
        }
    }
}

fn key(name: &Name) -> String {
    name.as_str().to_ascii_lowercase()
}

/// A message to keep.
#[derive(Debug, Clone)]
pub struct Record {
    pub conversation: Conversation,
    pub from: Name,
    /// For a private message: its recipient.
    pub to: Option<Name>,
    pub text: String,
    pub at: SystemTime,
    /// A private message for a user who is offline, to deliver at their next login.
    pub pending: bool,
}

/// A message read back from history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub from: Name,
    pub text: String,
    pub at: SystemTime,
}

/// What the server needs in memory at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Accounts: the name as registered, and the password hash.
    pub accounts: Vec<(Name, String)>,
    /// Rooms: the name as created, and who created it.
    pub rooms: Vec<(Name, Name)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the storage task is gone")]
    Gone,
}

/// How the store behaves; taken from the settings.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub data_dir: PathBuf,
    /// Whether chat messages are kept at all.
    pub history: bool,
    /// Longest a history record waits before its batch is committed.
    pub batch_window: Duration,
    /// Messages kept per conversation; 0 keeps all.
    pub keep_per_conversation: u64,
    /// Days messages are kept; 0 keeps them forever.
    pub keep_days: u64,
}

#[derive(Debug)]
enum StorageRequest {
    Record(Record),
    CreateAccount {
        name: Name,
        hash: String,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    CreateRoom {
        room: Name,
        creator: Name,
    },
    Join {
        account: Name,
        room: Name,
        done: oneshot::Sender<()>,
    },
    Leave {
        account: Name,
        room: Name,
        done: oneshot::Sender<()>,
    },
    /// Answered once everything sent before it is on disk.
    Sync {
        done: oneshot::Sender<()>,
    },
    Memberships {
        account: Name,
        reply: oneshot::Sender<Vec<Name>>,
    },
    TakePending {
        account: Name,
        reply: oneshot::Sender<Vec<StoredMessage>>,
    },
    History {
        conversation: Conversation,
        count: u32,
        reply: oneshot::Sender<Result<Vec<StoredMessage>, StorageError>>,
    },
    /// Write everything queued, then stop.
    Close {
        reply: oneshot::Sender<()>,
    },
    HistoryPage {
        conversation: Conversation,
        window: u32,
        after: Option<i64>,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<(i64, StoredMessage)>, StorageError>>,
    },
}

/// A handle to the storage task.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::UnboundedSender<StorageRequest>,
    history: bool,
}

impl Store {
    /// Opens (creating if needed) the database in the data directory, runs the embedded
    /// migrations, loads what the server keeps in memory, and starts the storage task.
    pub async fn open(
        options: StorageOptions,
    ) -> Result<(Store, Loaded, JoinHandle<()>), StorageError> {
        let (pool, loaded) = actor::open(&options).await?;
        // Unbounded so that recording never waits; the batch window bounds how much queues.
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(actor::StorageActor::new(pool, &options).run(rx));
        let store = Store {
            tx,
            history: options.history,
        };
        Ok((store, loaded, task))
    }

    /// Queues a message for history. Never waits.
    pub fn record(&self, record: Record) {
        if self.history || record.pending {
            self.send(StorageRequest::Record(record));
        }
    }

    pub async fn create_account(&self, name: Name, hash: String) -> Result<(), StorageError> {
        self.ask(|reply| StorageRequest::CreateAccount { name, hash, reply })
            .await?
    }

    pub fn create_room(&self, room: Name, creator: Name) {
        self.send(StorageRequest::CreateRoom { room, creator });
    }

    /// Remembers that registered user `account` is in `room`; returns once it is on disk,
    /// with everything sent before it (such as the room's creation).
    pub async fn join(&self, account: Name, room: Name) {
        let _ = self
            .ask(|done| StorageRequest::Join {
                account,
                room,
                done,
            })
            .await;
    }

    pub async fn leave(&self, account: Name, room: Name) {
        let _ = self
            .ask(|done| StorageRequest::Leave {
                account,
                room,
                done,
            })
            .await;
    }

    /// Returns once everything sent before is on disk.
    pub async fn sync(&self) {
        let _ = self.ask(|done| StorageRequest::Sync { done }).await;
    }

    /// The rooms `account` was in, by their names as created.
    pub async fn memberships(&self, account: Name) -> Vec<Name> {
        self.ask(|reply| StorageRequest::Memberships { account, reply })
            .await
            .unwrap_or_default()
    }

    /// Private messages that waited for `account`, oldest first; they count as delivered.
    pub async fn take_pending(&self, account: Name) -> Vec<StoredMessage> {
        self.ask(|reply| StorageRequest::TakePending { account, reply })
            .await
            .unwrap_or_default()
    }

    /// The last `count` messages of a conversation, oldest first, queued ones included.
    pub async fn history(
        &self,
        conversation: Conversation,
        count: u32,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        self.ask(|reply| StorageRequest::History {
            conversation,
            count,
            reply,
        })
        .await?
    }

    /// Writes everything queued and stops the storage task.
    pub async fn close(&self) {
        let _ = self.ask(|reply| StorageRequest::Close { reply }).await;
    }

    fn send(&self, request: StorageRequest) {
        // A closed store only happens at the very end of shutdown, after every session.
        let _ = self.tx.send(request);
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> StorageRequest,
    ) -> Result<T, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(request(reply))
            .map_err(|_| StorageError::Gone)?;
        answer.await.map_err(|_| StorageError::Gone)
    }

    /// One page of a conversation's last `window` messages, oldest first, each with its row
    /// id: without `after`, the first `limit` of them; with it, the `limit` after that row.
    /// A long `HISTORY` reads page after page as its client takes the lines, instead of
    /// holding all of them at once. Queued messages are included.
    pub async fn history_page(
        &self,
        conversation: Conversation,
        window: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, StoredMessage)>, StorageError> {
        self.ask(|reply| StorageRequest::HistoryPage {
            conversation,
            window,
            after,
            limit,
            reply,
        })
        .await?
    }
}

#[cfg(test)]
mod tests;
