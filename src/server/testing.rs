//! Helpers for the actors' unit tests: members whose outboxes can be read line by line.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, Lines};

use super::member::Member;
use crate::common::Name;
use crate::connection::outbox;

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

/// A member with a running writer, and the end its lines arrive at.
pub fn member(raw_name: &str) -> (Member, Inbox) {
    let (outbox, writer) = outbox(1 << 20);
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(writer.run(server));
    let member = Member {
        name: name(raw_name),
        outbox,
    };
    let inbox = Inbox {
        lines: BufReader::new(client).lines(),
    };
    (member, inbox)
}
