//! Registration and the numeric replies, by hand-written lines.

use super::raw::{Raw, server, server_with};
use crate::support::Server;

#[tokio::test]
async fn registration_gives_the_welcome_isupport_motd_and_global() {
    let server = server();
    let mut irc = Raw::connect(&server).await;
    irc.send("CAP LS 302").await;
    irc.expect(":irc.test CAP * LS :sasl=PLAIN server-time")
        .await;
    irc.send("NICK ann").await;
    irc.send("USER ann 0 * :Ann").await;
    // Registration waits for the end of capability negotiation.
    irc.send("CAP REQ :server-time bogus").await;
    irc.expect(":irc.test CAP ann NAK :server-time bogus").await;
    irc.send("CAP REQ :server-time").await;
    irc.expect(":irc.test CAP ann ACK :server-time").await;
    irc.send("CAP END").await;
    irc.expect(":irc.test 001 ann :Welcome to the linechat IRC network, ann")
        .await;
    irc.until(" 004 ann irc.test ").await;
    let isupport = irc.until(" 005 ann ").await;
    for token in [
        "CHANTYPES=#",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "CASEMAPPING=ascii",
        "PREFIX=",
        "TARGMAX=",
        "NETWORK=linechat",
    ] {
        assert!(isupport.contains(token), "{token} in {isupport}");
    }
    irc.until(" 375 ann ").await;
    irc.until(" 376 ann ").await;
    irc.expect(":ann!ann@linechat JOIN #global").await;
    irc.expect(":irc.test 353 ann = #global :ann").await;
    irc.expect(":irc.test 366 ann #global :End of /NAMES list")
        .await;
    irc.send("CAP LIST").await;
    irc.expect(":irc.test CAP ann LIST :server-time").await;
}

#[tokio::test]
async fn commands_before_registration_and_bad_ones_get_their_numerics() {
    let server = server();
    let mut irc = Raw::connect(&server).await;
    irc.send("JOIN #lobby").await;
    irc.expect(":irc.test 451 * :You have not registered").await;
    irc.send("NICK").await;
    irc.expect(":irc.test 431 * :No nickname given").await;
    irc.send("NICK bad.nick").await;
    assert!(irc.line().await.starts_with(":irc.test 432 * bad.nick :"));
    irc.send("USER ann").await;
    irc.expect(":irc.test 461 * USER :Not enough parameters")
        .await;
    irc.send("BOGUS").await;
    irc.expect(":irc.test 421 * BOGUS :Unknown command").await;
    irc.send("PING :hello").await;
    irc.expect(":irc.test PONG irc.test :hello").await;
    irc.send("NICK ann").await;
    irc.send("USER ann 0 * :Ann").await;
    irc.until(" 366 ann #global ").await;
    irc.send("USER ann 0 * :Ann").await;
    irc.expect(":irc.test 462 ann :You may not reregister")
        .await;
    irc.send("PRIVMSG").await;
    irc.expect(":irc.test 411 ann :No recipient given (PRIVMSG)")
        .await;
    irc.send("PRIVMSG nobody").await;
    irc.expect(":irc.test 412 ann :No text to send").await;
    irc.send("PRIVMSG nobody :hi").await;
    irc.expect(":irc.test 401 ann nobody :No such nick/channel")
        .await;
    irc.send("PRIVMSG #nowhere :hi").await;
    irc.expect(":irc.test 403 ann #nowhere :No such channel")
        .await;
    irc.send("PART #nowhere").await;
    assert!(irc.line().await.starts_with(":irc.test 403 ann #nowhere :"));
    irc.send("JOIN #bad.name").await;
    assert!(
        irc.line()
            .await
            .starts_with(":irc.test 403 ann #bad.name :")
    );
    irc.send("NOTICE nobody :notices get no errors").await;
    irc.send("MODE #global").await;
    irc.expect(":irc.test 324 ann #global :+n").await;
    irc.send("MODE ann").await;
    irc.expect(":irc.test 221 ann :+").await;
    irc.send("TOPIC #global").await;
    irc.expect(":irc.test 331 ann #global :No topic is set")
        .await;
    irc.send("AWAY :lunch").await;
    irc.expect(":irc.test 306 ann :You have been marked as being away")
        .await;
    irc.send("AWAY").await;
    irc.expect(":irc.test 305 ann :You are no longer marked as being away")
        .await;
    irc.send("ISON ann nobody").await;
    irc.expect(":irc.test 303 ann :ann").await;
    irc.send("USERHOST ann").await;
    irc.expect(":irc.test 302 ann :ann=+ann@linechat").await;
    assert!(irc.caught_up().await.is_empty());
    irc.send("QUIT :done").await;
    assert_eq!(
        irc.until_closed().await,
        ["ERROR :Closing link: Quit: done"]
    );
}

#[tokio::test]
async fn a_room_someone_else_is_in_is_not_yours_to_talk_or_leave() {
    let server = server();
    let mut line = server.guest("bob").await;
    line.create_room("dev", &mut []).await;
    let mut irc = Raw::guest(&server, "ann").await;
    irc.send("PRIVMSG #dev :hi").await;
    irc.expect(":irc.test 404 ann #dev :Cannot send to channel: you are not in it")
        .await;
    irc.send("PART #dev").await;
    irc.expect(":irc.test 442 ann #dev :You're not on that channel")
        .await;
    irc.send("TOPIC #dev :new").await;
    irc.expect(":irc.test 442 ann #dev :You're not on that channel")
        .await;
}

#[tokio::test]
async fn a_nick_in_use_is_433_and_the_client_may_pick_another() {
    let server = server();
    let _bob = server.guest("bob").await;
    let mut irc = Raw::connect(&server).await;
    irc.send("NICK bob").await;
    irc.send("USER x 0 * :x").await;
    assert!(irc.line().await.starts_with(":irc.test 433 * bob :"));
    irc.send("NICK bob_").await;
    irc.expect(":irc.test 001 bob_ :Welcome to the linechat IRC network, bob_")
        .await;
}

#[tokio::test]
async fn accounts_log_in_with_pass_or_sasl_plain_and_a_wrong_password_is_refused() {
    let server = server();
    server.register("carol", "s3cret").await.quit().await;
    // A registered nick without its password is taken.
    let mut irc = Raw::connect(&server).await;
    irc.send("NICK carol").await;
    irc.send("USER carol 0 * :c").await;
    assert!(irc.line().await.starts_with(":irc.test 433 * carol :"));
    drop(irc);

    let mut wrong = Raw::connect(&server).await;
    wrong.send("PASS nope").await;
    wrong.send("NICK carol").await;
    wrong.send("USER carol 0 * :c").await;
    assert_eq!(
        wrong.until_closed().await,
        [
            ":irc.test 464 carol :Password incorrect",
            "ERROR :Closing link: Bad password"
        ]
    );

    let mut pass = Raw::connect(&server).await;
    pass.send("PASS s3cret").await;
    pass.send("NICK carol").await;
    pass.send("USER carol 0 * :c").await;
    pass.expect(":irc.test 001 carol :Welcome to the linechat IRC network, carol")
        .await;
    pass.send("QUIT").await;
    pass.until_closed().await;

    // SASL PLAIN: base64 of "\0carol\0s3cret"; the nick asked for gives way to the account's.
    let mut sasl = Raw::connect(&server).await;
    sasl.send("CAP LS 302").await;
    sasl.send("NICK whoever").await;
    sasl.send("USER c 0 * :c").await;
    sasl.send("CAP REQ :sasl").await;
    sasl.until("CAP whoever ACK :sasl").await;
    sasl.send("AUTHENTICATE PLAIN").await;
    sasl.expect("AUTHENTICATE +").await;
    sasl.send("AUTHENTICATE AGNhcm9sAHMzY3JldA==").await;
    sasl.expect(":irc.test 900 carol carol!carol@linechat carol :You are now logged in as carol")
        .await;
    sasl.expect(":irc.test 903 carol :SASL authentication successful")
        .await;
    sasl.send("CAP END").await;
    sasl.expect(":irc.test 001 carol :Welcome to the linechat IRC network, carol")
        .await;
}

#[tokio::test]
async fn without_guests_a_nick_alone_is_refused() {
    let server = server_with(|settings| settings.allow_guests = false);
    let mut irc = Raw::connect(&server).await;
    irc.send("NICK ann").await;
    irc.send("USER ann 0 * :a").await;
    assert_eq!(
        irc.until_closed().await,
        [
            ":irc.test 464 ann :Password required",
            "ERROR :Closing link: guests are not allowed here; log in with PASS or SASL"
        ]
    );
}

#[tokio::test]
async fn clients_joining_a_new_channel_at_once_all_get_in() {
    let server = server();
    let mut clients = Vec::new();
    for i in 0..8 {
        clients.push(Raw::guest(&server, &format!("racer{i}")).await);
    }
    // All at once: while the first JOIN's room is being stored, the others find it neither
    // there nor free to create.
    for irc in &mut clients {
        irc.send_raw(b"JOIN #race\r\n").await;
    }
    for (i, irc) in clients.iter_mut().enumerate() {
        let answer = loop {
            let line = irc.line().await;
            assert!(!line.is_empty(), "racer{i} was closed");
            if line.contains(" 366 ") && line.contains(" #race ") || line.contains(" 403 ") {
                break line;
            }
        };
        assert_eq!(
            answer,
            format!(":irc.test 366 racer{i} #race :End of /NAMES list")
        );
    }
}
