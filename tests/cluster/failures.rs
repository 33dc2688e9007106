//! What the cluster does when a node dies or NATS goes away.

use super::{Nodes, guest_seen, users_become};
use crate::support::nats::NatsServer;
use crate::support::{Client, Server};

#[tokio::test]
async fn a_killed_nodes_users_are_lost_and_their_names_freed() {
    let mut cluster = Nodes::start(2);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;

    // As a kill -9 would: the node's runtime and sockets go at once, without a word.
    cluster.nodes[1].kill();
    alice
        .expect_unordered(&["LR dev bob", "NOTICE OFFLINE bob LOST"])
        .await;
    alice.check("USERS", "USERS alice").await;
    alice.check("LRU dev", "LRU dev alice").await;
    // The name is free again, on every node.
    let _bob_again = guest_seen(cluster.node(0), "bob", &mut [&mut alice]).await;
    // The room lives on.
    alice.check("RM dev still here", "OK RM dev").await;
}

/// The same with a real `kill -9`: the second node is the `linechat` binary.
#[tokio::test]
async fn a_node_process_killed_with_sigkill_is_lost() {
    let cluster = Nodes::start(1);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut node = cluster.process("n2");
    let mut bob = Client::greeted(node.addr).await;
    bob.check("NICK bob", "OK NICK bob").await;
    alice.expect("NOTICE ONLINE bob").await;

    let status = node.kill();
    assert!(!status.success(), "{status}");
    alice.expect("NOTICE OFFLINE bob LOST").await;
    alice.check("USERS", "USERS alice").await;
    let _bob_again = guest_seen(cluster.node(0), "bob", &mut [&mut alice]).await;
}

#[tokio::test]
async fn nodes_reconnect_after_nats_restarts_and_chat_goes_on_meanwhile() {
    let mut cluster = Nodes::start(2);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut carol = guest_seen(cluster.node(0), "carol", &mut [&mut alice]).await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice, &mut carol]).await;
    users_become(&mut bob, "USERS alice bob carol").await;

    cluster.nats.stop();
    // Chat on one node goes on while NATS is away, and nobody is declared lost.
    alice.check("PM carol are you there?", "OK PM carol").await;
    carol.expect("PM alice are you there?").await;
    alice.check("USERS", "USERS alice bob carol").await;
    // A new name cannot be checked across the cluster meanwhile, which the node says without
    // waiting for NATS's answers: at once when it knows NATS is away, else after the claim
    // timeout (3 s), not after two of them (one per request to JetStream).
    let mut erin = cluster.node(0).connect().await;
    let asked = std::time::Instant::now();
    erin.check(
        "NICK erin",
        "ERR NAME_TAKEN names cannot be checked across the cluster now; try again",
    )
    .await;
    assert!(asked.elapsed() < std::time::Duration::from_millis(4500));
    // Past the node timeout, still nobody is declared lost.
    tokio::time::sleep(std::time::Duration::from_secs(super::NODE_TIMEOUT_SECS)).await;
    alice.check("USERS", "USERS alice bob carol").await;

    cluster.nats.resume();
    // Across nodes again, once the nodes have reconnected by themselves.
    crate::support::eventually("a private message across nodes", async || {
        alice.check("PM bob back?", "OK PM bob").await;
        let line = tokio::time::timeout(std::time::Duration::from_millis(500), bob.line()).await;
        matches!(line, Ok(line) if line == "PM alice back?").then_some(())
    })
    .await;
    let _dave = super::guest(cluster.node(1), "dave").await;
    alice.skip_until("NOTICE ONLINE dave").await;
    users_become(&mut alice, "USERS alice bob carol dave").await;
    // The claim refused while NATS was away, should NATS have got it after all, is undone.
    let mut other = cluster.node(1).connect().await;
    crate::support::eventually("the name refused meanwhile to be free", async || {
        (super::reply_to(&mut other, "NICK erin").await == "OK NICK erin").then_some(())
    })
    .await;
}

#[tokio::test]
async fn nodes_authenticate_to_nats_and_one_without_credentials_does_not_start() {
    let nats = NatsServer::start_with(&["--user", "linechat", "--pass", "s3cret"]);
    let url = nats.url();
    let cluster = Nodes::start_on(nats, 2, |settings| {
        settings.nats_user = Some("linechat".into());
        settings.nats_password = Some("s3cret".into());
    });
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    bob.check("PM alice hi", "OK PM alice").await;
    alice.expect("PM bob hi").await;

    let error = bind_error(|settings| settings.nats_url = Some(url.clone())).await;
    assert!(
        error.starts_with(&format!("cannot connect to NATS at {url}: ")),
        "{error}"
    );
}

#[tokio::test]
async fn nodes_reach_nats_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let nats = NatsServer::start_with(&["--tls", "--tlscert", cert_arg, "--tlskey", key_arg]);
    let cluster = Nodes::start_on(nats, 2, |settings| {
        settings.nats_tls_ca = Some(cert.clone());
    });
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    bob.check("MSG over tls", "OK MSG").await;
    alice.expect("MSG bob over tls").await;
}

/// Why a node with settings changed by `configure` does not start.
async fn bind_error(configure: impl FnOnce(&mut linechat::settings::Settings)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::settings(dir.path());
    settings.node_name = Some("outsider".into());
    configure(&mut settings);
    match linechat::server::Server::bind(settings).await {
        Ok(_) => panic!("the node started"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_node_restarted_under_its_name_frees_its_old_users_at_once() {
    let mut cluster = Nodes::start_on(NatsServer::start(), 2, |settings| {
        // Longer than the test waits: only the restart can explain what is seen.
        settings.node_timeout_secs = 600;
    });
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    cluster.nodes[1].kill();
    cluster.nodes.remove(1);
    let again = cluster.add("n2");
    alice.expect("NOTICE OFFLINE bob LOST").await;
    let _probe = super::caught_up(again, "probe", "USERS alice probe").await;
    alice.expect("NOTICE ONLINE probe").await;
    // Its old claim on the name is gone: bob can come back, on the restarted node.
    let _bob = guest_seen(again, "bob", &mut [&mut alice]).await;
}

#[tokio::test]
async fn a_node_that_shuts_down_says_so_at_once() {
    let mut cluster = Nodes::start_on(NatsServer::start(), 2, |settings| {
        // Longer than the test waits: only the goodbye can explain what is seen.
        settings.node_timeout_secs = 600;
    });
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let mut bob = guest_seen(cluster.node(1), "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    alice.create_room("dev", &mut [&mut bob]).await;
    bob.join("dev", &mut [&mut alice]).await;
    cluster.nodes[1].terminate();
    alice
        .expect_unordered(&["LR dev bob", "NOTICE OFFLINE bob SHUTDOWN"])
        .await;
    alice.check("USERS", "USERS alice").await;
    let _bob = guest_seen(cluster.node(0), "bob", &mut [&mut alice]).await;
}

/// What a node cannot read (a newer node's message, or garbage) on the subjects every node
/// hears is logged and skipped; the node carries on.
#[tokio::test]
async fn a_message_a_node_cannot_read_is_logged_and_skipped() {
    let cluster = Nodes::start(1);
    let mut alice = super::guest(cluster.node(0), "alice").await;
    let node = cluster.process("n2");
    let mut bob = Client::greeted(node.addr).await;
    assert_eq!(super::reply_to(&mut bob, "NICK bob").await, "OK NICK bob");
    alice.expect("NOTICE ONLINE bob").await;
    users_become(&mut bob, "USERS alice bob").await;

    let nats = async_nats::connect(cluster.nats.url()).await.unwrap();
    // A version no node knows yet, then bytes that are no message at all, on the global
    // subject and on the node's own.
    for subject in ["linechat.all", "linechat.node.n2"] {
        for payload in [
            &[200_u8, 1, 2, 3][..],
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            let payload = bytes::Bytes::copy_from_slice(payload);
            nats.publish(subject, payload).await.unwrap();
        }
    }
    nats.flush().await.unwrap();
    node.wait_for_log("messages from other nodes skipped");
    alice.check("PM bob still here?", "OK PM bob").await;
    bob.expect("PM alice still here?").await;
    bob.check("MSG yes", "OK MSG").await;
    alice.expect("MSG bob yes").await;
}
