//! The idle watch on the IRC port: a registered client that says nothing is sent
//! `PING :<server>`, and closed if nothing answers it in time.

use super::raw::server_with;
use crate::support::blank_lines_until_closed;

#[tokio::test]
async fn blank_lines_do_not_keep_an_idle_client_connected() {
    let server = server_with(|settings| {
        settings.idle_ping_secs = 1;
        settings.idle_timeout_secs = 1;
    });
    // A blank line every 200 ms, for longer than the PING and its timeout take: it gets no
    // answer, so it is no answer to the PING either.
    let login = b"NICK blank\r\nUSER blank 0 * :blank\r\n";
    let (closed, seen) = blank_lines_until_closed(server.irc_addr.unwrap(), login, b"\r\n").await;
    assert!(closed, "still connected after 8 s; saw {seen:?}");
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
