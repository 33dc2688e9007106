//! The bundled client in line mode (its standard input and output are pipes), run as a real
//! process against the real server: what it prints, what others receive, its exit status,
//! and how it comes back after the server restarts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::support::{PATIENCE, Server, TestServer};

/// The client binary, running.
struct RunningClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
    /// Every line read from stdout and stderr, for failure messages.
    seen: Vec<String>,
}

impl RunningClient {
    fn start(server: &TestServer, args: &[&str]) -> Self {
        Self::start_at(server.addr, args)
    }

    fn start_at(addr: SocketAddr, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
            .arg("--addr")
            .arg(addr.to_string())
            .args(args)
            .env_remove("LINECHAT_ADDR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client binary");
        Self {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
            seen: Vec::new(),
        }
    }

    /// Types one line.
    async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next line on standard output.
    async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => {
                self.seen.push(line.clone());
                line
            }
            other => panic!("no output line ({other:?}); seen: {:#?}", self.seen),
        }
    }

    async fn expect(&mut self, expected: &str) {
        let line = self.line().await;
        assert_eq!(line, expected, "seen: {:#?}", self.seen);
    }

    /// Reads standard error until a line contains `needle`.
    async fn expect_stderr(&mut self, needle: &str) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, self.stderr.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.seen.push(format!("stderr: {line}"));
                    if line.contains(needle) {
                        return line;
                    }
                }
                other => panic!(
                    "no {needle:?} on stderr ({other:?}); seen: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Closes standard input and waits for the client to exit; returns its status and the
    /// rest of its standard output.
    async fn finish(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let read = async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                rest.push(line);
            }
            self.child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the client exits once its input ends");
        (status, rest)
    }
}

/// Drops the `HH:MM:SS ` that starts a delivery.
fn without_clock(line: &str) -> &str {
    let (clock, rest) = line.split_once(' ').unwrap_or(("", line));
    let digits = clock.bytes().filter(u8::is_ascii_digit).count();
    assert!(
        clock.len() == 8 && digits == 6,
        "no time at the start of {line:?}"
    );
    rest
}

fn password_file(dir: &Path, password: &str) -> String {
    let path = dir.join("password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_script_of_commands_gets_every_answer_then_the_client_quits() {
    let server = TestServer::start();
    let mut bob = server.guest("bob").await;
    assert_eq!(bob.ask("CR dev").await, "OK CR dev");
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "correct horse");
    let mut client = RunningClient::start(
        &server,
        &[
            "--user",
            "alice",
            "--password-file",
            &password,
            "--register",
        ],
    );
    for line in [
        ":jr dev",
        "hello  room",
        ":pm bob psst",
        ":users",
        ":lru dev",
        ":ping",
        ":history",
        ":bogus",
        ":lr dev",
        "to everyone",
    ] {
        client.send(line).await;
    }
    let (status, out) = client.finish().await;
    assert!(status.success(), "{status}; output: {out:#?}");
    // The QUIT sent at the end of the input is the client's own: its OK is not shown.
    assert_eq!(out.len(), 11, "{out:#?}");
    assert_eq!(
        out[..5],
        [
            "ok: joined #dev",
            "ok: sent to #dev",
            "ok: sent to @bob",
            "users: alice bob",
            "#dev members: alice bob",
        ]
    );
    assert!(
        out[5].starts_with("pong: ") && out[5].ends_with(" ms"),
        "{}",
        out[5]
    );
    // `:history` alone reads the current room: one message, with the date it was sent.
    assert!(out[6].ends_with(" #dev <alice> hello  room"), "{}", out[6]);
    assert!(out[6].starts_with("20"), "{}", out[6]);
    assert_eq!(
        out[7..],
        [
            "ok: end of history (1 message)",
            "error: unknown command \":bogus\"; :help lists the commands",
            "ok: left #dev",
            "ok: sent to everyone",
        ]
    );
    // What the other user saw: what came through the room in order, and what came through
    // the directory in order; the two streams have no order between them (protocol.md §6).
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(bob.line().await);
    }
    let (room, directory): (Vec<_>, Vec<_>) = seen
        .iter()
        .map(String::as_str)
        .partition(|line| line.ends_with(" dev alice") || line.starts_with("RM dev "));
    assert_eq!(
        room,
        ["JR dev alice", "RM dev alice hello  room", "LR dev alice"],
        "{seen:?}"
    );
    assert_eq!(
        directory,
        [
            "NOTICE ONLINE alice",
            "PM alice psst",
            "MSG alice to everyone",
            "NOTICE OFFLINE alice QUIT"
        ],
        "{seen:?}"
    );
}

#[tokio::test]
async fn deliveries_are_printed_with_time_place_and_sender() {
    let server = TestServer::start();
    let mut client = RunningClient::start(&server, &["--user", "alice", "--guest"]);
    client.send(":cr lobby").await;
    client.expect("ok: created #lobby").await;
    let mut bob = server.guest("bob").await;
    // Presence notices go out up to 25 ms after the login (protocol.md §6): bob joins after
    // alice has seen it, so that the order of what she sees is known.
    let online = client.line().await;
    assert_eq!(without_clock(&online), "-- bob is online");
    let mut shown = vec![without_clock(&online).to_owned()];
    // Room lines and direct lines take different roads through the server, so each room line
    // is awaited before bob says anything else.
    assert_eq!(bob.ask("JR lobby").await, "OK JR lobby");
    assert_eq!(bob.ask("RM lobby hi  there 日本語").await, "OK RM lobby");
    for _ in 0..2 {
        shown.push(without_clock(&client.line().await).to_owned());
    }
    assert_eq!(bob.ask("PM alice psst").await, "OK PM alice");
    assert_eq!(bob.ask("MSG all of you").await, "OK MSG");
    assert_eq!(bob.ask("QUIT gone").await, "OK QUIT");
    for _ in 0..4 {
        let line = client.line().await;
        shown.push(without_clock(&line).to_owned());
    }
    // Lines from different parts of the server have no order between them (protocol.md
    // §6): bob's room message (from the room) and his private and global messages (from the
    // directory); his LR at QUIT and his going offline. Each group is compared sorted.
    shown[2..5].sort();
    shown[5..].sort();
    assert_eq!(
        shown,
        [
            "-- bob is online",
            "#lobby bob joined",
            "#lobby <bob> hi  there 日本語",
            "* <bob> all of you",
            "@bob <bob> psst",
            "#lobby bob left",
            "-- bob went offline (quit: gone)",
        ]
    );
    let (status, rest) = client.finish().await;
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_failed_login_is_an_error_exit() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _owner = server.register("carol", "right").await;

    let wrong = password_file(dir.path(), "wrong");
    for args in [
        // Without --register a failed LOGIN is final.
        vec!["--user", "dave", "--password-file", &wrong],
        // With it, the registered name cannot be taken over.
        vec!["--user", "carol", "--password-file", &wrong, "--register"],
        // Names follow the server's rules.
        vec!["--user", "no spaces", "--guest"],
    ] {
        let mut client = RunningClient::start(&server, &args);
        let error = client.expect_stderr("client: ").await;
        let (status, out) = client.finish().await;
        assert!(!status.success(), "{args:?}: {status}");
        assert!(out.is_empty(), "{args:?}: {out:?}");
        let expected = match args[1] {
            "dave" => {
                "login failed: wrong name or password (if dave has no account yet, --register creates it)"
            }
            "carol" => {
                "login failed: there is no account carol with this password, and it cannot be created: carol is already registered"
            }
            _ => "bad name \"no spaces\"",
        };
        assert!(error.contains(expected), "{args:?}: {error}");
    }
}

#[tokio::test]
async fn a_lost_connection_is_reported_and_the_client_logs_in_again() {
    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(data.path(), |_| {});
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "pw");
    let mut client = RunningClient::start(
        &server,
        &["--user", "erin", "--password-file", &password, "--register"],
    );
    client.expect_stderr("created the account erin").await;
    client.send(":cr ops").await;
    client.expect("ok: created #ops").await;

    server.terminate();
    let notice = client.line().await;
    assert_eq!(without_clock(&notice), "-- the server is shutting down");
    client
        .expect_stderr("connection lost: the server is shutting down; reconnecting")
        .await;
    // While the server is away, the client retries with backoff.
    client.expect_stderr("reconnection attempt 1 failed").await;
    let _server = TestServer::start_at(addr, data.path());
    client
        .expect_stderr(&format!("reconnected to {addr} as erin"))
        .await;
    // LOGIN put erin back in her room, so text still goes there.
    let rejoined = client.line().await;
    assert_eq!(without_clock(&rejoined), "#ops erin joined");
    client.send("back again").await;
    client.expect("ok: sent to #ops").await;
    client.send(":users").await;
    client.expect("users: erin").await;
    let (status, rest) = client.finish().await;
    assert!(status.success(), "{status}: {rest:?}");
}

#[tokio::test]
async fn guests_rejoin_their_rooms_after_a_reconnection() {
    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(data.path(), |_| {});
    let addr = server.addr;
    let mut client = RunningClient::start(&server, &["--user", "gus", "--guest"]);
    client.send(":cr tmp").await;
    client.expect("ok: created #tmp").await;
    // `OK CR` comes before the room is on disk; storage answers a read only after writing
    // what is queued, so once HISTORY is answered the room survives a kill.
    client.send(":history").await;
    client.expect("ok: end of history (0 messages)").await;
    server.kill();
    client.expect_stderr("connection lost").await;
    let _server = TestServer::start_at(addr, data.path());
    client.expect_stderr("rejoining #tmp").await;
    client.expect("ok: joined #tmp").await;
    client.send("still here").await;
    client.expect("ok: sent to #tmp").await;
    let (status, _) = client.finish().await;
    assert!(status.success());
}

#[tokio::test]
async fn no_server_is_an_error_exit() {
    // A port that nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client = RunningClient::start_at(addr, &["--guest", "--user", "x"]);
    let error = client.expect_stderr("client: ").await;
    assert!(
        error.contains(&format!("cannot connect to {addr}")),
        "{error}"
    );
    let (status, out) = client.finish().await;
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
}
