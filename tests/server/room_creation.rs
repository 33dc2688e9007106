//! Room creation from many connections at once: each connection has its own rate
//! (`rooms_created_per_minute`), and the server one for all of them together
//! (`rooms_created_per_minute_total`), so that many addresses cannot fill `max_rooms`.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{Client, PATIENCE, Server, TestServer};

#[tokio::test]
async fn rooms_created_from_many_addresses_are_limited_server_wide() {
    let server = TestServer::with(|settings| {
        settings.rooms_created_per_minute = 2;
        settings.rooms_created_per_minute_total = 5;
        settings.irc_addr = Some("127.0.0.1:0".into());
        settings.irc_server_name = Some("irc.test".into());
    });
    // Each client is within its own limit of two a minute, each from an address of its own.
    let mut makers = Vec::new();
    let mut answers = Vec::new();
    for (i, source) in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .into_iter()
        .enumerate()
    {
        let mut maker = Client::greeted_from(source, server.addr).await;
        let name = format!("maker{i}");
        maker
            .check(&format!("NICK {name}"), &format!("OK NICK {name}"))
            .await;
        for j in 0..2 {
            answers.push(maker.ask(&format!("CR r{i}x{j}")).await);
        }
        makers.push(maker);
    }
    let created = ["r0x0", "r0x1", "r1x0", "r1x1", "r2x0"].map(|room| format!("OK CR {room}"));
    assert_eq!(answers[..5], created, "{answers:?}");
    for refused in &answers[5..] {
        assert!(
            refused.starts_with(
                "ERR TOO_MANY_ROOMS rooms are created at most 5 per minute on this server; \
                 try again in "
            ),
            "{answers:?}"
        );
    }

    // Rooms that exist are still joined, and the refusals made no room.
    let mut visitor = server.guest("visitor").await;
    assert_eq!(visitor.ask("JR r0x0").await, "OK JR r0x0");
    assert_eq!(visitor.ask("LRS").await, "LRS r0x0 r0x1 r1x0 r1x1 r2x0");

    // A JOIN on the IRC port that would create a room is refused with the same reason.
    let irc = TcpStream::connect(server.irc_addr.expect("an IRC listener"))
        .await
        .unwrap();
    let (read, mut write) = irc.into_split();
    write
        .write_all(b"NICK ivy\r\nUSER ivy 0 * :Ivy\r\nJOIN #late\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    let refusal = loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the connection stays open");
        if line.contains(" #late ") {
            break line;
        }
    };
    assert!(
        refusal.starts_with(
            ":irc.test 403 ivy #late :rooms are created at most 5 per minute on this server; \
             try again in "
        ),
        "{refusal}"
    );
}
