//! Helpers for the actors' unit tests: members whose outboxes can be read line by line.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, Lines};

use super::accounts::{Accounts, LoginLimits};
use super::member::{Member, UserId};
use super::room::{RoomLimits, Rooms};
use super::storage::{StorageOptions, Store};
use super::user::Users;
use crate::connection::outbox;
use linechat_protocol::Name;

/// The client end of a test member's connection.
pub struct Inbox {
    lines: Lines<BufReader<DuplexStream>>,
}

impl Inbox {
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("read")
            .expect("an open connection")
    }

    pub async fn expect_nothing(&mut self) {
        let waited = tokio::time::timeout(Duration::from_millis(50), self.lines.next_line()).await;
        assert!(waited.is_err(), "unexpected {waited:?}");
    }
}

pub fn name(raw: &str) -> Name {
    Name::parse(raw).expect("a valid name")
}

/// A store in a temporary directory, deleted when the directory handle is dropped.
pub async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = StorageOptions {
        data_dir: dir.path().to_path_buf(),
        database_url: None,
        history: true,
        batch_window: Duration::from_millis(10),
        keep_per_conversation: 0,
        keep_days: 0,
        read_connections: 2,
    };
    let (store, _, _) = Store::open(options).await.expect("a store");
    (store, dir)
}

pub fn no_login_limits() -> LoginLimits {
    LoginLimits {
        per_ip: 0,
        per_account: 0,
        window: Duration::from_secs(1),
    }
}

/// The users actor, on a temporary store.
pub async fn users() -> (Users, tempfile::TempDir) {
    let (store, dir) = store().await;
    let accounts = Accounts::spawn(1, no_login_limits(), store.clone(), Vec::new());
    (
        Users::spawn(store, accounts, Vec::new(), usize::MAX, None),
        dir,
    )
}

/// The rooms actor, on a temporary store, with room for 3 rooms of 3 members.
pub async fn rooms() -> (Rooms, Store, tempfile::TempDir) {
    rooms_with(RoomLimits {
        max_rooms: 3,
        max_members: 3,
        expiry: None,
        created_per_minute: 0,
    })
    .await
}

/// The rooms actor, on a temporary store, with `limits`.
pub async fn rooms_with(limits: RoomLimits) -> (Rooms, Store, tempfile::TempDir) {
    let (store, dir) = store().await;
    let accounts = Accounts::spawn(1, no_login_limits(), store.clone(), Vec::new());
    let users = Users::spawn(store.clone(), accounts, Vec::new(), usize::MAX, None);
    (
        Rooms::spawn(users, store.clone(), Vec::new(), Vec::new(), limits, None),
        store,
        dir,
    )
}

/// A member with a running writer, and the end its lines arrive at.
pub fn member(raw_name: &str) -> (Member, Inbox) {
    let (outbox, writer) = outbox(1 << 20);
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(writer.run_worded(server, crate::server::cmd::wording::LineWording::default()));
    let member = Member {
        name: name(raw_name),
        id: UserId::new_guest(),
        outbox,
    };
    let inbox = Inbox {
        lines: BufReader::new(client).lines(),
    };
    (member, inbox)
}
