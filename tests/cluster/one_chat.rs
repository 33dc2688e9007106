//! Users on different nodes see one chat: one list of users, one set of names, private and
//! global messages, presence, and rooms.

use super::{Nodes, guest_seen, reply_to, users_become};
use crate::support::{Client, Server, eventually};

#[tokio::test]
async fn everyone_is_listed_and_a_name_is_taken_once_across_nodes() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.check("USERS", "USERS alice bob").await;

    let mut other = b.connect().await;
    other
        .check("NICK ALICE", "ERR NAME_TAKEN ALICE is online already")
        .await;
    other
        .check(
            "NICK aIice",
            "ERR NAME_TAKEN that name looks too much like alice",
        )
        .await;
    other
        .check(
            "REGISTER alice pw",
            "ERR NAME_TAKEN alice is online already",
        )
        .await;

    // A registered name: taken while its owner is online, and still once they left.
    let carol = a.register("carol", "secret").await;
    alice.expect("NOTICE ONLINE carol").await;
    bob.expect("NOTICE ONLINE carol").await;
    other
        .check(
            "NICK carol",
            "ERR NAME_TAKEN carol is a registered account; use LOGIN",
        )
        .await;
    carol.quit_with("QUIT bye").await;
    bob.expect("NOTICE OFFLINE carol QUIT bye").await;
    alice.expect("NOTICE OFFLINE carol QUIT bye").await;
    other
        .check(
            "NICK carol",
            "ERR NAME_TAKEN carol is a registered account; use LOGIN",
        )
        .await;
}

#[tokio::test]
async fn two_nodes_racing_for_one_name_give_it_to_one() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    for round in 0..5 {
        let name = format!("racer{round}");
        let (mut first, mut second) = (a.connect().await, b.connect().await);
        let nick = format!("NICK {name}");
        let (one, two) = tokio::join!(reply_to(&mut first, &nick), reply_to(&mut second, &nick));
        let mut answers = [one, two];
        answers.sort();
        assert_eq!(
            answers,
            [
                format!("ERR NAME_TAKEN {name} is online already"),
                format!("OK NICK {name}"),
            ],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn private_and_global_messages_cross_nodes() {
    let cluster = Nodes::start(3);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    // What a node hears of users who came before comes in its own time.
    users_become(&mut bob, "USERS alice bob").await;
    let mut carol = guest_seen(cluster.node(2), "carol", &mut [&mut alice, &mut bob]).await;
    users_become(&mut carol, "USERS alice bob carol").await;

    alice.check("PM bob psst", "OK PM bob").await;
    bob.expect("PM alice psst").await;
    bob.check("PM ALICE back", "OK PM alice").await;
    alice.expect("PM bob back").await;
    alice
        .check(
            "PM dave hi",
            "ERR NO_SUCH_USER dave is neither online nor registered",
        )
        .await;

    carol.check("MSG hello everyone", "OK MSG").await;
    alice.expect("MSG carol hello everyone").await;
    bob.expect("MSG carol hello everyone").await;
    carol.expect_caught_up().await;

    bob.quit_with("QUIT later").await;
    alice.expect("NOTICE OFFLINE bob QUIT later").await;
    carol.expect("NOTICE OFFLINE bob QUIT later").await;
    users_become(&mut carol, "USERS alice carol").await;
    alice
        .check(
            "PM bob still there?",
            "ERR NO_SUCH_USER bob is neither online nor registered",
        )
        .await;
}

/// A session sends its next private messages to a user of another node straight to that
/// node; once the user is gone from there, and online on a third node, they reach them there.
#[tokio::test]
async fn private_messages_follow_a_user_who_moves_to_another_node() {
    let cluster = Nodes::start(3);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = cluster.node(1).register("bob", "pw").await;
    alice.expect("NOTICE ONLINE bob").await;
    users_become(&mut bob, "USERS alice bob").await;
    for text in ["one", "two", "three"] {
        alice.check(&format!("PM bob {text}"), "OK PM bob").await;
        bob.expect(&format!("PM alice {text}")).await;
    }

    bob.quit_with("QUIT moving").await;
    alice.expect("NOTICE OFFLINE bob QUIT moving").await;
    let mut bob = cluster.node(2).login("bob", "pw", &["OK LOGIN bob"]).await;
    alice.expect("NOTICE ONLINE bob").await;
    alice.check("PM bob four", "OK PM bob").await;
    bob.expect("PM alice four").await;
    alice.check("PM bob five", "OK PM bob").await;
    bob.expect("PM alice five").await;
}

#[tokio::test]
async fn rooms_are_shared_across_nodes() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;

    alice.create_room("dev", &mut [&mut bob]).await;
    bob.check("LRS", "LRS dev").await;
    bob.check("CR DEV", "ERR ROOM_EXISTS dev already exists; JR joins it")
        .await;
    bob.check("LRU dev", "LRU dev alice").await;
    bob.join("dev", &mut [&mut alice]).await;
    let lru = async |client: &mut crate::support::Client, expected: &str| {
        eventually(&format!("{expected:?}"), async || {
            (client.ask("LRU dev").await == expected).then_some(())
        })
        .await
    };
    lru(&mut alice, "LRU dev alice bob").await;
    lru(&mut bob, "LRU dev alice bob").await;

    alice.check("RM dev hi bob", "OK RM dev").await;
    bob.expect("RM dev alice hi bob").await;
    bob.check("RM dev hi alice", "OK RM dev").await;
    alice.expect("RM dev bob hi alice").await;

    // A third user on the first node: the second node's member sees them join and speak.
    let mut carol = guest_seen(a, "carol", &mut [&mut alice, &mut bob]).await;
    carol.join("dev", &mut [&mut alice, &mut bob]).await;
    carol.check("RM dev hello", "OK RM dev").await;
    alice.expect("RM dev carol hello").await;
    bob.expect("RM dev carol hello").await;

    bob.check("LR dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    carol.expect("LR dev bob").await;
    lru(&mut alice, "LRU dev alice carol").await;
    alice.check("RM dev bob is gone", "OK RM dev").await;
    carol.expect("RM dev alice bob is gone").await;
    bob.expect_caught_up().await;
}

/// Two nodes without flood control, with alice on the first and bob on the second, each
/// seen by the other.
async fn alice_and_bob_apart() -> (Nodes, Client, Client) {
    let cluster = Nodes::start_on(super::NatsServer::start(), 2, |settings| {
        settings.flood_lines_per_sec = 0;
    });
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    (cluster, alice, bob)
}

/// Sends `count` commands (`command(n)`) from `from` in one write, and checks that `to` gets
/// `delivered(n)` for each, in order, and `from` an `ok` for each.
async fn burst_in_order(
    (from, to): (&mut Client, &mut Client),
    count: usize,
    command: impl Fn(usize) -> String,
    delivered: impl Fn(usize) -> String,
    ok: &str,
) {
    let burst: String = (0..count).map(|n| command(n) + "\n").collect();
    from.send_raw(burst.as_bytes()).await;
    for n in 0..count {
        assert_eq!(to.line().await, delivered(n));
    }
    for _ in 0..count {
        assert_eq!(from.line().await, ok);
    }
}

#[tokio::test]
async fn one_senders_room_messages_arrive_in_order_on_another_node() {
    let (_cluster, mut alice, mut bob) = alice_and_bob_apart().await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    burst_in_order(
        (&mut alice, &mut bob),
        500,
        |n| format!("RM dev message {n}"),
        |n| format!("RM dev alice message {n}"),
        "OK RM dev",
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_private_messages_to_another_node_arrives_in_order_in_few_nats_messages() {
    let (cluster, mut alice, mut bob) = alice_and_bob_apart().await;
    let in_msgs = || {
        let varz: serde_json::Value =
            serde_json::from_str(&cluster.nats.monitor("/varz")).expect("JSON");
        varz["in_msgs"].as_u64().expect("in_msgs")
    };
    let before = in_msgs();
    const MESSAGES: usize = 1000;
    burst_in_order(
        (&mut alice, &mut bob),
        MESSAGES,
        |n| format!("PM bob message {n}"),
        |n| format!("PM alice message {n}"),
        "OK PM bob",
    )
    .await;
    // Queued one after another, they went out together: far fewer NATS messages (a few
    // heartbeats may be among them).
    let published = in_msgs() - before;
    assert!(published < MESSAGES as u64 / 4, "{published} NATS messages");
}

#[tokio::test]
async fn a_node_that_starts_later_learns_who_and_what_is_there() {
    let mut cluster = Nodes::start(1);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    alice.check("CR dev", "OK CR dev").await;
    let late = cluster.add("late");
    let _probe = super::caught_up(late, "probe", "USERS alice probe").await;
    alice.expect("NOTICE ONLINE probe").await;
    let mut bob = super::guest(late, "bob").await;
    alice.expect("NOTICE ONLINE bob").await;
    users_become(&mut bob, "USERS alice bob probe").await;
    // The rooms come in their own time, from the room table of the first node.
    eventually("the rooms of the first node", async || {
        (reply_to(&mut bob, "LRS").await == "LRS dev").then_some(())
    })
    .await;
    bob.check("LRU dev", "LRU dev alice").await;
    bob.join("dev", &mut [&mut alice]).await;
}

#[tokio::test]
async fn a_node_hears_a_room_only_while_it_has_members_there() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    let hears_dev = |node: &str| {
        let subjects = super::subscriptions_of(&cluster.nats, node);
        assert!(
            subjects.iter().any(|subject| subject == "linechat.all"),
            "{node} is connected: {subjects:?}"
        );
        subjects
            .iter()
            .any(|subject| subject == "linechat.room.dev")
    };
    alice.create_room("dev", &mut [&mut bob]).await;
    assert!(hears_dev("n1"));
    assert!(!hears_dev("n2"), "n2 has no member in dev");
    bob.join("dev", &mut [&mut alice]).await;
    assert!(hears_dev("n2"));
    bob.check("LR dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    eventually("n2 to stop hearing dev", async || {
        (!hears_dev("n2")).then_some(())
    })
    .await;
    assert!(hears_dev("n1"));
}

#[tokio::test]
async fn an_account_logging_in_on_another_node_takes_its_session_over() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut old = a.register("carol", "secret").await;
    alice.expect("NOTICE ONLINE carol").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice, &mut old]).await;
    users_become(&mut bob, "USERS alice bob carol").await;

    let mut new = b.login("carol", "secret", &["OK LOGIN carol"]).await;
    assert_eq!(
        old.expect_closed().await,
        ["NOTICE CLOSING REPLACED you logged in on another connection"]
    );
    // Nobody saw carol go or come: the next notice anyone gets is a newcomer's.
    let _dave = guest_seen(a, "dave", &mut [&mut alice]).await;
    bob.skip_until("NOTICE ONLINE dave").await;
    alice.check("USERS", "USERS alice bob carol dave").await;
    alice.check("PM carol found you", "OK PM carol").await;
    new.expect_unordered(&["NOTICE ONLINE dave", "PM alice found you"])
        .await;
}

/// An away message set on one node is told to senders on another, also to one whose session
/// sends to the user straight; a message sent before the other node heard of it is answered
/// as to someone present.
#[tokio::test]
async fn an_away_message_reaches_senders_on_other_nodes() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.check("PM bob hi", "OK PM bob").await;
    bob.expect("PM alice hi").await;

    bob.check("AWAY on the train", "OK AWAY").await;
    let mut sent = 0;
    eventually("alice is told bob is away", async || {
        sent += 1;
        let reply = alice.ask(&format!("PM bob try {sent}")).await;
        bob.expect(&format!("PM alice try {sent}")).await;
        (reply == "OK PM bob away: on the train").then_some(())
    })
    .await;
    alice
        .check("PM bob once more", "OK PM bob away: on the train")
        .await;
    bob.expect("PM alice once more").await;

    bob.check("AWAY", "OK AWAY back").await;
    eventually("alice is told bob is back", async || {
        sent += 1;
        let reply = alice.ask(&format!("PM bob try {sent}")).await;
        bob.expect(&format!("PM alice try {sent}")).await;
        (reply == "OK PM bob").then_some(())
    })
    .await;
}
