//! The room table and its rooms, driven through their handles.

use std::time::{Duration, SystemTime};

use linechat_protocol::{Name, Topic};

use super::rooms::RoomsRequest;
use super::*;
use crate::server::member::Member;
use crate::server::testing::{member, name};

/// The room's name as created, or why not.
fn shown(joined: Joined) -> Result<Name, RoomError> {
    joined.map(|room| room.name().clone())
}

async fn create(rooms: &Rooms, member: &Member, room: &str) -> Result<Name, RoomError> {
    shown(rooms.create(member.clone(), name(room)).await)
}

async fn join(rooms: &Rooms, member: &Member, room: &str) -> Result<Name, RoomError> {
    shown(rooms.join(member.clone(), name(room)).await)
}

async fn handle(rooms: &Rooms, member: &Member, room: &str) -> Room {
    rooms.join(member.clone(), name(room)).await.unwrap()
}

/// The room's name as created, then its members.
async fn members(rooms: &Rooms, room: &str) -> String {
    let RoomMembers { room, users } = rooms.members(name(room)).await.unwrap();
    let mut words = vec![room.to_string()];
    words.extend(users.iter().map(Name::to_string));
    words.join(" ")
}

#[tokio::test]
async fn creating_an_existing_room_is_an_error_and_keeps_it() {
    let (rooms, _store, _dir) = crate::server::testing::rooms().await;
    let (alice, _) = member("alice");
    let (bob, _) = member("bob");
    assert_eq!(create(&rooms, &alice, "Dev").await, Ok(name("Dev")));
    assert_eq!(
        create(&rooms, &bob, "dev").await,
        Err(RoomError::Exists(name("Dev")))
    );
    assert_eq!(members(&rooms, "dev").await, "Dev alice");
}

#[tokio::test]
async fn a_join_while_the_room_is_being_created_waits_for_it() {
    let (rooms, _store, _dir) = crate::server::testing::rooms().await;
    let (alice, _) = member("alice");
    let (bob, _) = member("bob");
    // Sent in this order, the JR reaches the table while the room is being stored.
    let (created, joined) = tokio::join!(create(&rooms, &alice, "dev"), join(&rooms, &bob, "dev"));
    assert_eq!(created, Ok(name("dev")));
    assert_eq!(joined, Ok(name("dev")));
    assert_eq!(members(&rooms, "dev").await, "dev alice bob");
}

#[tokio::test]
async fn room_messages_reach_other_members_only() {
    let (rooms, store, _dir) = crate::server::testing::rooms().await;
    let (alice, mut alice_inbox) = member("alice");
    let (bob, mut bob_inbox) = member("bob");
    let (_eve, mut eve_inbox) = member("eve");
    assert_eq!(create(&rooms, &alice, "dev").await, Ok(name("dev")));
    let dev = handle(&rooms, &bob, "dev").await;
    assert_eq!(alice_inbox.line().await, "JR dev bob");
    assert_eq!(dev.say(&store, &bob, "hi there".into()).await, Ok(()));
    assert_eq!(alice_inbox.line().await, "RM dev bob hi there");
    assert_eq!(
        rooms.not_member(name("dev")).await,
        RoomError::NotMember(name("dev"))
    );
    assert_eq!(
        rooms.not_member(name("ops")).await,
        RoomError::NoSuchRoom(name("ops"))
    );
    bob_inbox.expect_nothing().await;
    eve_inbox.expect_nothing().await;
}

async fn running_managers(rooms: &Rooms) -> usize {
    rooms
        .mailbox
        .ask(|reply| RoomsRequest::RunningManagers { reply })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_empty_room_stays_listed_but_its_task_ends() {
    let (rooms, store, _dir) = crate::server::testing::rooms().await;
    let (alice, _) = member("alice");
    let (bob, mut bob_inbox) = member("bob");
    let dev = rooms.create(alice.clone(), name("dev")).await.unwrap();
    assert_eq!(running_managers(&rooms).await, 1);
    assert_eq!(dev.leave(alice.clone()).await, Ok(()));
    // The last member leaving is not an error, and the room's task ends.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while running_managers(&rooms).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room task lingers"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(rooms.list().await, Ok(vec![name("dev")]));
    let summaries = rooms.summaries().await.unwrap();
    let summary = RoomSummary {
        room: name("dev"),
        members: 0,
        topic: None,
    };
    assert_eq!(summaries, vec![summary]);
    assert_eq!(members(&rooms, "dev").await, "dev");
    // A handle kept past the room's task says so.
    assert_eq!(
        dev.leave(alice.clone()).await,
        Err(RoomError::NotMember(name("dev")))
    );
    let dev = handle(&rooms, &alice, "dev").await;
    assert_eq!(join(&rooms, &bob, "dev").await, Ok(name("dev")));
    assert!(dev.say(&store, &alice, "back".into()).await.is_ok());
    assert_eq!(bob_inbox.line().await, "RM dev alice back");
}

#[tokio::test]
async fn a_member_that_cannot_take_lines_does_not_stall_the_room() {
    let (rooms, store, _dir) = crate::server::testing::rooms().await;
    let (alice, _) = member("alice");
    let (bob, mut bob_inbox) = member("bob");
    // A member whose writer is gone: every push to it fails at once.
    let (outbox, writer) = crate::connection::outbox(64);
    drop(writer);
    let stuck = Member {
        name: name("stuck"),
        id: crate::server::member::UserId::new_guest(),
        outbox,
    };
    let dev = rooms.create(alice.clone(), name("dev")).await.unwrap();
    assert_eq!(join(&rooms, &stuck, "dev").await, Ok(name("dev")));
    assert_eq!(join(&rooms, &bob, "dev").await, Ok(name("dev")));
    for i in 0..100 {
        assert!(dev.say(&store, &alice, i.to_string()).await.is_ok());
    }
    for i in 0..100 {
        assert_eq!(bob_inbox.line().await, format!("RM dev alice {i}"));
    }
}

#[tokio::test]
async fn a_topic_is_stored_then_kept_and_told_to_the_other_members() {
    let (rooms, store, _dir) = crate::server::testing::rooms().await;
    let (alice, mut alice_inbox) = member("alice");
    let (bob, mut bob_inbox) = member("bob");
    assert_eq!(create(&rooms, &alice, "Dev").await, Ok(name("Dev")));
    assert_eq!(join(&rooms, &bob, "dev").await, Ok(name("Dev")));
    assert_eq!(alice_inbox.line().await, "JR Dev bob");
    let none = || RoomTopic {
        room: name("Dev"),
        topic: None,
    };
    assert_eq!(rooms.topic(name("dev")).await, Ok(none()));
    let set = rooms.set_topic(name("alice"), name("dev"), Some("ship  it".into()));
    assert_eq!(set.await, Ok(()));
    assert_eq!(bob_inbox.line().await, "NOTICE TOPIC Dev alice ship  it");
    let Ok(RoomTopic {
        topic: Some(topic), ..
    }) = rooms.topic(name("DEV")).await
    else {
        panic!("no topic");
    };
    assert_eq!(
        (topic.by.as_str(), topic.text.as_str()),
        ("alice", "ship  it")
    );
    let listed = rooms.summaries().await.unwrap();
    assert_eq!(listed[0].members, 2);
    assert_eq!(listed[0].topic.as_ref(), Some(&topic));
    assert_eq!(
        rooms.topic(name("ops")).await,
        Err(RoomError::NoSuchRoom(name("ops")))
    );
    // Cleared (from IRC): told without a text.
    let cleared = rooms.set_topic(name("bob"), name("dev"), None).await;
    assert_eq!(cleared, Ok(()));
    assert_eq!(alice_inbox.line().await, "NOTICE TOPIC Dev bob");
    assert_eq!(rooms.topic(name("dev")).await, Ok(none()));
    // A topic that cannot be stored is refused, and nothing changes.
    store.close().await;
    let refused = rooms.set_topic(name("alice"), name("dev"), Some("lost".into()));
    assert_eq!(
        refused.await.unwrap_err().to_string(),
        "the topic of Dev could not be stored: the store is shutting down"
    );
    assert_eq!(rooms.topic(name("dev")).await, Ok(none()));
    alice_inbox.expect_nothing().await;
    bob_inbox.expect_nothing().await;
}

#[tokio::test]
async fn another_nodes_state_brings_a_newer_topic_or_clearing_and_never_an_older_one() {
    let (rooms, _store, _dir) = crate::server::testing::rooms().await;
    let (alice, _alice_inbox) = member("alice");
    assert_eq!(create(&rooms, &alice, "dev").await, Ok(name("dev")));
    let set = rooms.set_topic(name("alice"), name("dev"), Some("ours".into()));
    assert_eq!(set.await, Ok(()));
    let topic = |text: &str, at: SystemTime| Topic {
        text: text.into(),
        by: name("bob"),
        at,
    };
    let state = |topic: KnownTopic| RemoteRooms::State {
        node: "n2".into(),
        rooms: vec![(name("dev"), vec![name("bob")], topic)],
    };
    // Who set it, and the text.
    let shown = || async {
        let topic = rooms.topic(name("dev")).await.unwrap().topic.unwrap();
        format!("{} {}", topic.by, topic.text)
    };
    // Set before ours (a node that missed the change): ours stays.
    let older = SystemTime::UNIX_EPOCH;
    rooms.remote(state(KnownTopic::Set(topic("older", older))));
    assert_eq!(members(&rooms, "dev").await, "dev alice bob");
    assert_eq!(shown().await, "alice ours");
    // Nor does a clearing before it, nor a node that knows of none.
    rooms.remote(state(KnownTopic::Cleared(older)));
    rooms.remote(state(KnownTopic::Unknown));
    assert_eq!(shown().await, "alice ours");
    // Set after ours, while this node was cut off from it: it catches up.
    let later = SystemTime::now() + Duration::from_secs(60);
    rooms.remote(state(KnownTopic::Set(topic("newer", later))));
    assert_eq!(members(&rooms, "dev").await, "dev alice bob");
    assert_eq!(shown().await, "bob newer");
    // Cleared later still: it is cleared here too, and an older topic does not return.
    let latest = later + Duration::from_secs(60);
    let cleared = || async { rooms.topic(name("dev")).await.unwrap().topic };
    rooms.remote(state(KnownTopic::Cleared(latest)));
    assert_eq!(cleared().await, None);
    rooms.remote(state(KnownTopic::Set(topic("newer", later))));
    assert_eq!(cleared().await, None);
}

#[tokio::test]
async fn rooms_and_members_are_limited() {
    // The test actor allows 3 rooms of 3 members.
    let (rooms, _store, _dir) = crate::server::testing::rooms().await;
    let people: Vec<_> = ["a", "b", "c", "d"].map(|n| member(n).0).into();
    for room in ["r1", "r2", "r3"] {
        assert_eq!(create(&rooms, &people[0], room).await, Ok(name(room)));
    }
    assert_eq!(
        create(&rooms, &people[0], "r4").await,
        Err(RoomError::TooMany(3))
    );
    assert_eq!(join(&rooms, &people[1], "r1").await, Ok(name("r1")));
    let r1 = handle(&rooms, &people[2], "r1").await;
    let full = RoomError::Full {
        room: name("r1"),
        members: 3,
    };
    assert_eq!(join(&rooms, &people[3], "r1").await, Err(full));
    assert_eq!(r1.leave(people[2].clone()).await, Ok(()));
    assert_eq!(join(&rooms, &people[3], "r1").await, Ok(name("r1")));
}

#[tokio::test]
async fn rooms_are_created_at_most_so_many_per_minute_by_everyone_together() {
    let (rooms, _store, _dir) = crate::server::testing::rooms_with(RoomLimits {
        max_rooms: 100,
        max_members: 3,
        expiry: None,
        created_per_minute: 2,
    })
    .await;
    let (a, b) = (member("a").0, member("b").0);
    assert_eq!(create(&rooms, &a, "r1").await, Ok(name("r1")));
    // A room that exists is refused as such, and takes no turn.
    assert_eq!(
        create(&rooms, &b, "r1").await,
        Err(RoomError::Exists(name("r1")))
    );
    assert_eq!(create(&rooms, &b, "r2").await, Ok(name("r2")));
    let refused = create(&rooms, &b, "r3").await;
    // The bucket refills one room every 30 s.
    let Err(RoomError::TooManyCreated {
        per_minute: 2,
        wait_secs,
    }) = refused
    else {
        panic!("{refused:?}");
    };
    assert!((1..=30).contains(&wait_secs), "{refused:?}");
    assert_eq!(join(&rooms, &a, "r2").await, Ok(name("r2")));
}
