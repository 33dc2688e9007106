//! The directory, driven through its handle.

use linechat_protocol::{Departure, Name, Password};

use super::*;
use crate::server::member::{Member, UserId};
use crate::server::testing::{Inbox, member, name};

/// To whom a private message went, or why not.
async fn private(users: &Users, from: &Member, to: &str, text: &str) -> Result<Name, PmError> {
    let answer = users.private(from.clone(), name(to), text.to_string());
    answer.await.unwrap().map(|sent| sent.recipient().clone())
}

/// A guest online under `raw`, or why not.
async fn guest(users: &Users, raw: &str) -> Result<(Member, Inbox), NameRefusal> {
    let (member, inbox) = member(raw);
    let member = users.guest(member.name, member.outbox).await?;
    Ok((member, inbox))
}

async fn online(users: &Users) -> String {
    let names = users.list().await.unwrap();
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn names_are_unique_regardless_of_case_and_look_and_others_are_told() {
    let (users, _dir) = crate::server::testing::users().await;
    let (_alice, mut alice_inbox) = guest(&users, "alice").await.unwrap();
    assert_eq!(
        guest(&users, "ALICE").await.err(),
        Some(NameRefusal::Online)
    );
    assert_eq!(
        guest(&users, "aIice").await.err(),
        Some(NameRefusal::LooksLike(name("alice")))
    );
    guest(&users, "bob").await.unwrap();
    assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
    assert!(matches!(
        users.resolve(name("Bob")).await,
        Some(UserId::Guest(_))
    ));
    assert_eq!(users.resolve(name("carol")).await, None);
    assert_eq!(online(&users).await, "alice bob");
}

#[tokio::test]
async fn a_broadcast_with_nobody_else_online_is_fine() {
    let (users, _dir) = crate::server::testing::users().await;
    let (alone, mut inbox) = guest(&users, "alone").await.unwrap();
    assert_eq!(users.broadcast(alone, "anyone?".into()).await, Ok(()));
    inbox.expect_nothing().await;
}

#[tokio::test]
async fn private_messages_reach_only_their_target() {
    let (users, _dir) = crate::server::testing::users().await;
    let (alice, mut alice_inbox) = guest(&users, "alice").await.unwrap();
    let (_bob, mut bob_inbox) = guest(&users, "bob").await.unwrap();
    assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
    assert_eq!(
        private(&users, &alice, "BOB", "psst").await,
        Ok(name("bob"))
    );
    assert_eq!(bob_inbox.line().await, "PM alice psst");
    assert_eq!(
        private(&users, &alice, "carol", "hi").await,
        Err(PmError::NoSuchUser(name("carol")))
    );
    alice_inbox.expect_nothing().await;
}

#[tokio::test]
async fn a_guest_taking_a_new_name_does_not_hear_of_its_own_arrival() {
    let (users, _dir) = crate::server::testing::users().await;
    let (_watcher, mut watcher_inbox) = guest(&users, "watcher").await.unwrap();
    let (ann, mut ann_inbox) = guest(&users, "ann").await.unwrap();
    assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE ann");
    // A rename (IRC's NICK): the new name is taken on the same connection, the old one
    // left after. The connection hears of the old name's departure (the IRC front-end
    // shows it as the NICK line), never of its own arrival.
    let anna = users.guest(name("anna"), ann.outbox.clone()).await.unwrap();
    assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE anna");
    ann_inbox.expect_nothing().await;
    users.logout(ann, Departure::Quit(Some("now known as anna".into())));
    assert_eq!(
        watcher_inbox.line().await,
        "NOTICE OFFLINE ann QUIT now known as anna"
    );
    assert_eq!(online(&users).await, "anna watcher");
    drop(anna);
}

#[tokio::test]
async fn a_stale_logout_does_not_remove_the_new_session() {
    let (users, _dir) = crate::server::testing::users().await;
    let (_watcher, mut watcher_inbox) = guest(&users, "watcher").await.unwrap();
    let (old, _) = guest(&users, "alice").await.unwrap();
    users.logout(old, Departure::Closed);
    let (_new, _) = guest(&users, "alice").await.unwrap();
    users.logout(member("alice").0, Departure::Closed);
    assert_eq!(online(&users).await, "alice watcher");
    assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
    assert_eq!(watcher_inbox.line().await, "NOTICE OFFLINE alice CLOSED");
    assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
    watcher_inbox.expect_nothing().await;
}

#[tokio::test]
async fn a_name_is_registered_once_even_when_racing() {
    let (users, _dir) = crate::server::testing::users().await;
    let home = std::net::IpAddr::from([127, 0, 0, 1]);
    let register = |raw: &str, password: &str| {
        let (member, _) = member(raw);
        users.register(member.name, Password::new(password), home, member.outbox)
    };
    let (first, second) = tokio::join!(register("bob", "one"), register("BOB", "two"));
    let mut results = [first.map(drop), second.map(drop)];
    results.sort_by_key(|r| r.is_err());
    assert_eq!(
        results,
        [Ok(()), Err(RegisterError::Name(NameRefusal::Registered))]
    );
}

#[test]
fn look_alike_names_share_a_key() {
    let key = |raw: &str| look_alike_key(&name(raw));
    assert_eq!(key("aIice"), key("Alice"));
    assert_eq!(key("A1ice"), key("alice"));
    assert_eq!(key("rnodern"), key("modern"));
    assert_eq!(key("b0b"), key("bob"));
    assert_ne!(key("alicia"), key("alice"));
}
