//! The server on PostgreSQL (`database_url`) instead of its SQLite file: what it keeps
//! survives a restart on another data directory (so it is in PostgreSQL), two servers share
//! one database, and PostgreSQL going away under a running server costs clear `ERR`s, no
//! acknowledged write, and no chat that does not need it.
//!
//! The database server is the test binary's own (`tests/support/postgres.rs`), a fresh
//! database per test; the test that stops it has one of its own.

use crate::postgres_support::Postgres;
use crate::support::{Client, Server, TestServer, eventually};

/// A server on the PostgreSQL database `url`, in a fresh data directory of its own.
fn on(url: &str) -> TestServer {
    let url = url.to_owned();
    TestServer::with(move |settings| settings.database_url = Some(url))
}

/// `HISTORY <target>` as `<from> <text>` lines, or `None` if it was refused (the database
/// out of reach).
async fn history(client: &mut Client, target: &str) -> Option<Vec<String>> {
    client.send(&format!("HISTORY {target} 100")).await;
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        if line.starts_with("OK HISTORY ") {
            return Some(lines);
        }
        if line.starts_with("ERR ") {
            return None;
        }
        // HIST <target> <time> <from> <text>
        let fields: Vec<&str> = line.splitn(5, ' ').collect();
        assert_eq!(fields[0], "HIST", "{line:?}");
        lines.push(format!("{} {}", fields[3], fields[4]));
    }
}

#[tokio::test]
async fn what_the_server_keeps_survives_a_restart_in_postgresql() {
    let url = Postgres::shared().database();
    let mut server = on(&url);
    let mut alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    alice.expect("NOTICE ONLINE bob").await;
    bob.quit().await;
    alice.expect("NOTICE OFFLINE bob QUIT").await;
    alice.check("CR dev", "OK CR dev").await;
    alice.check("RM dev hello dev", "OK RM dev").await;
    alice.check("MSG hello all", "OK MSG").await;
    alice
        .check("PM bob while you were out", "OK PM bob queued")
        .await;
    drop(alice);
    server.terminate();
    drop(server);

    // Another data directory: all of it comes from PostgreSQL.
    let server = on(&url);
    let mut guest = server.guest("guest").await;
    guest.check("LRS", "LRS dev").await;
    let mut alice = server
        .login("alice", "pw", &["JR dev alice", "OK LOGIN alice"])
        .await;
    assert_eq!(
        history(&mut alice, "dev").await.unwrap(),
        ["alice hello dev"]
    );
    assert_eq!(history(&mut alice, "*").await.unwrap(), ["alice hello all"]);
    let mut bob = server
        .login(
            "bob",
            "pw",
            &["PM alice while you were out", "OK LOGIN bob"],
        )
        .await;
    assert_eq!(
        history(&mut bob, "alice").await.unwrap(),
        ["alice while you were out"]
    );
}

#[tokio::test]
async fn two_servers_share_one_database() {
    let url = Postgres::shared().database();
    let (one, two) = (on(&url), on(&url));

    // An account registered on one server logs in on the other, which learns of it from
    // the database; a name registered on one is taken on the other.
    let _alice = one.register("alice", "pw").await;
    let _alice_too = two.login("alice", "pw", &["OK LOGIN alice"]).await;
    let _carol = one.register("carol", "pw").await;
    let mut carol = two.connect().await;
    carol
        .check(
            "REGISTER Carol other",
            "ERR NAME_TAKEN the name is already registered",
        )
        .await;
    two.login(
        "carol",
        "nope",
        &["ERR BAD_PASSWORD wrong name or password"],
    )
    .await;

    // Both write history at once, without errors, and both read all of it back, each
    // sender's messages in the order sent.
    const EACH: usize = 40;
    let senders = [(one.addr(), "one"), (two.addr(), "two")].map(|(addr, name)| {
        tokio::spawn(async move {
            let mut client = Client::greeted(addr).await;
            client
                .check(&format!("NICK {name}"), &format!("OK NICK {name}"))
                .await;
            for i in 0..EACH {
                client.check(&format!("MSG {name} {i}"), "OK MSG").await;
            }
            client
        })
    });
    let mut readers = Vec::new();
    for sender in senders {
        readers.push(sender.await.unwrap());
    }
    for reader in &mut readers {
        let lines = eventually("both servers' messages in history", async || {
            history(reader, "*")
                .await
                .filter(|lines| lines.len() == 2 * EACH)
        })
        .await;
        for name in ["one", "two"] {
            let said: Vec<&String> = lines
                .iter()
                .filter(|line| line.starts_with(&format!("{name} ")))
                .collect();
            let wanted: Vec<String> = (0..EACH).map(|i| format!("{name} {name} {i}")).collect();
            assert_eq!(said, wanted.iter().collect::<Vec<_>>(), "{name}'s messages");
        }
    }
}

#[tokio::test]
async fn while_postgresql_is_away_writes_fail_clearly_and_chat_goes_on() {
    let postgres = Postgres::start();
    let url = postgres.database();
    let mut server = on(&url);
    let dave = server.register("dave", "pw").await;
    dave.quit().await;
    let mut alice = server.register("alice", "pw").await;
    alice.check("CR dev", "OK CR dev").await;
    let mut bob = server.guest("bob").await;
    alice.expect("NOTICE ONLINE bob").await;
    bob.check("JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    alice.check("RM dev before", "OK RM dev").await;
    bob.expect("RM dev alice before").await;

    postgres.stop();
    // Writes that need the database fail, saying so; nothing of them is done.
    let away = "the database is out of reach; try again later";
    let mut carol = server.connect().await;
    carol
        .check(
            "REGISTER carol pw",
            "ERR STORAGE the account could not be stored; try again later",
        )
        .await;
    alice
        .check(
            "CR ops",
            &format!("ERR STORAGE ops could not be stored: {away}"),
        )
        .await;
    alice
        .check(
            "PM dave are you there",
            &format!("ERR STORAGE the message for dave could not be stored: {away}"),
        )
        .await;
    // Chat that does not need the disk goes on.
    alice.check("RM dev during", "OK RM dev").await;
    bob.expect("RM dev alice during").await;
    bob.check("PM alice hi", "OK PM alice").await;
    alice.expect("PM bob hi").await;

    postgres.start_again();
    // History said while it was away is written once it is back.
    let lines = eventually("the history written while away", async || {
        history(&mut alice, "dev")
            .await
            .filter(|lines| lines.len() == 2)
    })
    .await;
    assert_eq!(lines, ["alice before", "alice during"]);
    // Writes work again (once the pool has reconnected).
    let _carol = eventually("a registration once the database is back", async || {
        let mut carol = server.connect().await;
        carol.send("REGISTER carol pw").await;
        (carol.line().await == "OK REGISTER carol").then_some(carol)
    })
    .await;
    alice.expect("NOTICE ONLINE carol").await;
    alice.check("CR ops", "OK CR ops").await;
    drop((alice, bob));
    server.terminate();
    drop(server);

    // Nothing acknowledged is missing, and nothing refused was kept.
    let server = on(&url);
    let mut alice = server
        .login(
            "alice",
            "pw",
            &["JR dev alice", "JR ops alice", "OK LOGIN alice"],
        )
        .await;
    assert_eq!(
        history(&mut alice, "dev").await.unwrap(),
        ["alice before", "alice during"]
    );
    server.login("dave", "pw", &["OK LOGIN dave"]).await;
    server.login("carol", "pw", &["OK LOGIN carol"]).await;
}
