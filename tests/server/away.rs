//! `AWAY`: whoever sends an away user a private message is told their away message
//! (`OK PM <user> away: <message>`), every time, and the user gets the message all the same.

use crate::support::{Client, NOT_LOGGED_IN, Server, TestServer};

#[tokio::test]
async fn a_private_message_to_someone_away_is_answered_with_their_message() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    // Alice's session now holds bob's handle and sends to him straight: his being away must
    // still reach her.
    alice.pm(&mut bob, "hi").await;
    bob.check("AWAY at  lunch", "OK AWAY").await;
    for text in ["are you there", "still?"] {
        alice
            .check(&format!("PM bob {text}"), "OK PM bob away: at  lunch")
            .await;
        bob.expect(&format!("PM alice {text}")).await;
    }
    bob.check("AWAY", "OK AWAY back").await;
    alice.pm(&mut bob, "welcome back").await;
    alice.pm(&mut bob, "and again").await;
}

#[tokio::test]
async fn away_is_checked() {
    let server = TestServer::start();
    let mut nobody = server.connect().await;
    nobody.check("AWAY lunch", NOT_LOGGED_IN).await;
    let mut alice: Client = server.guest("alice").await;
    let long = "x".repeat(201);
    alice
        .check(
            &format!("AWAY {long}"),
            "ERR BAD_ARGUMENTS an away message is at most 200 bytes; this one is 201",
        )
        .await;
    alice
        .check(&format!("AWAY {}", &long[1..]), "OK AWAY")
        .await;
}
