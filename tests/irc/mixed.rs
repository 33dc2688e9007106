//! A line-protocol user and an IRC user in the same rooms, by private message, and seeing
//! each other come and go.

use super::raw::{Raw, bob_and_ann_in_dev, server};
use crate::support::Server;

#[tokio::test]
async fn a_line_user_and_an_irc_user_talk_in_a_room_and_in_private() {
    let server = server();
    let mut bob = server.guest("bob").await;
    let mut ann = Raw::guest(&server, "ann").await;
    bob.expect("NOTICE ONLINE ann").await;

    // An IRC JOIN of a room that does not exist creates it, as CR does.
    ann.send("JOIN #lobby").await;
    ann.expect(":ann!ann@linechat JOIN #lobby").await;
    ann.expect(":irc.test 353 ann = #lobby :ann").await;
    ann.expect(":irc.test 366 ann #lobby :End of /NAMES list")
        .await;
    bob.expect("NOTICE ROOM lobby ann").await;
    bob.join("lobby", &mut []).await;
    ann.expect(":bob!bob@linechat JOIN #lobby").await;

    bob.check("RM lobby hi", "OK RM lobby").await;
    ann.expect(":bob!bob@linechat PRIVMSG #lobby :hi").await;
    ann.send("PRIVMSG #lobby :hello bob").await;
    bob.expect("RM lobby ann hello bob").await;
    ann.send("PRIVMSG #lobby :\u{1}ACTION waves\u{1}").await;
    bob.expect("RM lobby ann /me waves").await;
    bob.check("RM lobby /me waves back", "OK RM lobby").await;
    ann.expect(":bob!bob@linechat PRIVMSG #lobby :\u{1}ACTION waves back\u{1}")
        .await;

    bob.check("PM ann psst", "OK PM ann").await;
    ann.expect(":bob!bob@linechat PRIVMSG ann :psst").await;
    ann.send("PRIVMSG bob :psst back").await;
    bob.expect("PM ann psst back").await;

    bob.check("MSG all of you", "OK MSG").await;
    ann.expect(":bob!bob@linechat PRIVMSG #global :all of you")
        .await;
    ann.send("PRIVMSG #global :and you").await;
    bob.expect("MSG ann and you").await;

    ann.send("NAMES #lobby").await;
    ann.expect(":irc.test 353 ann = #lobby :ann bob").await;
    ann.expect(":irc.test 366 ann #lobby :End of /NAMES list")
        .await;
    ann.send("WHO #lobby").await;
    ann.expect(":irc.test 352 ann #lobby ann linechat irc.test ann H :0 ann")
        .await;
    ann.expect(":irc.test 352 ann #lobby bob linechat irc.test bob H :0 bob")
        .await;
    ann.expect(":irc.test 315 ann #lobby :End of /WHO list")
        .await;

    // Leaving: a PART for the other, then a QUIT when the line user goes.
    ann.send("PART #lobby :later").await;
    ann.expect(":ann!ann@linechat PART #lobby :later").await;
    bob.expect("LR lobby ann").await;
    ann.send("JOIN #lobby").await;
    ann.until(" 366 ann #lobby ").await;
    // Joining again replays what was said.
    let replayed = ann.caught_up().await;
    assert!(
        replayed.iter().any(|line| line.ends_with("] hello bob")),
        "{replayed:?}"
    );
    bob.expect("JR lobby ann").await;
    bob.quit_with("QUIT gone fishing").await;
    // The room and the directory each say their part, in either order (protocol.md §6).
    let mut parting = [ann.line().await, ann.line().await];
    parting.sort();
    assert_eq!(
        parting,
        [
            ":bob!bob@linechat PART #lobby",
            ":bob!bob@linechat QUIT :Quit: gone fishing"
        ]
    );

    // And the IRC user's QUIT, as the line protocol shows it.
    let mut carol = server.guest("carol").await;
    ann.expect(":carol!carol@linechat JOIN #global").await;
    carol.join("lobby", &mut []).await;
    ann.expect(":carol!carol@linechat JOIN #lobby").await;
    ann.send("QUIT :bye").await;
    carol
        .expect_unordered(&["LR lobby ann", "NOTICE OFFLINE ann QUIT bye"])
        .await;
}

#[tokio::test]
async fn joining_replays_recent_history_and_server_time_tags_it() {
    let server = server();
    let mut bob = server.guest("bob").await;
    bob.create_room("dev", &mut []).await;
    bob.check("RM dev first", "OK RM dev").await;
    bob.check("RM dev second", "OK RM dev").await;
    let mut ann = Raw::connect(&server).await;
    ann.send("CAP LS").await;
    ann.send("CAP REQ server-time").await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :a").await;
    ann.send("CAP END").await;
    ann.until(" 366 ann #global ").await;
    ann.send("JOIN #dev").await;
    ann.until(" 366 ann #dev ").await;
    let first = ann.line().await;
    assert!(first.starts_with("@time=20"), "{first}");
    assert!(
        first.ends_with(" :bob!bob@linechat PRIVMSG #dev :first"),
        "{first}"
    );
    let second = ann.line().await;
    assert!(
        second.ends_with(" :bob!bob@linechat PRIVMSG #dev :second"),
        "{second}"
    );
}

#[tokio::test]
async fn a_guest_changes_nick_and_keeps_its_rooms() {
    let server = server();
    let (mut bob, mut ann) = bob_and_ann_in_dev(&server).await;
    ann.send("NICK anna").await;
    ann.expect(":ann!ann@linechat NICK :anna").await;
    bob.expect_unordered(&[
        "LR dev ann",
        "JR dev anna",
        "NOTICE OFFLINE ann QUIT now known as anna",
        "NOTICE ONLINE anna",
    ])
    .await;
    bob.check("RM dev still here?", "OK RM dev").await;
    ann.expect(":bob!bob@linechat PRIVMSG #dev :still here?")
        .await;
    ann.send("NICK bob").await;
    assert!(ann.line().await.starts_with(":irc.test 433 anna bob :"));
}

#[tokio::test]
async fn an_away_message_reaches_senders_on_either_port() {
    let server = server();
    let mut bob = server.guest("bob").await;
    let mut ann = Raw::guest(&server, "ann").await;
    bob.expect("NOTICE ONLINE ann").await;

    // Set on IRC, told to a line user.
    ann.send("AWAY :out for a walk").await;
    ann.expect(":irc.test 306 ann :You have been marked as being away")
        .await;
    bob.check("PM ann hi", "OK PM ann away: out for a walk")
        .await;
    ann.expect(":bob!bob@linechat PRIVMSG ann :hi").await;

    // Set on the line port, told to an IRC user as 301; a NOTICE gets no answer.
    bob.check("AWAY in a meeting", "OK AWAY").await;
    ann.send("PRIVMSG bob :ping").await;
    ann.expect(":irc.test 301 ann bob :in a meeting").await;
    bob.expect("PM ann ping").await;
    ann.send("NOTICE bob :fyi").await;
    bob.expect("PM ann fyi").await;
    assert!(ann.caught_up().await.is_empty());

    ann.send("AWAY").await;
    ann.expect(":irc.test 305 ann :You are no longer marked as being away")
        .await;
    bob.check("PM ann back?", "OK PM ann").await;
    ann.expect(":bob!bob@linechat PRIVMSG ann :back?").await;
}
