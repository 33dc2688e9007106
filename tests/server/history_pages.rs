//! `HISTORY <target> LATEST|BEFORE|AFTER|BETWEEN ...`: pages of a conversation by message ids
//! and times. A client walks a conversation with the id of one page's last message as the
//! next page's `AFTER` bound (or the first's as `BEFORE`), and sees every message once, also
//! while the conversation is being written; a bound that is no message of the conversation,
//! and every other mistake, is one clear `ERR` line.

use std::time::{Duration, Instant, SystemTime};

use crate::support::{Client, PATIENCE, Server, TestServer};
use linechat_protocol::Stamp;

const HISTORY_USAGE: &str = "HISTORY <*|room|user> \
     [LATEST|BEFORE <bound>|AFTER <bound>|BETWEEN <bound> <bound>] [count] - past messages: \
     global, a room you are in, or your private talk with a user; a bound is a message id or \
     a time (2026-12-08T10:15:00.123Z)";

/// A message of a `HISTORY` answer: its stamp and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recalled {
    id: i64,
    at: SystemTime,
    text: String,
}

/// Sends a `HISTORY` command on a connection with `OPTION ids on` and reads its answer: its
/// `HIST` lines, whose count `OK HISTORY <n>` must give. Deliveries that arrive meanwhile
/// (the room's messages, notices) are passed over; an `ERR` fails the test.
async fn page(client: &mut Client, command: &str) -> Vec<Recalled> {
    client.send(command).await;
    let mut recalled = Vec::new();
    loop {
        let line = client.line().await;
        if let Some(n) = line.strip_prefix("OK HISTORY ") {
            assert_eq!(n, recalled.len().to_string(), "{command:?}");
            return recalled;
        }
        assert!(!line.starts_with("ERR "), "{command:?}: {line}");
        let Some((Some(stamp), rest)) = Stamp::split(&line) else {
            continue;
        };
        if let Some(hist) = rest.strip_prefix("HIST ") {
            // HIST <target> <time> <from> <text>
            let text = hist.splitn(4, ' ').nth(3).expect("a HIST line has a text");
            recalled.push(Recalled {
                id: stamp.id,
                at: stamp.at,
                text: text.to_owned(),
            });
        }
    }
}

fn texts(recalled: &[Recalled]) -> Vec<&str> {
    recalled.iter().map(|m| m.text.as_str()).collect()
}

/// A time as `HIST` writes it.
fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// A server whose `HISTORY` pages hold at most `max` messages, without flood control (the
/// writers here send as fast as the server answers), committing history every 10 ms.
fn server_with_max(max: u32) -> TestServer {
    TestServer::with(|settings| {
        settings.history_max_count = max;
        settings.flood_lines_per_sec = 0;
        settings.history_batch_ms = 10;
    })
}

/// Alice and bob (`OPTION ids on`) in the room `dev`, where alice said `m1` to `m<count>`.
async fn room_with(server: &TestServer, count: usize) -> (Client, Client) {
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    bob.check("OPTION ids on", "OK OPTION ids on").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    for i in 1..=count {
        alice.check(&format!("RM dev m{i}"), "OK RM dev").await;
        let line = bob.line().await;
        assert!(line.ends_with(&format!(" RM dev alice m{i}")), "{line}");
    }
    (alice, bob)
}

/// Every line of the answer to `command`, its final line included, on a connection that has
/// nothing else to read.
async fn answer(client: &mut Client, command: &str) -> Vec<String> {
    client.send(command).await;
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        let last = line.starts_with("OK ") || line.starts_with("ERR ");
        lines.push(line);
        if last {
            return lines;
        }
    }
}

#[tokio::test]
async fn latest_is_the_form_without_a_keyword_byte_for_byte() {
    let server = server_with_max(5);
    let (mut alice, mut bob) = room_with(&server, 8).await;
    alice.msg("everyone", &mut []).await;
    bob.expect_prefix("@id=").await;
    for ids in ["on", "off"] {
        bob.check(
            &format!("OPTION ids {ids}"),
            &format!("OK OPTION ids {ids}"),
        )
        .await;
        for (old, new) in [
            ("HISTORY dev 3", "HISTORY dev LATEST 3"),
            ("HISTORY dev 3", "history dev latest 3"),
            ("HISTORY dev", "HISTORY dev LATEST"),
            // Capped at history_max_count, without an error, as always.
            ("HISTORY dev 50", "HISTORY dev LATEST 50"),
            ("HISTORY * 1", "HISTORY * Latest 1"),
        ] {
            let old_lines = answer(&mut bob, old).await;
            let new_lines = answer(&mut bob, new).await;
            assert!(old_lines.len() > 1, "{old}: {old_lines:?}");
            assert_eq!(old_lines, new_lines, "{old} and {new}");
        }
    }
    assert_eq!(bob.history("HISTORY dev LATEST 50").await.len(), 5);
}

#[tokio::test]
async fn pages_by_ids_walk_a_conversation_forwards_and_backwards_while_it_is_written() {
    const WRITTEN: usize = 300;
    let server = server_with_max(1000);
    let (mut alice, mut bob) = room_with(&server, 1).await;
    let mut carol = server
        .guest_seen("carol", &mut [&mut alice, &mut bob])
        .await;
    carol.check("OPTION ids on", "OK OPTION ids on").await;
    carol.join("dev", &mut [&mut alice, &mut bob]).await;
    let first = page(&mut bob, "HISTORY dev 1").await;
    assert_eq!(texts(&first), ["m1"]);

    // Alice keeps writing while bob walks forwards and carol backwards.
    let writer = tokio::spawn(async move {
        for i in 2..=WRITTEN {
            alice.check(&format!("RM dev m{i}"), "OK RM dev").await;
            if i % 3 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        alice
    });
    let forwards = tokio::spawn(async move {
        let mut seen = first;
        let started = Instant::now();
        // Pages that found fewer than asked for, before the end: bob caught up with alice.
        let mut caught_up = 0;
        while seen.len() < WRITTEN {
            assert!(
                started.elapsed() < 6 * PATIENCE,
                "stuck after {:?}",
                seen.last()
            );
            let after = seen.last().unwrap().id;
            let next = page(&mut bob, &format!("HISTORY dev AFTER {after} 7")).await;
            assert!(next.len() <= 7);
            if next.len() < 7 && seen.len() + next.len() < WRITTEN {
                caught_up += 1;
            }
            seen.extend(next);
        }
        assert!(caught_up > 0, "bob read while alice wrote");
        seen
    });
    let backwards = tokio::spawn(async move {
        // Once the writing is under way: the newest messages, then the pages before them.
        let mut seen = loop {
            let latest = page(&mut carol, "HISTORY dev LATEST 5").await;
            if latest.len() == 5 {
                break latest;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        loop {
            let before = seen[0].id;
            let mut earlier = page(&mut carol, &format!("HISTORY dev BEFORE {before} 6")).await;
            assert!(earlier.len() <= 6);
            if earlier.is_empty() {
                break;
            }
            earlier.extend(seen);
            seen = earlier;
        }
        // Carol stays in the room while alice writes.
        (seen, carol)
    });
    let forwards = forwards.await.unwrap();
    let (backwards, _carol) = backwards.await.unwrap();
    writer.await.unwrap();

    let wanted: Vec<String> = (1..=WRITTEN).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&forwards), wanted, "forwards: no gap, no repeat");
    assert!(forwards.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(
        texts(&backwards),
        wanted[..backwards.len()],
        "backwards: no gap, no repeat, back to the first"
    );
    // Both saw each message under one id.
    assert_eq!(backwards, forwards[..backwards.len()]);
}

#[tokio::test]
async fn pages_by_times_are_bounded_by_when_messages_were_accepted() {
    let server = server_with_max(100);
    let (mut alice, mut bob) = room_with(&server, 3).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    for i in 4..=6 {
        alice.check(&format!("RM dev m{i}"), "OK RM dev").await;
    }
    let all = page(&mut bob, "HISTORY dev").await;
    assert_eq!(texts(&all), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    assert!(all[2].at < all[3].at, "a pause between m3 and m4");
    let (m3, m4) = (time(all[2].at), time(all[3].at));
    let before_m1 = time(all[0].at - Duration::from_millis(1));
    for (command, wanted) in [
        // A bound is exclusive: neither m3 nor m4 is strictly between their times.
        (format!("HISTORY dev AFTER {m3}"), &["m4", "m5", "m6"][..]),
        (format!("HISTORY dev BEFORE {m4}"), &["m1", "m2", "m3"]),
        (format!("HISTORY dev BEFORE {m4} 2"), &["m2", "m3"]),
        (format!("HISTORY dev BETWEEN {m3} {m4}"), &[]),
        (
            format!("HISTORY dev BETWEEN {before_m1} {} 9", all[4].id),
            &["m1", "m2", "m3", "m4"],
        ),
        (
            format!("HISTORY dev BETWEEN {} {before_m1} 2", all[4].id),
            &["m3", "m4"],
        ),
        (
            "HISTORY dev AFTER 2000-01-01T00:00:00Z 2".into(),
            &["m1", "m2"],
        ),
        ("HISTORY dev BEFORE 2000-01-01T00:00:00Z".into(), &[]),
        ("HISTORY dev AFTER 9999-12-31T23:59:59Z".into(), &[]),
        (
            "HISTORY dev BEFORE 9999-12-31T23:59:59.999Z 1".into(),
            &["m6"],
        ),
    ] {
        assert_eq!(texts(&page(&mut bob, &command).await), wanted, "{command}");
    }
}

#[tokio::test]
async fn every_mistake_is_one_clear_line_and_the_connection_carries_on() {
    let server = server_with_max(10);
    let (mut alice, mut bob) = room_with(&server, 3).await;
    let in_dev = page(&mut bob, "HISTORY dev").await;
    let dev_id = in_dev[0].id;
    // Ids of other conversations: everyone's, a room bob is not in, a private one.
    let mut carol = server
        .guest_seen("carol", &mut [&mut alice, &mut bob])
        .await;
    carol.check("OPTION ids on", "OK OPTION ids on").await;
    carol
        .create_room("secret", &mut [&mut alice, &mut bob])
        .await;
    carol.check("RM secret hidden", "OK RM secret").await;
    let secret_id = page(&mut carol, "HISTORY secret").await[0].id;
    alice.check("MSG hello all", "OK MSG").await;
    carol.expect_prefix("@id=").await;
    let global_id = page(&mut bob, "HISTORY * 1").await[0].id;
    carol.check("PM alice psst", "OK PM alice").await;
    let private_id = page(&mut carol, "HISTORY alice").await[0].id;
    bob.check("PING x", "PONG x").await;
    let bad = |problem: &str| format!("ERR BAD_ARGUMENTS {problem}; usage: {HISTORY_USAGE}");
    let no_message =
        |id: i64, target: &str| format!("ERR BAD_ARGUMENTS no message {id} in {target}");
    for (command, reply) in [
        (
            "HISTORY dev BEFOR 5 2".to_owned(),
            bad("\"BEFOR\" is not LATEST, BEFORE, AFTER or BETWEEN"),
        ),
        (
            "HISTORY dev AFTER yesterday".into(),
            bad(
                "\"yesterday\" is not a message id (a whole number from 1) or a time in UTC \
                 (2026-12-08T10:15:00.123Z)",
            ),
        ),
        (
            "HISTORY dev AFTER 0".into(),
            bad(
                "\"0\" is not a message id (a whole number from 1) or a time in UTC \
                 (2026-12-08T10:15:00.123Z)",
            ),
        ),
        (
            "HISTORY dev BETWEEN 1 2026-12-08T10:15:00+01:00".into(),
            bad(
                "\"2026-12-08T10:15:00+01:00\" is not a message id (a whole number from 1) or a \
                 time in UTC (2026-12-08T10:15:00.123Z)",
            ),
        ),
        (
            format!("HISTORY dev AFTER {dev_id} 0"),
            bad("\"0\" is not a count: use a whole number from 1"),
        ),
        ("HISTORY dev BEFORE".into(), bad("missing argument")),
        ("HISTORY dev BETWEEN 5".into(), bad("missing argument")),
        (
            format!("HISTORY dev AFTER {dev_id} 2 3"),
            bad("too many arguments"),
        ),
        // A page by bounds is not cut short: it is refused past history_max_count.
        (
            format!("HISTORY dev AFTER {dev_id} 11"),
            "ERR BAD_ARGUMENTS at most 10 messages a page".into(),
        ),
        (
            format!("HISTORY dev BEFORE {dev_id} 11"),
            "ERR BAD_ARGUMENTS at most 10 messages a page".into(),
        ),
        (
            format!("HISTORY * BETWEEN 1 {global_id} 1000"),
            "ERR BAD_ARGUMENTS at most 10 messages a page".into(),
        ),
        // An id that is no message of the conversation tells nothing of whose it is.
        (
            format!("HISTORY dev AFTER {global_id}"),
            no_message(global_id, "dev"),
        ),
        (
            format!("HISTORY dev BEFORE {secret_id}"),
            no_message(secret_id, "dev"),
        ),
        (
            format!("HISTORY dev AFTER {private_id}"),
            no_message(private_id, "dev"),
        ),
        (
            format!("HISTORY dev BETWEEN {dev_id} {secret_id}"),
            no_message(secret_id, "dev"),
        ),
        (
            "HISTORY dev AFTER 999999999999".into(),
            no_message(999_999_999_999, "dev"),
        ),
        (format!("HISTORY * AFTER {dev_id}"), no_message(dev_id, "*")),
        (
            format!("HISTORY alice BEFORE {dev_id}"),
            no_message(dev_id, "alice"),
        ),
        (
            format!("HISTORY carol AFTER {private_id}"),
            no_message(private_id, "carol"),
        ),
        // The access rules are those of every HISTORY.
        (
            format!("HISTORY secret AFTER {secret_id}"),
            "ERR NOT_IN_ROOM you are not in secret".into(),
        ),
        (
            "HISTORY nobody AFTER 1".into(),
            "ERR NO_SUCH_USER nobody is neither a room you are in nor a user".into(),
        ),
    ] {
        bob.check(&command, &reply).await;
    }
    // Still fine afterwards, and the same for the others.
    let after = page(&mut bob, &format!("HISTORY dev AFTER {dev_id}")).await;
    assert_eq!(texts(&after), ["m2", "m3"]);
    for bound in ["AFTER", "BEFORE"] {
        let private = page(&mut carol, &format!("HISTORY alice {bound} {private_id}")).await;
        assert!(private.is_empty(), "{bound}");
    }
    carol
        .check(
            &format!("HISTORY alice AFTER {dev_id}"),
            &no_message(dev_id, "alice"),
        )
        .await;
}
