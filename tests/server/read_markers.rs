//! `MARKREAD` and `UNREAD`: an account's read markers, which only move forward, survive a
//! restart, and count what came after them.

use std::time::Duration;

use crate::support::{Client, Server, TestServer};
use linechat_protocol::Stamp;

/// Reads the next line, which must be a stamped `RM`, and returns its stamp.
async fn stamp_of(client: &mut Client) -> Stamp {
    let line = client.line().await;
    match Stamp::split(&line) {
        Some((Some(stamp), rest)) if rest.starts_with("RM ") => stamp,
        _ => panic!("a stamped RM, not {line:?}"),
    }
}

#[tokio::test]
async fn a_marker_moves_forward_counts_what_follows_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path(), |_| {});
    let mut alice = server.register("alice", "pw").await;
    alice.check("OPTION ids on", "OK OPTION ids on").await;
    alice.create_room("Dev", &mut []).await;
    let mut bob = server.guest_seen("bob", &mut [&mut alice]).await;
    bob.join("Dev", &mut []).await;
    alice.expect("JR Dev bob").await;
    let mut stamps = Vec::new();
    for i in 0..4 {
        bob.check(&format!("RM dev m{i}"), "OK RM Dev").await;
        stamps.push(stamp_of(&mut alice).await);
    }
    let [first, second, _, fourth] = [stamps[0], stamps[1], stamps[2], stamps[3]];

    alice.check("MARKREAD dev", "OK MARKREAD dev").await;
    alice
        .check(
            &format!("MARKREAD dev {}", second.id),
            &format!("OK MARKREAD dev {}", second.id),
        )
        .await;
    // Back is no way: the marker stays where it is.
    alice
        .check(
            &format!("MARKREAD DEV {}", first.id),
            &format!("OK MARKREAD DEV {}", second.id),
        )
        .await;
    alice.send("UNREAD").await;
    alice.expect(&format!("UNREAD Dev 2 {}", second.id)).await;
    alice.expect("OK UNREAD 1").await;

    // A time marks the last message accepted before it.
    let after_fourth = humantime::format_rfc3339_millis(fourth.at + Duration::from_millis(1));
    alice
        .check(
            &format!("MARKREAD dev {after_fourth}"),
            &format!("OK MARKREAD dev {}", fourth.id),
        )
        .await;
    alice.check("UNREAD", "OK UNREAD 0").await;
    bob.check("RM dev later", "OK RM Dev").await;
    stamp_of(&mut alice).await;
    alice.quit().await;
    drop(bob);

    server.terminate();
    drop(server);
    let server = TestServer::start_in(dir.path(), |_| {});
    let mut alice = server
        .login("alice", "pw", &["JR Dev alice", "OK LOGIN alice"])
        .await;
    alice
        .check("MARKREAD dev", &format!("OK MARKREAD dev {}", fourth.id))
        .await;
    alice.send("UNREAD").await;
    alice.expect(&format!("UNREAD Dev 1 {}", fourth.id)).await;
    alice.expect("OK UNREAD 1").await;
    // A room left is not listed.
    alice.check("LR dev", "OK LR Dev").await;
    alice.check("UNREAD", "OK UNREAD 0").await;
}

#[tokio::test]
async fn markers_are_checked() {
    let server = TestServer::start();
    let mut alice = server.register("alice", "pw").await;
    alice.check("OPTION ids on", "OK OPTION ids on").await;
    alice.create_room("dev", &mut []).await;
    let mut bob = server.guest_seen("bob", &mut [&mut alice]).await;
    bob.join("dev", &mut [&mut alice]).await;
    bob.check("RM dev hi", "OK RM dev").await;
    let in_dev = stamp_of(&mut alice).await;
    alice.check("CR ops", "OK CR ops").await;
    bob.expect("NOTICE ROOM ops alice").await;
    alice.check("RM ops elsewhere", "OK RM ops").await;

    let guests = "ERR NOT_REGISTERED read markers are kept for accounts: REGISTER or LOGIN";
    bob.check("MARKREAD dev", guests).await;
    bob.check("UNREAD", guests).await;
    let usage = "usage: MARKREAD <*|room|user> [id|time] - your read marker in a conversation; \
                 with a message id or a time, move it there (it only moves forward)";
    for (line, reply) in [
        (
            "MARKREAD dev soon".to_owned(),
            format!(
                "ERR BAD_ARGUMENTS \"soon\" is not a message id (a whole number from 1) or a \
                 time in UTC (2026-12-08T10:15:00.123Z); {usage}"
            ),
        ),
        (
            "MARKREAD dev 1 2".to_owned(),
            format!("ERR BAD_ARGUMENTS too many arguments; {usage}"),
        ),
        (
            "MARKREAD nowhere 1".to_owned(),
            "ERR NO_SUCH_USER nowhere is neither a room you are in nor a user".to_owned(),
        ),
        // An id of another conversation, or none at all, tells nothing of it.
        (
            format!("MARKREAD ops {}", in_dev.id),
            format!("ERR BAD_ARGUMENTS no message {} in ops", in_dev.id),
        ),
        (
            "MARKREAD dev 999999999".to_owned(),
            "ERR BAD_ARGUMENTS no message 999999999 in dev".to_owned(),
        ),
    ] {
        alice.check(&line, &reply).await;
    }
    alice.check("MARKREAD dev", "OK MARKREAD dev").await;
}

#[tokio::test]
async fn mentions_are_the_messages_naming_you_since_your_marker_newest_first() {
    let server = TestServer::start();
    let mut alice = server.register("alice", "pw").await;
    alice.check("OPTION ids on", "OK OPTION ids on").await;
    alice.create_room("dev", &mut []).await;
    alice.check("CR ops", "OK CR ops").await;
    let mut bob = server.guest_seen("bob", &mut [&mut alice]).await;
    bob.join("dev", &mut []).await;
    bob.join("ops", &mut []).await;
    alice.skip_until("JR ops bob").await;
    let mut ids = Vec::new();
    for (room, text) in [
        ("dev", "hi alice"),
        ("dev", "malice aforethought"),
        ("ops", "@Alice: look at this"),
        ("dev", "nothing here"),
        ("dev", "ALICE, again"),
    ] {
        bob.check(&format!("RM {room} {text}"), &format!("OK RM {room}"))
            .await;
        ids.push(stamp_of(&mut alice).await.id);
    }
    alice.check("RM dev I am alice", "OK RM dev").await;
    bob.expect("RM dev alice I am alice").await;

    let hist = |line: &str| {
        let (stamp, rest) = Stamp::split(line)
            .and_then(|(stamp, rest)| Some((stamp?, rest)))
            .unwrap_or_else(|| panic!("a stamped HIST, not {line:?}"));
        let mut fields = rest.splitn(5, ' ');
        let (room, text) = (fields.nth(1).unwrap(), fields.nth(2).unwrap());
        (stamp.id, room.to_owned(), text.to_owned())
    };
    let mentions = async |alice: &mut Client, command: &str| {
        alice.send(command).await;
        let mut found = Vec::new();
        loop {
            let line = alice.line().await;
            if let Some(n) = line.strip_prefix("OK MENTIONS ") {
                assert_eq!(n, found.len().to_string());
                return found;
            }
            found.push(hist(&line));
        }
    };
    assert_eq!(
        mentions(&mut alice, "MENTIONS").await,
        [
            (ids[4], "dev".to_owned(), "ALICE, again".to_owned()),
            (ids[2], "ops".to_owned(), "@Alice: look at this".to_owned()),
            (ids[0], "dev".to_owned(), "hi alice".to_owned()),
        ]
    );
    assert_eq!(mentions(&mut alice, "MENTIONS 1").await.len(), 1);
    // Read up to the second in dev: only what came after it there, and all of ops.
    alice
        .check(
            &format!("MARKREAD dev {}", ids[1]),
            &format!("OK MARKREAD dev {}", ids[1]),
        )
        .await;
    let after_marker: Vec<i64> = mentions(&mut alice, "MENTIONS")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(after_marker, [ids[4], ids[2]]);
    // A room left is not looked through.
    alice.check("LR ops", "OK LR ops").await;
    bob.expect("LR ops alice").await;
    let left: Vec<i64> = mentions(&mut alice, "MENTIONS")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(left, [ids[4]]);
    alice
        .check(
            "MENTIONS 0",
            "ERR BAD_ARGUMENTS \"0\" is not a count: use a whole number from 1; usage: \
             MENTIONS [count] - messages in your rooms that name you, since your read marker \
             there, newest first",
        )
        .await;
}
