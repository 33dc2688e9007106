//! Messages go straight to their owner (issue 10): a session keeps its rooms' handles and the
//! outboxes of those it sends private messages to, and presence notices are gathered under
//! load. These tests check that the shortcuts never misdeliver, lose or reorder anything.

use crate::support::{Server, TestServer};

/// A private message after the recipient left and someone else took the name reaches the new
/// holder of the name, never the old connection, and is not lost.
#[tokio::test]
async fn a_kept_recipient_that_left_is_looked_up_again() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    for i in 0..3 {
        assert_eq!(alice.ask(&format!("PM bob hello {i}")).await, "OK PM bob");
        bob.expect(&format!("PM alice hello {i}")).await;
    }
    bob.quit().await;
    alice.expect("NOTICE OFFLINE bob QUIT").await;
    assert_eq!(
        alice.ask("PM bob are you there").await,
        "ERR NO_SUCH_USER bob is neither online nor registered"
    );
    let mut new_bob = server.guest("BOB").await;
    alice.expect("NOTICE ONLINE BOB").await;
    assert_eq!(alice.ask("PM bob hi again").await, "OK PM BOB");
    new_bob.expect("PM alice hi again").await;
    // The new bob does not read the old one's conversation.
    let hist = new_bob.ask("HISTORY alice").await;
    assert!(
        hist.starts_with("HIST alice ") && hist.ends_with(" alice hi again"),
        "{hist}"
    );
    new_bob.expect("OK HISTORY 1").await;
}

/// An account that logs in again on a new connection takes its session over: the messages
/// sent to it afterwards go to the new connection.
#[tokio::test]
async fn a_kept_recipient_that_logged_in_elsewhere_is_followed() {
    let server = TestServer::start();
    let mut carol = server.register("carol", "secret-1").await;
    let mut alice = server.guest("alice").await;
    assert_eq!(alice.ask("PM carol one").await, "OK PM carol");
    carol.expect("NOTICE ONLINE alice").await;
    carol.expect("PM alice one").await;

    let mut carol_again = server.login("carol", "secret-1", &["OK LOGIN carol"]).await;
    carol.expect_prefix("NOTICE CLOSING REPLACED").await;
    assert_eq!(alice.ask("PM carol two").await, "OK PM carol");
    carol_again.expect("PM alice two").await;
}

/// Messages written in one go, to a room, to users and to everyone, each get their final
/// line in the order they were sent, and every recipient gets them in order.
#[tokio::test]
async fn a_burst_of_mixed_messages_keeps_its_order() {
    let server = TestServer::with(|settings| settings.flood_lines_per_sec = 0);
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    alice.create_room("den", &mut [&mut bob, &mut carol]).await;
    bob.join("den", &mut [&mut alice]).await;
    let mut burst = String::new();
    let mut expected = Vec::new();
    for i in 0..300 {
        let (line, ok) = match i % 4 {
            0 => (format!("RM den r{i}"), "OK RM den"),
            1 => (format!("PM bob p{i}"), "OK PM bob"),
            2 => (format!("PM carol c{i}"), "OK PM carol"),
            _ => (format!("MSG m{i}"), "OK MSG"),
        };
        burst.push_str(&line);
        burst.push('\n');
        expected.push(ok.to_string());
    }
    burst.push_str("PING end\n");
    expected.push("PONG end".into());
    alice.send_raw(burst.as_bytes()).await;
    let mut answers = Vec::new();
    while answers.len() < expected.len() {
        let line = alice.line().await;
        answers.push(line);
    }
    assert_eq!(answers, expected);

    let mut bob_saw = Vec::new();
    let mut carol_saw = Vec::new();
    while bob_saw.len() < 225 {
        bob_saw.push(bob.line().await);
    }
    while carol_saw.len() < 150 {
        carol_saw.push(carol.line().await);
    }
    let bob_expected: Vec<String> = (0..300)
        .filter_map(|i| match i % 4 {
            0 => Some(format!("RM den alice r{i}")),
            1 => Some(format!("PM alice p{i}")),
            3 => Some(format!("MSG alice m{i}")),
            _ => None,
        })
        .collect();
    let carol_expected: Vec<String> = (0..300)
        .filter_map(|i| match i % 4 {
            2 => Some(format!("PM alice c{i}")),
            3 => Some(format!("MSG alice m{i}")),
            _ => None,
        })
        .collect();
    // Each conversation in order; the room's lines come by another road than the
    // directory's, so only their own order is promised.
    let only = |saw: &[String], prefix: &str| -> Vec<String> {
        saw.iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    };
    for prefix in ["RM ", "PM ", "MSG "] {
        assert_eq!(
            only(&bob_saw, prefix),
            only(&bob_expected, prefix),
            "{prefix}"
        );
        assert_eq!(
            only(&carol_saw, prefix),
            only(&carol_expected, prefix),
            "{prefix}"
        );
    }
}

/// `presence_max_online`: past it, nobody is told who comes and goes.
#[tokio::test]
async fn presence_notices_stop_above_the_configured_number_online() {
    let server = TestServer::with(|settings| settings.presence_max_online = 3);
    let [mut a, mut b, c] = server.guests(["a", "b", "c"]).await;
    // Four online, counting d: no notice.
    server.guest("d").await.quit().await;
    // Back to three: c's leaving is told again, and is the first notice since c came (notices
    // keep their order): nothing was told of d.
    c.quit().await;
    a.expect("NOTICE OFFLINE c QUIT").await;
    b.expect("NOTICE OFFLINE c QUIT").await;
    assert_eq!(a.ask("USERS").await, "USERS a b");
    a.expect_caught_up().await;
}

/// Many logins in a burst: everyone online gets every notice once, in the order the logins
/// happened, and a newcomer only those about the users who came after it.
#[tokio::test]
async fn a_login_burst_tells_everyone_once_in_order() {
    let server = TestServer::start();
    let mut watcher = server.guest("watcher").await;
    let names: Vec<String> = (0..60).map(|i| format!("n{i}")).collect();
    let mut clients = Vec::new();
    for name in &names {
        let mut client = server.connect().await;
        client.send(&format!("NICK {name}")).await;
        clients.push(client);
    }
    let mut told = Vec::new();
    while told.len() < names.len() {
        told.push(watcher.line().await);
    }
    let mut sorted = told.clone();
    sorted.sort();
    let mut expected: Vec<String> = names.iter().map(|n| format!("NOTICE ONLINE {n}")).collect();
    expected.sort();
    assert_eq!(sorted, expected, "each login told once");
    for (name, client) in names.iter().zip(&mut clients) {
        let at = told
            .iter()
            .position(|line| *line == format!("NOTICE ONLINE {name}"))
            .expect("told");
        // A newcomer may hear of those after it before its own OK: it is online by then.
        let later = &told[at + 1..];
        let (mut ok, mut notices) = (false, Vec::new());
        while !ok || notices.len() < later.len() {
            let line = client.line().await;
            if line == format!("OK NICK {name}") {
                ok = true;
            } else {
                notices.push(line);
            }
        }
        assert_eq!(notices, later, "{name}");
        assert_eq!(client.ask("PING x").await, "PONG x", "{name}");
    }
}
