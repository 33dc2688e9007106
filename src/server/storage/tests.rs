use std::time::{Duration, SystemTime};

use super::*;
use crate::server::member::UserId;
use linechat_protocol::Bound;

/// The test PostgreSQL server (the integration tests' fixture).
#[path = "../../../tests/support/postgres.rs"]
mod postgres_support;
use postgres_support::Postgres;

const A: UserId = UserId::Account(1);
const B: UserId = UserId::Account(2);

fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap()
}

fn options(dir: &std::path::Path) -> StorageOptions {
    StorageOptions {
        data_dir: dir.to_path_buf(),
        database_url: None,
        history: true,
        batch_window: Duration::from_millis(20),
        keep_per_conversation: 0,
        keep_days: 0,
        read_connections: 2,
    }
}

/// The kinds of database a store runs on; most tests run on each (see `on_both!`).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// Where a test's store lives: a temporary directory (SQLite's file), and for PostgreSQL a
/// fresh database of the test process's PostgreSQL server.
struct Place {
    dir: tempfile::TempDir,
    url: Option<String>,
}

impl Place {
    fn new(kind: Kind) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            url: match kind {
                Kind::Sqlite => None,
                Kind::Postgres => Some(Postgres::shared().database()),
            },
        }
    }

    /// The options above, on this place.
    fn options(&self) -> StorageOptions {
        StorageOptions {
            database_url: self.url.clone(),
            ..options(self.dir.path())
        }
    }
}

/// A store with the options above, on a place of its own that lives as long as the
/// returned handle to it.
async fn open(kind: Kind) -> (Store, tokio::sync::oneshot::Receiver<()>, Place) {
    let place = Place::new(kind);
    let (store, _, task) = Store::open(place.options()).await.unwrap();
    (store, task, place)
}

/// Tests `async fn test(kind: Kind)` on each kind of database, as `test::sqlite` and
/// `test::postgres`.
macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn sqlite() {
                    super::$test(super::Kind::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$test(super::Kind::Postgres).await;
                }
            }
        )*
    };
}

on_both!(
    search_finds_words_phrases_and_prefixes_newest_first,
    search_reads_only_the_conversation_asked,
    search_stops_at_the_count,
    search_finds_messages_in_rows_and_in_chunks,
    retention_by_count_takes_messages_out_of_the_search_index,
    retention_by_age_takes_messages_out_of_the_search_index,
    a_deleted_room_takes_its_messages_out_of_the_search_index,
    private_messages_delivered_without_history_leave_the_search_index,
    history_stored_before_the_index_is_found_after_the_upgrade,
    everything_survives_a_reopen,
    history_is_the_latest_messages_oldest_first,
    a_private_conversation_is_one_history_in_both_directions,
    pending_messages_are_taken_once,
    retention_keeps_the_latest_per_conversation,
    history_off_keeps_no_chat_but_still_queues_private_messages,
    history_pages_walk_the_window_oldest_first,
    a_read_waits_for_the_group_commit_without_forcing_one,
    reads_do_not_hold_up_writes,
    a_deleted_room_takes_its_history_and_only_its_own,
    a_batch_to_many_conversations_is_a_chunk_each_and_reads_back,
    a_conversation_with_much_in_a_batch_gets_several_chunks,
    rows_and_chunks_read_in_the_order_sent,
    a_count_may_end_in_the_middle_of_a_chunk,
    pages_cross_chunk_boundaries,
    retention_by_count_holds_to_the_message_across_chunks,
    retention_by_age_holds_to_the_message_across_chunks,
    ids_go_on_after_a_reopen,
    a_room_keeps_its_topic_across_a_reopen,
    the_id_a_message_is_given_is_the_one_history_shows_also_after_a_reopen,
    records_that_arrive_out_of_order_read_back_in_id_order,
    ids_are_not_given_twice_across_a_reopen_even_without_history,
    read_markers_only_move_forward_and_count_what_came_after_them,
    pages_by_ids_read_across_rows_and_chunks,
    an_id_that_is_not_the_conversations_is_refused,
    pages_by_times_read_across_rows_and_chunks,
);

/// A page of the last `window` messages of a conversation, as `HISTORY` without bounds
/// reads them: without `after`, the first `limit` of them, once what was sent before is
/// committed; with it, the `limit` after that message.
async fn latest_page(
    store: &Store,
    conversation: Conversation,
    window: u32,
    after: Option<MessageId>,
    limit: u32,
) -> Result<Vec<StoredMessage>, StorageError> {
    let (range, from) = match after {
        Some(after) => (
            Range {
                after: Some(after),
                before: None,
            },
            End::Oldest,
        ),
        None => {
            store.sync().await;
            (Range::default(), End::Newest)
        }
    };
    store
        .history_range(&conversation, range, window, from, limit)
        .await
}

fn said(conversation: Conversation, from: &str, text: &str) -> Record {
    Record::now(conversation, name(from), text)
}

fn texts(messages: &[StoredMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| format!("{} {}", m.from, m.text))
        .collect()
}

async fn everything_survives_a_reopen(kind: Kind) {
    let place = Place::new(kind);
    {
        let (store, loaded, task) = Store::open(place.options()).await.unwrap();
        assert!(loaded.accounts.is_empty() && loaded.rooms.is_empty());
        let id = store
            .create_account(name("Alice"), "$argon2id$fake".into())
            .await
            .unwrap();
        assert_eq!(id, 1);
        store.create_room(name("Dev"), name("Alice")).await.unwrap();
        store.join(name("alice"), name("dev")).await.unwrap();
        store.record(said(Conversation::Global, "Alice", "hello world"));
        store.record(said(Conversation::Room(name("dev")), "Alice", "in dev"));
        store.close().await;
        task.await.unwrap();
    }
    let (store, loaded, _task) = Store::open(place.options()).await.unwrap();
    assert_eq!(
        loaded.accounts,
        [(1, name("Alice"), "$argon2id$fake".to_string())]
    );
    assert_eq!(loaded.accounts[0].1.as_str(), "Alice");
    assert_eq!(loaded.rooms, [(name("Dev"), name("Alice"))]);
    assert_eq!(store.memberships(name("ALICE")).await, [name("Dev")]);
    let global = store.history(Conversation::Global, 10).await.unwrap();
    assert_eq!(texts(&global), ["Alice hello world"]);
    let room = store
        .history(Conversation::Room(name("DEV")), 10)
        .await
        .unwrap();
    assert_eq!(texts(&room), ["Alice in dev"]);
}

async fn history_is_the_latest_messages_oldest_first(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    for i in 0..10 {
        store.record(said(Conversation::Global, "bob", &i.to_string()));
    }
    // A read sees every record queued before it, even inside the batch window.
    let latest = store.history(Conversation::Global, 3).await.unwrap();
    assert_eq!(texts(&latest), ["bob 7", "bob 8", "bob 9"]);
}

async fn a_private_conversation_is_one_history_in_both_directions(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    let guest = UserId::new_guest();
    store.record(said(Conversation::Private(A, B), "alice", "hi bob"));
    store.record(said(Conversation::Private(B, A), "Bob", "hi alice"));
    store.record(said(Conversation::Private(A, guest), "alice", "hi carol"));
    let history = store
        .history(Conversation::Private(B, A), 10)
        .await
        .unwrap();
    assert_eq!(texts(&history), ["alice hi bob", "Bob hi alice"]);
    // Another guest session under the same name reads nothing of it.
    let other = Conversation::Private(A, UserId::new_guest());
    assert!(store.history(other, 10).await.unwrap().is_empty());
}

async fn pending_messages_are_taken_once(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    let queued = said(Conversation::Private(A, B), "a", "while you were out");
    store.queue_private(queued).await.unwrap();
    let taken = store.take_pending(B).await;
    assert_eq!(texts(&taken), ["a while you were out"]);
    assert!(store.take_pending(B).await.is_empty());
}

async fn retention_keeps_the_latest_per_conversation(kind: Kind) {
    let place = Place::new(kind);
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        for i in 0..10 {
            store.record(said(Conversation::Global, "bob", &i.to_string()));
            store.record(said(Conversation::Room(name("dev")), "bob", &i.to_string()));
        }
        store.close().await;
        task.await.unwrap();
    }
    let mut keep_three = place.options();
    keep_three.keep_per_conversation = 3;
    let (store, _, _task) = Store::open(keep_three).await.unwrap();
    let global = store.history(Conversation::Global, 100).await.unwrap();
    assert_eq!(texts(&global), ["bob 7", "bob 8", "bob 9"]);
    let room = store
        .history(Conversation::Room(name("dev")), 100)
        .await
        .unwrap();
    assert_eq!(room.len(), 3);
}

async fn history_off_keeps_no_chat_but_still_queues_private_messages(kind: Kind) {
    let place = Place::new(kind);
    let mut off = place.options();
    off.history = false;
    let (store, _, _task) = Store::open(off).await.unwrap();
    store.record(said(Conversation::Global, "bob", "gone"));
    let queued = said(Conversation::Private(A, B), "a", "kept");
    store.queue_private(queued).await.unwrap();
    assert!(
        store
            .history(Conversation::Global, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(texts(&store.take_pending(B).await), ["a kept"]);
    // Delivered, it is gone: no history is kept.
    let between = Conversation::Private(A, B);
    assert!(store.history(between, 10).await.unwrap().is_empty());
}

async fn history_pages_walk_the_window_oldest_first(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    for i in 0..7 {
        store.record(said(Conversation::Global, "bob", &i.to_string()));
    }
    store.record(said(Conversation::Room(name("dev")), "bob", "elsewhere"));
    // The last 5 messages, 2 at a time.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = latest_page(&store, Conversation::Global, 5, after, 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.id);
        pages.push(texts(&page));
    }
    assert_eq!(
        pages,
        [
            vec!["bob 2", "bob 3"],
            vec!["bob 4", "bob 5"],
            vec!["bob 6"],
        ]
    );
}

async fn a_read_waits_for_the_group_commit_without_forcing_one(kind: Kind) {
    let place = Place::new(kind);
    let mut slow = place.options();
    slow.batch_window = Duration::from_millis(1000);
    let (store, _, _task) = Store::open(slow).await.unwrap();
    // Nothing queued: the read is answered at once.
    let started = tokio::time::Instant::now();
    assert!(
        store
            .history(Conversation::Global, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_millis(800));
    // A record queued: the read sees it, at the batch's commit, not before.
    let started = tokio::time::Instant::now();
    store.record(said(Conversation::Global, "bob", "queued"));
    let history = store.history(Conversation::Global, 5).await.unwrap();
    assert_eq!(texts(&history), ["bob queued"]);
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

async fn reads_do_not_hold_up_writes(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    for i in 0..2000 {
        store.record(said(
            Conversation::Global,
            "bob",
            &format!("{i} {}", "x".repeat(200)),
        ));
    }
    store.sync().await;
    // Many large reads in flight; a write acknowledged to a client is not queued behind them:
    // it ends while some are still running. On a loaded machine the reads may all end first
    // in one attempt (the write's task was not run meanwhile), which shows nothing either
    // way, so a few attempts are made; a write queued behind the reads never ends first.
    for attempt in 0..5 {
        let reads: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.history(Conversation::Global, 2000).await })
            })
            .collect();
        tokio::task::yield_now().await;
        let room = name(&format!("dev{attempt}"));
        store.create_room(room, name("bob")).await.unwrap();
        let unfinished = reads.iter().filter(|read| !read.is_finished()).count();
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap().len(), 2000);
        }
        if unfinished > 0 {
            return;
        }
    }
    panic!("the reads all ended before the write, in every attempt: nothing was shown");
}

// ---------------------------------------------------------------------------------------------
// A full database: every acknowledged write says so, history batches are counted as lost.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn on_a_full_database_acknowledged_writes_fail_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _, task) = Store::open(options(dir.path())).await.unwrap();
        store.create_room(name("old"), name("alice")).await.unwrap();
        store.fill_up().await;
        // Rows larger than a page, which need pages the database may no longer take.
        let big = "h".repeat(40_000);
        assert!(
            store
                .create_account(name("carol"), big.clone())
                .await
                .is_err()
        );
        let queued = said(Conversation::Private(A, B), "a", &big);
        assert!(store.queue_private(queued).await.is_err());
        // A history batch that cannot be written is lost, and chat goes on: reads work.
        store.record(said(Conversation::Global, "bob", &big));
        assert!(
            store
                .history(Conversation::Global, 5)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.memberships(name("nobody")).await, Vec::<Name>::new());
        store.close().await;
        task.await.unwrap();
    }
    let (store, loaded, _task) = Store::open(options(dir.path())).await.unwrap();
    assert!(loaded.accounts.is_empty());
    assert_eq!(loaded.rooms, [(name("old"), name("alice"))]);
    assert!(store.take_pending(B).await.is_empty());
}

async fn a_room_keeps_its_topic_across_a_reopen(kind: Kind) {
    let place = Place::new(kind);
    // Stored to the millisecond.
    let at = std::time::UNIX_EPOCH + Duration::from_millis(1_795_624_800_123);
    let topic = |text: &str| Topic {
        text: text.into(),
        by: name("Bob"),
        at,
    };
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        for room in ["dev", "ops", "qa"] {
            store.create_room(name(room), name("alice")).await.unwrap();
        }
        store
            .set_topic(name("DEV"), Some(topic("first")))
            .await
            .unwrap();
        store
            .set_topic(name("dev"), Some(topic("release  on Friday 🚀")))
            .await
            .unwrap();
        store
            .set_topic(name("ops"), Some(topic("gone soon")))
            .await
            .unwrap();
        store.set_topic(name("ops"), None).await.unwrap();
        store.close().await;
        task.await.unwrap();
    }
    let (_store, loaded, _task) = Store::open(place.options()).await.unwrap();
    assert_eq!(loaded.rooms.len(), 3);
    assert_eq!(
        loaded.topics,
        [(name("dev"), topic("release  on Friday 🚀"))]
    );
    assert_eq!(loaded.topics[0].1.by.as_str(), "Bob");
}

async fn a_deleted_room_takes_its_history_and_only_its_own(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    store.create_room(name("dev"), name("alice")).await.unwrap();
    store.create_room(name("ops"), name("alice")).await.unwrap();
    store.record(said(Conversation::Room(name("dev")), "alice", "old"));
    store.record(said(Conversation::Room(name("ops")), "alice", "kept"));
    store.sync().await;
    store.delete_rooms(vec![name("DEV")]).await;
    // The conversation keeps its id; a room of that name later starts with no history.
    store.record(said(Conversation::Room(name("Dev")), "bob", "new"));
    let dev = store.history(Conversation::Room(name("dev")), 10).await;
    assert_eq!(texts(&dev.unwrap()), ["bob new"]);
    let ops = store.history(Conversation::Room(name("ops")), 10).await;
    assert_eq!(texts(&ops.unwrap()), ["alice kept"]);
}

/// A database in `dir` as the first `migrations` left it, with `sql` run on it.
async fn old_database(dir: &std::path::Path, migrations: &[&str], sql: &str) {
    let old = tempfile::tempdir().unwrap();
    for file in migrations {
        let from = std::path::Path::new("src/server/storage/migrations").join(file);
        std::fs::copy(from, old.path().join(file)).unwrap();
    }
    let connect = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join(sqlite::DATABASE_FILE))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    migrator.run(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn history_written_before_conversation_ids_is_read_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    // A database as the two first migrations left it, with a message of each kind.
    old_database(
        dir.path(),
        &["0001_initial.sql", "0002_identities.sql"],
        "INSERT INTO accounts (name_key, name, password_hash, created_at) \
           VALUES ('bob', 'Bob', 'x', 0); \
         INSERT INTO messages (target, sender, recipient_key, body, sent_at, pending) VALUES \
           ('room:dev', 'alice', NULL, 'in dev', 1, 0), \
           ('pm:a1 a2', 'alice', 'a2', 'seen', 2, 0), \
           ('*', 'alice', NULL, 'to all', 3, 0), \
           ('pm:a1 a2', 'alice', 'a2', 'waiting', 4, 1);",
    )
    .await;

    let (store, _, _task) = Store::open(options(dir.path())).await.unwrap();
    let dev = store.history(Conversation::Room(name("Dev")), 10).await;
    assert_eq!(texts(&dev.unwrap()), ["alice in dev"]);
    let global = store.history(Conversation::Global, 10).await;
    assert_eq!(texts(&global.unwrap()), ["alice to all"]);
    assert_eq!(texts(&store.take_pending(B).await), ["alice waiting"]);
    store.record(said(Conversation::Private(B, A), "Bob", "answer"));
    let private = store.history(Conversation::Private(A, B), 10).await;
    assert_eq!(
        texts(&private.unwrap()),
        ["alice seen", "alice waiting", "Bob answer"]
    );
}

// ---------------------------------------------------------------------------------------------
// Chunks: a batch's messages are stored as one row per conversation.
// ---------------------------------------------------------------------------------------------

/// How many rows `messages` and `chunks` have, read beside the store.
async fn rows_and_chunks(place: &Place) -> (i64, i64) {
    const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM chunks)";
    if let Some(url) = &place.url {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let counts = sqlx::query_as(COUNTS).fetch_one(&pool).await.unwrap();
        pool.close().await;
        return counts;
    }
    let dir = place.dir.path();
    let connect = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join(sqlite::DATABASE_FILE))
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
    let counts = sqlx::query_as(COUNTS).fetch_one(&pool).await.unwrap();
    pool.close().await;
    counts
}

/// `n` messages "<first>".."<first + n - 1>" to `conversation`, committed as one batch.
async fn batch_of(store: &Store, conversation: &Conversation, first: usize, n: usize) {
    for i in first..first + n {
        store.record(said(conversation.clone(), "bob", &i.to_string()));
    }
    store.sync().await;
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("bob {i}")).collect()
}

async fn a_batch_to_many_conversations_is_a_chunk_each_and_reads_back(kind: Kind) {
    let (store, _task, dir) = open(kind).await;
    let conversations: Vec<Conversation> = (0..50)
        .map(|i| Conversation::Private(A, UserId::Account(100 + i)))
        .chain([Conversation::Global, Conversation::Room(name("dev"))])
        .collect();
    // Interleaved, as the server receives them.
    for i in 0..20 {
        for (c, conversation) in conversations.iter().enumerate() {
            let text = format!("{c}-{i} {}", "é".repeat(c));
            store.record(said(conversation.clone(), &format!("u{}", i % 3), &text));
        }
    }
    store.sync().await;
    assert_eq!(rows_and_chunks(&dir).await, (0, 52));
    for (c, conversation) in conversations.iter().enumerate() {
        let history = store.history(conversation.clone(), 100).await.unwrap();
        let wanted: Vec<String> = (0..20)
            .map(|i| format!("u{} {c}-{i} {}", i % 3, "é".repeat(c)))
            .collect();
        assert_eq!(texts(&history), wanted);
        assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
    }
}

async fn a_conversation_with_much_in_a_batch_gets_several_chunks(kind: Kind) {
    let (store, _task, dir) = open(kind).await;
    let long = "l".repeat(4000);
    for i in 0..20 {
        store.record(said(Conversation::Global, "bob", &format!("{i} {long}")));
    }
    store.sync().await;
    let (rows, chunks) = rows_and_chunks(&dir).await;
    assert_eq!(rows, 0);
    assert!(
        chunks >= 20 * 4000 / (chunk::MAX_BODY as i64 + 4000),
        "{chunks} chunks"
    );
    let history = store.history(Conversation::Global, 100).await.unwrap();
    let wanted: Vec<String> = (0..20).map(|i| format!("bob {i} {long}")).collect();
    assert_eq!(texts(&history), wanted);
}

async fn rows_and_chunks_read_in_the_order_sent(kind: Kind) {
    let (store, _task, dir) = open(kind).await;
    let between = Conversation::Private(A, B);
    let queued = |text: &str| said(between.clone(), "alice", text);
    // A queued message is written on its own, after the history sent before it: a queued
    // row between history messages splits the conversation's chunk.
    store.record(said(between.clone(), "bob", "1"));
    store.record(said(Conversation::Global, "bob", "elsewhere"));
    store.queue_private(queued("2")).await.unwrap();
    store.record(said(between.clone(), "bob", "3"));
    store.sync().await;
    // Then another queued message, and another batch.
    store.queue_private(queued("4")).await.unwrap();
    batch_of(&store, &between, 5, 2).await;
    assert_eq!(rows_and_chunks(&dir).await, (2, 4));
    let history = store.history(between.clone(), 10).await.unwrap();
    assert_eq!(
        texts(&history),
        ["bob 1", "alice 2", "bob 3", "alice 4", "bob 5", "bob 6"]
    );
    // Windows that start in a chunk and at a row.
    let last = store.history(between.clone(), 4).await.unwrap();
    assert_eq!(texts(&last), ["bob 3", "alice 4", "bob 5", "bob 6"]);
    let last = store.history(between, 5).await.unwrap();
    assert_eq!(texts(&last)[0], "alice 2");
    assert_eq!(texts(&store.take_pending(B).await), ["alice 2", "alice 4"]);
}

async fn a_count_may_end_in_the_middle_of_a_chunk(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    for first in [0, 5, 10] {
        batch_of(&store, &Conversation::Global, first, 5).await;
    }
    let last = store.history(Conversation::Global, 7).await.unwrap();
    assert_eq!(texts(&last), numbered(8..15));
    let one = store.history(Conversation::Global, 1).await.unwrap();
    assert_eq!(texts(&one), numbered(14..15));
    let all = store.history(Conversation::Global, 100).await.unwrap();
    assert_eq!(texts(&all), numbered(0..15));
}

async fn pages_cross_chunk_boundaries(kind: Kind) {
    let (store, _task, _dir) = open(kind).await;
    let dev = Conversation::Room(name("dev"));
    for first in [0, 5, 10] {
        batch_of(&store, &dev, first, 5).await;
        batch_of(&store, &Conversation::Global, first, 1).await;
    }
    // The last 12, 4 at a time: pages start and end inside chunks.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = latest_page(&store, dev.clone(), 12, after, 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.id);
        pages.push(texts(&page));
    }
    assert_eq!(pages, [numbered(3..7), numbered(7..11), numbered(11..15)]);
}

async fn retention_by_count_holds_to_the_message_across_chunks(kind: Kind) {
    let place = Place::new(kind);
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        for first in [0, 4, 8] {
            batch_of(&store, &Conversation::Global, first, 4).await;
        }
        store.close().await;
        task.await.unwrap();
    }
    // Whole chunks go, and the chunk that holds the limit loses its older messages.
    for (keep, kept, chunks) in [
        (100, 0..12, 3),
        (5, 7..12, 2),
        (4, 8..12, 1),
        (1, 11..12, 1),
    ] {
        let mut retention = place.options();
        retention.keep_per_conversation = keep;
        let (store, _, task) = Store::open(retention).await.unwrap();
        let history = store.history(Conversation::Global, 100).await.unwrap();
        assert_eq!(texts(&history), numbered(kept), "keeping {keep}");
        store.close().await;
        task.await.unwrap();
        assert_eq!(rows_and_chunks(&place).await, (0, chunks));
    }
}

async fn retention_by_age_holds_to_the_message_across_chunks(kind: Kind) {
    let place = Place::new(kind);
    let days_ago = |days: u64| SystemTime::now() - Duration::from_secs(days * 86_400);
    let at = |days: u64, text: &str| Record {
        at: actor::millis(days_ago(days)),
        ..said(Conversation::Global, "bob", text)
    };
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        store.record(at(400, "old"));
        store.record(at(399, "old too"));
        store.sync().await;
        store.record(at(400, "old, before a young one"));
        store.record(at(1, "young"));
        store.record(at(2, "young too"));
        store.sync().await;
        // A clock set back: the chunk's last message is its oldest.
        store.record(at(3, "young, before an old one"));
        store.record(at(500, "old, last"));
        store.sync().await;
        store.close().await;
        task.await.unwrap();
    }
    let mut year = place.options();
    year.keep_days = 365;
    let (store, _, _task) = Store::open(year).await.unwrap();
    let history = store.history(Conversation::Global, 100).await.unwrap();
    assert_eq!(
        texts(&history),
        ["bob young", "bob young too", "bob young, before an old one"]
    );
    assert_eq!(rows_and_chunks(&place).await, (0, 2));
    // The messages after the trimmed chunks still read in order, in pages.
    store.record(said(Conversation::Global, "bob", "new"));
    let first = latest_page(&store, Conversation::Global, 3, None, 1)
        .await
        .unwrap();
    let rest = latest_page(&store, Conversation::Global, 3, Some(first[0].id), 10)
        .await
        .unwrap();
    assert_eq!(texts(&first), ["bob young too"]);
    assert_eq!(texts(&rest), ["bob young, before an old one", "bob new"]);
}

#[tokio::test]
async fn a_new_database_has_pages_a_chunk_fits_in() {
    let (store, _task, place) = open(Kind::Sqlite).await;
    store.close().await;
    let connect = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(place.dir.path().join(sqlite::DATABASE_FILE))
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
    let (size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(size, 16_384);
}

async fn ids_go_on_after_a_reopen(kind: Kind) {
    let place = Place::new(kind);
    for first in [0, 3] {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        batch_of(&store, &Conversation::Global, first, 3).await;
        store.close().await;
        task.await.unwrap();
    }
    let (store, _, _task) = Store::open(place.options()).await.unwrap();
    let history = store.history(Conversation::Global, 100).await.unwrap();
    assert_eq!(texts(&history), numbered(0..6));
    assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
}

#[tokio::test]
async fn history_in_rows_reads_with_the_chunks_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // A database as the third migration left it: history in rows, ids up to 6.
    old_database(
        dir.path(),
        &[
            "0001_initial.sql",
            "0002_identities.sql",
            "0003_conversation_ids.sql",
        ],
        "INSERT INTO conversations (id, key) VALUES (1, '*'), (2, 'pm:a1 a2'); \
         INSERT INTO messages (id, conversation, sender, recipient_key, body, sent_at, pending) \
         VALUES (1, 1, 'bob', NULL, '0', 1, 0), (2, 1, 'bob', NULL, '1', 2, 0), \
                (3, 2, 'alice', 'a2', 'waiting', 3, 1), (4, 1, 'bob', NULL, '2', 4, 0), \
                (6, 1, 'bob', NULL, '3', 5, 0);",
    )
    .await;
    let (store, _, _task) = Store::open(options(dir.path())).await.unwrap();
    batch_of(&store, &Conversation::Global, 4, 3).await;
    batch_of(&store, &Conversation::Global, 7, 3).await;
    let place = Place { dir, url: None };
    assert_eq!(rows_and_chunks(&place).await, (5, 2));
    let all = store.history(Conversation::Global, 100).await.unwrap();
    assert_eq!(texts(&all), numbered(0..10));
    assert!(all[4].id.get() > 6, "new ids start after the old rows'");
    // A window that starts in the rows, read in pages across rows and chunks.
    let first = latest_page(&store, Conversation::Global, 8, None, 3)
        .await
        .unwrap();
    let rest = latest_page(
        &store,
        Conversation::Global,
        8,
        first.last().map(|m| m.id),
        100,
    )
    .await
    .unwrap();
    assert_eq!(texts(&first), numbered(2..5));
    assert_eq!(texts(&rest), numbered(5..10));
    assert_eq!(texts(&store.take_pending(B).await), ["alice waiting"]);
}

/// What storing costs the writer alone: messages per second and CPU per message (every
/// thread of the process: the writer task and SQLite's worker). A measurement, not a test;
/// run it on a release build, as `scripts/bench-history.sh` does:
/// `cargo test --release --lib storage::tests::writer_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a benchmark"]
async fn writer_cost() {
    const MESSAGES: usize = 200_000;
    const PAIRS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let (store, _, task) = Store::open(options(dir.path())).await.unwrap();
    let sender = name("sender");
    // As the PM benchmark sends them: 100 pairs of guests, 64-byte messages.
    let records: Vec<Record> = (0..MESSAGES as u64)
        .map(|i| {
            let (from, to) = (
                UserId::Guest(i % PAIRS * 2 + 0x1234_5678_9abc),
                UserId::Guest(i % PAIRS * 2 + 0x1234_5678_9abd),
            );
            Record::now(
                Conversation::Private(from, to),
                sender.clone(),
                format!("{i:0>64}"),
            )
        })
        .collect();
    let (cpu, wall) = (cpu_time(), std::time::Instant::now());
    for record in records {
        store.record(record);
    }
    store.sync().await;
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
    store.close().await;
    task.await.unwrap();
    println!(
        "writer: {MESSAGES} messages in {:.3} s: {:.0} messages/s, {:.2} µs CPU per message",
        wall.as_secs_f64(),
        MESSAGES as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / MESSAGES as f64
    );
}

/// CPU time of the whole process so far, user and system.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Fails unless `migrator` lists every `.sql` file of `folder` (under `src/server/storage/`),
/// once each, in the order of their numbers: the migrations are listed by hand
/// (`sqlite::migrator`, `postgres::migrator`), and a file added to the folder but not to the
/// list would never run.
fn assert_every_migration_file_is_listed(folder: &str, migrator: &sqlx::migrate::Migrator) {
    let folder = format!("{}/src/server/storage/{folder}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .expect("the migrations folder")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|file| file.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<i64> = migrator.iter().map(|migration| migration.version).collect();
    let numbered: Vec<i64> = files
        .iter()
        .map(|file| file.split('_').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, numbered, "files: {files:?}");
}

#[test]
fn every_migration_file_is_listed_once_in_order() {
    assert_every_migration_file_is_listed("migrations", &sqlite::migrator());
}

#[test]
fn every_postgres_migration_file_is_listed_once_in_order() {
    assert_every_migration_file_is_listed("migrations/postgres", &postgres::migrator());
}

// ---------------------------------------------------------------------------------------------
// Message ids: given where a message is accepted.
// ---------------------------------------------------------------------------------------------

async fn the_id_a_message_is_given_is_the_one_history_shows_also_after_a_reopen(kind: Kind) {
    let place = Place::new(kind);
    let room = Conversation::Room(name("dev"));
    let (given, queued) = {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        let mut given = Vec::new();
        for i in 0..5 {
            given.push(store.record(said(Conversation::Global, "ann", &format!("g{i}"))));
            given.push(store.record(said(room.clone(), "bob", &format!("r{i}"))));
        }
        let queueing = store.queue_private(said(Conversation::Private(A, B), "ann", "for b"));
        let queued = queueing.id();
        queueing.await.unwrap();
        given.push(store.record(said(Conversation::Private(A, B), "ann", "after")));
        store.sync().await;
        let global = store.history(Conversation::Global, 10).await.unwrap();
        let ids: Vec<MessageId> = global.iter().map(|m| m.id).collect();
        let wanted: Vec<MessageId> = given[..10].iter().copied().step_by(2).collect();
        assert_eq!(ids, wanted, "the ids record gave, before a reopen");
        store.close().await;
        task.await.unwrap();
        (given, queued)
    };
    let (store, _, _task) = Store::open(place.options()).await.unwrap();
    let global = store.history(Conversation::Global, 10).await.unwrap();
    let in_room = store.history(room, 10).await.unwrap();
    let global: Vec<MessageId> = global.iter().map(|m| m.id).collect();
    let in_room: Vec<MessageId> = in_room.iter().map(|m| m.id).collect();
    assert_eq!(
        global,
        given[..10].iter().copied().step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(
        in_room,
        given[1..10].iter().copied().step_by(2).collect::<Vec<_>>()
    );
    let private = store
        .history(Conversation::Private(B, A), 10)
        .await
        .unwrap();
    let private: Vec<(MessageId, String)> = private.into_iter().map(|m| (m.id, m.text)).collect();
    assert_eq!(
        private,
        [
            (queued, "for b".to_string()),
            (given[10], "after".to_string())
        ]
    );
    let pending = store.take_pending(B).await;
    assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), [queued]);
    let later = store.record(said(Conversation::Global, "ann", "later"));
    assert!(
        given.iter().all(|&id| id < later),
        "ids grow across a reopen"
    );
}

/// Sends a record under an id taken earlier: as when a session that took an id reaches the
/// writer after one that took a later id.
fn late(store: &Store, record: Record, id: MessageId) {
    store.record_as(record, id);
}

async fn records_that_arrive_out_of_order_read_back_in_id_order(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    let conversation = Conversation::Private(A, B);
    let message = |i: usize| said(conversation.clone(), "ann", &i.to_string());
    // Ids for 0..10, in the order taken, with a gap (an id given to a message not kept).
    let mut ids: Vec<MessageId> = (0..10).map(|_| store.ids.next()).collect();
    store.ids.next();
    // In one batch, in reverse.
    for i in (0..4).rev() {
        late(&store, message(i), ids[i]);
    }
    store.sync().await;
    // Across batches: 5 and 7 are written before 4 and 6 reach the writer, so that the
    // chunks of the two batches overlap.
    late(&store, message(5), ids[5]);
    late(&store, message(7), ids[7]);
    store.sync().await;
    late(&store, message(6), ids[6]);
    late(&store, message(4), ids[4]);
    store.sync().await;
    // A queued row, then a chunk that spans it: 8 and 9 were taken before it, 10 and 11
    // after.
    let row = store.queue_private(said(conversation.clone(), "ann", "row"));
    let row_id = row.id();
    row.await.unwrap();
    ids.extend((0..2).map(|_| store.ids.next()));
    for i in [9, 11, 8, 10] {
        late(&store, message(i), ids[i]);
    }
    store.sync().await;

    let wanted_texts: Vec<String> = (0..10)
        .map(|i| i.to_string())
        .chain(["row".into()])
        .chain((10..12).map(|i| i.to_string()))
        .collect();
    let mut wanted = ids.clone();
    wanted.push(row_id);
    wanted.sort();
    assert_eq!(wanted[10], row_id, "the row's id is among the chunk's");
    let all = store.history(conversation.clone(), 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), wanted);
    assert_eq!(
        all.iter().map(|m| m.text.clone()).collect::<Vec<_>>(),
        wanted_texts
    );
    // Pages by bounds, among overlapping chunks.
    check_every_page_by_ids(&store, &conversation, &all).await;
    // Windows that start among overlapping chunks, read in pages of every size.
    let total = wanted.len() as u32;
    for window in 1..=total {
        for limit in 1..=4u32 {
            let mut read = Vec::new();
            let mut after = None;
            loop {
                let page = latest_page(&store, conversation.clone(), window, after, limit)
                    .await
                    .unwrap();
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|m| m.id);
                read.extend(page.into_iter().map(|m| m.id));
            }
            let window_ids = &wanted[(total - window) as usize..];
            assert_eq!(read, window_ids, "window {window}, pages of {limit}");
        }
    }
}

async fn ids_are_not_given_twice_across_a_reopen_even_without_history(kind: Kind) {
    let place = Place::new(kind);
    let options = StorageOptions {
        history: false,
        ..place.options()
    };
    let first = {
        let (store, _, task) = Store::open(options.clone()).await.unwrap();
        let first = store.record(said(Conversation::Global, "ann", "not kept"));
        store.close().await;
        task.await.unwrap();
        first
    };
    let (store, _, _task) = Store::open(options).await.unwrap();
    let second = store.record(said(Conversation::Global, "ann", "not kept either"));
    assert!(first.is_stored() && second > first, "{first} then {second}");
}

// ---------------------------------------------------------------------------------------------
// Pages by bounds: before, after and between a message or a time.
// ---------------------------------------------------------------------------------------------

/// A page of `conversation` read whole, as `HISTORY` streams it: placed by
/// [`Store::resolve_page`], then read `limit` messages at a time.
async fn read_page(
    store: &Store,
    conversation: &Conversation,
    page: HistoryPage,
    count: u32,
    limit: u32,
) -> Result<Vec<StoredMessage>, PageError> {
    let Some((mut range, mut from)) = store.resolve_page(conversation, page).await? else {
        return Ok(Vec::new());
    };
    let mut read: Vec<StoredMessage> = Vec::new();
    while (read.len() as u32) < count {
        let left = count - read.len() as u32;
        let page = store
            .history_range(conversation, range, left, from, left.min(limit))
            .await?;
        if page.is_empty() {
            break;
        }
        range.after = page.last().map(|m| m.id);
        from = End::Oldest;
        read.extend(page);
    }
    Ok(read)
}

/// Reads a page that must be readable, the same in pages of every size, as texts.
async fn page_texts(
    store: &Store,
    conversation: &Conversation,
    page: HistoryPage,
    count: u32,
) -> Vec<String> {
    let whole = read_page(store, conversation, page, count, count)
        .await
        .unwrap();
    for limit in [1, 2, 3] {
        let paged = read_page(store, conversation, page, count, limit)
            .await
            .unwrap();
        assert_eq!(paged, whole, "{page:?} {count} in pages of {limit}");
    }
    texts(&whole)
}

fn id_of(message: &StoredMessage) -> Bound {
    Bound::Id(message.id.get())
}

/// Checks every page by ids of a conversation whose history is `all`, oldest first: before,
/// after and between each of its messages (and past both ends), for several counts,
/// against what the ids say.
async fn check_every_page_by_ids(
    store: &Store,
    conversation: &Conversation,
    all: &[StoredMessage],
) {
    let n = all.len();
    let ids: Vec<i64> = all.iter().map(|m| m.id.get()).collect();
    let slice = |range: std::ops::Range<usize>| ids[range].to_vec();
    let read_ids = async |page: HistoryPage, count: u32| -> Vec<i64> {
        let read = read_page(store, conversation, page, count, 2)
            .await
            .unwrap();
        read.iter().map(|m| m.id.get()).collect()
    };
    for count in [1u32, 3, 100] {
        let c = count as usize;
        for i in 0..n {
            let after = read_ids(HistoryPage::After(id_of(&all[i])), count).await;
            assert_eq!(
                after,
                slice(i + 1..(i + 1 + c).min(n)),
                "AFTER #{i} {count}"
            );
            let before = read_ids(HistoryPage::Before(id_of(&all[i])), count).await;
            assert_eq!(before, slice(i.saturating_sub(c)..i), "BEFORE #{i} {count}");
            for j in 0..n {
                let between = HistoryPage::Between(id_of(&all[i]), id_of(&all[j]));
                let wanted = if i < j {
                    slice(i + 1..(i + 1 + c).min(j))
                } else if i > j {
                    slice((j + 1).max(i.saturating_sub(c))..i)
                } else {
                    Vec::new()
                };
                assert_eq!(
                    read_ids(between, count).await,
                    wanted,
                    "BETWEEN #{i} #{j} {count}"
                );
            }
        }
        let latest = read_ids(HistoryPage::Latest, count).await;
        assert_eq!(latest, slice(n.saturating_sub(c)..n), "LATEST {count}");
    }
}

/// A private conversation whose history is chunks and rows, with other conversations'
/// messages among its ids (inside its chunks' spans too).
async fn chunks_and_rows(store: &Store) -> Conversation {
    let between = Conversation::Private(A, B);
    let elsewhere = |text: &str| said(Conversation::Global, "carol", text);
    for i in 0..4 {
        store.record(said(between.clone(), "bob", &i.to_string()));
        store.record(elsewhere("inside a chunk's span"));
    }
    store.sync().await;
    store
        .queue_private(said(between.clone(), "bob", "4"))
        .await
        .unwrap();
    store.record(elsewhere("between a row and a chunk"));
    batch_of(store, &between, 5, 4).await;
    for i in 9..11 {
        store
            .queue_private(said(between.clone(), "bob", &i.to_string()))
            .await
            .unwrap();
    }
    batch_of(store, &between, 11, 4).await;
    between
}

async fn pages_by_ids_read_across_rows_and_chunks(kind: Kind) {
    let (store, _task, place) = open(kind).await;
    let between = chunks_and_rows(&store).await;
    // Its 3 rows and 3 chunks, and the other conversation's 2 chunks.
    assert_eq!(rows_and_chunks(&place).await, (3, 5));
    let all = store.history(between.clone(), 100).await.unwrap();
    assert_eq!(texts(&all), numbered(0..15));
    use HistoryPage::*;
    let at = |i: usize| id_of(&all[i]);
    for (page, count, wanted) in [
        // From inside a chunk, across a row, into the next chunk.
        (After(at(2)), 5, 3..8),
        // Before a chunk's message, across two rows, from the middle of a chunk.
        (Before(at(12)), 5, 7..12),
        (Before(at(3)), 10, 0..3),
        (After(at(14)), 10, 15..15),
        (Before(at(0)), 10, 0..0),
        // Between: next to the first bound, whichever is older.
        (Between(at(2), at(11)), 100, 3..11),
        (Between(at(2), at(11)), 4, 3..7),
        (Between(at(11), at(2)), 4, 7..11),
        (Between(at(4), at(4)), 4, 4..4),
        (Between(at(4), at(5)), 4, 5..5),
        (Latest, 4, 11..15),
    ] {
        assert_eq!(
            page_texts(&store, &between, page, count).await,
            numbered(wanted.clone()),
            "{page:?} {count}"
        );
    }
    check_every_page_by_ids(&store, &between, &all).await;
}

async fn an_id_that_is_not_the_conversations_is_refused(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    let between = chunks_and_rows(&store).await;
    let global = store.history(Conversation::Global, 100).await.unwrap();
    let ours = store.history(between.clone(), 100).await.unwrap();
    let (first, last) = (ours[0].id.get(), ours[14].id.get());
    let inside = global[0].id.get();
    assert!(first < inside && inside < last, "a foreign id among ours");
    let refused = |result: Result<Vec<StoredMessage>, PageError>| match result {
        Err(PageError::NoSuchMessage(id)) => id,
        other => panic!("refused, not {other:?}"),
    };
    for foreign in [inside, global[4].id.get(), last + 1_000_000] {
        for page in [
            HistoryPage::After(Bound::Id(foreign)),
            HistoryPage::Before(Bound::Id(foreign)),
            HistoryPage::Between(Bound::Id(first), Bound::Id(foreign)),
            HistoryPage::Between(Bound::Id(foreign), Bound::Time(SystemTime::now())),
        ] {
            let read = read_page(&store, &between, page, 10, 10).await;
            assert_eq!(refused(read), foreign, "{page:?}");
        }
    }
    // Nor from a conversation that never had a message; a time there is an empty page.
    let nowhere = Conversation::Room(name("nowhere"));
    let read = read_page(
        &store,
        &nowhere,
        HistoryPage::After(Bound::Id(first)),
        10,
        10,
    );
    assert_eq!(refused(read.await), first);
    for page in [
        HistoryPage::Latest,
        HistoryPage::Before(Bound::Time(SystemTime::now())),
    ] {
        assert!(
            read_page(&store, &nowhere, page, 10, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// A time `ms` milliseconds (and `nanos` nanoseconds) after `base`.
fn time_at(base: i64, ms: i64, nanos: u32) -> Bound {
    let since = Duration::from_millis((base + ms) as u64) + Duration::from_nanos(nanos.into());
    Bound::Time(std::time::UNIX_EPOCH + since)
}

async fn pages_by_times_read_across_rows_and_chunks(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    let between = Conversation::Private(A, B);
    let base: i64 = 1_790_000_000_000;
    let message = |i: usize, ms: i64| Record {
        at: base + ms,
        ..said(between.clone(), "bob", &i.to_string())
    };
    let elsewhere = |ms: i64| Record {
        at: base + ms,
        ..said(Conversation::Global, "carol", "elsewhere")
    };
    // One chunk, 0 to 40 ms.
    for i in 0..5 {
        store.record(message(i, 10 * i as i64));
        store.record(elsewhere(10 * i as i64 + 5));
    }
    store.sync().await;
    // A row at 50, a chunk from 60 to 90, and a chunk whose first message is older than the
    // last one before it (a clock set back), 85, then 100.
    store.queue_private(message(5, 50)).await.unwrap();
    for i in 6..10 {
        store.record(message(i, 10 * i as i64));
    }
    store.sync().await;
    store.record(message(10, 85));
    store.record(message(11, 100));
    store.sync().await;
    let all = store.history(between.clone(), 100).await.unwrap();
    assert_eq!(texts(&all), numbered(0..12));
    use HistoryPage::*;
    let at = |ms: i64| time_at(base, ms, 0);
    let at_nanos = |ms: i64, nanos: u32| time_at(base, ms, nanos);
    let id = |i: usize| id_of(&all[i]);
    for (page, count, wanted) in [
        // A bound is exclusive: the message at 20 ms is neither after 20 nor before it; a
        // chunk straddles each.
        (After(at(20)), 3, 3..6),
        (After(at_nanos(20, 500_000)), 3, 3..6),
        (After(at_nanos(19, 500_000)), 3, 2..5),
        (Before(at(20)), 10, 0..2),
        (Before(at_nanos(19, 500_000)), 10, 0..2),
        (Before(at_nanos(20, 500_000)), 10, 0..3),
        // The row at 50.
        (After(at(50)), 2, 6..8),
        (After(at(49)), 2, 5..7),
        (Before(at(51)), 2, 4..6),
        // Ids order history: the message at 85, after one at 90, comes after it.
        (Before(at(86)), 100, 0..9),
        (After(at(86)), 100, 9..12),
        (After(at(80)), 100, 9..12),
        (After(at(79)), 100, 8..12),
        // Past either end.
        (After(at(100)), 10, 12..12),
        (After(at(-1000)), 2, 0..2),
        (Before(at(-1000)), 10, 0..0),
        (Before(at(1000)), 2, 10..12),
        // Between two times, a time and an id, either way round.
        (Between(at(25), at(65)), 100, 3..7),
        (Between(at(65), at(25)), 2, 5..7),
        (Between(at(20), id(7)), 100, 3..7),
        (Between(id(7), at(20)), 2, 5..7),
        (Between(id(2), at(45)), 100, 3..5),
        (Between(at(45), id(2)), 100, 3..5),
        (Between(at(30), at(30)), 10, 3..3),
        (Between(id(3), at(30)), 10, 3..3),
        (Between(at(30), id(3)), 10, 3..3),
        (Between(at(-1000), at(1000)), 3, 0..3),
        (Between(at(1000), at(-1000)), 3, 9..12),
    ] {
        assert_eq!(
            page_texts(&store, &between, page, count).await,
            numbered(wanted.clone()),
            "{page:?} {count}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: several nodes on one database, and the database going away.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_stores_on_one_database_share_everything() {
    let place = Place::new(Kind::Postgres);
    let (one, _, _one_task) = Store::open(place.options()).await.unwrap();
    let (two, _, _two_task) = Store::open(place.options()).await.unwrap();
    assert!(one.is_shared());

    // An account registered on one node is found by the other; the name is taken on both.
    let id = one
        .create_account(name("Alice"), "hash".into())
        .await
        .unwrap();
    assert_eq!(
        two.account(&name("ALICE")).await.unwrap(),
        Some((id, name("Alice"), "hash".to_string()))
    );
    assert_eq!(two.account(&name("nobody")).await.unwrap(), None);
    let taken = two
        .create_account(name("alice"), "other".into())
        .await
        .unwrap_err();
    assert_eq!(taken.client_message(), "that name is already registered");

    // The same room created on both at once: neither fails, it is one room, and exactly one
    // of them stored it.
    let (a, b) = tokio::join!(
        one.create_room(name("Dev"), name("alice")),
        two.create_room(name("dev"), name("bob"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a != b, "exactly one stored the room: {a} {b}");
    let (room, _creator) = one.room(&name("DEV")).await.unwrap().unwrap();
    assert_eq!(room.as_str().to_lowercase(), "dev");

    // Both write history to one conversation at once, in many batches: nothing is lost,
    // each node's messages keep their order, and ids never repeat.
    for i in 0..300 {
        one.record(said(Conversation::Global, "one", &i.to_string()));
        two.record(said(Conversation::Global, "two", &i.to_string()));
        if i % 50 == 0 {
            tokio::join!(one.sync(), two.sync());
        }
    }
    tokio::join!(one.sync(), two.sync());
    let history = two.history(Conversation::Global, 1000).await.unwrap();
    assert_eq!(history.len(), 600);
    assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
    for node in ["one", "two"] {
        let said: Vec<String> = history
            .iter()
            .filter(|m| m.from.as_str() == node)
            .map(|m| m.text.clone())
            .collect();
        let wanted: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        assert_eq!(said, wanted, "{node}'s messages");
    }

    // Ids from the two nodes never collide, and each node's grow in the order it took them.
    let mut ones = Vec::new();
    let mut twos = Vec::new();
    for i in 0..1000 {
        ones.push(one.record(said(Conversation::Room(name("dev")), "one", &i.to_string())));
        twos.push(two.record(said(Conversation::Room(name("dev")), "two", &i.to_string())));
    }
    assert!(ones.is_sorted() && twos.is_sorted());
    let mut every: Vec<MessageId> = ones.iter().chain(&twos).copied().collect();
    every.sort();
    every.dedup();
    assert_eq!(every.len(), 2000, "no id given by both nodes");
    tokio::join!(one.sync(), two.sync());
    let in_room = one
        .history(Conversation::Room(name("dev")), 5000)
        .await
        .unwrap();
    assert_eq!(in_room.iter().map(|m| m.id).collect::<Vec<_>>(), every);

    // A private message queued on one node is taken once, by whichever node asks first.
    let queued = said(Conversation::Private(A, B), "a", "for b");
    one.queue_private(queued).await.unwrap();
    let (first, second) = tokio::join!(one.take_pending(B), two.take_pending(B));
    let mut taken = texts(&first);
    taken.extend(texts(&second));
    assert_eq!(taken, ["a for b"]);
}

/// Nodes move on to fresh blocks of ids every batch window, so that a message accepted on
/// one node a window after another node's has the higher id, whichever node started first.
#[tokio::test]
async fn on_a_shared_store_ids_of_two_nodes_follow_the_order_they_were_given_in() {
    let place = Place::new(Kind::Postgres);
    let (one, _, _one_task) = Store::open(place.options()).await.unwrap();
    let (two, _, _two_task) = Store::open(place.options()).await.unwrap();
    let mut given = Vec::new();
    for round in 0..3 {
        for (node, store) in [("one", &one), ("two", &two)] {
            let text = format!("{node} {round}");
            given.push(store.record(said(Conversation::Global, node, &text)));
            // Until both nodes have moved on (a window, or longer on a loaded machine, where
            // the writers run late): the next message, on either node, is a window later.
            for store in [&one, &two] {
                let block = store.ids.in_use();
                while store.ids.in_use() == block {
                    tokio::time::sleep(place.options().batch_window).await;
                }
            }
        }
    }
    assert!(given.is_sorted(), "{given:?}");
    tokio::join!(one.sync(), two.sync());
    let history = one.history(Conversation::Global, 10).await.unwrap();
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), given);
}

// The longest of these tests (a PostgreSQL of its own, and the pool's timeouts): its name
// sorts early, so that it starts among the first and does not run on alone at the end.
#[tokio::test]
async fn a_postgres_out_of_reach_fails_writes_and_history_waits_for_it() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        database_url: Some(postgres.database()),
        ..options(dir.path())
    };
    let (store, _, _task) = Store::open(options).await.unwrap();
    store.record(said(Conversation::Global, "bob", "before"));
    store.sync().await;

    postgres.stop();
    // Acknowledged writes fail, and say why.
    let error = store
        .create_account(name("carol"), "hash".into())
        .await
        .unwrap_err();
    assert_eq!(
        error.client_message(),
        "the database is out of reach; try again later"
    );
    // The writes right after it are refused without waiting for the pool's timeout again,
    // so that they do not queue behind each other for as long each.
    let refused = tokio::time::Instant::now();
    let queued = said(Conversation::Private(A, B), "a", "lost");
    assert!(store.queue_private(queued).await.is_err());
    assert!(store.create_room(name("dev"), name("bob")).await.is_err());
    assert!(refused.elapsed() < super::postgres::ACQUIRE_TIMEOUT);
    // History goes on being recorded, and is kept until the database is back.
    for i in 0..3 {
        store.record(said(
            Conversation::Global,
            "bob",
            &format!("while away {i}"),
        ));
    }
    assert!(store.history(Conversation::Global, 10).await.is_err());

    postgres.start_again();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let history = loop {
        if let Ok(history) = store.history(Conversation::Global, 10).await
            && history.len() == 4
        {
            break history;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history is not back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        texts(&history),
        [
            "bob before",
            "bob while away 0",
            "bob while away 1",
            "bob while away 2"
        ]
    );
    // Writes work again; what failed was not stored behind the client's back.
    store
        .create_account(name("carol"), "hash".into())
        .await
        .unwrap();
    assert!(store.take_pending(B).await.is_empty());
}

/// The nice value of each of this process's threads whose name starts with `prefix`.
#[cfg(target_os = "linux")]
fn nice_values(prefix: &str) -> Vec<i64> {
    let mut values = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // After the name, in parentheses: state, then 16 fields, of which the last is nice.
        let Some((_, fields)) = stat.rsplit_once(") ") else {
            continue;
        };
        if comm.starts_with(prefix) {
            values.push(fields.split(' ').nth(16).unwrap().parse().unwrap());
        }
    }
    values
}

/// The writer, and SQLite's thread that does its work, run below chat's priority, so that
/// they never take the core from a session with something to deliver.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_writer_and_its_sqlite_thread_run_below_chat() {
    let (_store, _task, _dir) = open(Kind::Sqlite).await;
    let below = crate::server::priority::Below::Storage as i64;
    let writers = nice_values("linechat-store");
    assert!(!writers.is_empty(), "the writer has a thread of its own");
    assert!(writers.iter().all(|&nice| nice == below), "{writers:?}");
    // Other tests' stores run beside this one, and read connections run at chat's priority:
    // at least the writer's connection's thread is below it.
    let sqlite = nice_values("sqlx-sqlite");
    assert!(sqlite.contains(&below), "{sqlite:?}");
}

/// Records sent once the writer has stopped are not counted as waiting for it: senders
/// would otherwise wait for room that never comes.
#[tokio::test]
async fn records_after_the_writer_stopped_do_not_hold_senders_up() {
    let (store, task, _dir) = open(Kind::Sqlite).await;
    store.close().await;
    task.await.unwrap();
    let megabyte = "x".repeat(1 << 20);
    for _ in 0..(queued::QUEUED_AT_MOST >> 20) + 2 {
        store.record(said(Conversation::Global, "alice", &megabyte));
    }
    tokio::time::timeout(Duration::from_secs(5), store.room_for_history())
        .await
        .expect("nothing waits for a writer that has stopped");
}

async fn read_markers_only_move_forward_and_count_what_came_after_them(kind: Kind) {
    let place = Place::new(kind);
    let dev = Conversation::Room(name("dev"));
    let marker = |conversation: &Conversation, target: &str, id: MessageId| ReadMarker {
        account: 1,
        conversation: conversation.clone(),
        target: target.into(),
        id,
    };
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        let ids: Vec<MessageId> = (0..5)
            .map(|i| store.record(said(dev.clone(), "bob", &i.to_string())))
            .collect();
        let global = store.record(said(Conversation::Global, "bob", "hello"));
        assert_eq!(store.read_marker(1, &dev).await.unwrap(), None);
        assert_eq!(
            store.mark_read(marker(&dev, "dev", ids[1])).await.unwrap(),
            ids[1]
        );
        // Back is no way: the marker stays where it was.
        assert_eq!(
            store.mark_read(marker(&dev, "dev", ids[0])).await.unwrap(),
            ids[1]
        );
        assert_eq!(store.read_marker(1, &dev).await.unwrap(), Some(ids[1]));
        assert_eq!(
            store
                .mark_read(marker(&Conversation::Global, "*", global))
                .await
                .unwrap(),
            global
        );
        // A conversation with nothing in it yet may be marked too.
        let quiet = Conversation::Private(A, B);
        let nobody = MessageId::from_stored(1);
        store
            .mark_read(marker(&quiet, "bob", nobody))
            .await
            .unwrap();
        // Another account's markers are its own.
        assert_eq!(store.read_marker(2, &dev).await.unwrap(), None);
        assert!(store.unread(2).await.unwrap().is_empty());
        store.close().await;
        task.await.unwrap();
    }
    let (store, _, _task) = Store::open(place.options()).await.unwrap();
    let unread = store.unread(1).await.unwrap();
    let counts: Vec<(&str, bool, u64)> = unread
        .iter()
        .map(|unread| (unread.target.as_str(), unread.room, unread.count))
        .collect();
    assert_eq!(
        counts,
        [("*", false, 0), ("bob", false, 0), ("dev", true, 3)]
    );
    store.record(said(Conversation::Global, "bob", "again"));
    let unread = store.unread(1).await.unwrap();
    assert_eq!(unread[0].count, 1, "{unread:?}");
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

async fn found(store: &Store, conversation: &Conversation, words: &str, limit: u32) -> Vec<String> {
    let query = SearchQuery::parse(words).unwrap();
    let found = store.search(conversation, &query, limit).await.unwrap();
    found.iter().map(|m| m.text.clone()).collect()
}

/// How many entries the search index holds, read beside the store.
async fn indexed(place: &Place) -> i64 {
    const COUNT: &str = "SELECT COUNT(*) FROM message_search";
    if let Some(url) = &place.url {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let (count,): (i64,) = sqlx::query_as(COUNT).fetch_one(&pool).await.unwrap();
        pool.close().await;
        return count;
    }
    let connect = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(place.dir.path().join(sqlite::DATABASE_FILE))
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
    let (count,): (i64,) = sqlx::query_as(COUNT).fetch_one(&pool).await.unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn the_linked_sqlite_has_fts5() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let (fts5,): (i64,) = sqlx::query_as("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fts5, 1);
}

async fn search_finds_words_phrases_and_prefixes_newest_first(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    let global = Conversation::Global;
    for text in [
        "the quick brown fox",
        "brown bread, quick!",
        "a Quick-Brown dog",
        "quickly now",
        "nothing here",
    ] {
        store.record(said(global.clone(), "bob", text));
    }
    assert_eq!(
        found(&store, &global, "quick brown", 10).await,
        [
            "a Quick-Brown dog",
            "brown bread, quick!",
            "the quick brown fox"
        ]
    );
    assert_eq!(
        found(&store, &global, "\"quick brown\"", 10).await,
        ["a Quick-Brown dog", "the quick brown fox"]
    );
    assert_eq!(
        found(&store, &global, "quick*", 10).await,
        [
            "quickly now",
            "a Quick-Brown dog",
            "brown bread, quick!",
            "the quick brown fox"
        ]
    );
    assert_eq!(
        found(&store, &global, "BREAD quick", 10).await,
        ["brown bread, quick!"]
    );
    assert!(found(&store, &global, "absent", 10).await.is_empty());
    // What is syntax to the engines is only words here.
    assert!(
        found(&store, &global, "fox OR nothing", 10)
            .await
            .is_empty()
    );
    assert_eq!(
        found(&store, &global, "NEAR(fox)", 10).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&store, &global, "fox:* '", 10).await,
        ["the quick brown fox"]
    );
}

async fn search_reads_only_the_conversation_asked(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    let dev = Conversation::Room(name("dev"));
    let ab = Conversation::Private(A, B);
    let ac = Conversation::Private(A, UserId::Account(3));
    store.record(said(Conversation::Global, "bob", "secret global"));
    store.record(said(dev.clone(), "bob", "secret dev"));
    store.record(said(ab.clone(), "bob", "secret ab"));
    store.record(said(ac.clone(), "bob", "secret ac"));
    assert_eq!(found(&store, &dev, "secret", 10).await, ["secret dev"]);
    assert_eq!(
        found(&store, &Conversation::Private(B, A), "secret", 10).await,
        ["secret ab"]
    );
    assert_eq!(
        found(&store, &Conversation::Global, "secret", 10).await,
        ["secret global"]
    );
    let never = Conversation::Room(name("never"));
    assert!(found(&store, &never, "secret", 10).await.is_empty());
}

async fn search_stops_at_the_count(kind: Kind) {
    let (store, _task, _place) = open(kind).await;
    for i in 0..30 {
        store.record(said(Conversation::Global, "bob", &format!("match {i}")));
    }
    let newest = found(&store, &Conversation::Global, "match", 3).await;
    assert_eq!(newest, ["match 29", "match 28", "match 27"]);
}

async fn search_finds_messages_in_rows_and_in_chunks(kind: Kind) {
    let (store, _task, place) = open(kind).await;
    let between = chunks_and_rows(&store).await;
    let (rows, chunks) = rows_and_chunks(&place).await;
    assert!(rows > 0 && chunks > 0);
    // "4", "9" and "10" are rows (queued), the others are in chunks.
    assert_eq!(found(&store, &between, "4", 10).await, ["4"]);
    assert_eq!(found(&store, &between, "3", 10).await, ["3"]);
    assert_eq!(
        found(&store, &between, "1*", 10).await,
        ["14", "13", "12", "11", "10", "1"]
    );
    assert_eq!(
        found(&store, &Conversation::Global, "chunk", 10)
            .await
            .len(),
        5
    );
}

async fn retention_by_count_takes_messages_out_of_the_search_index(kind: Kind) {
    let place = Place::new(kind);
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        for first in [0, 4, 8] {
            for i in first..first + 4 {
                store.record(said(Conversation::Global, "bob", &format!("word {i}")));
            }
            store.sync().await;
        }
        store.close().await;
        task.await.unwrap();
    }
    assert_eq!(indexed(&place).await, 12);
    let mut retention = place.options();
    retention.keep_per_conversation = 5;
    let (store, _, task) = Store::open(retention).await.unwrap();
    let kept = found(&store, &Conversation::Global, "word", 100).await;
    assert_eq!(kept, ["word 11", "word 10", "word 9", "word 8", "word 7"]);
    store.close().await;
    task.await.unwrap();
    assert_eq!(indexed(&place).await, 5);
}

async fn retention_by_age_takes_messages_out_of_the_search_index(kind: Kind) {
    let place = Place::new(kind);
    let days_ago = |days: u64| SystemTime::now() - Duration::from_secs(days * 86_400);
    let at = |days: u64, text: &str| Record {
        at: actor::millis(days_ago(days)),
        ..said(Conversation::Global, "bob", text)
    };
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        store.record(at(400, "word old"));
        store.record(at(399, "word old too"));
        store.sync().await;
        store.record(at(400, "word old, before a young one"));
        store.record(at(1, "word young"));
        store.sync().await;
        store.close().await;
        task.await.unwrap();
    }
    assert_eq!(indexed(&place).await, 4);
    let mut year = place.options();
    year.keep_days = 365;
    let (store, _, task) = Store::open(year).await.unwrap();
    assert_eq!(
        found(&store, &Conversation::Global, "word", 10).await,
        ["word young"]
    );
    store.close().await;
    task.await.unwrap();
    assert_eq!(indexed(&place).await, 1);
}

async fn a_deleted_room_takes_its_messages_out_of_the_search_index(kind: Kind) {
    let (store, _task, place) = open(kind).await;
    store.create_room(name("dev"), name("alice")).await.unwrap();
    store.record(said(Conversation::Room(name("dev")), "alice", "gone soon"));
    store.record(said(Conversation::Global, "alice", "kept soon"));
    store.sync().await;
    assert_eq!(indexed(&place).await, 2);
    store.delete_rooms(vec![name("dev")]).await;
    store.sync().await;
    assert_eq!(indexed(&place).await, 1);
    let dev = Conversation::Room(name("dev"));
    assert!(found(&store, &dev, "soon", 10).await.is_empty());
    assert_eq!(
        found(&store, &Conversation::Global, "soon", 10).await,
        ["kept soon"]
    );
}

async fn private_messages_delivered_without_history_leave_the_search_index(kind: Kind) {
    let place = Place::new(kind);
    let mut off = place.options();
    off.history = false;
    let (store, _, _task) = Store::open(off).await.unwrap();
    let queued = said(Conversation::Private(A, B), "a", "while you were out");
    store.queue_private(queued).await.unwrap();
    assert_eq!(indexed(&place).await, 1);
    assert_eq!(store.take_pending(B).await.len(), 1);
    assert_eq!(indexed(&place).await, 0);
}

/// A database whose history was stored before the search index existed is indexed at the
/// next start: its rows by the migration, its chunks by the writer.
async fn history_stored_before_the_index_is_found_after_the_upgrade(kind: Kind) {
    let place = Place::new(kind);
    {
        let (store, _, task) = Store::open(place.options()).await.unwrap();
        store.record(said(Conversation::Global, "bob", "older chunk"));
        store.sync().await;
        store
            .queue_private(said(Conversation::Private(A, B), "bob", "older row"))
            .await
            .unwrap();
        store.close().await;
        task.await.unwrap();
    }
    // Back to the schema before the index, as if these had been written then.
    const DOWN: &str = "DROP TABLE message_search; DROP TABLE search_backfill; \
                        DELETE FROM _sqlx_migrations WHERE version = ";
    if let Some(url) = &place.url {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{DOWN}5")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let connect = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(place.dir.path().join(sqlite::DATABASE_FILE));
        let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{DOWN}8")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let (store, _, _task) = Store::open(place.options()).await.unwrap();
    let global = found(&store, &Conversation::Global, "older", 10).await;
    assert_eq!(global, ["older chunk"]);
    let private = found(&store, &Conversation::Private(A, B), "older", 10).await;
    assert_eq!(private, ["older row"]);
    // Once: the next start finds nothing left to fill.
    assert_eq!(indexed(&place).await, 2);
}

/// What `SEARCH` costs on a large store: fills one with 1,000,000 messages (a vocabulary of
/// 2,000 words, 6 to 14 words a message; half of them global, the rest in 10 rooms), then
/// times 20 queries of the global conversation (common and rare words, phrases, prefixes)
/// and prints their median and p99 latency. A measurement, not a test; run it on a release
/// build, as `scripts/search-bench.sh` does:
/// `cargo test --release --lib storage::tests::search_latency -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark"]
async fn search_latency() {
    const MESSAGES: u64 = 1_000_000;
    const WORDS: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let (store, _, task) = Store::open(options(dir.path())).await.unwrap();
    let sender = name("sender");
    // A small deterministic generator, so that every run stores the same history.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let rooms: Vec<Conversation> = (0..10)
        .map(|i| Conversation::Room(name(&format!("room{i}"))))
        .collect();
    let fill = std::time::Instant::now();
    for i in 0..MESSAGES {
        let length = 6 + next() % 9;
        // Skewed towards the first words, as language is: the square of a uniform draw.
        let text: Vec<String> = (0..length)
            .map(|_| {
                let draw = next() % WORDS;
                format!("w{}", draw * draw / WORDS)
            })
            .collect();
        let conversation = match i % 2 {
            0 => Conversation::Global,
            _ => rooms[(i / 2 % 10) as usize].clone(),
        };
        store.record(Record::now(conversation, sender.clone(), text.join(" ")));
        if i % 100_000 == 99_999 {
            store.sync().await;
        }
    }
    store.sync().await;
    let filled = fill.elapsed();
    let queries = [
        "w0",
        "w1 w2",
        "w5",
        "w10 w20",
        "w100",
        "w500",
        "w1999",
        "w1500 w3",
        "\"w0 w1\"",
        "\"w7 w8\"",
        "w1*",
        "w19*",
        "w99*",
        "w0 w1 w2 w3",
        "w1000 w0",
        "w300 w301",
        "\"w2 w2\"",
        "w42*",
        "w800",
        "w1200 w1300",
    ];
    let mut latencies = Vec::new();
    let mut total = 0;
    for words in queries {
        let query = SearchQuery::parse(words).unwrap();
        let start = std::time::Instant::now();
        let found = store
            .search(&Conversation::Global, &query, 100)
            .await
            .unwrap();
        let took = start.elapsed();
        println!(
            "  {words:<14} {:>3} results in {:8.2} ms",
            found.len(),
            took.as_secs_f64() * 1e3
        );
        latencies.push(took);
        total += found.len();
    }
    latencies.sort();
    let median = (latencies[9] + latencies[10]) / 2;
    // p99 of 20 is the slowest.
    let p99 = latencies[19];
    store.close().await;
    task.await.unwrap();
    println!(
        "search: {MESSAGES} messages stored in {:.1} s; 20 queries of the global conversation \
         ({total} results): median {:.2} ms, p99 {:.2} ms, fastest {:.2} ms",
        filled.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies[0].as_secs_f64() * 1e3,
    );
}
