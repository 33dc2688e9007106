//! Bad input and bad peers: each costs the offending line or the offending connection, and
//! nothing else. The server runs in this process, but for the tests of signals (SIGTERM) and
//! of a log line, which run the real binary.

use std::time::{Duration, Instant};

use crate::support::{Client, Server, ServerProcess, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOO_LONG_64: &str = "ERR LINE_TOO_LONG lines are at most 64 bytes; the line was dropped";
const BAD_UTF8: &str = "ERR BAD_UTF8 lines must be UTF-8 text; the line was dropped";
const BAD_TEXT: &str = "ERR BAD_TEXT control characters are not allowed";
const SHUTDOWN: &str = "NOTICE SHUTDOWN the server is going down";
const LOGIN_TIMEOUT: &str = "NOTICE CLOSING LOGIN_TIMEOUT no login in time";

fn short_lines_server() -> TestServer {
    TestServer::with(|settings| {
        settings.max_line_length = 64;
        // Flood control off: several tests here pipeline hundreds of lines on purpose.
        settings.flood_lines_per_sec = 0;
    })
}

/// Pauses between writes, so that the pieces reach the server in separate reads.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// Sends `PING <token>` and requires `PONG <token>` as the very next line: proof that nothing
/// (no reply to an earlier line, no error) is queued in between.
async fn assert_next_is_pong(client: &mut Client, token: &str) {
    assert_eq!(
        client.ask(&format!("PING {token}")).await,
        format!("PONG {token}")
    );
}

/// Signals the server without waiting for it to exit, so that clients can keep reading while
/// it shuts down.
fn send_sigterm(server: &ServerProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------------
// Framing: overlong lines, bad UTF-8, telnet, line endings, blank lines.

#[tokio::test]
async fn overlong_line_is_rejected_and_its_tail_discarded_across_writes() {
    let server = short_lines_server();
    let mut client = server.connect().await;

    // 70 bytes and no newline yet: the error comes as soon as the limit is passed.
    client
        .send_raw(format!("PING {}", "a".repeat(65)).as_bytes())
        .await;
    client.expect(TOO_LONG_64).await;

    // The rest of the same line arrives in later writes, with what looks like commands in it.
    pause().await;
    client
        .send_raw(
            b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        )
        .await;
    pause().await;
    client.send_raw(b" PING not-a-command").await;
    pause().await;
    client.send_raw(b" QUIT\r\n").await;

    // One error for the whole line, and the connection carries on with the next line.
    assert_next_is_pong(&mut client, "after").await;

    // A line that passes the limit only with its second piece.
    client
        .send_raw(format!("PING {}", "c".repeat(35)).as_bytes())
        .await;
    pause().await;
    client.send_raw("d".repeat(35).as_bytes()).await;
    client.expect(TOO_LONG_64).await;
    client.send_raw(b"QUIT\n").await;
    assert_next_is_pong(&mut client, "still-here").await;
}

#[tokio::test]
async fn line_length_limit_is_exact_and_excludes_line_ending_and_telnet_bytes() {
    let server = short_lines_server();
    let mut client = server.connect().await;

    let token_59 = "t".repeat(59); // "PING " + 59 = 64 bytes
    let token_60 = "u".repeat(60); // 65 bytes

    client.send(&format!("PING {token_59}")).await;
    client.expect(&format!("PONG {token_59}")).await;
    client
        .send_raw(format!("PING {token_59}\r\n").as_bytes())
        .await;
    client.expect(&format!("PONG {token_59}")).await;
    // Telnet negotiation inside the line does not count towards its length.
    let mut with_iac = b"PI\xff\xfb\x01\xff\xfd\x03NG ".to_vec();
    with_iac.extend_from_slice(token_59.as_bytes());
    with_iac.extend_from_slice(b"\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0\r\n");
    client.send_raw(&with_iac).await;
    client.expect(&format!("PONG {token_59}")).await;

    client.send(&format!("PING {token_60}")).await;
    client.expect(TOO_LONG_64).await;
    assert_next_is_pong(&mut client, "ok").await;

    // Several overlong lines and good lines in one write: one reply each, in order.
    let burst = format!("PING {token_60}\nPING 1\n{}\nPING 2\n", "v".repeat(500));
    client.send_raw(burst.as_bytes()).await;
    client.expect(TOO_LONG_64).await;
    client.expect("PONG 1").await;
    client.expect(TOO_LONG_64).await;
    client.expect("PONG 2").await;
    assert_next_is_pong(&mut client, "end").await;
}

#[tokio::test]
async fn a_bad_last_line_before_the_client_half_closes_is_answered() {
    let server = short_lines_server();
    let mut client = server.connect().await;
    client
        .send_raw(format!("PING ok\nPING {}", "a".repeat(100)).as_bytes())
        .await;
    client.shutdown_write().await;
    assert_eq!(client.expect_closed().await, ["PONG ok", TOO_LONG_64]);

    let mut client = server.connect().await;
    client.send_raw(b"PING ok\nPING \xc3\x28").await;
    client.shutdown_write().await;
    assert_eq!(client.expect_closed().await, ["PONG ok", BAD_UTF8]);
}

#[tokio::test]
async fn invalid_utf8_costs_only_its_line() {
    let server = TestServer::start();
    let mut client = server.connect().await;

    client.send_raw(b"PING \xc3\x28\n").await;
    client.expect(BAD_UTF8).await;
    assert_next_is_pong(&mut client, "1").await;

    // An escaped telnet 0xFF (IAC IAC) is data, and not UTF-8.
    client.send_raw(b"PING \xff\xffx\r\n").await;
    client.expect(BAD_UTF8).await;

    // A truncated sequence split over two writes, then a valid one split the same way.
    client.send_raw(b"PING \xe2\x82").await;
    pause().await;
    client.send_raw(b"\n").await;
    client.expect(BAD_UTF8).await;
    client.send_raw(b"PING h\xc3").await;
    pause().await;
    client.send_raw(b"\xa9llo\n").await;
    client.expect("PONG h\u{e9}llo").await;

    // Bad lines between good ones in one write.
    client
        .send_raw(b"PING a\nMSG \x80\x81\nPING b\n\xf0\x9f\x98\nPING c\n")
        .await;
    client.expect("PONG a").await;
    client.expect(BAD_UTF8).await;
    client.expect("PONG b").await;
    client.expect(BAD_UTF8).await;
    client.expect("PONG c").await;

    // The session state survives too: log in after a bad line.
    client.send_raw(b"NICK \xfe\n").await;
    client.expect(BAD_UTF8).await;
    assert_eq!(client.ask("NICK utf").await, "OK NICK utf");
    assert_next_is_pong(&mut client, "2").await;
}

#[tokio::test]
async fn telnet_negotiation_is_dropped() {
    let server = TestServer::start();
    let mut client = server.connect().await;

    // IAC DO ECHO, IAC WILL SUPPRESS-GO-AHEAD.
    client.send_raw(b"\xff\xfd\x01\xff\xfb\x03PING x\r\n").await;
    client.expect("PONG x").await;
    // Subnegotiation: IAC SB NAWS 0 80 0 24 IAC SE, with an escaped 255 inside.
    client
        .send_raw(b"\xff\xfa\x1f\x00\x50\xff\xff\x00\x18\xff\xf0PING y\r\n")
        .await;
    client.expect("PONG y").await;
    // IAC WONT/DONT, and two-byte commands (NOP, AYT) in the middle of a line.
    client
        .send_raw(b"\xff\xfc\x01\xff\xfe\x03PI\xff\xf1NG \xff\xf6z\r\n")
        .await;
    client.expect("PONG z").await;
    // Sequences split across writes, at every position.
    for piece in [
        &b"\xff"[..],
        b"\xfb",
        b"\x18\xff\xfa",
        b"\x18\x00xterm",
        b"\xff",
        b"\xf0PING ",
        b"sp\xff",
        b"\xfd",
        b"\x01lit\r",
        b"\n",
    ] {
        client.send_raw(piece).await;
        pause().await;
    }
    client.expect("PONG split").await;

    // Telnet's `CR NUL` ends a line as `CR LF` and `LF` do, also when split.
    client
        .send_raw(b"PING crnul\r\0PING crlf\r\nPING lf\nPING last\r")
        .await;
    client.expect("PONG crnul").await;
    client.expect("PONG crlf").await;
    client.expect("PONG lf").await;
    pause().await;
    client.send_raw(b"\0").await;
    client.expect("PONG last").await;

    // A negotiation-only burst, as telnet sends on connect, produces no reply at all.
    client
        .send_raw(b"\xff\xfd\x03\xff\xfb\x18\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0")
        .await;
    assert_next_is_pong(&mut client, "quiet").await;
}

/// Sends `bad`, then in a later write `PING <token>`, and requires `PONG <token>` within two
/// seconds, after at most one reply to the bad line.
async fn expect_recovery_after(client: &mut Client, bad: &[u8], token: &str) {
    client.send_raw(bad).await;
    pause().await;
    client.send(&format!("PING {token}")).await;
    let pong = format!("PONG {token}");
    let mut before = Vec::new();
    let wait = Duration::from_secs(2);
    loop {
        match tokio::time::timeout(wait, client.line()).await {
            Ok(line) if line == pong => break,
            Ok(line) => before.push(line),
            Err(_) => panic!(
                "after {:?}, no {pong:?} within {wait:?}; lines read: {before:?}",
                String::from_utf8_lossy(bad)
            ),
        }
        assert!(
            before.len() <= 1,
            "after {:?}, expected {pong:?}, got {before:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

// A raw client that sends a stray byte 255 (a Latin-1 `ÿ`, or any binary junk) is not a telnet
// client: whatever the filter makes of the byte, the line must still end at its line ending and
// the connection go on.

#[tokio::test]
async fn a_stray_iac_before_the_line_ending_costs_only_its_line() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    expect_recovery_after(&mut client, b"PING b\xff\r\n", "after-iac-crlf").await;
    // IAC LF: LF is no telnet command, yet it is swallowed with the IAC.
    expect_recovery_after(&mut client, b"PING a\xff\n", "after-iac-lf").await;
}

#[tokio::test]
async fn an_unterminated_subnegotiation_costs_only_its_line() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    // IAC SB that no IAC SE ever ends: `\xff\xfa` is `ÿú` in Latin-1.
    expect_recovery_after(
        &mut client,
        b"PING cr\xe8me br\xfbl\xe9e \xff\xfa\n",
        "after-sb",
    )
    .await;
}

#[tokio::test]
async fn blank_lines_get_no_reply() {
    let server = TestServer::start();
    let mut client = server.connect().await;

    client.send_raw(b"\n").await;
    assert_next_is_pong(&mut client, "1").await;
    client.send_raw(b"\r\n\r\0   \n\t\t\n \t \r\n\n\n").await;
    assert_next_is_pong(&mut client, "2").await;
    // Lines that are blank once telnet bytes and NULs are gone.
    client
        .send_raw(b"\xff\xfb\x01\r\n\0\0\n  \xff\xf1 \n")
        .await;
    assert_next_is_pong(&mut client, "3").await;
    // Blank lines after logging in, too.
    assert_eq!(client.ask("NICK blank").await, "OK NICK blank");
    client.send_raw(b"\n \n\t\r\n").await;
    assert_next_is_pong(&mut client, "4").await;
}

// ---------------------------------------------------------------------------------------------
// Parsing errors.

#[tokio::test]
async fn bad_commands_get_their_error_and_nothing_else() {
    let server = TestServer::start();
    let mut observer = server.guest("observer").await;
    let mut client = server.connect().await;

    // Control characters anywhere in a line, whatever the command.
    for line in [
        &b"PING a\x07b\n"[..],
        b"PING \x1b[31mred\n",
        b"PI\x08NG x\n",
        b"PING del\x7f\n",
        b"PING c1\xc2\x85\n",
        b"PING a\rb\n",
        b"FOO\x01\n",
        b"\x0b\n",
    ] {
        client.send_raw(line).await;
        client.expect(BAD_TEXT).await;
    }
    assert_next_is_pong(&mut client, "1").await;

    let errors = [
        (
            "FOO bar",
            "ERR UNKNOWN_COMMAND unknown command \"FOO\"; HELP lists the commands",
        ),
        (
            "HELP nosuch",
            "ERR UNKNOWN_COMMAND unknown command \"nosuch\"; HELP lists the commands",
        ),
        (
            "NICK",
            "ERR BAD_ARGUMENTS missing argument; usage: NICK <name> - log in as a guest",
        ),
        (
            "NICK   \t ",
            "ERR BAD_ARGUMENTS missing argument; usage: NICK <name> - log in as a guest",
        ),
        (
            "NICK two words",
            "ERR BAD_ARGUMENTS too many arguments; usage: NICK <name> - log in as a guest",
        ),
        (
            "LOGIN someone",
            "ERR BAD_ARGUMENTS missing argument; usage: LOGIN <name> <password> - log in to your account",
        ),
        (
            "NICK bad!name",
            "ERR BAD_NAME bad name \"bad!name\": a name may hold only letters A-Z, digits, '_' and '-'",
        ),
    ];
    for (line, error) in errors {
        assert_eq!(client.ask(line).await, error, "reply to {line:?}");
    }
    assert_next_is_pong(&mut client, "2").await;

    // None of it logged the client in or cost it the connection: it logs in now.
    assert_eq!(client.ask("NICK errs").await, "OK NICK errs");
    observer.expect("NOTICE ONLINE errs").await;
    assert_eq!(client.ask("CR den").await, "OK CR den");
    observer.expect("NOTICE ROOM den errs").await;

    let errors = [
        (
            "MSG",
            "ERR BAD_ARGUMENTS missing argument; usage: MSG <text> - message everyone online",
        ),
        (
            "PM observer",
            "ERR BAD_ARGUMENTS missing argument; usage: PM <user> <text> - private message",
        ),
        (
            "RM den",
            "ERR BAD_ARGUMENTS missing argument; usage: RM <room> <text> - message a room you are in",
        ),
        (
            "USERS now",
            "ERR BAD_ARGUMENTS too many arguments; usage: USERS - list who is online",
        ),
        (
            "JR",
            "ERR BAD_ARGUMENTS missing argument; usage: JR <room> - join a room",
        ),
        (
            "BOGUS den hi",
            "ERR UNKNOWN_COMMAND unknown command \"BOGUS\"; HELP lists the commands",
        ),
        ("MSG bell\x07", BAD_TEXT),
    ];
    for (line, error) in errors {
        assert_eq!(client.ask(line).await, error, "reply to {line:?}");
    }

    // Still logged in, still in the room; the observer saw nothing of the errors.
    assert_eq!(client.ask("LRU den").await, "LRU den errs");
    assert_eq!(client.ask("MSG hello").await, "OK MSG");
    observer.expect("MSG errs hello").await;
    assert_next_is_pong(&mut observer, "observer").await;
}

#[tokio::test]
async fn garbage_from_one_member_does_not_disturb_the_room() {
    let server = short_lines_server();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    alice.create_room("den", &mut [&mut bob]).await;
    bob.join("den", &mut [&mut alice]).await;

    let mut garbage = Vec::new();
    garbage.extend_from_slice(format!("RM den {}\n", "x".repeat(100)).as_bytes());
    garbage.extend_from_slice(b"RM den \xc0\xaf\n");
    garbage.extend_from_slice(b"RM den \x1b[2J\n");
    garbage.extend_from_slice(b"\xff\xfd\x01\xff\xfb\x03\r\n");
    garbage.extend_from_slice(b"RM\n");
    garbage.extend_from_slice(b"NICK carol\n");
    garbage.extend_from_slice(b"RM den after the garbage\r\n");
    alice.send_raw(&garbage).await;
    alice.expect(TOO_LONG_64).await;
    alice.expect(BAD_UTF8).await;
    alice.expect(BAD_TEXT).await;
    alice
        .expect("ERR BAD_ARGUMENTS missing argument; usage: RM <room> <text> - message a room you are in")
        .await;
    alice
        .expect("ERR ALREADY_LOGGED_IN you are logged in as alice")
        .await;
    alice.expect("OK RM den").await;

    // Bob got exactly the one good line.
    bob.expect("RM den alice after the garbage").await;
    assert_next_is_pong(&mut bob, "bob").await;
    assert_eq!(bob.ask("LRU den").await, "LRU den alice bob");
}

// ---------------------------------------------------------------------------------------------
// Pipelining.

#[tokio::test]
async fn a_thousand_pipelined_commands_are_answered_in_order() {
    // Flood control off: this is about pipelining (the limits module covers the limit).
    let server = TestServer::with(|settings| settings.flood_lines_per_sec = 0);
    let mut client = server.connect().await;

    let burst: String = (0..1000).map(|i| format!("PING {i}\n")).collect();
    client.send_raw(burst.as_bytes()).await;
    for i in 0..1000 {
        client.expect(&format!("PONG {i}")).await;
    }
    assert_next_is_pong(&mut client, "done").await;
}

#[tokio::test]
async fn pipelined_good_and_bad_lines_keep_one_reply_each_in_order() {
    let server = short_lines_server();
    let mut client = server.connect().await;
    assert_eq!(client.ask("NICK piper").await, "OK NICK piper");

    let mut burst = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        match i % 6 {
            0 => {
                burst.extend_from_slice(format!("PING {i}\n").as_bytes());
                expected.push(format!("PONG {i}"));
            }
            1 => burst.extend_from_slice(b"\r\n"),
            2 => {
                burst.extend_from_slice(format!("PING {i} {}\n", "l".repeat(64)).as_bytes());
                expected.push(TOO_LONG_64.to_owned());
            }
            3 => {
                burst.extend_from_slice(format!("PING {i}").as_bytes());
                burst.extend_from_slice(b"\xff\xfb\x01 \xc3\n");
                expected.push(BAD_UTF8.to_owned());
            }
            4 => {
                burst.extend_from_slice(format!("WHAT{i}\r\0").as_bytes());
                expected.push(format!(
                    "ERR UNKNOWN_COMMAND unknown command \"WHAT{i}\"; HELP lists the commands"
                ));
            }
            _ => {
                burst.extend_from_slice(b"USERS\r\n");
                expected.push("USERS piper".to_owned());
            }
        }
    }
    client.send_raw(&burst).await;
    for line in &expected {
        client.expect(line).await;
    }
    assert_next_is_pong(&mut client, "done").await;
}

// ---------------------------------------------------------------------------------------------
// Bad peers: not reading, not talking, half-closing, vanishing.

/// The start of a long line, for failure messages.
fn head(line: &str) -> String {
    line.chars().take(60).collect()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_stalling_the_room() {
    let server = ServerProcess::start_with(
        &["--max-line-length", "40000"],
        &[("LINECHAT_OUTBOX_LIMIT_BYTES", "65536")],
    );
    let [mut reader, mut flooder, mut slow] = server.guests(["reader", "flooder", "slow"]).await;
    reader
        .create_room("flood", &mut [&mut flooder, &mut slow])
        .await;
    flooder.join("flood", &mut [&mut reader]).await;
    slow.join("flood", &mut [&mut reader, &mut flooder]).await;
    // From here on `slow` reads nothing.

    let filler = "x".repeat(30_000);
    let gone = ["LR flood slow", "NOTICE OFFLINE slow NOT_READING"];
    let saw_all = |lines: &[String]| gone.iter().all(|g| lines.iter().any(|l| l == g));
    let mut flooder_extra: Vec<String> = Vec::new();
    let mut reader_extra: Vec<String> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut sent = 0;
    while !(saw_all(&flooder_extra) && saw_all(&reader_extra)) {
        assert!(
            sent < 1000,
            "slow client still in the room after {sent} lines of 30 kB; \
             flooder saw {flooder_extra:?}, reader saw {reader_extra:?}"
        );
        let started = Instant::now();
        flooder.send(&format!("RM flood {sent} {filler}")).await;
        loop {
            let line = flooder.line().await;
            if line == "OK RM flood" {
                break;
            }
            assert!(!line.starts_with("RM "), "flooder got {:?}", head(&line));
            flooder_extra.push(line);
        }
        let expected = format!("RM flood flooder {sent} {filler}");
        loop {
            let line = reader.line().await;
            if line == expected {
                break;
            }
            assert!(
                !line.starts_with("RM "),
                "reader expected line {sent}, got {:?}",
                head(&line)
            );
            reader_extra.push(line);
        }
        slowest = slowest.max(started.elapsed());
        sent += 1;
    }
    flooder_extra.sort();
    reader_extra.sort();
    assert_eq!(flooder_extra, gone);
    assert_eq!(reader_extra, gone);
    assert!(
        slowest < Duration::from_secs(2),
        "a line took {slowest:?} to be answered and delivered"
    );

    // The others carry on as if nothing happened.
    assert_eq!(flooder.ask("USERS").await, "USERS flooder reader");
    assert_eq!(flooder.ask("LRU flood").await, "LRU flood flooder reader");
    assert_eq!(
        flooder.ask("PM slow are you there").await,
        "ERR NO_SUCH_USER slow is neither online nor registered"
    );
    assert_eq!(flooder.ask("RM flood done").await, "OK RM flood");
    reader.expect("RM flood flooder done").await;
    assert_next_is_pong(&mut reader, "reader").await;

    // The slow client's connection is closed; what it finds in its socket is room lines, the
    // last one possibly cut short, and no parting line.
    let leftovers = slow.expect_closed().await;
    assert!(
        leftovers.len() < sent,
        "{} of {sent} lines",
        leftovers.len()
    );
    for (i, line) in leftovers.iter().enumerate() {
        let expected = format!("RM flood flooder {i} {filler}");
        let last = i + 1 == leftovers.len();
        assert!(
            expected.starts_with(line.as_str()) && (last || line.len() == expected.len()),
            "slow client's line {i}: {:?}",
            head(line)
        );
    }

    let log = server.wait_for_log("not reading");
    assert!(
        log.contains("slow") && log.contains("127.0.0.1:"),
        "log line: {log}"
    );
}

#[tokio::test]
async fn silent_and_half_sent_clients_do_not_hold_up_others() {
    let server = TestServer::start();
    let mut silent = Vec::new();
    for _ in 0..10 {
        // Connected, greeting unread, nothing sent.
        silent.push(Client::connect(server.addr).await);
    }
    let mut partial = server.connect().await;
    partial.send_raw(b"NICK half").await;

    let mut bob = server.guest("bob").await;
    assert_next_is_pong(&mut bob, "bob").await;
    let mut carol = server.guest("carol").await;
    bob.expect("NOTICE ONLINE carol").await;
    assert_eq!(carol.ask("MSG hi").await, "OK MSG");
    bob.expect("MSG carol hi").await;

    // The half-sent line was kept and completes now.
    partial.send_raw(b"way\n").await;
    partial.expect("OK NICK halfway").await;
    bob.expect("NOTICE ONLINE halfway").await;
    carol.expect("NOTICE ONLINE halfway").await;

    // The silent ones are all still there, and served once they speak.
    for (i, client) in silent.iter_mut().enumerate() {
        client.expect_prefix("HELLO ").await;
        assert_next_is_pong(client, &i.to_string()).await;
    }
}

#[tokio::test]
async fn clients_that_do_not_log_in_in_time_are_closed() {
    let server = TestServer::paused(|settings| settings.login_timeout_secs = 1).await;
    let connected = tokio::time::Instant::now();
    let mut silent = Client::connect(server.addr).await;
    let mut partial = server.connect().await;
    partial.send_raw(b"NICK slo").await;
    let mut pinger = server.connect().await;
    let mut bob = server.guest("bob").await;
    assert!(
        connected.elapsed() < Duration::from_millis(800),
        "logging in took {:?} while a silent client was connected",
        connected.elapsed()
    );

    // Activity that is not a login does not extend the deadline.
    let mut i = 0;
    while connected.elapsed() < Duration::from_millis(800) {
        assert_next_is_pong(&mut pinger, &i.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        i += 1;
    }
    assert_eq!(pinger.expect_closed().await, [LOGIN_TIMEOUT]);
    let closed = connected.elapsed();
    assert!(
        closed >= Duration::from_secs(1) && closed < Duration::from_millis(1100),
        "closed after {closed:?}"
    );

    let silent_lines = silent.expect_closed().await;
    assert_eq!(silent_lines.len(), 2, "{silent_lines:?}");
    assert!(silent_lines[0].starts_with("HELLO "), "{silent_lines:?}");
    assert_eq!(silent_lines[1], LOGIN_TIMEOUT);
    assert_eq!(partial.expect_closed().await, [LOGIN_TIMEOUT]);

    // The deadline is for logging in: bob, logged in, stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_next_is_pong(&mut bob, "still-here").await;
    bob.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn half_closed_client_gets_every_reply_before_the_close() {
    let server = TestServer::start();
    let mut watcher = server.guest("watcher").await;
    assert_eq!(watcher.ask("CR den").await, "OK CR den");

    let mut client = server.connect().await;
    client.send_raw(b"NICK x\nPING 1\nQUIT\n").await;
    client.shutdown_write().await;
    assert_eq!(
        client.expect_closed().await,
        ["OK NICK x", "PONG 1", "OK QUIT"]
    );
    watcher.expect("NOTICE ONLINE x").await;
    watcher.expect("NOTICE OFFLINE x QUIT").await;

    let mut client = server.connect().await;
    client.send_raw(b"NICK y\nQUIT gone fishing\n").await;
    client.shutdown_write().await;
    assert_eq!(client.expect_closed().await, ["OK NICK y", "OK QUIT"]);
    watcher.expect("NOTICE ONLINE y").await;
    watcher.expect("NOTICE OFFLINE y QUIT gone fishing").await;

    // Lines after QUIT, in the same write, are not run.
    let mut client = server.connect().await;
    client.send_raw(b"PING 3\nQUIT\nPING 4\nNICK w\n").await;
    assert_eq!(client.expect_closed().await, ["PONG 3", "OK QUIT"]);

    // No QUIT, and the last line has no newline: EOF ends it, and is not an error.
    let mut client = server.connect().await;
    client.send_raw(b"NICK z\nJR den\nHELP ping\nPING 2").await;
    client.shutdown_write().await;
    assert_eq!(
        client.expect_closed().await,
        [
            "OK NICK z",
            "OK JR den",
            "HELP PING [token] - the server answers PONG [token]",
            "OK HELP",
            "PONG 2"
        ]
    );
    // Presence notices keep their order, and so do room lines, but the two may interleave
    // (protocol.md §6).
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(watcher.line().await);
    }
    let presence: Vec<_> = seen.iter().filter(|l| l.starts_with("NOTICE")).collect();
    let room: Vec<_> = seen.iter().filter(|l| !l.starts_with("NOTICE")).collect();
    assert_eq!(presence, ["NOTICE ONLINE z", "NOTICE OFFLINE z CLOSED"]);
    assert_eq!(room, ["JR den z", "LR den z"]);
    assert_eq!(watcher.ask("LRU den").await, "LRU den watcher");
    assert_eq!(watcher.ask("USERS").await, "USERS watcher");
}

#[tokio::test]
async fn a_client_that_vanishes_is_cleaned_up() {
    let server = TestServer::start();
    let mut watcher = server.guest("watcher").await;
    assert_eq!(watcher.ask("CR den").await, "OK CR den");

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"NICK ghost\nJR den\n").await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("OK JR den\n") {
        let n = tokio::time::timeout(crate::support::PATIENCE, stream.read(&mut buf))
            .await
            .expect("replies in time")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    watcher
        .expect_unordered(&["NOTICE ONLINE ghost", "JR den ghost"])
        .await;
    // Leave a reply unread and close: the kernel answers with a reset, not a FIN.
    stream.write_all(b"PING unread\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);

    let mut gone = [watcher.line().await, watcher.line().await];
    gone.sort();
    assert_eq!(gone, ["LR den ghost", "NOTICE OFFLINE ghost LOST"]);
    // The name is free again.
    let mut again = server.guest("ghost").await;
    watcher.expect("NOTICE ONLINE ghost").await;
    assert_eq!(again.ask("JR den").await, "OK JR den");
    watcher.expect("JR den ghost").await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown and load.

/// Lines a logged-in client may see from the others going down at shutdown, in any order
/// relative to its own `NOTICE SHUTDOWN`.
fn shutdown_collateral(line: &str, me: &str, users: &[&str], rooms: &[&str]) -> bool {
    users.iter().filter(|user| **user != me).any(|user| {
        line == format!("NOTICE OFFLINE {user} SHUTDOWN")
            || rooms.iter().any(|room| line == format!("LR {room} {user}"))
    })
}

/// Reads `client` to the end and checks that, apart from the others' departures, it got
/// `pending` (queued before the signal, in any order: a room's message and a global one
/// travel through different actors, and protocol.md gives them no order between them) and
/// then the shutdown notice. Departures are let through after the notice too:
/// `notice_shutdown_is_the_last_line_on_every_connection` checks that point alone.
async fn expect_shutdown(client: &mut Client, me: &str, pending: &[&str], users: &[&str]) {
    let lines = client.expect_closed().await;
    let mut own: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|line| !shutdown_collateral(line, me, users, &["lobby"]))
        .collect();
    assert_eq!(own.pop(), Some(SHUTDOWN), "{me} read {lines:?}");
    own.sort_unstable();
    let mut expected = pending.to_vec();
    expected.sort_unstable();
    assert_eq!(own, expected, "{me} read {lines:?}");
}

#[tokio::test]
async fn sigterm_tells_every_client_and_exits_cleanly() {
    let mut server = ServerProcess::start();
    let users = ["alice", "bob", "erin"];
    let [mut alice, mut bob, mut erin] = server.guests(users).await;
    alice.create_room("lobby", &mut [&mut bob, &mut erin]).await;
    bob.join("lobby", &mut [&mut alice]).await;
    let mut dave = Client::connect(server.addr).await; // greeting unread
    // Greeted, not logged in; connected after dave, so that the server, which accepts in
    // order, has taken dave's connection too by the time carol reads her greeting.
    let mut carol = server.connect().await;
    erin.send_raw(b"PING never-finished").await;

    // Queued for bob and erin, who do not read them before the signal.
    assert_eq!(alice.ask("RM lobby before the end").await, "OK RM lobby");
    assert_eq!(alice.ask("MSG last words").await, "OK MSG");

    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );

    expect_shutdown(&mut alice, "alice", &[], &users).await;
    expect_shutdown(
        &mut bob,
        "bob",
        &["RM lobby alice before the end", "MSG alice last words"],
        &users,
    )
    .await;
    expect_shutdown(&mut erin, "erin", &["MSG alice last words"], &users).await;
    assert_eq!(carol.expect_closed().await, [SHUTDOWN]);
    let dave_lines = dave.expect_closed().await;
    assert_eq!(dave_lines.len(), 2, "{dave_lines:?}");
    assert!(dave_lines[0].starts_with("HELLO "), "{dave_lines:?}");
    assert_eq!(dave_lines[1], SHUTDOWN);

    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the server still accepts connections"
    );
}

/// protocol.md: after `NOTICE SHUTDOWN` "the connection closes next" (§6); others'
/// `NOTICE OFFLINE <other> SHUTDOWN` may come before a client's own notice (§4), not after it.
#[tokio::test]
async fn notice_shutdown_is_the_last_line_on_every_connection() {
    let mut server = TestServer::start();
    let names: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let mut clients = Vec::new();
    for name in &names {
        clients.push(server.guest(name).await);
    }
    // Read past the ONLINE notices of those who logged in later. (A PING would not do: its
    // answer may overtake presence notices, protocol.md §6.)
    for (i, client) in clients.iter_mut().enumerate() {
        for later in &names[i + 1..] {
            client.expect(&format!("NOTICE ONLINE {later}")).await;
        }
    }

    server.terminate();
    let mut late = Vec::new();
    for (name, client) in names.iter().zip(&mut clients) {
        let lines = client.expect_closed().await;
        let at = lines
            .iter()
            .position(|line| line == SHUTDOWN)
            .unwrap_or_else(|| panic!("{name} got no NOTICE SHUTDOWN: {lines:?}"));
        for line in &lines[..at] {
            assert!(
                line.starts_with("NOTICE OFFLINE u") && line.ends_with(" SHUTDOWN"),
                "{name} got {line:?}"
            );
        }
        if at + 1 < lines.len() {
            late.push(format!("{name}: {:?}", &lines[at + 1..]));
        }
    }
    assert!(
        late.is_empty(),
        "{} of {} clients got lines after their NOTICE SHUTDOWN: {late:?}",
        late.len(),
        names.len()
    );
}

/// Has `talker` send `PM <to> <i> <filler>` for `i` in `0..count` in one write, and read the
/// `OK PM <to>` of each.
async fn pm_burst(talker: &mut Client, to: &str, count: usize, filler: &str) {
    let burst: String = (0..count)
        .map(|i| format!("PM {to} {i} {filler}\n"))
        .collect();
    talker.send_raw(burst.as_bytes()).await;
    for _ in 0..count {
        talker.expect(&format!("OK PM {to}")).await;
    }
}

#[tokio::test]
async fn output_queued_before_sigterm_is_delivered_before_the_close() {
    let mut server = ServerProcess::start_with(
        &["--max-line-length", "65536"],
        &[("LINECHAT_OUTBOX_LIMIT_BYTES", "16777216")],
    );
    let users = ["sink", "talker"];
    let [mut sink, mut talker] = server.guests(users).await;

    // About 8 MB for a client that is not reading: more than the socket buffers take (some
    // 4 MB), so megabytes of it are still in the server's queue when the signal comes.
    let filler = "y".repeat(60_000);
    pm_burst(&mut talker, "sink", 140, &filler).await;
    // Let the socket buffers fill up, so that the rest waits in the server's queue.
    tokio::time::sleep(Duration::from_millis(200)).await;

    send_sigterm(&server);
    // A reader that takes its time still gets everything: the server waits for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..140 {
        let line = sink.line().await;
        assert!(
            line == format!("PM talker {i} {filler}"),
            "line {i}: {:?}",
            head(&line)
        );
    }
    expect_shutdown(&mut sink, "sink", &[], &users).await;
    expect_shutdown(&mut talker, "talker", &[], &users).await;
    let status = server.wait();
    assert!(status.success(), "exit status: {status}");
}

#[tokio::test]
async fn a_client_that_does_not_read_at_shutdown_delays_nobody_else() {
    let mut server = ServerProcess::start_with(
        &["--max-line-length", "65536"],
        &[
            ("LINECHAT_SHUTDOWN_GRACE_SECS", "2"),
            ("LINECHAT_OUTBOX_LIMIT_BYTES", "16777216"),
        ],
    );
    let users = ["stuck", "talker", "watcher"];
    let mut stuck = server.guest("stuck").await;
    let mut talker = server.guest("talker").await;
    let mut watcher = server.guest("watcher").await;
    talker.expect("NOTICE ONLINE watcher").await;

    // About 6 MB that `stuck` never reads: its writer is blocked when the signal comes.
    let filler = "z".repeat(60_000);
    pm_burst(&mut talker, "stuck", 100, &filler).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    send_sigterm(&server);
    expect_shutdown(&mut talker, "talker", &[], &users).await;
    expect_shutdown(&mut watcher, "watcher", &[], &users).await;
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "the others were closed only after {:?}",
        signalled.elapsed()
    );

    // The stuck client holds the exit up for the grace period, and no longer.
    let status = server.wait();
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status: {status}");
    assert!(
        exited >= Duration::from_millis(1500) && exited < Duration::from_millis(2800),
        "exited {exited:?} after the signal"
    );
    stuck.expect_closed().await;
}

#[tokio::test]
async fn two_hundred_connections_at_once_are_all_served() {
    // All from 127.0.0.1, so above the default per-address limit (the limits module).
    let server = TestServer::with(|settings| settings.max_connections_per_ip = 1000);
    let mut clients = futures::future::join_all((0..200).map(|_| server.connect())).await;
    // All 200 are open together, and each is answered on its own.
    futures::future::join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, client)| async move {
                assert_next_is_pong(client, &format!("c{i}")).await;
            }),
    )
    .await;
    // Pipelined on all of them at once.
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send_raw(format!("PING a{i}\nPING b{i}\n").as_bytes())
            .await;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.expect(&format!("PONG a{i}")).await;
        client.expect(&format!("PONG b{i}")).await;
    }
    drop(clients);
    // And the server is fine after they all leave at once.
    let mut late = server.guest("late").await;
    assert_eq!(late.ask("USERS").await, "USERS late");
}

#[tokio::test]
async fn pipelined_room_messages_keep_their_replies_in_order_with_other_commands() {
    let server = TestServer::with(|settings| settings.flood_lines_per_sec = 0);
    let [mut listener, mut talker] = server.guests(["listener", "talker"]).await;
    talker.create_room("a", &mut [&mut listener]).await;
    listener.join("a", &mut [&mut talker]).await;
    // Room messages run ahead of their replies; everything else must still answer in order.
    let mut burst = String::new();
    let mut expected = Vec::new();
    for i in 0..300 {
        match i % 5 {
            0 => {
                burst.push_str(&format!("PING {i}\n"));
                expected.push(format!("PONG {i}"));
            }
            1 => {
                burst.push_str(&format!("RM nowhere {i}\n"));
                expected.push("ERR NO_SUCH_ROOM there is no room nowhere; CR creates it".into());
            }
            2 => {
                burst.push_str("FOO\n");
                expected.push(
                    "ERR UNKNOWN_COMMAND unknown command \"FOO\"; HELP lists the commands".into(),
                );
            }
            _ => {
                burst.push_str(&format!("RM a {i}\n"));
                expected.push("OK RM a".into());
            }
        }
    }
    burst.push_str("QUIT\n");
    expected.push("OK QUIT".into());
    talker.send_raw(burst.as_bytes()).await;
    assert_eq!(talker.expect_closed().await, expected);
    // The room delivers its messages in order; the directory's notice that the talker left
    // may come before the last of them (protocol.md: no fixed order between the two).
    for i in (0..300).filter(|i| i % 5 >= 3) {
        let mut line = listener.line().await;
        if line == "NOTICE OFFLINE talker QUIT" {
            line = listener.line().await;
        }
        assert_eq!(line, format!("RM a talker {i}"));
    }
}
