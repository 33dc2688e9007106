//! What the server keeps in its data directory: accounts, rooms, registered users' room
//! memberships, chat history and private messages queued for offline users. Each test runs a
//! server on a data directory of its own, and most stop it and start another server on the
//! same directory to see what survived: in this process, shut down as on SIGTERM, or, for the
//! crash tests, the real binary killed with SIGKILL (in this process the database's own
//! threads would still finish their work).
//!
//! `HIST` lines carry the time a message was said; [`untimed`] checks that field's shape and
//! drops it, so that tests can compare the rest of each line exactly. Tests that compare
//! `HISTORY` before and after a restart compare the whole lines, time included.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Client, NOT_LOGGED_IN, PATIENCE, Server, ServerProcess, TestServer};
use linechat::settings::Settings;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const HISTORY_USAGE: &str = "HISTORY <*|room|user> \
     [LATEST|BEFORE <bound>|AFTER <bound>|BETWEEN <bound> <bound>] [count] - past messages: \
     global, a room you are in, or your private talk with a user; a bound is a message id or \
     a time (2026-12-08T10:15:00.123Z)";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh data directory, and a server on it with the settings `configure` makes: the
/// directory outlives the server, for [`restart`].
fn start_on_new_dir(configure: impl FnOnce(&mut Settings)) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start_in(dir.path(), configure);
    (dir, server)
}

/// A server whose `HISTORY` count is `default` when none is given and at most `max`.
fn with_history_counts(default: u32, max: u32) -> TestServer {
    TestServer::with(|settings| {
        settings.history_default_count = default;
        settings.history_max_count = max;
    })
}

/// Stops `server` gracefully (as SIGTERM does) and starts another server on the same data
/// directory, with the settings `configure` makes.
fn restart(
    mut server: TestServer,
    data_dir: &Path,
    configure: impl FnOnce(&mut Settings),
) -> TestServer {
    server.terminate();
    drop(server);
    TestServer::start_in(data_dir, configure)
}

/// Registers `name` with the password `pw` and quits: an account that is offline, which each of
/// `watchers` (logged in, with nothing unread) saw come and go.
async fn offline_account(server: &TestServer, name: &str, watchers: &mut [&mut Client]) {
    let client = server.register_seen(name, "pw", watchers).await;
    client.quit_seen(watchers).await;
}

/// A guest `alice` who said `MSG m1` to `MSG m<count>`.
async fn alice_said(server: &TestServer, count: usize) -> Client {
    let mut alice = server.guest("alice").await;
    for i in 1..=count {
        alice.check(&format!("MSG m{i}"), "OK MSG").await;
    }
    alice
}

/// Sends each `HISTORY` command of `expected` and compares its lines, without their time
/// field ([`hist`]), with the ones given.
async fn expect_hists(client: &mut Client, expected: &[(&str, &[&str])]) {
    for (command, lines) in expected {
        assert_eq!(hist(client, command).await, *lines, "{command}");
    }
}

/// `HISTORY` as [`Client::history`] does, with the time field of every line checked and removed:
/// `HIST <target> <from> <text>`.
async fn hist(client: &mut Client, command: &str) -> Vec<String> {
    untimed(&client.history(command).await)
}

/// The `HIST` lines without their time field, which is checked by [`hist_time`].
fn untimed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let (target, at, rest) = split_hist(line);
            hist_time(at);
            format!("HIST {target} {rest}")
        })
        .collect()
}

/// `HIST <target> <time> <from text...>` split into target, time, and the rest.
fn split_hist(line: &str) -> (&str, &str, &str) {
    let mut parts = line.splitn(4, ' ');
    assert_eq!(parts.next(), Some("HIST"), "{line:?}");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(target), Some(at), Some(rest)) => (target, at, rest),
        _ => panic!("a HIST line has a target, a time, a sender and a text: {line:?}"),
    }
}

/// Checks that `at` is an RFC 3339 UTC time with milliseconds (`2024-05-01T12:34:56.789Z`),
/// within a minute of now, and returns it.
fn hist_time(at: &str) -> SystemTime {
    let shape_ok = at.len() == 24
        && at.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape_ok, "not an RFC 3339 UTC time with millis: {at:?}");
    let time = humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{at:?}: {e}"));
    let now = SystemTime::now();
    let off = now
        .duration_since(time)
        .unwrap_or_else(|early| early.duration());
    assert!(off < Duration::from_secs(60), "{at:?} is {off:?} from now");
    time
}

// ---------------------------------------------------------------------------------------------
// Restart (SIGTERM) on the same data directory
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn accounts_survive_a_restart() {
    let (dir, server) = start_on_new_dir(|_| {});
    let alice = server.register("Alice", "s3cret words").await;
    alice.quit().await;
    let bob = server.register("bob", "pw").await;
    drop(bob);

    let server = restart(server, dir.path(), |_| {});
    let mut client = server.connect().await;
    for wrong in ["LOGIN alice wrong", "LOGIN alice s3cret", "LOGIN bob PW"] {
        client
            .check(wrong, "ERR BAD_PASSWORD wrong name or password")
            .await;
    }
    client.check("USERS", NOT_LOGGED_IN).await;
    client
        .check(
            "NICK alice",
            "ERR NAME_TAKEN alice is a registered account; use LOGIN",
        )
        .await;
    client
        .check(
            "NICK BOB",
            "ERR NAME_TAKEN BOB is a registered account; use LOGIN",
        )
        .await;
    client
        .check(
            "REGISTER alice other",
            "ERR NAME_TAKEN alice is already registered",
        )
        .await;
    client.check("USERS", NOT_LOGGED_IN).await;
    // The right password, in any case of the name, logs in under the registered spelling.
    client
        .check("LOGIN aLiCe s3cret words", "OK LOGIN Alice")
        .await;
    client.check("USERS", "USERS Alice").await;
    let mut bob = server.login("bob", "pw", &["OK LOGIN bob"]).await;
    client.expect("NOTICE ONLINE bob").await;
    bob.check("USERS", "USERS Alice bob").await;
    // A name never registered is still free for a guest.
    let mut carol = server.connect().await;
    carol.check("NICK carol", "OK NICK carol").await;
}

#[tokio::test]
async fn an_account_survives_a_hard_kill_right_after_ok_register() {
    // `OK REGISTER` waits until the account is on disk.
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_in(dir.path(), &[], &[]);
    let _alice = server.register("alice", "pw").await;
    server.kill();
    drop(server);

    let server = TestServer::start_in(dir.path(), |_| {});
    let mut client = server.connect().await;
    client
        .check(
            "LOGIN alice nope",
            "ERR BAD_PASSWORD wrong name or password",
        )
        .await;
    client.check("LOGIN alice pw", "OK LOGIN alice").await;
}

#[tokio::test]
async fn a_room_and_its_membership_survive_a_hard_kill_right_after_ok_cr() {
    // Only history is written in batches (protocol.md §11: "Accounts and rooms are written at
    // once, not in batches"; a crash loses "at most the messages of the last batch window").
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_in(dir.path(), &[], &[]);
    let mut alice = server.register("alice", "pw").await;
    alice.check("CR dev", "OK CR dev").await;
    server.kill();
    drop(server);

    let server = TestServer::start_in(dir.path(), |_| {});
    let mut guest = server.guest("guest").await;
    guest.check("LRS", "LRS dev").await;
    let _alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
}

#[tokio::test]
async fn rooms_survive_a_restart() {
    let (dir, server) = start_on_new_dir(|_| {});
    let mut alice = server.guest("alice").await;
    for room in ["Dev", "ops", "gamma"] {
        alice.create_room(room, &mut []).await;
    }
    alice.check("LRS", "LRS Dev gamma ops").await;
    drop(alice);

    let server = restart(server, dir.path(), |_| {});
    let mut bob = server.guest("bob").await;
    bob.check_all(&[
        ("LRS", "LRS Dev gamma ops"),
        ("CR dev", "ERR ROOM_EXISTS Dev already exists; JR joins it"),
        ("CR ops", "ERR ROOM_EXISTS ops already exists; JR joins it"),
        // The rooms are empty (guest alice is not restored) but work.
        ("LRU dev", "LRU Dev"),
        ("JR dev", "OK JR Dev"),
        ("LRU dev", "LRU Dev bob"),
    ])
    .await;
    let mut carol = server.guest_seen("carol", &mut [&mut bob]).await;
    carol.check("JR DEV", "OK JR Dev").await;
    bob.expect("JR Dev carol").await;
    carol.check("RM dev hi", "OK RM Dev").await;
    bob.expect("RM Dev carol hi").await;
    // A new room made now is kept too.
    carol.create_room("new", &mut [&mut bob]).await;
    drop((bob, carol));

    let server = restart(server, dir.path(), |_| {});
    let mut dave = server.guest("dave").await;
    dave.check("LRS", "LRS Dev gamma new ops").await;
}

#[tokio::test]
async fn memberships_are_restored_at_login_after_a_restart() {
    let (dir, server) = start_on_new_dir(|_| {});

    // alice (registered) makes dev and ops, joins carol's qa, and leaves ops.
    let mut alice = server.register("alice", "pw").await;
    alice.create_room("dev", &mut []).await;
    alice.create_room("ops", &mut []).await;
    let mut carol = server.guest_seen("carol", &mut [&mut alice]).await;
    carol.create_room("qa", &mut [&mut alice]).await;
    carol.join("dev", &mut [&mut alice]).await;
    alice.check("JR QA", "OK JR qa").await;
    carol.expect("JR qa alice").await;
    alice.check("LR ops", "OK LR ops").await;
    // Disconnecting does not forget memberships.
    alice.quit().await;
    carol.wait_offline("alice").await;
    // Guest dave joins dev and leaves; then the name is registered by a new account that never
    // joins anything.
    let mut dave = server.guest("dave").await;
    dave.check("JR dev", "OK JR dev").await;
    dave.quit().await;
    carol.wait_offline("dave").await;
    let dave = server.register("dave", "pw").await;
    dave.quit().await;
    drop(carol);

    let server = restart(server, dir.path(), |_| {});
    let mut watcher = server.guest("watcher").await;
    watcher.check("JR dev", "OK JR dev").await;

    let mut alice = server
        .login(
            "alice",
            "pw",
            &["JR dev alice", "JR qa alice", "OK LOGIN alice"],
        )
        .await;
    watcher
        .expect_unordered(&["NOTICE ONLINE alice", "JR dev alice"])
        .await;
    alice
        .check_all(&[
            ("LRU dev", "LRU dev alice watcher"),
            ("LRU qa", "LRU qa alice"),
            ("LRU ops", "LRU ops"),
            ("RM ops x", "ERR NOT_IN_ROOM you are not in ops"),
        ])
        .await;
    watcher.rm("dev", "hey", &mut [&mut alice]).await;
    alice.rm("dev", "hello", &mut [&mut watcher]).await;

    // The guest's room is not restored.
    let mut carol = server
        .guest_seen("carol", &mut [&mut alice, &mut watcher])
        .await;
    carol.expect_caught_up().await;
    carol
        .check_all(&[
            ("LRU dev", "LRU dev alice watcher"),
            ("RM dev hi", "ERR NOT_IN_ROOM you are not in dev"),
        ])
        .await;

    // Nor is the room of the guest who had dave's name before the account existed.
    let mut dave = server.login("dave", "pw", &["OK LOGIN dave"]).await;
    for client in [&mut alice, &mut watcher, &mut carol] {
        client.expect("NOTICE ONLINE dave").await;
    }
    dave.check("LRU dev", "LRU dev alice watcher").await;
    dave.expect_caught_up().await;

    // A room joined after the restart is remembered with the others; a quit forgets nothing.
    alice.check("JR ops", "OK JR ops").await;
    alice.quit().await;
    watcher
        .expect_unordered(&["LR dev alice", "NOTICE OFFLINE alice QUIT"])
        .await;
    let _alice = server
        .login(
            "alice",
            "pw",
            &[
                "JR dev alice",
                "JR ops alice",
                "JR qa alice",
                "OK LOGIN alice",
            ],
        )
        .await;
    watcher
        .expect_unordered(&["NOTICE ONLINE alice", "JR dev alice"])
        .await;
    watcher.expect_caught_up().await;
}

#[tokio::test]
async fn a_room_left_with_lr_is_not_restored() {
    let (dir, server) = start_on_new_dir(|_| {});
    let mut observer = server.guest("observer").await;
    let mut alice = server.register("alice", "pw").await;
    alice.create_room("dev", &mut []).await;
    alice.create_room("ops", &mut []).await;
    alice.leave("dev", &mut []).await;
    // Left and joined again: kept.
    alice.leave("ops", &mut []).await;
    alice.join("ops", &mut []).await;
    alice.quit().await;
    observer.wait_offline("alice").await;
    // Without a restart too.
    let alice = server
        .login("alice", "pw", &["JR ops alice", "OK LOGIN alice"])
        .await;
    drop((alice, observer));

    let server = restart(server, dir.path(), |_| {});
    let mut observer = server.guest("observer").await;
    let mut alice = server
        .login("alice", "pw", &["JR ops alice", "OK LOGIN alice"])
        .await;
    alice.expect_caught_up().await;
    alice.check("LRU dev", "LRU dev").await;
    alice.check("LR ops", "OK LR ops").await;
    alice.quit().await;
    observer.wait_offline("alice").await;
    let mut alice = server.login("alice", "pw", &["OK LOGIN alice"]).await;
    alice.expect_caught_up().await;
    drop(alice);

    let server = restart(server, dir.path(), |_| {});
    let mut alice = server.login("alice", "pw", &["OK LOGIN alice"]).await;
    alice.expect_caught_up().await;
    alice.check("LRS", "LRS dev ops").await;
}

#[tokio::test]
async fn history_survives_a_restart() {
    let (dir, server) = start_on_new_dir(|_| {});
    let [mut alice, mut bob] = server.registered(["alice", "bob"], "pw").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;

    alice.msg("hello  world", &mut [&mut bob]).await;
    bob.msg("h\u{e9}llo \u{2713}", &mut [&mut alice]).await;
    alice.rm("dev", "in the room", &mut [&mut bob]).await;
    bob.rm("dev", "reply: yes", &mut [&mut alice]).await;
    alice.pm(&mut bob, "psst  secret").await;
    bob.pm(&mut alice, "ok").await;

    let global = alice.history("HISTORY *").await;
    let room = alice.history("HISTORY dev").await;
    let private = alice.history("HISTORY bob").await;
    assert_eq!(
        untimed(&global),
        [
            "HIST * alice hello  world",
            "HIST * bob h\u{e9}llo \u{2713}"
        ]
    );
    assert_eq!(
        untimed(&room),
        ["HIST dev alice in the room", "HIST dev bob reply: yes"]
    );
    assert_eq!(
        untimed(&private),
        ["HIST bob alice psst  secret", "HIST bob bob ok"]
    );
    drop((alice, bob));

    let server = restart(server, dir.path(), |_| {});
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    let mut bob = server
        .login("bob", "pw", &["JR dev bob", "OK LOGIN bob"])
        .await;
    alice
        .expect_unordered(&["NOTICE ONLINE bob", "JR dev bob"])
        .await;
    // The same lines, times included.
    assert_eq!(alice.history("HISTORY *").await, global);
    assert_eq!(alice.history("HISTORY dev").await, room);
    assert_eq!(alice.history("HISTORY bob").await, private);
    assert_eq!(bob.history("HISTORY *").await, global);
    assert_eq!(bob.history("HISTORY dev").await, room);
    assert_eq!(
        hist(&mut bob, "HISTORY alice").await,
        ["HIST alice alice psst  secret", "HIST alice bob ok"]
    );
    // New messages go after the old ones.
    bob.msg("after", &mut [&mut alice]).await;
    assert_eq!(
        hist(&mut alice, "HISTORY *").await,
        [
            "HIST * alice hello  world",
            "HIST * bob h\u{e9}llo \u{2713}",
            "HIST * bob after"
        ]
    );
}

#[tokio::test]
async fn a_graceful_shutdown_writes_the_batch_not_yet_committed() {
    // With a minute-long batch window nothing is committed before the shutdown.
    let minute = |settings: &mut Settings| settings.history_batch_ms = 60_000;
    let (dir, server) = start_on_new_dir(minute);
    // Registered: a private conversation outlives a session only between accounts.
    let [mut alice, mut bob] = server.registered(["alice", "bob"], "pw").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    alice.msg("one", &mut [&mut bob]).await;
    alice.rm("dev", "two", &mut []).await;
    alice.pm(&mut bob, "three").await;
    alice.msg("four", &mut [&mut bob]).await;
    drop((alice, bob));

    let server = restart(server, dir.path(), minute);
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    expect_hists(
        &mut alice,
        &[
            ("HISTORY *", &["HIST * alice one", "HIST * alice four"]),
            ("HISTORY dev", &["HIST dev alice two"]),
            ("HISTORY bob", &["HIST bob alice three"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Private messages to offline registered users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn queued_private_messages_survive_a_restart_and_are_delivered_once() {
    let (dir, server) = start_on_new_dir(|_| {});
    let [mut alice, mut bob] = server.registered(["alice", "bob"], "pw").await;
    bob.create_room("dev", &mut [&mut alice]).await;
    bob.quit_seen(&mut [&mut alice]).await;

    alice
        .check_all(&[
            ("PM bob first", "OK PM bob queued"),
            ("PM BOB second  one", "OK PM bob queued"),
            (
                "PM nobody x",
                "ERR NO_SUCH_USER nobody is neither online nor registered",
            ),
        ])
        .await;
    let mut carol = server.guest_seen("carol", &mut [&mut alice]).await;
    carol.check("PM bob from carol", "OK PM bob queued").await;
    drop((alice, carol));

    let server = restart(server, dir.path(), |_| {});
    let mut observer = server.guest("observer").await;
    // Rooms first, then the queued messages in the order they were sent, then OK LOGIN.
    let mut bob = server
        .login(
            "bob",
            "pw",
            &[
                "JR dev bob",
                "PM alice first",
                "PM alice second  one",
                "PM carol from carol",
                "OK LOGIN bob",
            ],
        )
        .await;
    bob.expect_caught_up().await;
    // The queued messages are part of the conversation.
    assert_eq!(
        hist(&mut bob, "HISTORY alice").await,
        ["HIST alice alice first", "HIST alice alice second  one"]
    );
    bob.quit().await;
    observer.wait_offline("bob").await;

    // Not again on the next login...
    let mut bob = server
        .login("bob", "pw", &["JR dev bob", "OK LOGIN bob"])
        .await;
    bob.expect_caught_up().await;
    drop(bob);
    // ...nor after another restart.
    let server = restart(server, dir.path(), |_| {});
    let mut bob = server
        .login("bob", "pw", &["JR dev bob", "OK LOGIN bob"])
        .await;
    bob.expect_caught_up().await;
}

#[tokio::test]
async fn private_messages_to_offline_users_without_a_restart() {
    let server = TestServer::start();
    let mut alice = server.guest("alice").await;
    let mut bob = server.register_seen("bob", "pw", &mut [&mut alice]).await;
    let mut guest = server
        .guest_seen("guest", &mut [&mut alice, &mut bob])
        .await;
    bob.quit_seen(&mut [&mut alice, &mut guest]).await;
    guest.quit_seen(&mut [&mut alice]).await;

    alice
        .check_all(&[
            // A guest who left has no account: nothing is kept for them.
            (
                "PM guest hello",
                "ERR NO_SUCH_USER guest is neither online nor registered",
            ),
            ("PM bob while you were out", "OK PM bob queued"),
        ])
        .await;
    let mut bob = server.connect().await;
    bob.send("LOGIN Bob pw").await;
    bob.expect("PM alice while you were out").await;
    bob.expect("OK LOGIN bob").await;
    alice.expect("NOTICE ONLINE bob").await;
    bob.logged_in_as("bob");
    // Online now: delivered at once, not queued.
    alice.pm(&mut bob, "now").await;
    bob.expect_caught_up().await;
    bob.quit_seen(&mut [&mut alice]).await;
    let mut bob = server.login("bob", "pw", &["OK LOGIN bob"]).await;
    bob.expect_caught_up().await;
}

// ---------------------------------------------------------------------------------------------
// HISTORY: counts, errors, targets, the time field, the batch window
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn history_count_defaults_and_clamps_to_the_settings() {
    let server = with_history_counts(3, 5);
    let mut alice = alice_said(&server, 7).await;
    let last =
        |n: usize| -> Vec<String> { (8 - n..=7).map(|i| format!("HIST * alice m{i}")).collect() };
    assert_eq!(hist(&mut alice, "HISTORY *").await, last(3));
    assert_eq!(hist(&mut alice, "HISTORY * 1").await, last(1));
    assert_eq!(hist(&mut alice, "HISTORY * 2").await, last(2));
    assert_eq!(hist(&mut alice, "HISTORY * 5").await, last(5));
    assert_eq!(hist(&mut alice, "HISTORY * 6").await, last(5));
    assert_eq!(hist(&mut alice, "HISTORY * 4294967295").await, last(5));

    // Also for rooms and private conversations.
    alice.create_room("dev", &mut []).await;
    for i in 1..=7 {
        alice.check(&format!("RM dev r{i}"), "OK RM dev").await;
    }
    assert_eq!(
        hist(&mut alice, "HISTORY dev").await,
        [
            "HIST dev alice r5",
            "HIST dev alice r6",
            "HIST dev alice r7"
        ]
    );
    assert_eq!(
        hist(&mut alice, "HISTORY dev 9").await,
        (3..=7)
            .map(|i| format!("HIST dev alice r{i}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn history_default_count_is_clamped_to_the_maximum() {
    let server = with_history_counts(10, 2);
    let mut alice = alice_said(&server, 4).await;
    assert_eq!(
        hist(&mut alice, "HISTORY *").await,
        ["HIST * alice m3", "HIST * alice m4"]
    );
}

#[tokio::test]
async fn history_default_count_is_fifty() {
    let server = TestServer::start();
    let mut alice = alice_said(&server, 52).await;
    let expected = |from: usize| -> Vec<String> {
        (from..=52).map(|i| format!("HIST * alice m{i}")).collect()
    };
    assert_eq!(hist(&mut alice, "HISTORY *").await, expected(3));
    assert_eq!(hist(&mut alice, "HISTORY * 52").await, expected(1));
    assert_eq!(hist(&mut alice, "HISTORY * 1000").await, expected(1));
}

#[tokio::test]
async fn history_of_a_conversation_without_messages_is_empty() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    let empty = "OK HISTORY 0";
    alice
        .check_all(&[
            ("HISTORY *", empty),
            ("HISTORY * 10", empty),
            ("HISTORY bob", empty),
            (
                "HISTORY nobody 3",
                "ERR NO_SUCH_USER nobody is neither a room you are in nor a user",
            ),
        ])
        .await;
    alice.create_room("dev", &mut [&mut bob]).await;
    alice.check("HISTORY dev", empty).await;
    // Messages elsewhere do not show up in these.
    alice.msg("hi", &mut [&mut bob]).await;
    alice
        .check_all(&[("HISTORY bob", empty), ("HISTORY dev", empty)])
        .await;
    bob.check("HISTORY alice", empty).await;
}

#[tokio::test]
async fn history_before_login_and_bad_arguments_are_refused() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    client
        .check_all(&[
            ("HISTORY *", NOT_LOGGED_IN),
            ("HISTORY bob 5", NOT_LOGGED_IN),
            ("NICK alice", "OK NICK alice"),
            ("MSG one", "OK MSG"),
        ])
        .await;
    for count in ["0", "-1", "ten", "1.5", "99999999999"] {
        client
            .check(
                &format!("HISTORY * {count}"),
                &format!(
                    "ERR BAD_ARGUMENTS \"{count}\" is not a count: use a whole number from 1; \
                 usage: {HISTORY_USAGE}"
                ),
            )
            .await;
    }
    let bad_arguments =
        |problem: &str| format!("ERR BAD_ARGUMENTS {problem}; usage: {HISTORY_USAGE}");
    client
        .check_all(&[
            ("HISTORY", &bad_arguments("missing argument")),
            ("HISTORY * 1 2", &bad_arguments("too many arguments")),
            (
                "HISTORY a.b",
                "ERR BAD_NAME bad name \"a.b\": a name may hold only letters A-Z, digits, '_' and '-'",
            ),
        ])
        .await;
    // Still fine afterwards.
    assert_eq!(hist(&mut client, "HISTORY * 1").await, ["HIST * alice one"]);
}

#[tokio::test]
async fn room_history_needs_membership_and_private_history_is_private() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    alice.create_room("dev", &mut [&mut bob, &mut carol]).await;
    bob.join("dev", &mut [&mut alice]).await;
    alice.rm("dev", "for members", &mut [&mut bob]).await;
    alice.pm(&mut bob, "just us").await;

    // carol is in neither conversation.
    let not_in = "ERR NOT_IN_ROOM you are not in dev";
    carol
        .check_all(&[
            ("HISTORY dev", not_in),
            ("HISTORY bob", "OK HISTORY 0"),
            ("HISTORY alice", "OK HISTORY 0"),
        ])
        .await;
    // A member reads the room's history, also what was said before they joined.
    carol.join("dev", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        hist(&mut carol, "HISTORY dev").await,
        ["HIST dev alice for members"]
    );
    carol.leave("dev", &mut [&mut alice, &mut bob]).await;
    carol.check("HISTORY dev", not_in).await;
    expect_hists(
        &mut bob,
        &[
            ("HISTORY alice", &["HIST alice alice just us"]),
            ("HISTORY dev", &["HIST dev alice for members"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn hist_time_is_rfc3339_utc_with_millis_and_recent() {
    let server = TestServer::start();
    let mut alice = server.guest("alice").await;
    let before = SystemTime::now();
    alice.check("MSG first", "OK MSG").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.check("MSG second", "OK MSG").await;
    let lines = alice.history("HISTORY *").await;
    let after = SystemTime::now();
    assert_eq!(
        untimed(&lines),
        ["HIST * alice first", "HIST * alice second"]
    );
    let times: Vec<SystemTime> = lines
        .iter()
        .map(|line| hist_time(split_hist(line).1))
        .collect();
    // Millisecond precision, from the kernel's coarse clock (`storage::message_time`), which
    // lags by up to a scheduler tick: allow for both.
    let slack = Duration::from_millis(1 + 10);
    assert!(times[0] + slack >= before, "{lines:?}");
    assert!(times[1] <= after, "{lines:?}");
    assert!(times[0] < times[1], "oldest first: {lines:?}");
}

#[tokio::test]
async fn history_right_after_a_message_includes_it() {
    // HISTORY waits for the batch that holds what was sent before it to be committed (at most
    // one window, and without forcing a commit), so that writes never queue behind reads.
    let server = TestServer::with(|settings| settings.history_batch_ms = 20);
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    offline_account(&server, "carol", &mut [&mut alice, &mut bob]).await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;

    alice.check("MSG now", "OK MSG").await;
    assert_eq!(hist(&mut alice, "HISTORY *").await, ["HIST * alice now"]);
    bob.expect("MSG alice now").await;
    assert_eq!(hist(&mut bob, "HISTORY *").await, ["HIST * alice now"]);

    bob.check("RM dev here", "OK RM dev").await;
    assert_eq!(hist(&mut bob, "HISTORY dev").await, ["HIST dev bob here"]);
    alice.expect("RM dev bob here").await;
    assert_eq!(hist(&mut alice, "HISTORY dev").await, ["HIST dev bob here"]);

    alice.check("PM bob direct", "OK PM bob").await;
    assert_eq!(
        hist(&mut alice, "HISTORY bob").await,
        ["HIST bob alice direct"]
    );
    bob.expect("PM alice direct").await;
    assert_eq!(
        hist(&mut bob, "HISTORY alice").await,
        ["HIST alice alice direct"]
    );

    alice.check("PM carol later", "OK PM carol queued").await;
    assert_eq!(
        hist(&mut alice, "HISTORY carol").await,
        ["HIST carol alice later"]
    );

    // Many in a row, each asked for at once.
    for i in 0..20 {
        alice.check(&format!("MSG n{i}"), "OK MSG").await;
        let lines = hist(&mut alice, "HISTORY * 1").await;
        assert_eq!(lines, [format!("HIST * alice n{i}")]);
    }
}

/// Sends `command`, a `HISTORY`, and reads up to its `OK HISTORY`: fine when one of the `HIST`
/// lines read ends with `want`, else the lines read (others' deliveries among them).
async fn history_ends_with(
    client: &mut Client,
    command: &str,
    want: &str,
) -> Result<(), Vec<String>> {
    client.send(command).await;
    let answer = client.skip_until("OK HISTORY").await;
    if answer
        .iter()
        .any(|line| line.starts_with("HIST ") && line.ends_with(want))
    {
        Ok(())
    } else {
        Err(answer)
    }
}

/// Many clients at once, each asking for its own message as soon as it is acknowledged: the
/// reply must never overtake the recording of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_right_after_the_ok_includes_the_message_under_load() {
    const CLIENTS: usize = 6;
    const ROUNDS: usize = 150;
    let server = TestServer::with(|settings| {
        // Short, as each HISTORY waits for the commit of the batch before it.
        settings.history_batch_ms = 5;
        settings.flood_lines_per_sec = 0;
    });
    let mut tasks = Vec::new();
    for k in 0..CLIENTS {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let me = format!("s{k}");
            let mut client = Client::connect(addr).await;
            client.send(&format!("NICK {me}")).await;
            client.skip_until("OK NICK").await;
            let mut misses = Vec::new();
            for i in 0..ROUNDS {
                // A private message to oneself: delivered, acknowledged, then asked for.
                client.send(&format!("PM {me} p{i}")).await;
                client.skip_until(&format!("PM {me} p{i}")).await;
                client.skip_until(&format!("OK PM {me}")).await;
                let command = format!("HISTORY {me} 1");
                let want = format!("{me} p{i}");
                if let Err(answer) = history_ends_with(&mut client, &command, &want).await {
                    misses.push(format!("PM {me} p{i}: {answer:?}"));
                }
                // A global message: acknowledged, then asked for (others' lines are skipped).
                client.send(&format!("MSG {me}-m{i}")).await;
                client.skip_until("OK MSG").await;
                let want = format!(" {me} {me}-m{i}");
                if history_ends_with(&mut client, "HISTORY * 100", &want)
                    .await
                    .is_err()
                {
                    misses.push(format!("MSG {me}-m{i}"));
                }
            }
            misses
        }));
    }
    let mut misses = Vec::new();
    for task in tasks {
        misses.extend(task.await.unwrap());
    }
    assert!(
        misses.is_empty(),
        "{} of {} messages were missing from HISTORY asked right after their OK: {misses:?}",
        misses.len(),
        2 * CLIENTS * ROUNDS
    );
}

// ---------------------------------------------------------------------------------------------
// Settings: history off, retention
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_history_off_nothing_is_kept() {
    let off = |settings: &mut Settings| settings.history = false;
    let (dir, server) = start_on_new_dir(off);
    let mut alice = server.register("alice", "pw").await;
    let mut bob = server.guest_seen("bob", &mut [&mut alice]).await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    alice.msg("hi all", &mut [&mut bob]).await;
    alice.rm("dev", "hi room", &mut [&mut bob]).await;
    alice.pm(&mut bob, "hi you").await;

    let empty = "OK HISTORY 0";
    for (client, conversation) in [(&mut alice, "HISTORY bob"), (&mut bob, "HISTORY alice 10")] {
        client
            .check_all(&[
                ("HISTORY *", empty),
                ("HISTORY dev", empty),
                (conversation, empty),
            ])
            .await;
    }
    drop((alice, bob));

    // Nothing reached the disk either: a server with history on finds nothing.
    let server = restart(server, dir.path(), |_| {});
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    alice
        .check_all(&[
            ("HISTORY *", empty),
            ("HISTORY dev", empty),
            // bob was a guest: his session, and the conversation with him, ended.
            (
                "HISTORY bob",
                "ERR NO_SUCH_USER bob is neither a room you are in nor a user",
            ),
        ])
        .await;
}

#[tokio::test]
async fn with_history_off_queued_private_messages_still_work() {
    let off = |settings: &mut Settings| settings.history = false;
    let (dir, server) = start_on_new_dir(off);
    let mut alice = server.guest("alice").await;
    offline_account(&server, "bob", &mut [&mut alice]).await;
    alice
        .check_all(&[
            ("PM bob kept for you", "OK PM bob queued"),
            ("PM bob and this", "OK PM bob queued"),
        ])
        .await;
    drop(alice);

    let server = restart(server, dir.path(), off);
    let mut observer = server.guest("observer").await;
    let mut bob = server
        .login(
            "bob",
            "pw",
            &["PM alice kept for you", "PM alice and this", "OK LOGIN bob"],
        )
        .await;
    bob.expect_caught_up().await;
    bob.quit().await;
    observer.wait_offline("bob").await;
    let mut bob = server.login("bob", "pw", &["OK LOGIN bob"]).await;
    bob.expect_caught_up().await;
    // History is off: the delivered messages are not history (and alice, a guest, is gone).
    bob.check_all(&[
        (
            "HISTORY alice",
            "ERR NO_SUCH_USER alice is neither a room you are in nor a user",
        ),
        ("HISTORY *", "OK HISTORY 0"),
    ])
    .await;
}

/// Checks that alice's conversations of the retention test below, asked for with `HISTORY *`,
/// `room` (a `HISTORY dev` command) and `HISTORY bob`, hold their messages number `from` to 5.
async fn expect_retained(alice: &mut Client, room: &str, from: usize) {
    let conversations = [
        ("HISTORY *", "HIST * alice m"),
        (room, "HIST dev alice r"),
        ("HISTORY bob", "HIST bob alice p"),
    ];
    for (command, prefix) in conversations {
        let lines: Vec<String> = (from..=5).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(hist(alice, command).await, lines, "{command}");
    }
}

#[tokio::test]
async fn retention_keeps_the_last_messages_of_each_conversation_after_a_restart() {
    let (dir, server) = start_on_new_dir(|_| {});
    let [mut alice, mut bob] = server.registered(["alice", "bob"], "pw").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    for i in 1..=5 {
        alice.msg(&format!("m{i}"), &mut [&mut bob]).await;
        alice.rm("dev", &format!("r{i}"), &mut []).await;
        alice.pm(&mut bob, &format!("p{i}")).await;
    }
    // Before the restart, and with the default retention, everything is there.
    expect_retained(&mut alice, "HISTORY dev", 1).await;
    drop((alice, bob));

    let keep3 = |settings: &mut Settings| settings.history_keep_per_conversation = 3;
    let server = restart(server, dir.path(), keep3);
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    expect_retained(&mut alice, "HISTORY dev 100", 3).await;
    // Later messages count too: the next start prunes again.
    alice.check("MSG m6", "OK MSG").await;
    drop(alice);
    let server = restart(server, dir.path(), keep3);
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    assert_eq!(
        hist(&mut alice, "HISTORY *").await,
        ["HIST * alice m4", "HIST * alice m5", "HIST * alice m6"]
    );
}

#[tokio::test]
async fn retention_keeps_private_messages_until_delivered() {
    let (dir, server) = start_on_new_dir(|_| {});
    let mut alice = server.guest("alice").await;
    offline_account(&server, "bob", &mut [&mut alice]).await;
    for i in 1..=5 {
        alice
            .check(&format!("PM bob q{i}"), "OK PM bob queued")
            .await;
    }
    drop(alice);

    let keep3 = |settings: &mut Settings| settings.history_keep_per_conversation = 3;
    let server = restart(server, dir.path(), keep3);
    let _bob = server
        .login(
            "bob",
            "pw",
            &[
                "PM alice q1",
                "PM alice q2",
                "PM alice q3",
                "PM alice q4",
                "PM alice q5",
                "OK LOGIN bob",
            ],
        )
        .await;
}

// ---------------------------------------------------------------------------------------------
// Hard kill
// ---------------------------------------------------------------------------------------------

/// Lines written per burst, and the pause between bursts, of the flood below.
const BURST: usize = 10;
const BURST_PAUSE: Duration = Duration::from_millis(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_kill_loses_at_most_the_last_batch_window() {
    const BATCH_MS: u64 = 200;
    const MARGIN_MS: u64 = 300;
    let batch = BATCH_MS.to_string();
    let envs = [
        ("LINECHAT_HISTORY_BATCH_MS", batch.as_str()),
        ("LINECHAT_HISTORY_MAX_COUNT", "1000000"),
        ("LINECHAT_FLOOD_LINES_PER_SEC", "0"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_in(dir.path(), &[], &envs);

    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello = lines.next_line().await.unwrap().unwrap();
    assert!(hello.starts_with("HELLO "), "{hello}");
    write.write_all(b"NICK flood\n").await.unwrap();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("OK NICK flood")
    );

    // The writer sends `MSG m<i>` in bursts until told to stop or the connection fails; it
    // returns how many lines it tried to send.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut burst = String::new();
                for _ in 0..BURST {
                    burst.push_str(&format!("MSG m{sent}\n"));
                    sent += 1;
                }
                if write.write_all(burst.as_bytes()).await.is_err() {
                    break;
                }
                tokio::time::sleep(BURST_PAUSE).await;
            }
            sent
        }
    });
    // The reader notes when each `OK MSG` arrived, until the connection ends.
    let reader = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, lines.next_line()).await {
                Ok(Ok(Some(line))) if line == "OK MSG" => arrivals.push(Instant::now()),
                Ok(Ok(Some(line))) => return Err(format!("unexpected line {line:?}")),
                Ok(Ok(None)) | Ok(Err(_)) => return Ok(arrivals),
                Err(_) => return Err("the connection neither closed nor answered".into()),
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let killed_at = Instant::now();
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.unwrap();
    let arrivals = reader.await.unwrap().unwrap();
    drop(server);

    let safe_before = killed_at - Duration::from_millis(BATCH_MS + MARGIN_MS);
    let must_keep = arrivals.iter().filter(|&&at| at < safe_before).count();
    assert!(
        must_keep >= 100,
        "too little traffic to judge: {must_keep} acknowledged in time, {} in all",
        arrivals.len()
    );
    assert!(
        arrivals
            .last()
            .is_some_and(|&at| at + Duration::from_millis(100) >= killed_at),
        "the kill was not mid-traffic"
    );

    // The restarted server starts cleanly on the crashed database and answers.
    let server = TestServer::start_in(dir.path(), |settings| {
        settings.history_max_count = 1_000_000;
    });
    let mut checker = server.guest("checker").await;
    checker.check("PING alive", "PONG alive").await;
    let kept = hist(&mut checker, "HISTORY * 1000000").await;
    // What was kept is the messages in the order sent, from the first, without gaps or
    // duplicates (batches commit whole and in order)...
    for (i, line) in kept.iter().enumerate() {
        assert_eq!(
            *line,
            format!("HIST * flood m{i}"),
            "line {i} of {} kept",
            kept.len()
        );
    }
    // ...and holds at least every message acknowledged a batch window (and a margin) before
    // the kill, and nothing that was never sent.
    assert!(
        kept.len() >= must_keep,
        "lost acknowledged messages: kept {}, but {must_keep} were acknowledged more than \
         {BATCH_MS} + {MARGIN_MS} ms before the kill ({} acknowledged, {sent} sent)",
        kept.len(),
        arrivals.len()
    );
    assert!(kept.len() <= sent, "kept {} of {sent} sent", kept.len());
}
