//! Bad input on the IRC port: an IRC error for the sender, nothing for anyone else.

use super::raw::{Raw, bob_and_ann_in_dev, server};
use crate::support::Server;

#[tokio::test]
async fn overlong_lines_garbage_and_bytes_one_at_a_time_hurt_nobody() {
    let server = server();
    let mut bob = server.guest("bob").await;
    bob.create_room("dev", &mut []).await;

    // Registration a byte at a time, with bare LFs.
    let mut ann = Raw::connect(&server).await;
    for byte in b"NICK ann\nUSER ann 0 * :Ann\nJOIN #dev\n" {
        ann.send_raw(&[*byte]).await;
    }
    ann.until(" 366 ann #dev ").await;
    bob.expect("NOTICE ONLINE ann").await;
    bob.expect("JR dev ann").await;

    // 511 bytes and LF is 512: accepted. One more is too long.
    let fits = format!("PRIVMSG #dev :{}", "x".repeat(511 - 14));
    assert_eq!(fits.len(), 511);
    ann.send_raw(format!("{fits}\n").as_bytes()).await;
    bob.expect(&format!("RM dev ann {}", "x".repeat(511 - 14)))
        .await;
    ann.send_raw(format!("{fits}x\n").as_bytes()).await;
    ann.expect(":irc.test 417 ann :Input line was too long")
        .await;
    ann.send_raw(&[b'y'; 5000]).await;
    ann.send_raw(b"\r\n").await;
    ann.expect(":irc.test 417 ann :Input line was too long")
        .await;

    // Not UTF-8, control characters, empty lines, lone tags and sources.
    ann.send_raw(b"PRIVMSG #dev :\xff\xfe\r\n").await;
    ann.expect(":irc.test NOTICE ann :lines must be UTF-8 text; the line was dropped")
        .await;
    ann.send("PRIVMSG #dev :bell\u{7}").await;
    assert!(
        ann.line()
            .await
            .starts_with(":irc.test NOTICE ann :message not sent: ")
    );
    ann.send_raw(b"\r\n\n   \r\n@a=b\r\n:src\r\n\0\0\0\r\n%%% \x01\r\n")
        .await;
    ann.expect(":irc.test 421 ann %%% :Unknown command").await;
    assert!(ann.caught_up().await.is_empty());

    // Nothing of that reached bob, and the room still works both ways.
    bob.check("RM dev still fine", "OK RM dev").await;
    ann.expect(":bob!bob@linechat PRIVMSG #dev :still fine")
        .await;
    ann.send("PRIVMSG #dev :and back").await;
    bob.expect("RM dev ann and back").await;
}

#[tokio::test]
async fn a_long_line_protocol_message_reaches_irc_in_several_lines() {
    let server = server();
    let (mut bob, mut ann) = bob_and_ann_in_dev(&server).await;
    let text = "long ".repeat(300);
    bob.check(&format!("RM dev {}", text.trim_end()), "OK RM dev")
        .await;
    let mut said = Vec::new();
    while said.join(" ").len() < text.trim_end().len() {
        let line = ann.line().await;
        let (head, piece) = line.split_once(" :").unwrap();
        assert_eq!(head, ":bob!bob@linechat PRIVMSG #dev");
        said.push(piece.to_owned());
    }
    assert!(said.len() > 1);
    assert_eq!(said.join(" "), text.trim_end());
}
