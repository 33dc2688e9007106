//! Room topics across nodes: a topic set on one node reaches the room's members on the
//! others at once, every node answers `TOPIC` with it, and a node that starts later on the
//! shared PostgreSQL store loads it from there.

use linechat_protocol::Reply;

use super::{NODE_TIMEOUT_SECS, NatsServer, Nodes, Postgres, guest_seen, reply_to, users_become};
use crate::support::{Client, TestServer, eventually};

/// Waits until `client`'s node answers `TOPIC <room>` with `(setter, text)`.
async fn topic_becomes(client: &mut Client, room: &str, setter: &str, text: &str) {
    eventually(
        &format!("the topic of {room} to be {text:?}"),
        async || match Reply::parse(&reply_to(client, &format!("TOPIC {room}")).await) {
            Ok(Reply::Topic {
                topic: Some(topic), ..
            }) if topic.by.as_str() == setter && topic.text == text => Some(()),
            _ => None,
        },
    )
    .await;
}

#[tokio::test]
async fn a_topic_set_on_one_node_is_seen_on_the_others_and_loaded_by_a_late_node() {
    let url = Postgres::shared().database();
    let cluster = Nodes::start_on(NatsServer::start(), 2, |settings| {
        settings.database_url = Some(url.clone());
    });
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    let mut bob = guest_seen(b, "bob", &mut [&mut alice]).await;
    users_become(&mut bob, "USERS alice bob").await;
    let mut carol = guest_seen(b, "carol", &mut [&mut alice, &mut bob]).await;

    alice.check("CR dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    carol.expect("NOTICE ROOM dev alice").await;
    bob.check("JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;

    // Set on node a: the member on node b is told, and node b, asked by someone who is not
    // a member, answers with it.
    alice.check("TOPIC dev set on a", "OK TOPIC dev").await;
    bob.expect("NOTICE TOPIC dev alice set on a").await;
    topic_becomes(&mut carol, "dev", "alice", "set on a").await;
    // And the reverse.
    bob.check("TOPIC dev set on b", "OK TOPIC dev").await;
    alice.expect("NOTICE TOPIC dev bob set on b").await;
    topic_becomes(&mut alice, "dev", "bob", "set on b").await;
    topic_becomes(&mut carol, "dev", "bob", "set on b").await;
    // A non-member on another node still may not set it.
    carol
        .check("TOPIC dev mine", "ERR NOT_IN_ROOM you are not in dev")
        .await;

    // A node that starts now loads the topic with the rooms, from the shared store.
    let late = TestServer::with(|settings| {
        settings.nats_url = Some(cluster.nats.url());
        settings.node_name = Some("n3".into());
        settings.node_timeout_secs = NODE_TIMEOUT_SECS;
        settings.database_url = Some(url.clone());
    });
    let mut dave = super::guest(&late, "dave").await;
    topic_becomes(&mut dave, "dev", "bob", "set on b").await;
    // Nobody heard of a topic change twice, or of their own.
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect("NOTICE ONLINE dave").await;
        client.expect_caught_up().await;
    }
}
