//! The longest IRC line a client may send: 512 bytes with its line ending, whichever ending
//! it is (protocol.md §12).

use super::raw::{bob_and_ann_in_dev, server};

/// `PRIVMSG #dev :` and then `x`s, `total` bytes in all before the line ending.
fn privmsg_of(total: usize) -> (String, String) {
    let head = "PRIVMSG #dev :";
    let text = "x".repeat(total - head.len());
    (format!("{head}{text}"), text)
}

#[tokio::test]
async fn a_line_is_at_most_512_bytes_with_its_cr_lf_or_its_lf() {
    let server = server();
    let (mut bob, mut ann) = bob_and_ann_in_dev(&server).await;
    let too_long = ":irc.test 417 ann :Input line was too long";

    // 510 bytes and CR LF are 512: delivered. 511 and CR LF are 513: too long.
    let (fits, text) = privmsg_of(510);
    ann.send_raw(format!("{fits}\r\n").as_bytes()).await;
    bob.expect(&format!("RM dev ann {text}")).await;
    let (over, _) = privmsg_of(511);
    ann.send_raw(format!("{over}\r\n").as_bytes()).await;
    ann.expect(too_long).await;

    // 511 bytes and LF are 512: delivered. 512 and LF are 513: too long.
    let (fits, text) = privmsg_of(511);
    ann.send_raw(format!("{fits}\n").as_bytes()).await;
    bob.expect(&format!("RM dev ann {text}")).await;
    let (over, _) = privmsg_of(512);
    ann.send_raw(format!("{over}\n").as_bytes()).await;
    ann.expect(too_long).await;

    // Nothing of the refused lines reached the room, and the connection goes on.
    assert!(ann.caught_up().await.is_empty());
    bob.expect_caught_up().await;
    ann.send("PRIVMSG #dev :still here").await;
    bob.expect("RM dev ann still here").await;
}
