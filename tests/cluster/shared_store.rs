//! What the nodes share through their one PostgreSQL database: accounts, rooms, remembered
//! memberships, queued private messages and history, whichever node a user is on or comes
//! back to; and what happens when that database goes away under the cluster.

use super::{NatsServer, Nodes, guest_seen, reply_to, users_become};
use crate::postgres_support::Postgres;
use crate::support::{Client, Server, eventually};

/// Sends `command` and returns its answer, skipping the notices that may come first (other
/// nodes' presence, and a room's `NOTICE ROOM` from the node that created it).
async fn answer(client: &mut Client, command: &str) -> String {
    client.send(command).await;
    loop {
        let line = client.line().await;
        if !line.starts_with("NOTICE ") {
            return line;
        }
    }
}

/// The `<from> <text>` of each message of `HISTORY <target>`.
async fn said(client: &mut Client, target: &str) -> Vec<String> {
    let lines = client.history(&format!("HISTORY {target} 100")).await;
    lines
        .iter()
        .map(|line| {
            // HIST <target> <time> <from> <text>
            let fields: Vec<&str> = line.splitn(5, ' ').collect();
            format!("{} {}", fields[3], fields[4])
        })
        .collect()
}

/// Waits until `HISTORY <target>` is `expected`: a message is in the store once the node
/// that keeps it has written its batch, a moment after it was said.
async fn history_becomes(client: &mut Client, target: &str, expected: &[&str]) {
    let mut last = Vec::new();
    let found = tokio::time::timeout(crate::support::PATIENCE, async {
        loop {
            last = said(client, target).await;
            if last == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "HISTORY {target}: {last:?}, not {expected:?}"
    );
}

#[tokio::test]
async fn an_account_comes_back_on_another_node_to_its_rooms_and_queued_messages() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut bob = super::guest(b, "bob").await;
    let mut carol = a.register("carol", "secret").await;
    bob.expect("NOTICE ONLINE carol").await;
    carol.create_room("dev", &mut [&mut bob]).await;
    carol.check("CR ops", "OK CR ops").await;
    bob.expect("NOTICE ROOM ops carol").await;
    carol.check("LR ops", "OK LR ops").await;
    carol.quit().await;
    bob.expect("NOTICE OFFLINE carol QUIT").await;

    // Queued in the shared store by the node of the sender...
    bob.check("PM carol while you were out", "OK PM carol queued")
        .await;
    bob.check("PM carol and again", "OK PM carol queued").await;
    // ...and delivered, once, at a login on the other node, with the rooms remembered.
    let mut carol = b
        .login(
            "carol",
            "secret",
            &[
                "JR dev carol",
                "PM bob while you were out",
                "PM bob and again",
                "OK LOGIN carol",
            ],
        )
        .await;
    bob.expect("NOTICE ONLINE carol").await;
    assert_eq!(
        said(&mut carol, "bob").await,
        ["bob while you were out", "bob and again"]
    );
    carol.quit().await;
    bob.expect("NOTICE OFFLINE carol QUIT").await;
    a.login("carol", "secret", &["JR dev carol", "OK LOGIN carol"])
        .await;
}

#[tokio::test]
async fn history_written_on_one_node_is_read_on_another_once() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = a.register("alice", "pw").await;
    let mut bob = b.register("bob", "pw").await;
    users_become(&mut alice, "USERS alice bob").await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;

    alice.check("RM dev from a", "OK RM dev").await;
    bob.expect("RM dev alice from a").await;
    // Messages kept by different nodes are in the order their batches were written: the
    // answer waits until the first message is, so that the order is known.
    history_becomes(&mut bob, "dev", &["alice from a"]).await;
    bob.check("RM dev from b", "OK RM dev").await;
    alice.expect("RM dev bob from b").await;
    alice.check("PM bob psst", "OK PM bob").await;
    bob.expect("PM alice psst").await;
    history_becomes(&mut alice, "bob", &["alice psst"]).await;
    bob.check("PM alice back", "OK PM alice").await;
    alice.expect("PM bob back").await;
    alice.check("MSG to all", "OK MSG").await;
    bob.expect("MSG alice to all").await;

    // Each message is in the one store once, whoever reads it and wherever it was said.
    for client in [&mut alice, &mut bob] {
        history_becomes(client, "dev", &["alice from a", "bob from b"]).await;
        history_becomes(client, "*", &["alice to all"]).await;
    }
    history_becomes(&mut alice, "bob", &["alice psst", "bob back"]).await;
    history_becomes(&mut bob, "alice", &["alice psst", "bob back"]).await;
}

#[tokio::test]
async fn two_nodes_racing_to_create_one_room_give_it_to_one() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    for round in 0..5 {
        let command = format!("CR room{round}");
        let (one, two) = tokio::join!(answer(&mut alice, &command), answer(&mut bob, &command));
        let mut answers = [one, two];
        answers.sort();
        assert_eq!(
            answers,
            [
                format!("ERR ROOM_EXISTS room{round} already exists; JR joins it"),
                format!("OK CR room{round}"),
            ],
            "round {round}"
        );
    }
    // Either way, the room is there for both, once.
    eventually("every room on both nodes", async || {
        let listed = answer(&mut bob, "LRS").await;
        (listed == "LRS room0 room1 room2 room3 room4").then_some(())
    })
    .await;
    assert_eq!(
        answer(&mut alice, "LRS").await,
        "LRS room0 room1 room2 room3 room4"
    );
}

/// A node that missed what the others said (here: one on a NATS server of its own, as a node
/// cut off from NATS would be) still knows, from the store they share, which names are
/// registered and which rooms exist.
#[tokio::test]
async fn a_node_that_missed_the_news_finds_accounts_and_rooms_in_the_store() {
    let cluster = Nodes::start(1);
    let a = cluster.node(0);
    let apart = Nodes::start_with(NatsServer::start(), cluster.database.clone(), 1, |_| {});
    let z = apart.node(0);

    let mut carol = a.register("carol", "secret").await;
    carol.check("CR dev", "OK CR dev").await;
    carol.quit().await;
    let _dave = a.register("dave", "pw").await;
    a.register("frank", "pw").await.quit().await;
    a.register("gina", "pw").await.quit().await;

    // Registered there since this node started, and never heard of here: still taken.
    let mut other = z.connect().await;
    other
        .check(
            "NICK carol",
            "ERR NAME_TAKEN carol is a registered account; use LOGIN",
        )
        .await;
    other
        .check(
            "REGISTER Dave pw2",
            "ERR NAME_TAKEN the name is already registered",
        )
        .await;
    // A private message to an offline account of the other node is queued for it, and is
    // history; a conversation with such an account can be read.
    let mut erin = super::guest(z, "erin").await;
    erin.check("PM frank hello", "OK PM frank queued").await;
    erin.check("PM carol hello", "OK PM carol queued").await;
    assert_eq!(said(&mut erin, "frank").await, ["erin hello"]);
    assert_eq!(said(&mut erin, "gina").await, Vec::<String>::new());
    // A room created there is joined here.
    erin.check("JR dev", "OK JR dev").await;
    erin.check("LRS", "LRS dev").await;
    erin.check(
        "JR nowhere",
        "ERR NO_SUCH_ROOM there is no room nowhere; CR creates it",
    )
    .await;
    // And the account logs in here, with its room and its message.
    z.login(
        "carol",
        "secret",
        &["JR dev carol", "PM erin hello", "OK LOGIN carol"],
    )
    .await;
    erin.expect_unordered(&["NOTICE ONLINE carol", "JR dev carol"])
        .await;
}

#[tokio::test]
async fn while_postgresql_is_away_the_cluster_refuses_writes_clearly_and_chat_goes_on() {
    let postgres = Postgres::start();
    let cluster = Nodes::start_with(NatsServer::start(), postgres.database(), 2, |_| {});
    let (a, b) = (cluster.node(0), cluster.node(1));
    let dave = a.register("dave", "pw").await;
    dave.quit().await;
    let mut alice = a.register("alice", "pw").await;
    let mut bob = super::guest(b, "bob").await;
    users_become(&mut alice, "USERS alice bob").await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    alice.check("RM dev before", "OK RM dev").await;
    bob.expect("RM dev alice before").await;

    postgres.stop();
    // Writes that need the database fail, saying so, on every node (each within 2 s: asked
    // at once).
    let away = "the database is out of reach; try again later";
    let mut carol = b.connect().await;
    let (created, queued, registered) = tokio::join!(
        bob.ask("CR ops"),
        alice.ask("PM dave are you there"),
        carol.ask("REGISTER carol pw"),
    );
    assert_eq!(
        created,
        format!("ERR STORAGE ops could not be stored: {away}")
    );
    assert_eq!(
        queued,
        format!("ERR STORAGE the message for dave could not be stored: {away}")
    );
    assert_eq!(
        registered,
        "ERR STORAGE the account could not be stored; try again later"
    );
    // Chat that does not need the disk goes on, across nodes.
    alice.check("RM dev during", "OK RM dev").await;
    bob.expect("RM dev alice during").await;
    bob.check("PM alice hi", "OK PM alice").await;
    alice.expect("PM bob hi").await;
    alice.check("MSG still here", "OK MSG").await;
    bob.expect("MSG alice still here").await;
    // A guest gets in, on what the node knows of the names.
    let _erin = guest_seen(b, "erin", &mut [&mut bob, &mut alice]).await;

    postgres.start_again();
    // Nothing acknowledged is lost: what was said meanwhile is written once it is back.
    history_becomes(&mut bob, "dev", &["alice before", "alice during"]).await;
    history_becomes(&mut alice, "bob", &["bob hi"]).await;
    // And writes work again: the node that wrote that history has its connection back.
    assert_eq!(reply_to(&mut alice, "CR ops").await, "OK CR ops");
    bob.skip_until("NOTICE ROOM ops alice").await;
    // What was refused was not kept.
    bob.check("PM dave back?", "OK PM dave queued").await;
    b.login("dave", "pw", &["PM bob back?", "OK LOGIN dave"])
        .await;
}

#[tokio::test]
async fn a_room_expires_only_once_nobody_is_in_it_on_any_node() {
    // Only the first node expires rooms (the second would keep them an hour): the second
    // drops the room because the first said so.
    let mut cluster = Nodes::start_on(NatsServer::start(), 1, |settings| {
        settings.room_expiry_secs = 1;
    });
    cluster.add_with("n2", |_| {});
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("tmp", &mut [&mut bob]).await;
    bob.join("tmp", &mut [&mut alice]).await;
    alice.check("LR tmp", "OK LR tmp").await;
    bob.expect("LR tmp alice").await;

    // Empty on the first node for longer than its expiry, but not on the second.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    alice.check("LRS", "LRS tmp").await;
    bob.check("RM tmp still here", "OK RM tmp").await;

    bob.check("LR tmp", "OK LR tmp").await;
    for client in [&mut alice, &mut bob] {
        eventually("the room to expire on both nodes", async || {
            (client.ask("LRS").await == "LRS").then_some(())
        })
        .await;
    }
    // Gone from the store too: neither node finds it.
    bob.check(
        "JR tmp",
        "ERR NO_SUCH_ROOM there is no room tmp; CR creates it",
    )
    .await;
}

/// A read marker set on one node is the account's on every node: after logging in on another,
/// `UNREAD` counts what came after it there too, messages said on either node.
#[tokio::test]
async fn read_markers_follow_an_account_to_another_node() {
    let cluster = Nodes::start(2);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = a.register("alice", "pw").await;
    let mut bob = b.register("bob", "pw").await;
    users_become(&mut alice, "USERS alice bob").await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    alice.check("OPTION ids on", "OK OPTION ids on").await;
    bob.check("RM dev first", "OK RM dev").await;
    let line = alice.line().await;
    let (stamp, rest) = linechat_protocol::Stamp::split(&line).expect("a stamp");
    assert_eq!(rest, "RM dev bob first");
    let first = stamp.expect("a stamped line").id;
    // Marked once the message is in the shared store, where the other node checks it.
    eventually("the message is stored", async || {
        let reply = answer(&mut alice, &format!("MARKREAD dev {first}")).await;
        (reply == format!("OK MARKREAD dev {first}")).then_some(())
    })
    .await;
    bob.check("RM dev second", "OK RM dev").await;
    alice.skip_until("@").await;
    alice.quit().await;
    // From the room and from the directory: in either order.
    bob.expect_unordered(&["LR dev alice", "NOTICE OFFLINE alice QUIT"])
        .await;

    let mut alice = b
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    alice
        .check("MARKREAD dev", &format!("OK MARKREAD dev {first}"))
        .await;
    eventually("UNREAD counts the second message", async || {
        alice.send("UNREAD").await;
        let mut lines = Vec::new();
        loop {
            let line = alice.line().await;
            if line.starts_with("OK UNREAD") {
                break;
            }
            lines.push(line);
        }
        (lines == [format!("UNREAD dev 1 {first}")]).then_some(())
    })
    .await;
}
