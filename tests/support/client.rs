//! A test's end of a connection: sends lines and reads them as a user of `nc` would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::PATIENCE;

pub struct Client {
    lines: Lines<AsyncBufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    /// The name it logged in as, when a helper of [`super::Server`] logged it in: the room
    /// helpers need it to know what the others are told.
    pub(super) name: Option<String>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    /// Connects to `addr` from the loopback address `source` (e.g. `127.0.0.2`), which the
    /// server counts apart from 127.0.0.1; the greeting is not read.
    pub async fn connect_from(source: &str, addr: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket
            .bind(format!("{source}:0").parse().expect("an address"))
            .expect("bind to the source address");
        Self::from_stream(socket.connect(addr).await.expect("connect"))
    }

    /// Connects to `addr` from the loopback address `source` and reads the greeting.
    pub async fn greeted_from(source: &str, addr: SocketAddr) -> Self {
        let mut client = Self::connect_from(source, addr).await;
        client.expect_prefix("HELLO ").await;
        client
    }

    /// Connects to `addr` and reads the greeting.
    pub async fn greeted(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr).await;
        let hello = client.line().await;
        assert!(hello.starts_with("HELLO "), "greeting: {hello}");
        client
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            lines: AsyncBufReader::new(read).lines(),
            writer,
            name: None,
        }
    }

    /// Sends one line; the newline is added.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Closes the sending side only (a half-close).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown");
    }

    /// The next line; fails the test on timeout or end of stream.
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("connection closed while a line was expected"),
            Ok(Err(error)) => panic!("read failed: {error}"),
            Err(_) => panic!("no line within {PATIENCE:?}"),
        }
    }

    pub async fn expect(&mut self, expected: &str) {
        let line = self.line().await;
        assert_eq!(line, expected);
    }

    /// Expects a line starting with `prefix` and returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let line = self.line().await;
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}..., got {line:?}"
        );
        line
    }

    /// Sends a command and returns the next line.
    pub async fn ask(&mut self, command: &str) -> String {
        self.send(command).await;
        self.line().await
    }

    /// Sends `command` and asserts that its reply is the single line `reply`.
    pub async fn check(&mut self, command: &str, reply: &str) {
        assert_eq!(self.ask(command).await, reply, "reply to {command:?}");
    }

    /// [`Client::check`] for each `(command, reply)` in turn.
    pub async fn check_all(&mut self, exchanges: &[(&str, &str)]) {
        for (command, reply) in exchanges {
            self.check(command, reply).await;
        }
    }

    /// Sends `MSG <text>`, expects `OK MSG`, and has each of `others` read
    /// `MSG <name> <text>`.
    pub async fn msg(&mut self, text: &str, others: &mut [&mut Client]) {
        self.check(&format!("MSG {text}"), "OK MSG").await;
        let line = format!("MSG {} {text}", self.name());
        super::expect_all(others, &line).await;
    }

    /// Sends `RM <room> <text>` (`room` named as it is listed), expects `OK RM <room>`, and has
    /// each of `members`, the room's other members, read `RM <room> <name> <text>`.
    pub async fn rm(&mut self, room: &str, text: &str, members: &mut [&mut Client]) {
        self.check(&format!("RM {room} {text}"), &format!("OK RM {room}"))
            .await;
        let line = format!("RM {room} {} {text}", self.name());
        super::expect_all(members, &line).await;
    }

    /// Sends `PM <to> <text>` to a client online under the name the harness logged it in as,
    /// expects `OK PM <to>`, and has `to` read `PM <name> <text>`.
    pub async fn pm(&mut self, to: &mut Client, text: &str) {
        let target = to.name().to_string();
        self.check(&format!("PM {target} {text}"), &format!("OK PM {target}"))
            .await;
        to.expect(&format!("PM {} {text}", self.name())).await;
    }

    /// Proves that nothing is queued for this client: sends `PING` and requires its `PONG` as
    /// the very next line. Everything the server sent this client before the `PING` was read
    /// comes before the `PONG`, since one queue feeds the connection; only presence notices,
    /// gathered up to 25 ms (protocol.md §6), can still be on their way.
    pub async fn expect_caught_up(&mut self) {
        self.check("PING caught-up", "PONG caught-up").await;
    }

    /// Records the name a test logged this client in as itself, for the room helpers.
    pub fn logged_in_as(&mut self, name: &str) {
        self.name = Some(name.to_string());
    }

    /// The name the harness logged this client in as.
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .expect("a client logged in by the harness (Server::guest, register or login)")
    }

    /// Creates `room` (named as it will be listed) and joins it; each of `others`, logged
    /// in, reads the `NOTICE ROOM` about it.
    pub async fn create_room(&mut self, room: &str, others: &mut [&mut Client]) {
        let notice = format!("NOTICE ROOM {room} {}", self.name());
        self.check_told(&format!("CR {room}"), &notice, others)
            .await;
    }

    /// Joins `room` (named as it is listed); each of `members`, the room's members, reads
    /// the `JR` line about it.
    pub async fn join(&mut self, room: &str, members: &mut [&mut Client]) {
        let line = format!("JR {room} {}", self.name());
        self.check_told(&format!("JR {room}"), &line, members).await;
    }

    /// Leaves `room` (named as it is listed) with `LR`; each of `members`, the room's other
    /// members, reads the `LR` line about it.
    pub async fn leave(&mut self, room: &str, members: &mut [&mut Client]) {
        let line = format!("LR {room} {}", self.name());
        self.check_told(&format!("LR {room}"), &line, members).await;
    }

    /// Sends `command`, whose reply is `OK <command>`, and has each of `others` read `told`.
    async fn check_told(&mut self, command: &str, told: &str, others: &mut [&mut Client]) {
        self.check(command, &format!("OK {command}")).await;
        for other in others {
            other.expect(told).await;
        }
    }

    /// Quits with `QUIT`: `OK QUIT`, then the server closes with nothing more.
    pub async fn quit(self) {
        self.quit_with("QUIT").await;
    }

    /// Quits with `QUIT`, and has each of `watchers` (logged in, with nothing unread) read the
    /// `NOTICE OFFLINE <name> QUIT` about it.
    pub async fn quit_seen(self, watchers: &mut [&mut Client]) {
        let offline = format!("NOTICE OFFLINE {} QUIT", self.name());
        self.quit().await;
        super::expect_all(watchers, &offline).await;
    }

    /// Quits with `command` (`QUIT [reason]`): `OK QUIT`, then the server closes with nothing
    /// more.
    pub async fn quit_with(mut self, command: &str) {
        self.check(command, "OK QUIT").await;
        assert_eq!(self.expect_closed().await, Vec::<String>::new());
    }

    /// Reads lines until one starts with `prefix`; returns the lines read before it.
    pub async fn skip_until(&mut self, prefix: &str) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(prefix) {
                return skipped;
            }
            skipped.push(line);
        }
    }

    /// Waits until this client is told that `name` went offline, so that the name is free to
    /// log in again. Whatever it was told before is skipped.
    pub async fn wait_offline(&mut self, name: &str) {
        self.skip_until(&format!("NOTICE OFFLINE {name} ")).await;
    }

    /// Reads as many lines as `expected` holds and compares them without regard to order,
    /// for lines that come from independent actors of the server (e.g. a login's
    /// `NOTICE ONLINE` and the user's room lines, protocol.md §6).
    pub async fn expect_unordered(&mut self, expected: &[&str]) {
        let mut seen = Vec::with_capacity(expected.len());
        for _ in expected {
            seen.push(self.line().await);
        }
        seen.sort();
        let mut expected: Vec<String> = expected.iter().map(|line| line.to_string()).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    /// Sends a `HISTORY` command and returns its `HIST` lines whole, after checking that the
    /// closing `OK HISTORY <n>` counts them.
    pub async fn history(&mut self, command: &str) -> Vec<String> {
        self.send(command).await;
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            if let Some(n) = line.strip_prefix("OK HISTORY ") {
                assert_eq!(
                    n,
                    lines.len().to_string(),
                    "{command:?}: OK HISTORY must count the HIST lines {lines:?}"
                );
                return lines;
            }
            assert!(
                line.starts_with("HIST "),
                "{command:?}: unexpected {line:?} after {lines:?}"
            );
            lines.push(line);
        }
    }

    /// Expects the server to close the connection, and returns the lines read before.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => seen.push(line),
                Ok(Ok(None)) | Ok(Err(_)) => return seen,
                Err(_) => panic!("connection still open; lines read: {seen:?}"),
            }
        }
    }

    /// Asserts that no line arrives for `wait`: only for what nothing else can prove absent
    /// (presence notices, lines from timers); [`Client::expect_caught_up`] proves the rest.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(result) = tokio::time::timeout(wait, self.lines.next_line()).await {
            panic!("expected silence, got {result:?}");
        }
    }
}
