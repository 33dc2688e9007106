//! `TOPIC`: a room's topic, read by anyone, set by its members, told to the others, and kept
//! with the room across restarts.

use linechat_protocol::Reply;

use crate::support::{NOT_LOGGED_IN, Server, TestServer};

/// The topic a `TOPIC <room>` answer holds, as `(setter, text)`; `None` without one.
fn topic_of(line: &str) -> Option<(String, String)> {
    match Reply::parse(line) {
        Ok(Reply::Topic { topic, .. }) => topic.map(|topic| (topic.by.to_string(), topic.text)),
        other => panic!("not a TOPIC answer: {line:?} ({other:?})"),
    }
}

#[tokio::test]
async fn members_set_the_topic_anyone_reads_it_and_the_other_members_are_told() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    alice.create_room("Dev", &mut [&mut bob, &mut carol]).await;
    bob.join("Dev", &mut [&mut alice]).await;
    carol.check("TOPIC dev", "TOPIC Dev").await;

    alice
        .check("TOPIC dev ship  it, then TOPIC x", "OK TOPIC Dev")
        .await;
    bob.expect("NOTICE TOPIC Dev alice ship  it, then TOPIC x")
        .await;
    // Read by a member and by someone who is not one, in any case, with its setter and time.
    for client in [&mut bob, &mut carol] {
        let line = client.ask("topic DEV").await;
        assert!(line.starts_with("TOPIC Dev alice 20"), "{line}");
        assert_eq!(
            topic_of(&line),
            Some(("alice".into(), "ship  it, then TOPIC x".into()))
        );
    }
    // Another member replaces it; the topic goes to the members in order with their messages.
    bob.check("TOPIC Dev new one", "OK TOPIC Dev").await;
    bob.check("RM dev see the topic", "OK RM Dev").await;
    alice.expect("NOTICE TOPIC Dev bob new one").await;
    alice.expect("RM Dev bob see the topic").await;
    assert_eq!(
        topic_of(&carol.ask("TOPIC dev").await),
        Some(("bob".into(), "new one".into()))
    );
    // Nobody hears of their own change, and someone outside the room hears of none.
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_caught_up().await;
    }
}

#[tokio::test]
async fn topic_errors() {
    let server = TestServer::start();
    let mut early = server.connect().await;
    early.check("TOPIC dev", NOT_LOGGED_IN).await;
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    let no_such = "ERR NO_SUCH_ROOM there is no room nope; CR creates it";
    alice.check("TOPIC nope", no_such).await;
    alice.check("TOPIC nope hello", no_such).await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.check("TOPIC dev mine now", "ERR NOT_IN_ROOM you are not in dev")
        .await;
    alice.check("TOPIC", "ERR BAD_ARGUMENTS missing argument; usage: TOPIC <room> [text] - a room's topic; with text, set it (members only)").await;
    alice
        .check(
            "TOPIC dev a\u{7}b",
            "ERR BAD_TEXT control characters are not allowed",
        )
        .await;
    // 300 bytes is the most, counted in bytes: "é" is two.
    let longest = "é".repeat(150);
    alice
        .check(&format!("TOPIC dev {longest}"), "OK TOPIC dev")
        .await;
    alice
        .check(
            &format!("TOPIC dev {longest}x"),
            "ERR BAD_ARGUMENTS a topic is at most 300 bytes; this one is 301",
        )
        .await;
    assert_eq!(
        topic_of(&bob.ask("TOPIC dev").await),
        Some(("alice".into(), longest))
    );
    // Left: no longer a member.
    alice.check("LR dev", "OK LR dev").await;
    alice
        .check("TOPIC dev gone", "ERR NOT_IN_ROOM you are not in dev")
        .await;
    for client in [&mut alice, &mut bob] {
        client.expect_caught_up().await;
    }
}

/// `OK TOPIC` means stored: a server killed right after it has the topic when it starts
/// again, with its setter and time.
#[tokio::test]
async fn a_topic_is_kept_with_its_room_across_a_hard_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path(), |_| {});
    let mut alice = server.guest("alice").await;
    alice.check("CR dev", "OK CR dev").await;
    alice.check("TOPIC dev kept on disk", "OK TOPIC dev").await;
    let before = alice.ask("TOPIC dev").await;
    server.kill();
    let server = TestServer::start_in(dir.path(), |_| {});
    let mut bob = server.guest("bob").await;
    assert_eq!(bob.ask("TOPIC dev").await, before);
    assert_eq!(
        topic_of(&before),
        Some(("alice".into(), "kept on disk".into()))
    );
}
