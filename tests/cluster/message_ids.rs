//! A room message is known by one id on every node: the id its event carries to members on
//! the node that accepted it and on the others is the one history keeps, read on either node.
//! The tests' own front-end (`tests/server/front_end.rs`) shows the ids.

use super::Nodes;
use crate::server::front_end::{Said, TestFrontEnd, guest, history, join, said};
use crate::support::{Client, TestServer, eventually};

fn front_end_addr(node: &TestServer) -> std::net::SocketAddr {
    node.front_end_addr.expect("the test front-end's listener")
}

/// Has `client` join `room`, created on another node, once its node knows of the room.
async fn join_when_known(client: &mut Client, room: &str) {
    eventually(&format!("{room} known on this node"), async || {
        client.send(&format!("join {room}")).await;
        (client.line().await == format!("ok join {room}")).then_some(())
    })
    .await;
}

/// `room`'s history as `client` reads it, once it holds `count` messages: a node sees what
/// another node stored once that node's writer has written it.
async fn history_of(client: &mut Client, room: &str, count: usize) -> Vec<Said> {
    eventually(&format!("{count} messages in {room}"), async || {
        let messages = history(client, room).await;
        (messages.len() == count).then_some(messages)
    })
    .await
}

#[tokio::test]
async fn a_room_message_has_one_id_on_both_nodes_and_in_their_history() {
    let mut cluster = Nodes::start(0);
    cluster.add_serving::<TestFrontEnd>("n1");
    cluster.add_serving::<TestFrontEnd>("n2");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = super::guest(a, "alice").await;
    alice.check("CR lobby", "OK CR lobby").await;
    let mut bob = guest(front_end_addr(a), "bob").await;
    join(&mut bob, "lobby").await;
    let mut carol = guest(front_end_addr(b), "carol").await;
    join_when_known(&mut carol, "lobby").await;
    // The room on the first node has carol as a member once bob is told she joined.
    bob.skip_until("joined room=lobby user=carol").await;

    let from_a = said(&mut bob, &mut carol, "lobby", "said on n1").await;
    let from_b = said(&mut carol, &mut bob, "lobby", "said on n2").await;
    assert!(from_a.id > 0 && from_b.id > 0, "{from_a:?} {from_b:?}");
    assert_ne!(from_a.id, from_b.id);

    let mut by_id = [from_a, from_b];
    by_id.sort_by_key(|message| message.id);
    assert_eq!(history_of(&mut bob, "lobby", 2).await, by_id);
    assert_eq!(history_of(&mut carol, "lobby", 2).await, by_id);
}
