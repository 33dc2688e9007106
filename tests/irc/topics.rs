//! Room topics on IRC: `TOPIC` to read and set them, `332`/`333` on `JOIN`, topics in `LIST`,
//! and a topic set on either port shown on the other.

use irc::client::prelude::{Command, Response};

use super::client::{connect, is_end_of_names, next};
use super::raw::{Raw, server};
use crate::support::Server;

/// `:irc.test 333 <nick> <channel> <setter> <unix seconds>`, with a time of the last minute.
fn assert_set_by(line: &str, nick: &str, channel: &str, setter: &str) {
    let prefix = format!(":irc.test 333 {nick} {channel} {setter} ");
    let at: u64 = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line:?} is not {prefix:?}<time>"))
        .parse()
        .expect("Unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(at <= now && now - at < 60, "{line}");
}

#[tokio::test]
async fn a_topic_set_on_either_port_shows_on_both() {
    let server = server();
    let mut bob = server.guest("bob").await;
    bob.create_room("Dev", &mut []).await;
    bob.check("TOPIC dev from the line port", "OK TOPIC Dev")
        .await;
    let mut ann = Raw::guest(&server, "ann").await;
    bob.expect("NOTICE ONLINE ann").await;

    // Joining shows the topic, then the names.
    ann.send("JOIN #dev").await;
    ann.expect(":ann!ann@linechat JOIN #Dev").await;
    ann.expect(":irc.test 332 ann #Dev :from the line port")
        .await;
    assert_set_by(&ann.line().await, "ann", "#Dev", "bob");
    ann.expect(":irc.test 353 ann = #Dev :ann bob").await;
    bob.expect("JR Dev ann").await;
    ann.send("TOPIC #dev").await;
    ann.until(" 332 ann #Dev :from the line port").await;
    assert_set_by(&ann.line().await, "ann", "#Dev", "bob");

    // Set on IRC, formatting removed: every member sees it, as its own port shows it.
    ann.send("TOPIC #dev :\u{2}release\u{2} on  Friday").await;
    ann.until(":ann!ann@linechat TOPIC #Dev :release on  Friday")
        .await;
    bob.expect("NOTICE TOPIC Dev ann release on  Friday").await;
    bob.check("TOPIC Dev back to the line", "OK TOPIC Dev")
        .await;
    ann.expect(":bob!bob@linechat TOPIC #Dev :back to the line")
        .await;

    // LIST shows it.
    ann.send("LIST").await;
    ann.until(" 322 ann #global ").await;
    ann.expect(":irc.test 322 ann #Dev 2 :back to the line")
        .await;
    ann.expect(":irc.test 323 ann :End of /LIST").await;

    // Longer than TOPICLEN: cut, as IRC servers do.
    ann.send(&format!("TOPIC #dev :{}", "é".repeat(200))).await;
    let cut = "é".repeat(150);
    ann.expect(&format!(":ann!ann@linechat TOPIC #Dev :{cut}"))
        .await;
    bob.expect(&format!("NOTICE TOPIC Dev ann {cut}")).await;

    // Cleared with an empty text: the line port is told without one.
    ann.send("TOPIC #Dev :").await;
    ann.expect(":ann!ann@linechat TOPIC #Dev :").await;
    bob.expect("NOTICE TOPIC Dev ann").await;
    bob.check("TOPIC dev", "TOPIC Dev").await;
    ann.send("TOPIC #dev").await;
    ann.expect(":irc.test 331 ann #Dev :No topic is set").await;

    // #global has none, and none can be set; no such channel is 403.
    ann.send("TOPIC #global :x").await;
    ann.expect(":irc.test 482 ann #global :#global has no topic to set")
        .await;
    ann.send("TOPIC #nope").await;
    ann.expect(":irc.test 403 ann #nope :No such channel").await;
    ann.send("TOPIC #nope :x").await;
    ann.expect(":irc.test 403 ann #nope :No such channel").await;
    assert!(ann.caught_up().await.is_empty());
    bob.expect_caught_up().await;
}

#[tokio::test]
async fn isupport_says_how_long_a_topic_may_be() {
    let server = server();
    let mut ann = Raw::connect(&server).await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :ann").await;
    let isupport = ann.until(" 005 ann ").await;
    assert!(isupport.contains(" TOPICLEN=300 "), "{isupport}");
}

/// The `irc` crate: its `send_topic`, and the `TOPIC` another IRC user's client receives.
#[tokio::test]
async fn the_irc_crate_sets_a_topic_another_irc_client_sees() {
    let server = server();
    let (ann, mut ann_stream) = connect(&server, "ann", &["#dev"]).await;
    next(&mut ann_stream, is_end_of_names("#dev")).await;
    let (cid, mut cid_stream) = connect(&server, "cid", &["#dev"]).await;
    next(&mut cid_stream, is_end_of_names("#dev")).await;
    next(&mut ann_stream, |m| matches!(m.command, Command::JOIN(..))).await;
    ann.send_topic("#dev", "set with the irc crate").unwrap();
    let topic = next(&mut cid_stream, |m| matches!(m.command, Command::TOPIC(..))).await;
    assert_eq!(topic.source_nickname(), Some("ann"));
    assert_eq!(
        topic.command,
        Command::TOPIC("#dev".into(), Some("set with the irc crate".into()))
    );
    // The setter sees it too, as IRC servers echo it.
    let echo = next(&mut ann_stream, |m| matches!(m.command, Command::TOPIC(..))).await;
    assert_eq!(echo.command, topic.command);
    cid.send_topic("#dev", "").unwrap();
    let shown = next(&mut cid_stream, |m| {
        matches!(m.command, Command::Response(Response::RPL_TOPIC, _))
    })
    .await;
    assert_eq!(
        shown.command,
        Command::Response(
            Response::RPL_TOPIC,
            vec!["cid".into(), "#dev".into(), "set with the irc crate".into()]
        )
    );
    ann.send_quit("").unwrap();
    cid.send_quit("").unwrap();
}
