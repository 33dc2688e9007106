//! Who a name and a conversation belong to (issue 9, items 1, 2, 3, 11, 12 and 13): history
//! follows the person, not the name; one name has one owner; password guessing is bounded
//! however the attempts arrive; the owner of an account can take their session back; names
//! that look alike are refused; rooms nobody keeps go away.

use crate::support::{Client, Server, TestServer, eventually};

#[tokio::test]
async fn a_guest_who_takes_a_name_later_does_not_read_its_private_history() {
    let server = TestServer::start();
    server.register("carol", "pw").await.quit().await;

    // A guest "bob" leaves a message for carol, who is offline, and goes.
    let mut bob = server.guest("bob").await;
    assert_eq!(
        bob.ask("PM carol my pin is 4711").await,
        "OK PM carol queued"
    );
    assert_eq!(bob.history("HISTORY carol").await.len(), 1);
    bob.quit().await;

    // Another guest under the same name sees nothing of it.
    let mut impostor = server.guest("bob").await;
    assert_eq!(
        impostor.history("HISTORY carol").await,
        Vec::<String>::new()
    );
    impostor.quit().await;

    // Nor does someone who registers the name afterwards.
    let mut registered = server.register("bob", "other").await;
    assert_eq!(
        registered.history("HISTORY carol").await,
        Vec::<String>::new()
    );
    registered.quit().await;

    // Carol still gets the message that was meant for her.
    server
        .login("carol", "pw", &["PM bob my pin is 4711", "OK LOGIN carol"])
        .await;
}

#[tokio::test]
async fn registered_users_keep_their_conversation_across_logins() {
    let server = TestServer::start();
    let mut alice = server.register("alice", "pw-a").await;
    let mut dave = server.register("dave", "pw-d").await;
    alice.expect("NOTICE ONLINE dave").await;
    assert_eq!(dave.ask("PM alice hello alice").await, "OK PM alice");
    alice.expect("PM dave hello alice").await;
    dave.quit().await;
    alice.expect("NOTICE OFFLINE dave QUIT").await;
    // A guest cannot pose as dave while he is away...
    let mut guest = server.connect().await;
    assert_eq!(
        guest.ask("NICK dave").await,
        "ERR NAME_TAKEN dave is a registered account; use LOGIN"
    );
    // ...and alice reads her conversation with the account, not with whoever holds the name.
    let lines = alice.history("HISTORY dave").await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with(" dave hello alice"), "{lines:?}");
    let mut dave = server.login("dave", "pw-d", &["OK LOGIN dave"]).await;
    assert_eq!(dave.history("HISTORY ALICE").await.len(), 1);
}

/// Each round races a guest `NICK` against a `REGISTER` of the same name: exactly one wins,
/// and a `REGISTER` that lost leaves no account behind.
#[tokio::test]
async fn nick_and_register_racing_for_a_name_have_one_winner() {
    let server = TestServer::with(|settings| settings.login_failures_per_ip = 0);
    for round in 0..40 {
        let name = format!("race{round}");
        let mut guest = server.connect().await;
        let mut owner = server.connect().await;
        let nick = format!("NICK {name}");
        let register = format!("REGISTER {name} pw");
        let (nicked, registered) = tokio::join!(guest.ask(&nick), owner.ask(&register));
        let nick_won = nicked == format!("OK NICK {name}");
        let register_won = registered == format!("OK REGISTER {name}");
        assert!(
            nick_won != register_won,
            "round {round}: {nicked:?} / {registered:?}"
        );
        if nick_won {
            assert!(registered.starts_with("ERR NAME_TAKEN"), "{registered}");
            // No hidden account: the password opens nothing.
            let mut checker = server.connect().await;
            assert_eq!(
                checker.ask(&format!("LOGIN {name} pw")).await,
                "ERR BAD_PASSWORD wrong name or password"
            );
        } else {
            assert!(nicked.starts_with("ERR NAME_TAKEN"), "{nicked}");
        }
    }
}

#[tokio::test]
async fn simultaneous_guesses_are_counted_before_any_is_checked() {
    let server = TestServer::with(|settings| {
        settings.login_failures_per_account = 5;
        settings.login_failures_per_ip = 20;
        settings.max_connections_per_ip = 100;
    });
    server
        .register("target", "the right one")
        .await
        .quit()
        .await;
    let mut guessers = Vec::new();
    for _ in 0..60 {
        guessers.push(Client::greeted_from("127.0.0.7", server.addr).await);
    }
    // Every guess is on the wire before the first answer comes back.
    for (i, guesser) in guessers.iter_mut().enumerate() {
        guesser.send(&format!("LOGIN target guess{i}")).await;
    }
    let mut checked = 0;
    for guesser in &mut guessers {
        let reply = guesser.line().await;
        if reply == "ERR BAD_PASSWORD wrong name or password" {
            checked += 1;
        } else {
            assert!(reply.starts_with("ERR TOO_MANY_ATTEMPTS"), "{reply}");
        }
    }
    assert_eq!(checked, 5, "password checks for 60 simultaneous guesses");

    // The owner, from an address with no failures, is not locked out of their account.
    let mut owner = Client::greeted_from("127.0.0.8", server.addr).await;
    assert_eq!(
        owner.ask("LOGIN target the right one").await,
        "OK LOGIN target"
    );
    // The guessing address stays refused, with the right password too.
    let mut again = Client::greeted_from("127.0.0.7", server.addr).await;
    let reply = again.ask("LOGIN target the right one").await;
    assert!(reply.starts_with("ERR TOO_MANY_ATTEMPTS"), "{reply}");
}

#[tokio::test]
async fn a_login_with_the_right_password_takes_over_a_vanished_session() {
    let server = TestServer::start();
    let mut ghost = server.register("erin", "pw").await;
    assert_eq!(ghost.ask("CR den").await, "OK CR den");
    let mut friend = server.guest("frank").await;
    ghost.expect("NOTICE ONLINE frank").await;
    assert_eq!(friend.ask("JR den").await, "OK JR den");
    ghost.expect("JR den frank").await;

    // Erin's first connection stops answering; she logs in again from elsewhere.
    let mut erin = server
        .login("erin", "pw", &["JR den erin", "OK LOGIN erin"])
        .await;
    assert_eq!(
        ghost.expect_closed().await,
        ["NOTICE CLOSING REPLACED you logged in on another connection"]
    );
    // To the others she never left: no OFFLINE, ONLINE, LR or JR.
    assert_eq!(friend.ask("RM den still there?").await, "OK RM den");
    erin.expect("RM den frank still there?").await;
    assert_eq!(friend.ask("LRU den").await, "LRU den erin frank");
    assert_eq!(friend.ask("USERS").await, "USERS erin frank");
    server.expect_no_presence("sync", &mut [&mut friend]).await;
}

#[tokio::test]
async fn names_that_look_like_a_taken_one_are_refused() {
    let server = TestServer::start();
    let _alice = server.guest("Alice").await;
    server.register("modern", "pw").await.quit().await;
    for (command, holder) in [
        ("NICK aIice", "Alice"),
        ("NICK A1ice", "Alice"),
        ("REGISTER AIice pw", "Alice"),
        ("NICK rnodern", "modern"),
        ("REGISTER m0dern pw", "modern"),
    ] {
        let mut client = server.connect().await;
        assert_eq!(
            client.ask(command).await,
            format!("ERR NAME_TAKEN that name looks too much like {holder}")
        );
    }
    let mut fine = server.connect().await;
    assert_eq!(fine.ask("NICK alicia").await, "OK NICK alicia");
}

/// Asks `LRS` until it answers `expected`. Rooms go away at the sweep after their expiry,
/// which is twice a second here.
async fn wait_for_rooms(client: &mut Client, expected: &str) {
    let what = format!("the rooms are {expected:?}");
    eventually(&what, async || {
        (client.ask("LRS").await == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rooms_nobody_keeps_go_away_and_creating_them_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let configure = |settings: &mut linechat::settings::Settings| {
        settings.room_expiry_secs = 1;
        settings.rooms_created_per_minute = 3;
    };
    let mut server = TestServer::start_in(dir.path(), configure);
    let mut owner = server.register("hana", "pw").await;
    assert_eq!(owner.ask("CR kept").await, "OK CR kept");
    owner.quit().await;
    let mut guest = server.guest("gus").await;
    for room in ["g1", "g2", "g3"] {
        assert_eq!(
            guest.ask(&format!("CR {room}")).await,
            format!("OK CR {room}")
        );
    }
    let refused = guest.ask("CR g4").await;
    assert!(
        refused.starts_with("ERR FLOOD rooms are created at most 3 per minute"),
        "{refused}"
    );
    assert_eq!(guest.ask("RM g1 hello").await, "OK RM g1");
    for room in ["g1", "g2"] {
        assert_eq!(
            guest.ask(&format!("LR {room}")).await,
            format!("OK LR {room}")
        );
    }
    // g1 and g2 go; g3 has a member, "kept" a registered user who will come back: both stay
    // (had either gone, it would have gone no later than g1 and g2, which were left after).
    assert_eq!(guest.ask("LRS").await, "LRS g1 g2 g3 kept");
    wait_for_rooms(&mut guest, "LRS g3 kept").await;
    assert_eq!(
        guest.ask("JR g1").await,
        "ERR NO_SUCH_ROOM there is no room g1; CR creates it"
    );
    guest.quit().await;
    // A new room under an old name starts with no history.
    let mut newcomer = server.guest("nina").await;
    assert_eq!(newcomer.ask("CR g1").await, "OK CR g1");
    assert_eq!(newcomer.history("HISTORY g1").await, Vec::<String>::new());
    newcomer.quit().await;

    // After a restart the empty rooms expire again, all but the one a registered user keeps.
    server.terminate();
    drop(server);
    let server = TestServer::start_in(dir.path(), configure);
    let mut later = server.guest("late").await;
    wait_for_rooms(&mut later, "LRS kept").await;
}
