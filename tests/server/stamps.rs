//! `OPTION ids on`: a connection's message lines (`MSG`, `PM`, `RM`, `HIST`) start with the
//! message's stamp, `@id=<id>;time=<time>`, the id history keeps the message under; other
//! connections, and the same one after `OPTION ids off`, read today's lines.

use crate::support::{Client, Server, TestServer};
use linechat_protocol::Stamp;

/// Reads the next line, which must be stamped, and returns its stamp and the line after it.
async fn stamped(client: &mut Client) -> (Stamp, String) {
    let line = client.line().await;
    match Stamp::split(&line) {
        Some((Some(stamp), rest)) => (stamp, rest.to_owned()),
        _ => panic!("a stamped line, not {line:?}"),
    }
}

#[tokio::test]
async fn stamped_lines_carry_the_id_and_time_history_keeps() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    bob.check("OPTION ids on", "OK OPTION ids on").await;
    alice.create_room("lobby", &mut [&mut bob]).await;
    bob.join("lobby", &mut [&mut alice]).await;

    alice.check("RM lobby hi  there", "OK RM lobby").await;
    let (said, line) = stamped(&mut bob).await;
    assert_eq!(line, "RM lobby alice hi  there");
    alice.check("PM bob psst", "OK PM bob").await;
    let (private, line) = stamped(&mut bob).await;
    assert_eq!(line, "PM alice psst");
    alice.check("MSG all", "OK MSG").await;
    let (global, line) = stamped(&mut bob).await;
    assert_eq!(line, "MSG alice all");
    assert!(said.id > 0 && said.id < private.id && private.id < global.id);
    assert!(said.at <= private.at && private.at <= global.at);

    // History shows each message under the id and time its live line had.
    bob.send("HISTORY lobby").await;
    let (recalled, line) = stamped(&mut bob).await;
    assert_eq!(recalled, said);
    let time = humantime::format_rfc3339_millis(said.at);
    assert_eq!(line, format!("HIST lobby {time} alice hi  there"));
    bob.expect("OK HISTORY 1").await;
    bob.send("HISTORY alice").await;
    assert_eq!(stamped(&mut bob).await.0, private);
    bob.expect("OK HISTORY 1").await;

    // Alice never asked: her lines are as they always were.
    bob.rm("lobby", "back", &mut [&mut alice]).await;
    bob.check("OPTION ids off", "OK OPTION ids off").await;
    alice.rm("lobby", "plain again", &mut [&mut bob]).await;
    bob.history("HISTORY lobby 1").await;
}

#[tokio::test]
async fn options_are_checked_and_work_before_login() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    let usage = "usage: OPTION ids <on|off> - this connection's options: ids on starts message \
                 lines with their id and time";
    for (line, reply) in [
        (
            "OPTION",
            format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
        ),
        (
            "OPTION ids",
            format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
        ),
        (
            "OPTION ids maybe",
            format!("ERR BAD_ARGUMENTS \"ids maybe\" is not an option setting; {usage}"),
        ),
        (
            "OPTION colour on",
            format!("ERR BAD_ARGUMENTS \"colour on\" is not an option setting; {usage}"),
        ),
        (
            "OPTION ids on please",
            format!("ERR BAD_ARGUMENTS too many arguments; {usage}"),
        ),
        ("option IDS On", "OK OPTION ids on".to_owned()),
    ] {
        client.check(line, &reply).await;
    }
    client.check("NICK carol", "OK NICK carol").await;
    client.check("MSG hello", "OK MSG").await;
    client.send("HISTORY * 1").await;
    let (stamp, line) = stamped(&mut client).await;
    let time = humantime::format_rfc3339_millis(stamp.at);
    assert_eq!(line, format!("HIST * {time} carol hello"));
    client.expect("OK HISTORY 1").await;
}
