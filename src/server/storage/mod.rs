//! The storage actor: accounts, rooms, memberships and chat history in an embedded SQLite
//! database (`sqlite.rs`), or in PostgreSQL (`postgres.rs`) when `database_url` is set, so
//! that several nodes share one store. The rest of the server sends it messages and never
//! knows which database it is.
//!
//! Writes and reads take separate paths, so that no write ever queues behind a read:
//! - one writer task owns the node's only read-write connection and does every write in
//!   order;
//! - reads (`HISTORY`, memberships) run on a small pool of connections of their own (read-only
//!   ones on SQLite, which its write-ahead log lets read while the writer writes), at most
//!   `read_connections` `HISTORY` reads at once.
//!
//! Chat never waits for the disk: history records are queued without waiting and written in
//! batched transactions (group commit), at the latest one batch window after they arrive, by
//! a writer that runs below chat's priority; only past `queued::QUEUED_AT_MOST` of records
//! waiting for it do senders wait (`Store::room_for_history`).
//! Everything else the server acknowledges (accounts, rooms, memberships, private messages
//! queued for offline users) is written at once, and its caller hears whether it is stored.
//!
//! A message gets its id when it is accepted ([`Store::record`], [`Store::queue_private`]),
//! from blocks of ids the writer reserves ahead of need (`ids.rs`), so that what delivers it
//! can carry the id history keeps it under.

mod actor;
mod backend;
mod chunk;
mod files;
mod ids;
mod postgres;
mod queued;
mod reader;
mod search;
mod sqlite;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::server::mailbox::{Answer, Backlog, Gone, Mailbox};
use tokio::sync::oneshot;

use super::member::UserId;
use super::priority::{self, Below};
pub use ids::MessageId;
use ids::MessageIds;
use linechat_protocol::{HistoryPage, Name, Topic};
use queued::Queued;
pub use search::SearchQuery;

/// Where a message was said, as history is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    Global,
    Room(Name),
    /// The private conversation between two users (accounts or guest sessions): a message's
    /// sender, then its recipient. Either way round it is the same conversation in the
    /// database (`key`).
    Private(UserId, UserId),
}

/// A private pair hashes as one word, both identities mixed, where the derived hash fed the
/// hasher five: the history writer looks a conversation up for every message it stores, and
/// SipHash cost it more than the rest of filing the message.
impl Hash for Conversation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let word = |id: &UserId| match *id {
            UserId::Account(id) => id as u64 ^ 0x9e37_79b9_7f4a_7c15,
            UserId::Guest(session) => session,
        };
        match self {
            Conversation::Global => state.write_u8(0),
            Conversation::Room(room) => room.hash(state),
            Conversation::Private(a, b) => state.write_u64(word(a) ^ word(b).rotate_left(29)),
        }
    }
}

impl Conversation {
    /// The key history is filed under: a room's name lower-cased, a private pair's identities
    /// in sorted order.
    fn key(&self) -> String {
        match self {
            Conversation::Global => "*".into(),
            Conversation::Room(room) => format!("room:{}", key(room)),
            Conversation::Private(a, b) => {
                let (a, b) = (a.key(), b.key());
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                format!("pm:{low} {high}")
            }
        }
    }
}

fn key(name: &Name) -> String {
    name.as_str().to_ascii_lowercase()
}

/// An account's read marker: how far it has read a conversation, which it named `target`.
#[derive(Debug, Clone)]
pub struct ReadMarker {
    pub account: i64,
    pub conversation: Conversation,
    /// How the account named the conversation (`*`, a room or a user), for `UNREAD`.
    pub target: String,
    /// The id of the last message it read there.
    pub id: MessageId,
}

/// A conversation an account has a read marker in, and what came after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// How the account named it.
    pub target: String,
    /// Whether it is a room's.
    pub room: bool,
    pub marker: MessageId,
    /// Messages after the marker.
    pub count: u64,
}

/// A message to keep, on its way to the writer (with its id: `StoreRequest::Record`). Kept
/// small: during a burst of chat the writer, below chat's priority, waits for the core while
/// hundreds of thousands of records pile up in its inbox, and every byte of them is memory
/// the sessions touch for the first time, on the network's core (page faults, and caches
/// filled with records instead of sessions). So a record holds the time as Unix
/// milliseconds rather than a `SystemTime`, a private message's recipient only in its
/// conversation, and nothing the writer can tell by itself (a queued message by its
/// request): 72 bytes besides its text.
#[derive(Debug, Clone)]
pub struct Record {
    pub conversation: Conversation,
    pub from: Name,
    pub text: Box<str>,
    /// When it was said: milliseconds since the Unix epoch.
    pub at: i64,
}

impl Record {
    /// A message said now, to keep in history.
    pub fn now(conversation: Conversation, from: Name, text: impl Into<Box<str>>) -> Self {
        Self {
            conversation,
            from,
            text: text.into(),
            at: now_millis(),
        }
    }

    /// Whom a private message is for: the second user of its conversation.
    pub fn recipient(&self) -> Option<UserId> {
        match self.conversation {
            Conversation::Private(_, to) => Some(to),
            _ => None,
        }
    }
}

/// The time a message is kept with, in milliseconds since the Unix epoch: the kernel's coarse
/// clock, which lags by at most a scheduler tick (a few milliseconds, finer than anyone
/// reading history can tell; ids, not times, order history). It is read in a few
/// nanoseconds, where the precise clock took tens: a cost every message paid, a tenth of what
/// keeping it cost.
fn now_millis() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given, and nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } == 0 {
            return now.tv_sec * 1000 + now.tv_nsec / 1_000_000;
        }
    }
    actor::millis(SystemTime::now())
}

/// Which messages of a conversation a read of history covers: those whose ids are strictly
/// between `after` and `before`; `None` leaves that side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub after: Option<MessageId>,
    pub before: Option<MessageId>,
}

impl Range {
    fn between(after: Option<i64>, before: Option<i64>) -> Self {
        Self {
            after: after.map(MessageId::from_stored),
            before: before.map(MessageId::from_stored),
        }
    }
}

/// The end of a [`Range`] whose messages a read takes, when there are more than it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Oldest,
    Newest,
}

/// Why a page of history cannot be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A bound names a message id that is not one of the conversation's messages (anyone
    /// else's, or none at all: the caller cannot tell which).
    #[error("no message {0} in this conversation")]
    NoSuchMessage(i64),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        PageError::Storage(error.into())
    }
}

/// A message read back from history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The id it was given when it was accepted ([`Store::record`]): ids order a
    /// conversation, and one bounds the next page of a read ([`Store::history_range`]).
    pub id: MessageId,
    pub from: Name,
    pub text: String,
    pub at: SystemTime,
}

/// What the server needs in memory at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Accounts: the id, the name as registered, and the password hash.
    pub accounts: Vec<(i64, Name, String)>,
    /// Rooms: the name as created, and who created it.
    pub rooms: Vec<(Name, Name)>,
    /// The topics of the rooms that have one.
    pub topics: Vec<(Name, Topic)>,
}

/// A row of `rooms` as it is loaded: name, creator, and the topic's text, setter and time
/// (Unix milliseconds), all three `NULL` without a topic.
type LoadedRoom = (String, String, Option<String>, Option<String>, Option<i64>);

impl Loaded {
    /// Adds a room as read from the database; one with a bad name is skipped, and so is a
    /// topic set by one.
    fn add_room(&mut self, (room, creator, text, by, at): LoadedRoom) {
        let (Ok(name), Ok(creator)) = (Name::parse(&room), Name::parse(&creator)) else {
            tracing::warn!(room, creator, "skipping a room with a bad name");
            return;
        };
        if let (Some(text), Some(Ok(by)), Some(at)) = (text, by.as_deref().map(Name::parse), at) {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0));
            self.topics.push((name.clone(), Topic { text, by, at }));
        }
        self.rooms.push((name, creator));
    }
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
    #[error("the storage writer is gone")]
    Gone,
    #[error("cannot start the storage thread: {0}")]
    Thread(std::io::Error),
    /// Refused untried: a write found the database out of reach just before.
    #[error("the database is out of reach")]
    OutOfReach,
}

impl From<Gone> for StorageError {
    fn from(_: Gone) -> Self {
        StorageError::Gone
    }
}

impl StorageError {
    /// Whether a new account was refused because its name is registered already: on a
    /// shared store, by another node since this one last looked.
    pub fn is_name_taken(&self) -> bool {
        matches!(self, StorageError::Database(sqlx::Error::Database(error)) if error.is_unique_violation())
    }

    /// Whether the database could not be reached, which passes by itself, rather than
    /// refusing what was asked.
    pub fn is_out_of_reach(&self) -> bool {
        match self {
            StorageError::Database(error) => postgres::out_of_reach(error),
            StorageError::OutOfReach => true,
            _ => false,
        }
    }

    /// What a client may be told: the database's own message (such as "database or disk is
    /// full"), without paths or SQL.
    pub fn client_message(&self) -> String {
        match self {
            _ if self.is_out_of_reach() => "the database is out of reach; try again later".into(),
            // Only an account's name is unique without `ON CONFLICT`: another node took it.
            _ if self.is_name_taken() => "that name is already registered".into(),
            StorageError::Database(sqlx::Error::Database(error)) => error.message().to_owned(),
            StorageError::Gone => "the store is shutting down".into(),
            _ => "the database failed".into(),
        }
    }
}

/// How the store behaves; taken from the settings.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Where the SQLite database is kept, unless `database_url` is set.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://...`) to use instead of SQLite's file.
    pub database_url: Option<String>,
    /// Whether chat messages are kept at all.
    pub history: bool,
    /// Longest a history record waits before its batch is committed.
    pub batch_window: Duration,
    /// Messages kept per conversation; 0 keeps all.
    pub keep_per_conversation: u64,
    /// Days messages are kept; 0 keeps them forever.
    pub keep_days: u64,
    /// `HISTORY` reads run at once, each on a read-only connection of its own; one more
    /// connection serves the small reads of a login, so that they never wait behind them.
    pub read_connections: usize,
}

/// Where the writer answers whether a write is stored.
type Stored = oneshot::Sender<Result<(), StorageError>>;

/// What the writer task is asked. Each write that is acknowledged to a client answers with
/// its outcome once it is committed.
#[derive(Debug)]
enum StoreRequest {
    /// A message for history, with its id. The one request sent for every message, so the
    /// others are kept no larger than it (boxed where they would be): every request takes
    /// as much room as the largest while it waits, and a burst of chat leaves hundreds of
    /// thousands waiting (see `Record`). 80 bytes: tokio's blocks of 32 of them fit
    /// jemalloc's 3,072-byte class.
    Record(Record, MessageId),
    /// A private message for an offline user, with its id: written at once, not batched.
    QueuePrivate(Box<(Record, MessageId, Stored)>),
    CreateAccount {
        name: Name,
        hash: String,
        reply: oneshot::Sender<Result<i64, StorageError>>,
    },
    CreateRoom {
        room: Name,
        creator: Name,
        reply: oneshot::Sender<Result<bool, StorageError>>,
    },
    SetTopic {
        room: Name,
        topic: Option<Box<Topic>>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    Join {
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    Leave {
        account: Name,
        room: Name,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    MarkRead {
        marker: Box<ReadMarker>,
        reply: oneshot::Sender<Result<MessageId, StorageError>>,
    },
    /// Answered once every record sent before it is committed: at the next group commit, or
    /// at once when nothing is queued. It never forces a commit of its own.
    Barrier { done: oneshot::Sender<()> },
    /// A read and a write (queued messages become delivered), so it is the writer's.
    TakePending {
        account: UserId,
        reply: oneshot::Sender<Vec<StoredMessage>>,
    },
    /// Of these rooms, those no registered user remembers.
    UnrememberedRooms {
        rooms: Vec<Name>,
        reply: oneshot::Sender<Vec<Name>>,
    },
    /// Deletes rooms nobody remembers, with their history.
    DeleteRooms {
        rooms: Vec<Name>,
        /// Answered once it is done (or failed, or refused).
        done: oneshot::Sender<()>,
    },
    /// Write everything queued, then stop.
    Close { reply: oneshot::Sender<()> },
    /// Makes the database "full" at its current size, to test the failure paths.
    #[cfg(test)]
    FillUp { done: oneshot::Sender<()> },
}

impl StoreRequest {
    /// Answers a write acknowledged to a client without trying it, as the database is out of
    /// reach (the writer's `away_until`): what would have been answered had it failed so.
    fn refuse(self) {
        fn away<T>() -> Result<T, StorageError> {
            Err(StorageError::OutOfReach)
        }
        match self {
            StoreRequest::QueuePrivate(queued) => {
                let _ = queued.2.send(away());
            }
            StoreRequest::SetTopic { reply, .. }
            | StoreRequest::Join { reply, .. }
            | StoreRequest::Leave { reply, .. } => {
                let _ = reply.send(away());
            }
            StoreRequest::CreateAccount { reply, .. } => {
                let _ = reply.send(away());
            }
            StoreRequest::MarkRead { reply, .. } => {
                let _ = reply.send(away());
            }
            StoreRequest::CreateRoom { reply, .. } => {
                let _ = reply.send(away());
            }
            // The messages stay queued, and the rooms are kept.
            StoreRequest::TakePending { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            StoreRequest::UnrememberedRooms { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            // As when a deletion fails: logged; the rooms stay stored, and expire again after
            // the next start.
            StoreRequest::DeleteRooms { rooms, done } => {
                let _ = done.send(());
                tracing::error!(
                    rooms = rooms.len(),
                    "deleting expired rooms failed: the database is out of reach"
                );
            }
            // Never refused: the writer takes these itself.
            StoreRequest::Record(..)
            | StoreRequest::Barrier { .. }
            | StoreRequest::Close { .. } => {}
            #[cfg(test)]
            StoreRequest::FillUp { .. } => {}
        }
    }
}

/// A handle to the storage: the writer task's inbox and the pool of read connections.
#[derive(Debug, Clone)]
pub struct Store {
    mailbox: Mailbox<StoreRequest>,
    reader: reader::Reader,
    history: bool,
    backlog: Backlog,
    queued: Arc<Queued>,
    /// The ids this node hands out (`ids.rs`).
    ids: Arc<MessageIds>,
    /// Whether other nodes may write to the same database (PostgreSQL).
    shared: bool,
}

impl Store {
    /// Opens (creating if needed) the database in the data directory, runs the embedded
    /// migrations, loads what the server keeps in memory, and starts the writer. The
    /// returned receiver is answered once the writer has stopped (after [`Store::close`]).
    ///
    /// With `database_url`, the database is PostgreSQL's instead, which must be reachable at
    /// start; its schema is created or migrated (several nodes may start at once).
    ///
    /// The writer runs on a thread of its own, below chat's priority, with a runtime of its
    /// own: the database's work (SQLite's thread, which it starts, inherits its priority)
    /// then never takes the core from a session that has something to deliver, and a burst
    /// of chat waits in memory for a quiet moment instead of being slowed down by its
    /// history.
    pub async fn open(
        options: StorageOptions,
    ) -> Result<(Store, Loaded, oneshot::Receiver<()>), StorageError> {
        // Unbounded so that recording itself never waits (an actor records as it delivers):
        // what history waits is bounded by `Queued` instead, which sessions wait on before
        // their next message; the requests waiting show in the `stats` line as the backlog.
        let (mailbox, rx) = Mailbox::unbounded();
        let backlog = Backlog::default();
        let (opened, opening) = oneshot::channel();
        let (stopped, writer_stopped) = oneshot::channel();
        let queued = Arc::new(Queued::new(queued::QUEUED_AT_MOST));
        let ids = Arc::new(MessageIds::new(match options.database_url {
            None => ids::BLOCK_ALONE,
            Some(_) => ids::BLOCK_SHARED,
        }));
        let writer = actor::Writer {
            options: options.clone(),
            backlog: backlog.clone(),
            queued: queued.clone(),
            ids: ids.clone(),
        };
        std::thread::Builder::new()
            .name("linechat-store".into())
            .spawn(move || {
                priority::lower_this_thread(Below::Storage);
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer.run(rx, opened)),
                    Err(error) => {
                        let _ = opened.send(Err(StorageError::Thread(error)));
                    }
                }
                let _ = stopped.send(());
            })
            .map_err(StorageError::Thread)?;
        let loaded = opening.await.map_err(|_| StorageError::Gone)??;
        let reader = reader::Reader::open(&options).await?;
        let store = Store {
            mailbox,
            reader,
            history: options.history,
            backlog,
            queued,
            ids,
            shared: options.database_url.is_some(),
        };
        Ok((store, loaded, writer_stopped))
    }

    /// Whether other nodes may write to this store too (PostgreSQL): then what was loaded at
    /// start is not all there is, and accounts and rooms made elsewhere are looked up with
    /// [`Store::account`] and [`Store::room`].
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The account registered as `name` (in any case): its id, its name as registered and
    /// its password hash. A read, on the read connections: for a node to let in an account
    /// registered on another node since it started.
    pub async fn account(&self, name: &Name) -> Result<Option<(i64, Name, String)>, StorageError> {
        Ok(self.reader.account(name).await?)
    }

    /// The room `name` (in any case), as stored: its name as created, and its creator. A
    /// read, for a node to learn of a room created on another node since it started.
    pub async fn room(&self, name: &Name) -> Result<Option<(Name, Name)>, StorageError> {
        Ok(self.reader.room(name).await?)
    }

    /// Requests waiting for the writer, as it last saw them.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// Accepts a message: gives it its id, which the caller delivers it with, and queues it
    /// for history. Never waits; a batch that cannot be written is counted and logged, and
    /// its messages are lost (see the writer). Ids are given out whether history is kept or
    /// not, so that every message has one.
    pub fn record(&self, record: Record) -> MessageId {
        let id = self.next_id();
        self.record_as(record, id);
        id
    }

    /// An id for a message accepted here and stored elsewhere: a private message to a user
    /// on another node of a shared store, which that node stores ([`Store::record_as`]).
    pub fn next_id(&self) -> MessageId {
        self.ids.next()
    }

    /// Keeps `record` under the id it was given where it was accepted, on this node
    /// ([`Store::record`]) or on another ([`Store::next_id`]). Never waits.
    pub fn record_as(&self, record: Record, id: MessageId) {
        if self.history && id.is_stored() {
            // Counted before it is sent, so that the writer never takes away what is not
            // counted yet.
            let cost = Queued::cost(&record);
            self.queued.add(cost);
            if self
                .mailbox
                .try_tell(StoreRequest::Record(record, id))
                .is_err()
            {
                // The writer has stopped (at shutdown): nothing waits for it.
                self.queued.take(cost);
            }
        }
    }

    /// Returns at once unless the history waiting for the writer is over its bound
    /// (`queued::QUEUED_AT_MOST`); then once the writer has caught up some. Sessions wait
    /// here before each message they are sent, so that a burst of chat longer than the
    /// writer can hold in memory goes at the pace the writer keeps.
    pub async fn room_for_history(&self) {
        self.queued.room().await;
    }

    /// Stores a private message for an offline user: its conversation's second user
    /// ([`Record::recipient`]), who gets it at their next login. It is given its id, as
    /// [`Store::record`] gives one, and the request is sent at once, so messages keep the
    /// order of the calls; the returned future ([`Queueing::id`] has the id) only waits for
    /// the outcome.
    pub fn queue_private(&self, record: Record) -> Queueing {
        self.queue_private_as(record, self.next_id())
    }

    /// The same, under the id it was given where it was accepted ([`Store::next_id`]).
    pub fn queue_private_as(&self, record: Record, id: MessageId) -> Queueing {
        let answer = if id.is_stored() {
            self.mailbox
                .ask_later(|reply| StoreRequest::QueuePrivate(Box::new((record, id, reply))))
        } else {
            // No id this node may store it under: refused as when the database is away.
            Answer::ready(Err(StorageError::OutOfReach))
        };
        Queueing { id, answer }
    }

    /// Stores a new account and returns its id.
    pub async fn create_account(&self, name: Name, hash: String) -> Result<i64, StorageError> {
        self.mailbox
            .ask(|reply| StoreRequest::CreateAccount { name, hash, reply })
            .await?
    }

    /// Stores a new room; `false` if one of that name is stored already (on a shared store,
    /// made by another node, maybe at the same moment: of two nodes, exactly one gets `true`).
    /// Sent at once; the returned future only waits for the outcome, so an actor can hand it
    /// to a task of its own and carry on.
    pub fn create_room(
        &self,
        room: Name,
        creator: Name,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send + 'static {
        let answer = self.mailbox.ask_later(|reply| StoreRequest::CreateRoom {
            room,
            creator,
            reply,
        });
        async move { answer.await? }
    }

    /// Sets `room`'s topic, or clears it (`None`). Sent at once; the returned future only
    /// waits for the outcome (`Ok` once it is stored), as for [`Store::create_room`].
    pub fn set_topic(
        &self,
        room: Name,
        topic: Option<Topic>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let topic = topic.map(Box::new);
        let answer = self
            .mailbox
            .ask_later(|reply| StoreRequest::SetTopic { room, topic, reply });
        async move { answer.await? }
    }

    /// Returns once every record sent before is committed (at the next group commit).
    #[cfg(test)]
    pub async fn sync(&self) {
        let _ = self.committed().await;
    }

    /// Remembers that registered user `account` is in `room`; returns once it is on disk.
    pub async fn join(&self, account: Name, room: Name) -> Result<(), StorageError> {
        self.mailbox
            .ask(|reply| StoreRequest::Join {
                account,
                room,
                reply,
            })
            .await?
    }

    /// Moves `marker.account`'s read marker in `marker.conversation` forward to `marker.id`
    /// (one further on stays); returns the marker, once it is on disk.
    pub async fn mark_read(&self, marker: ReadMarker) -> Result<MessageId, StorageError> {
        let marker = Box::new(marker);
        self.mailbox
            .ask(|reply| StoreRequest::MarkRead { marker, reply })
            .await?
    }

    /// `account`'s read marker in `conversation`, if it set one.
    pub async fn read_marker(
        &self,
        account: i64,
        conversation: &Conversation,
    ) -> Result<Option<MessageId>, StorageError> {
        Ok(self.reader.read_marker(account, conversation).await?)
    }

    /// Every read marker of `account`, by target, with how many messages came after each.
    /// Waits, as a history read does, for what was sent a moment before to be written.
    pub async fn unread(&self, account: i64) -> Result<Vec<Unread>, StorageError> {
        self.mailbox
            .ask(|done| StoreRequest::Barrier { done })
            .await?;
        Ok(self.reader.unread(account).await?)
    }

    /// Forgets that `account` is in `room`; returns once that is on disk.
    pub async fn leave(&self, account: Name, room: Name) -> Result<(), StorageError> {
        self.mailbox
            .ask(|reply| StoreRequest::Leave {
                account,
                room,
                reply,
            })
            .await?
    }

    /// The rooms `account` was in, by their names as created. A read: it never waits for a
    /// write, nor behind `HISTORY` reads.
    pub async fn memberships(&self, account: Name) -> Vec<Name> {
        self.reader
            .memberships(&account)
            .await
            .inspect_err(|error| tracing::error!(%error, "reading memberships failed"))
            .unwrap_or_default()
    }

    /// Private messages that waited for `account`, oldest first; they count as delivered.
    /// On a failure nothing counts as delivered, and the messages wait for the next login.
    pub async fn take_pending(&self, account: UserId) -> Vec<StoredMessage> {
        self.mailbox
            .ask(|reply| StoreRequest::TakePending { account, reply })
            .await
            .unwrap_or_default()
    }

    /// The last `count` messages of a conversation, oldest first, queued ones included, once
    /// every record queued before the call is committed. `HISTORY` streams its answer with
    /// [`Store::resolve_page`] and [`Store::history_range`] instead.
    pub async fn history(
        &self,
        conversation: Conversation,
        count: u32,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        self.committed().await?;
        self.history_range(&conversation, Range::default(), count, End::Newest, count)
            .await
    }

    /// The messages of a conversation that match `query`, newest first, at most `limit`,
    /// once every record queued before the call is committed (as `HISTORY` reads). The
    /// index finds their ids; the messages are read back from history.
    pub async fn search(
        &self,
        conversation: &Conversation,
        query: &SearchQuery,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        self.committed().await?;
        Ok(self.reader.search(conversation, query, limit).await?)
    }

    /// Where a `HISTORY` page of a conversation lies: the range of ids it covers, and the end
    /// of it that its messages are taken from; `None` if it can hold nothing (after a time
    /// after which no message was kept).
    ///
    /// It first waits for the writer to commit every record queued before the call (at most
    /// one batch window, and no extra commit), so that a read includes messages sent a moment
    /// before, and their ids are bounds. A message id as a bound must be one of the
    /// conversation's ([`PageError::NoSuchMessage`] otherwise, whoever's message it is), so
    /// that an id tells nothing of other conversations. A time becomes the place in the
    /// conversation's order where its messages from then on begin (`Sql::first_from`).
    pub async fn resolve_page(
        &self,
        conversation: &Conversation,
        page: HistoryPage,
    ) -> Result<Option<(Range, End)>, PageError> {
        self.committed().await?;
        self.reader.resolve_page(conversation, page).await
    }

    /// One page of a read of history: of the `count` messages of `range` nearest its `from`
    /// end, the first `limit`, oldest first. A long `HISTORY` reads page after page as its
    /// client takes the lines, instead of holding all of them at once: the next page is
    /// the rest of the range after the last message sent, from its oldest end.
    ///
    /// At most `read_connections` pages are read at once server-wide; the others wait their
    /// turn, while writes go on. It does not wait for the writer: [`Store::resolve_page`],
    /// which comes first, does.
    pub async fn history_range(
        &self,
        conversation: &Conversation,
        range: Range,
        count: u32,
        from: End,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        self.reader
            .history_range(conversation, range, count, from, limit)
            .await
            .map_err(StorageError::from)
    }

    /// Returns once every record sent before the call is committed, at the writer's next
    /// group commit: a read that follows sees them.
    pub async fn committed(&self) -> Result<(), StorageError> {
        Ok(self
            .mailbox
            .ask(|done| StoreRequest::Barrier { done })
            .await?)
    }

    /// Of `rooms`, those that no registered user remembers.
    pub async fn unremembered_rooms(&self, rooms: Vec<Name>) -> Vec<Name> {
        self.mailbox
            .ask(|reply| StoreRequest::UnrememberedRooms { rooms, reply })
            .await
            .unwrap_or_default()
    }

    /// Deletes `rooms` and their history, except any that a registered user remembers by
    /// the time this runs. Sent at once; the returned future resolves once it is done,
    /// failed (logged) or refused.
    pub fn delete_rooms(&self, rooms: Vec<Name>) -> impl Future<Output = ()> + Send + 'static {
        let done = self
            .mailbox
            .ask_later(|done| StoreRequest::DeleteRooms { rooms, done });
        async move {
            let _ = done.await;
        }
    }

    /// Writes everything queued and stops the writer task; closes the read connections.
    pub async fn close(&self) {
        // Readers first, so that the writer's connection is the last and checkpoints the
        // write-ahead log into the database as it closes.
        self.reader.close().await;
        let _ = self
            .mailbox
            .ask(|reply| StoreRequest::Close { reply })
            .await;
    }

    /// Caps the database at its current size: later writes that need a new page fail as
    /// on a full disk.
    #[cfg(test)]
    async fn fill_up(&self) {
        let _ = self.mailbox.ask(|done| StoreRequest::FillUp { done }).await;
    }
}

/// A private message being queued for an offline user ([`Store::queue_private`]): its id
/// now, and, as a future, whether it is stored.
#[derive(Debug)]
pub struct Queueing {
    id: MessageId,
    answer: Answer<Result<(), StorageError>>,
}

impl Queueing {
    /// The id the message was given.
    pub fn id(&self) -> MessageId {
        self.id
    }
}

impl Future for Queueing {
    type Output = Result<(), StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer).poll(cx).map(|answer| answer?)
    }
}

#[cfg(test)]
mod tests;
