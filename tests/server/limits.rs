//! The limits of issue "hard to knock over": flood control, connection limits, login
//! throttling, idle detection, sizes, and the TLS listener. The tests that check a log line
//! run the binary; the others run the server in this process.

use std::time::Duration;

use crate::support::tls::TlsServer;
use crate::support::{Client, Server, ServerProcess, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_flood_is_dropped_line_by_line_then_disconnected() {
    let server = ServerProcess::start_with(
        &[],
        &[
            ("LINECHAT_FLOOD_LINES_PER_SEC", "1"),
            ("LINECHAT_FLOOD_BURST", "5"),
            ("LINECHAT_FLOOD_KICK_AFTER", "10"),
        ],
    );
    let [mut watcher, mut flooder] = server.guests(["watcher", "flooder"]).await;
    // The login used one line of the burst of five.
    let burst: String = (0..30).map(|i| format!("PING {i}\n")).collect();
    flooder.send_raw(burst.as_bytes()).await;
    for i in 0..4 {
        flooder.expect(&format!("PONG {i}")).await;
    }
    for _ in 0..9 {
        flooder
            .expect("ERR FLOOD over 1 lines per second; the line was dropped")
            .await;
    }
    let rest = flooder.expect_closed().await;
    assert_eq!(
        rest,
        ["NOTICE CLOSING FLOOD too many lines over the rate limit"]
    );
    watcher.expect("NOTICE OFFLINE flooder FLOODING").await;
    server.wait_for_log("disconnected: flooding");
}

#[tokio::test]
async fn a_paced_client_is_never_limited() {
    let server = TestServer::with(|settings| {
        settings.flood_lines_per_sec = 50;
        settings.flood_burst = 5;
    });
    let mut client = server.guest("steady").await;
    for i in 0..40 {
        assert_eq!(client.ask(&format!("PING {i}")).await, format!("PONG {i}"));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_refused_and_others_carry_on() {
    let server = ServerProcess::start_with(&[], &[("LINECHAT_MAX_CONNECTIONS_PER_IP", "3")]);
    let mut first = server.guest("first").await;
    let _second = server.connect().await;
    let _third = server.connect().await;
    let mut refused = Client::connect(server.addr).await;
    assert_eq!(
        refused.expect_closed().await,
        ["ERR TOO_MANY_CONNECTIONS too many connections from your address (3)"]
    );
    server.wait_for_log("connection refused");
    // Another address is not affected, and the first user never noticed.
    Client::greeted_from("127.0.0.2", server.addr).await;
    assert_eq!(first.ask("PING still here").await, "PONG still here");
    // A freed slot can be used again.
    drop(_third);
    server.connect_once_free().await;
}

#[tokio::test]
async fn the_total_connection_limit_refuses_newcomers() {
    let server = TestServer::with(|settings| settings.max_connections = 2);
    let mut a = server.guest("a").await;
    let _b = Client::connect_from("127.0.0.3", server.addr).await;
    let mut refused = Client::connect_from("127.0.0.4", server.addr).await;
    assert_eq!(
        refused.expect_closed().await,
        ["ERR TOO_MANY_CONNECTIONS the server is full (2 connections); try again later"]
    );
    assert_eq!(a.ask("PING 1").await, "PONG 1");
}

#[tokio::test]
async fn failed_logins_are_throttled_without_hurting_others() {
    let server = ServerProcess::start_with(
        &[],
        &[
            ("LINECHAT_LOGIN_FAILURES_PER_ACCOUNT", "2"),
            ("LINECHAT_LOGIN_FAILURES_PER_IP", "100"),
        ],
    );
    server.register("vault", "s3cret").await.quit().await;
    let mut guesser = server.connect().await;
    for _ in 0..2 {
        assert_eq!(
            guesser.ask("LOGIN vault guess").await,
            "ERR BAD_PASSWORD wrong name or password"
        );
    }
    let throttled = guesser.ask("LOGIN vault s3cret").await;
    assert!(
        throttled.starts_with("ERR TOO_MANY_ATTEMPTS too many failed attempts; try again in "),
        "{throttled}"
    );
    server.wait_for_log("login throttled");
    // Other accounts and chat are unaffected.
    let mut chat = server.guest("chatter").await;
    assert_eq!(chat.ask("PING ok").await, "PONG ok");
    assert_eq!(guesser.ask("NICK visitor").await, "OK NICK visitor");
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_disconnected_unless_it_answers() {
    let server = TestServer::paused(|settings| {
        settings.idle_ping_secs = 1;
        settings.idle_timeout_secs = 1;
    })
    .await;
    let logged_in = tokio::time::Instant::now();
    let [mut answering, mut silent] = server.guests(["answering", "silent"]).await;
    assert_eq!(silent.line().await, "PING idle");
    assert_eq!(answering.line().await, "PING idle");
    let pinged = logged_in.elapsed();
    assert!(
        pinged >= Duration::from_secs(1) && pinged < Duration::from_millis(1100),
        "PING after {pinged:?} of silence"
    );
    answering.send("PONG idle").await;
    assert_eq!(
        silent.expect_closed().await,
        ["NOTICE CLOSING IDLE_TIMEOUT no answer to PING in time"]
    );
    let closed = logged_in.elapsed();
    assert!(
        closed >= Duration::from_secs(2) && closed < Duration::from_millis(2100),
        "closed after {closed:?}"
    );
    // The answering client stays, answering each PING; PONG gets no reply of its own.
    answering.send("PING after").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match answering.line().await.as_str() {
            "PING idle" => answering.send("PONG idle").await,
            other => seen.push(other.to_string()),
        }
    }
    seen.sort();
    assert_eq!(seen, ["NOTICE OFFLINE silent TIMED_OUT", "PONG after"]);
}

#[tokio::test]
async fn rooms_members_and_names_have_configured_sizes() {
    let server = TestServer::with(|settings| {
        settings.max_rooms = 1;
        settings.max_room_members = 2;
        settings.max_name_length = 8;
    });
    let mut a = server.connect().await;
    assert_eq!(
        a.ask("NICK ninechars").await,
        "ERR BAD_NAME bad name \"ninechars\": a name is at most 8 characters here"
    );
    assert_eq!(a.ask("NICK eight_ch").await, "OK NICK eight_ch");
    let [mut b, mut c] = server.guests(["b", "c"]).await;
    a.expect("NOTICE ONLINE b").await;
    a.expect("NOTICE ONLINE c").await;
    assert_eq!(a.ask("CR lobby").await, "OK CR lobby");
    assert_eq!(
        a.ask("CR second").await,
        "ERR TOO_MANY_ROOMS the server holds 1 rooms, its most"
    );
    b.expect("NOTICE ROOM lobby eight_ch").await;
    c.expect("NOTICE ROOM lobby eight_ch").await;
    assert_eq!(b.ask("JR lobby").await, "OK JR lobby");
    assert_eq!(
        c.ask("JR lobby").await,
        "ERR ROOM_FULL lobby has 2 members, its most"
    );
}

#[tokio::test]
async fn the_tls_listener_speaks_the_same_protocol() {
    let tls_server = TlsServer::start(|_| {});
    let server = &tls_server.server;
    let tcp = TcpStream::connect(tls_server.tls_addr).await.unwrap();
    let tls = tls_server.tls.connect(tcp).await;
    let (read, mut write) = tokio::io::split(tls);
    let mut lines = BufReader::new(read).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert!(next().await.starts_with("HELLO linechat"));
    write.write_all(b"NICK secure\nPING tls\n").await.unwrap();
    assert_eq!(next().await, "OK NICK secure");
    assert_eq!(next().await, "PONG tls");
    // Plain and TLS users meet in the same server.
    let mut plain = server.guest("plain").await;
    assert_eq!(next().await, "NOTICE ONLINE plain");
    assert_eq!(plain.ask("PM secure over tls").await, "OK PM secure");
    assert_eq!(next().await, "PM plain over tls");
}
