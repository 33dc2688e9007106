//! The idle watch on the IRC port: a registered client that says nothing is sent
//! `PING :<server>`, and closed if nothing answers it in time.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::raw::server_with;

#[tokio::test]
async fn blank_lines_do_not_keep_an_idle_client_connected() {
    let server = server_with(|settings| {
        settings.idle_ping_secs = 1;
        settings.idle_timeout_secs = 1;
    });
    let stream = TcpStream::connect(server.irc_addr.unwrap()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"NICK blank\r\nUSER blank 0 * :blank\r\n")
        .await
        .unwrap();
    let blanks = tokio::spawn(async move {
        // A blank line every 200 ms, for longer than the PING and its timeout take: it gets
        // no answer, so it is no answer to the PING either.
        for _ in 0..50 {
            if write.write_all(b"\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(8), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
        }
    })
    .await;
    blanks.abort();
    assert!(outcome.is_ok(), "still connected after 8 s; saw {seen:?}");
    assert!(
        seen.iter().any(|line| line.contains(" 001 blank ")),
        "{seen:?}"
    );
    assert_eq!(
        seen[seen.len() - 2..],
        [
            "PING :irc.test",
            "ERROR :Closing link: no answer to PING in time"
        ],
        "saw {seen:?}"
    );
}
