//! Private messages from IRC users: sent on without waiting for the directory once the
//! recipient's handle is kept, yet delivered in order, with every numeric in its place.

use super::raw::{Raw, server_with};
use crate::support::Server;

#[tokio::test]
async fn a_burst_of_private_messages_arrives_in_order_with_its_numerics_in_place() {
    let server = server_with(|settings| settings.flood_lines_per_sec = 0);
    let mut ann = Raw::guest(&server, "ann").await;
    let mut bob = Raw::guest(&server, "bob").await;
    ann.until(":bob!bob@linechat JOIN #global").await;
    let mut carol = server.guest("carol").await;
    ann.until(":carol!carol@linechat JOIN #global").await;
    bob.until(":carol!carol@linechat JOIN #global").await;

    // One write: the server reads the whole burst before answering any of it. Messages to
    // someone unknown and a PING are answered among them, each in its place.
    let mut burst = String::new();
    for n in 0..600 {
        burst.push_str(&format!("PRIVMSG bob :m{n}\r\n"));
        if n % 200 == 100 {
            burst.push_str(&format!("PRIVMSG nobody{n} :lost\r\n"));
            burst.push_str(&format!("PING :p{n}\r\n"));
            burst.push_str(&format!("PRIVMSG carol :c{n}\r\n"));
        }
    }
    ann.send_raw(burst.as_bytes()).await;
    for n in [100, 300, 500] {
        ann.expect(&format!(
            ":irc.test 401 ann nobody{n} :No such nick/channel"
        ))
        .await;
        ann.expect(&format!(":irc.test PONG irc.test :p{n}")).await;
    }
    assert_eq!(ann.caught_up().await, Vec::<String>::new());
    for n in 0..600 {
        bob.expect(&format!(":ann!ann@linechat PRIVMSG bob :m{n}"))
            .await;
    }
    for n in [100, 300, 500] {
        carol.expect(&format!("PM ann c{n}")).await;
    }
}

#[tokio::test]
async fn a_nick_that_left_between_two_messages_gets_401_and_one_back_gets_the_next() {
    let server = server_with(|_| {});
    let mut ann = Raw::guest(&server, "ann").await;
    let mut bob = Raw::guest(&server, "bob").await;
    ann.until(":bob!bob@linechat JOIN #global").await;

    // The first message goes through the directory, which hands bob's handle over; the
    // second goes straight to bob.
    ann.send("PRIVMSG bob :one").await;
    ann.send("PRIVMSG bob :two").await;
    bob.expect(":ann!ann@linechat PRIVMSG bob :one").await;
    bob.expect(":ann!ann@linechat PRIVMSG bob :two").await;

    // bob leaves and comes back on a new connection: the handle ann kept is stale, and the
    // next message finds the new bob through the directory.
    bob.send("QUIT :brb").await;
    bob.until_closed().await;
    ann.expect(":bob!bob@linechat QUIT :Quit: brb").await;
    let mut bob = Raw::guest(&server, "bob").await;
    ann.expect(":bob!bob@linechat JOIN #global").await;
    ann.send("PRIVMSG bob :three").await;
    ann.send("PRIVMSG bob :four").await;
    bob.expect(":ann!ann@linechat PRIVMSG bob :three").await;
    bob.expect(":ann!ann@linechat PRIVMSG bob :four").await;

    // bob leaves for good between two messages: the next one is a 401, in order with what
    // follows it; a NOTICE to him gets no answer.
    bob.send("QUIT").await;
    bob.until_closed().await;
    ann.expect(":bob!bob@linechat QUIT :Quit").await;
    ann.send("PRIVMSG bob :five").await;
    ann.send("NOTICE bob :six").await;
    ann.send("PRIVMSG nobody :seven").await;
    ann.expect(":irc.test 401 ann bob :No such nick/channel")
        .await;
    ann.expect(":irc.test 401 ann nobody :No such nick/channel")
        .await;
    assert_eq!(ann.caught_up().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_room_message_reaches_every_irc_member_in_order_and_joins_are_not_echoed_twice() {
    let server = server_with(|settings| settings.flood_lines_per_sec = 0);
    let mut ann = Raw::guest(&server, "ann").await;
    let mut bob = Raw::guest(&server, "bob").await;
    ann.until(":bob!bob@linechat JOIN #global").await;
    let mut dan = server.guest("dan").await;
    ann.until(":dan!dan@linechat JOIN #global").await;
    bob.until(":dan!dan@linechat JOIN #global").await;
    ann.send("JOIN #lobby").await;
    ann.until(" 366 ann #lobby ").await;
    bob.send("JOIN #lobby").await;
    bob.until(" 366 bob #lobby ").await;
    ann.until(":bob!bob@linechat JOIN #lobby").await;
    dan.skip_until("NOTICE ROOM lobby ann").await;
    dan.join("lobby", &mut []).await;
    ann.expect(":dan!dan@linechat JOIN #lobby").await;
    bob.until(":dan!dan@linechat JOIN #lobby").await;

    // A third IRC user joins: the others see it, and the joiner only its own echo.
    let mut cat = Raw::guest(&server, "cat").await;
    ann.until(":cat!cat@linechat JOIN #global").await;
    bob.until(":cat!cat@linechat JOIN #global").await;
    dan.skip_until("NOTICE ONLINE cat").await;
    cat.send("JOIN #lobby").await;
    cat.expect(":cat!cat@linechat JOIN #lobby").await;
    cat.until(" 366 cat #lobby ").await;
    ann.expect(":cat!cat@linechat JOIN #lobby").await;
    bob.expect(":cat!cat@linechat JOIN #lobby").await;
    dan.expect("JR lobby cat").await;
    assert_eq!(cat.caught_up().await, Vec::<String>::new());

    let mut burst = String::new();
    for n in 0..300 {
        burst.push_str(&format!("PRIVMSG #lobby :m{n}\r\n"));
    }
    ann.send_raw(burst.as_bytes()).await;
    for n in 0..300 {
        let line = format!(":ann!ann@linechat PRIVMSG #lobby :m{n}");
        bob.expect(&line).await;
        cat.expect(&line).await;
        dan.expect(&format!("RM lobby ann m{n}")).await;
    }
    // The sender is not sent its own messages.
    assert_eq!(ann.caught_up().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_message_to_an_offline_account_is_kept_and_the_sender_told_so() {
    let server = server_with(|_| {});
    let carol = server.register("carol", "secret-words").await;
    carol.quit().await;
    let mut ann = Raw::guest(&server, "ann").await;
    ann.send("PRIVMSG carol :see you").await;
    ann.expect(
        ":irc.test NOTICE ann :carol is offline; they will get your message when they log in",
    )
    .await;
    // What waited is handed over before the login's answer.
    let mut carol = server.connect().await;
    carol.send("LOGIN carol secret-words").await;
    carol.expect("PM ann see you").await;
    carol.expect("OK LOGIN carol").await;
}
