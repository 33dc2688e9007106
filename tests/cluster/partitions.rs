//! A node cut off from the others for longer than the node timeout, while it and its
//! connections stay up: frozen (SIGSTOP, SIGCONT), or its packets to and from NATS dropped.
//! The others declare its users lost and free their names meanwhile; once it is back, the
//! nodes find each other again, exchange their state, and every name has one owner.

use std::time::Duration;

use super::{NODE_TIMEOUT_SECS, NatsServer, Nodes, guest, guest_seen, reply_to, users_become};
use crate::irc::raw::Raw;
use crate::support::firewall::Dropped;
use crate::support::{Client, Server, ServerProcess, eventually};

/// The cut: longer than the node timeout, so that the others declare the node lost.
const CUT: Duration = Duration::from_secs(NODE_TIMEOUT_SECS + 3);

/// Node `n2` of `cluster` as the `linechat` binary, running as [`CUT_OFF_UID`], which [`cut`]
/// can cut off from NATS.
fn cut_off_node(cluster: &Nodes) -> ServerProcess {
    let args = cluster.process_args("n2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start_as(CUT_OFF_UID, &args)
}

/// Cuts node `n2`, started by [`cut_off_node`], off from NATS until the cut is dropped.
fn cut(cluster: &Nodes) -> Dropped {
    let url = cluster.nats.url();
    let nats_port = url.rsplit(':').next().and_then(|port| port.parse().ok());
    let nats_port = nats_port.expect("NATS's port");
    cut_between(nats_port, nats_connection_port(cluster, "n2"))
}

/// The user the cut-off node runs as: `nobody`, whom no other process of the tests is.
const CUT_OFF_UID: u32 = 65534;

/// Drops every packet between a node running as [`CUT_OFF_UID`] and NATS, without closing
/// its connection: what the node sends to NATS's port (its connection, and any new one it
/// tries), and what NATS sends to the node's connection. Until it is dropped.
fn cut_between(nats: u16, node: u16) -> Dropped {
    let uid = CUT_OFF_UID;
    Dropped::packets(&[
        &format!("OUTPUT -o lo -p tcp -m owner --uid-owner {uid} --dport {nats}"),
        &format!("INPUT -i lo -p tcp --sport {nats} --dport {node}"),
    ])
}

/// The local port of the NATS connection of the node named `node`, as NATS sees it.
fn nats_connection_port(cluster: &Nodes, node: &str) -> u16 {
    let connz: serde_json::Value =
        serde_json::from_str(&cluster.nats.monitor("/connz")).expect("JSON");
    let name = format!("linechat {node}");
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|connection| connection["name"] == name.as_str())
        .and_then(|connection| connection["port"].as_u64())
        .and_then(|port| u16::try_from(port).ok())
        .expect("the node's connection")
}

/// Sends a signal to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// `anna`, a guest of `n2` (the binary), and `bob`, a guest of the cluster's first node, who
/// both see each other; both in room `dev` if `in_a_room`.
async fn anna_and_bob(cluster: &Nodes, n2: &ServerProcess, in_a_room: bool) -> (Client, Client) {
    let mut bob = guest(cluster.node(0), "bob").await;
    let mut anna = Client::greeted(n2.addr).await;
    assert_eq!(answer(&mut anna, "NICK anna").await, "OK NICK anna");
    anna.logged_in_as("anna");
    bob.expect("NOTICE ONLINE anna").await;
    users_become(&mut anna, "USERS anna bob").await;
    if in_a_room {
        bob.create_room("dev", &mut [&mut anna]).await;
        anna.join("dev", &mut [&mut bob]).await;
    }
    (anna, bob)
}

/// Sends `command` and returns its answer, skipping the events that the nodes' meeting again
/// may deliver meanwhile: presence notices, room events, and messages sent on the other side
/// during the cut (a node's NATS client keeps what it publishes while cut off, and sends it
/// once it is back).
async fn answer(client: &mut Client, command: &str) -> String {
    client.send(command).await;
    loop {
        let line = client.line().await;
        if !["NOTICE ", "JR ", "LR ", "RM ", "MSG ", "PM "]
            .iter()
            .any(|event| line.starts_with(event))
        {
            return line;
        }
    }
}

/// After a cut of `anna`'s node, seen by `bob` on the other node: both nodes list both users
/// again, private messages cross both ways, the room has both members, and `anna`'s name is
/// still hers: a stranger cannot take it on the other node.
async fn healed(cluster: &Nodes, anna: &mut Client, bob: &mut Client) {
    for client in [&mut *bob, &mut *anna] {
        eventually("both users listed on both nodes", async || {
            (answer(client, "USERS").await == "USERS anna bob").then_some(())
        })
        .await;
    }
    assert_eq!(answer(bob, "PM anna back?").await, "OK PM anna");
    anna.skip_until("PM bob back?").await;
    assert_eq!(answer(anna, "PM bob yes").await, "OK PM bob");
    bob.skip_until("PM anna yes").await;
    eventually("both members in the room on both nodes", async || {
        let both = "LRU dev anna bob";
        (answer(bob, "LRU dev").await == both && answer(anna, "LRU dev").await == both)
            .then_some(())
    })
    .await;
    assert_eq!(answer(bob, "RM dev seen?").await, "OK RM dev");
    anna.skip_until("RM dev bob seen?").await;
    let mut stranger = cluster.node(0).connect().await;
    let refused = answer(&mut stranger, "NICK anna").await;
    assert!(refused.starts_with("ERR NAME_TAKEN "), "{refused}");
    // Nobody was told of a takeover that never happened.
    assert_eq!(answer(anna, "USERS").await, "USERS anna bob");
}

#[tokio::test]
async fn a_frozen_node_rejoins_the_cluster_with_its_users_and_names() {
    let cluster = Nodes::start(1);
    let frozen = cluster.process("n2");
    let (mut anna, mut bob) = anna_and_bob(&cluster, &frozen, true).await;

    signal(frozen.pid(), "-STOP");
    bob.expect_unordered(&["LR dev anna", "NOTICE OFFLINE anna LOST"])
        .await;
    tokio::time::sleep(CUT - Duration::from_secs(NODE_TIMEOUT_SECS)).await;
    signal(frozen.pid(), "-CONT");

    bob.skip_until("NOTICE ONLINE anna").await;
    healed(&cluster, &mut anna, &mut bob).await;
}

#[tokio::test]
async fn a_name_taken_while_its_node_was_frozen_goes_to_the_newer_claim_and_its_holder_is_told() {
    let cluster = Nodes::start(1);
    let frozen = cluster.process("n2");
    let (mut anna, mut bob) = anna_and_bob(&cluster, &frozen, false).await;

    signal(frozen.pid(), "-STOP");
    bob.expect("NOTICE OFFLINE anna LOST").await;
    // The name is free for the others: a stranger takes it.
    let mut stranger = guest_seen(cluster.node(0), "anna", &mut [&mut bob]).await;
    tokio::time::sleep(CUT - Duration::from_secs(NODE_TIMEOUT_SECS)).await;
    signal(frozen.pid(), "-CONT");

    // The first anna is told why she is closed: not a login of hers elsewhere.
    let last = anna.expect_closed().await;
    assert_eq!(
        last.last().map(String::as_str),
        Some(
            "NOTICE CLOSING NAME_LOST this server was cut off from the others and your name was \
             taken meanwhile"
        ),
        "{last:?}"
    );
    // The stranger keeps it, on every node, and was told nothing.
    let mut carol = Client::greeted(frozen.addr).await;
    assert_eq!(answer(&mut carol, "NICK carol").await, "OK NICK carol");
    users_become(&mut carol, "USERS anna bob carol").await;
    assert_eq!(answer(&mut carol, "PM anna hello").await, "OK PM anna");
    stranger.skip_until("PM carol hello").await;
    let mut other = Client::greeted(frozen.addr).await;
    let refused = answer(&mut other, "NICK anna").await;
    assert!(refused.starts_with("ERR NAME_TAKEN "), "{refused}");
    assert_eq!(answer(&mut stranger, "USERS").await, "USERS anna bob carol");
}

#[tokio::test]
async fn a_node_whose_packets_to_nats_are_dropped_rejoins_once_they_pass() {
    let cluster = Nodes::start(1);
    let cut_off = cut_off_node(&cluster);
    let (mut anna, mut bob) = anna_and_bob(&cluster, &cut_off, true).await;

    let cut = cut(&cluster);
    bob.expect_unordered(&["LR dev anna", "NOTICE OFFLINE anna LOST"])
        .await;
    // A node that cannot reach the bus hands out no name.
    let mut dave = Client::greeted(cut_off.addr).await;
    dave.check(
        "NICK dave",
        "ERR NAME_TAKEN names cannot be checked across the cluster now; try again",
    )
    .await;
    // Chat on the node goes on meanwhile.
    assert_eq!(answer(&mut anna, "RM dev anyone?").await, "OK RM dev");
    // A topic set on the other side meanwhile is seen once the nodes meet again.
    assert_eq!(
        answer(&mut bob, "TOPIC dev set meanwhile").await,
        "OK TOPIC dev"
    );
    tokio::time::sleep(CUT - Duration::from_secs(NODE_TIMEOUT_SECS)).await;
    drop(cut);

    bob.skip_until("NOTICE ONLINE anna").await;
    healed(&cluster, &mut anna, &mut bob).await;
    eventually("the topic set meanwhile on the node cut off", async || {
        let topic = answer(&mut anna, "TOPIC dev").await;
        topic.starts_with("TOPIC dev bob ").then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_account_that_logs_in_elsewhere_while_its_node_is_cut_off_is_taken_over() {
    let cluster = Nodes::start(1);
    let mut bob = guest(cluster.node(0), "bob").await;
    let cut_off = cut_off_node(&cluster);
    let mut alice = Client::greeted(cut_off.addr).await;
    let registered = answer(&mut alice, "REGISTER alice s3cret-pw").await;
    assert_eq!(registered, "OK REGISTER alice");
    bob.expect("NOTICE ONLINE alice").await;
    users_become(&mut alice, "USERS alice bob").await;

    let cut = cut(&cluster);
    bob.expect("NOTICE OFFLINE alice LOST").await;
    let mut laptop = cluster.node(0).connect().await;
    assert_eq!(
        reply_to(&mut laptop, "LOGIN alice s3cret-pw").await,
        "OK LOGIN alice"
    );
    bob.expect("NOTICE ONLINE alice").await;
    tokio::time::sleep(CUT - Duration::from_secs(NODE_TIMEOUT_SECS)).await;
    drop(cut);

    // Her own login took the session over (the node, whose connection to NATS was made
    // again, never heard of it: it finds her name claimed by her account): she is told so,
    // not that her name was taken.
    let last = alice.expect_closed().await;
    assert_eq!(
        last.last().map(String::as_str),
        Some("NOTICE CLOSING REPLACED you logged in on another connection"),
        "{last:?}"
    );
    let mut carol = Client::greeted(cut_off.addr).await;
    assert_eq!(answer(&mut carol, "NICK carol").await, "OK NICK carol");
    users_become(&mut carol, "USERS alice bob carol").await;
    assert_eq!(answer(&mut carol, "PM alice hi").await, "OK PM alice");
    laptop.skip_until("PM carol hi").await;
}

#[tokio::test]
async fn a_topic_cleared_while_a_node_is_cut_off_is_cleared_there_once_it_is_back() {
    let cluster = Nodes::start_on(NatsServer::start(), 1, |settings| {
        settings.irc_addr = Some("127.0.0.1:0".into());
    });
    let cut_off = cut_off_node(&cluster);
    let (mut anna, mut bob) = anna_and_bob(&cluster, &cut_off, true).await;
    assert_eq!(
        answer(&mut bob, "TOPIC dev before the cut").await,
        "OK TOPIC dev"
    );
    anna.expect("NOTICE TOPIC dev bob before the cut").await;

    let cut = cut(&cluster);
    bob.expect_unordered(&["LR dev anna", "NOTICE OFFLINE anna LOST"])
        .await;
    // Only IRC clears a topic.
    let mut ann = Raw::guest(cluster.node(0), "ann").await;
    ann.send("JOIN #dev").await;
    ann.until(" 366 ann #dev ").await;
    ann.send("TOPIC #dev :").await;
    ann.until(":ann!ann@linechat TOPIC #dev :").await;
    tokio::time::sleep(CUT - Duration::from_secs(NODE_TIMEOUT_SECS)).await;
    drop(cut);

    bob.skip_until("NOTICE ONLINE anna").await;
    eventually(
        "the topic cleared on the node that was cut off",
        async || (answer(&mut anna, "TOPIC dev").await == "TOPIC dev").then_some(()),
    )
    .await;
}
