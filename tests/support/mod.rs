//! The harness the integration tests share: a server to talk to, in this process
//! ([`TestServer`], or [`SpawnedServer`] on the test's own runtime for a paused clock) or as
//! the real binary ([`ServerProcess`]), and clients that talk to it over TCP on 127.0.0.1 as a
//! user would.
//!
//! Every way to log in and to set up rooms lives here, so that no test file repeats a login
//! or room sequence: [`Server::guest`], [`Server::register`], [`Server::login`],
//! [`Server::guests`], [`Client::create_room`], [`Client::join`].
//!
//! The client's tests use it too (`crates/client/tests`), through a `#[path]` module.
// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod client;
pub mod firewall;
pub mod nats;
pub mod ports;
mod process;
mod server;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

pub use client::Client;
pub use process::ServerProcess;
pub use server::{SpawnedServer, TestServer, settings};

/// How long a test waits for a line it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The `ERR` line of a chat command sent before logging in.
pub const NOT_LOGGED_IN: &str = "ERR NOT_LOGGED_IN log in first: LOGIN <name> <password>, \
                                 REGISTER <name> <password> or NICK <name>";

/// Tries `attempt` every 50 ms until it gives a value, and returns that; fails the test,
/// saying `what` did not happen, after [`PATIENCE`]. For what the server does in its own time
/// (a place freed after a disconnect, a room expired, a bot joined).
pub async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every kind of test server offers: its address, and clients logged in on it.
// The tests call these on concrete types only; no `Send` bound is needed on the futures.
#[allow(async_fn_in_trait)]
pub trait Server {
    /// The plain TCP listener's address.
    fn addr(&self) -> SocketAddr;

    /// A connected client that has read the greeting.
    async fn connect(&self) -> Client {
        Client::greeted(self.addr()).await
    }

    /// A client logged in as guest `name`.
    async fn guest(&self, name: &str) -> Client {
        let mut client = self.connect().await;
        client
            .check(&format!("NICK {name}"), &format!("OK NICK {name}"))
            .await;
        client.name = Some(name.to_string());
        client
    }

    /// A client logged in as guest `name`, whose `NOTICE ONLINE` each of `watchers` (logged
    /// in, with nothing unread) has read.
    async fn guest_seen(&self, name: &str, watchers: &mut [&mut Client]) -> Client {
        let client = self.guest(name).await;
        expect_all(watchers, &format!("NOTICE ONLINE {name}")).await;
        client
    }

    /// A greeted client, once the server has a place for one again: it may not have seen a
    /// connection that was dropped go yet, and refuses newcomers until then.
    async fn connect_once_free(&self) -> Client {
        eventually("a place for a new connection", async || {
            let mut client = Client::connect(self.addr()).await;
            client.line().await.starts_with("HELLO ").then_some(client)
        })
        .await
    }

    /// A client that registered `name` and is logged in as it.
    async fn register(&self, name: &str, password: &str) -> Client {
        let mut client = self.connect().await;
        client
            .check(
                &format!("REGISTER {name} {password}"),
                &format!("OK REGISTER {name}"),
            )
            .await;
        client.name = Some(name.to_string());
        client
    }

    /// A client that registered `name`, whose `NOTICE ONLINE` each of `watchers` (logged in,
    /// with nothing unread) has read.
    async fn register_seen(
        &self,
        name: &str,
        password: &str,
        watchers: &mut [&mut Client],
    ) -> Client {
        let client = self.register(name, password).await;
        expect_all(watchers, &format!("NOTICE ONLINE {name}")).await;
        client
    }

    /// Accounts registered one after another, all with `password`, as [`Server::guests`]
    /// logs in guests: all of them start with nothing unread.
    async fn registered<const N: usize>(&self, names: [&str; N], password: &str) -> [Client; N] {
        let mut clients: Vec<Client> = Vec::with_capacity(N);
        for name in names {
            let mut earlier: Vec<&mut Client> = clients.iter_mut().collect();
            let client = self.register_seen(name, password, &mut earlier).await;
            clients.push(client);
        }
        match clients.try_into() {
            Ok(clients) => clients,
            Err(_) => unreachable!("N clients were made"),
        }
    }

    /// A client that sent `LOGIN <name> <password>` and got exactly `answer`: the lines up to
    /// and including the final `OK ...` or `ERR ...` (restored rooms' `JR` lines and queued
    /// private messages come before the `OK`).
    async fn login(&self, name: &str, password: &str, answer: &[&str]) -> Client {
        let mut client = self.connect().await;
        client.send(&format!("LOGIN {name} {password}")).await;
        let mut seen = Vec::with_capacity(answer.len());
        loop {
            let line = client.line().await;
            let last = line.starts_with("OK ") || line.starts_with("ERR ");
            seen.push(line);
            if last {
                break;
            }
        }
        assert_eq!(seen, answer, "answer to LOGIN {name}");
        client.name = Some(name.to_string());
        client
    }

    /// Proves that no presence notice is on its way to `watchers` (logged in, with nothing
    /// unread): logs in a guest `name` and requires its `NOTICE ONLINE` as each watcher's very
    /// next line, since presence notices keep their order among themselves (protocol.md §6).
    /// Returns the guest: dropping it tells the watchers it went offline.
    async fn expect_no_presence(&self, name: &str, watchers: &mut [&mut Client]) -> Client {
        let guest = self.guest(name).await;
        for watcher in watchers {
            watcher.expect(&format!("NOTICE ONLINE {name}")).await;
        }
        guest
    }

    /// Guests logged in one after another. Each client already online reads the
    /// `NOTICE ONLINE` of every later one, so all of them start with nothing unread.
    async fn guests<const N: usize>(&self, names: [&str; N]) -> [Client; N] {
        let mut clients: Vec<Client> = Vec::with_capacity(N);
        for name in names {
            let client = self.guest(name).await;
            for earlier in &mut clients {
                earlier.expect(&format!("NOTICE ONLINE {name}")).await;
            }
            clients.push(client);
        }
        match clients.try_into() {
            Ok(clients) => clients,
            Err(_) => unreachable!("N clients were made"),
        }
    }
}

impl Server for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Server for SpawnedServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Server for ServerProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Has each of `clients` read `line` as its next line.
pub async fn expect_all(clients: &mut [&mut Client], line: &str) {
    for client in clients {
        client.expect(line).await;
    }
}

/// [`Client::expect_caught_up`] for each of `clients`.
pub async fn all_caught_up(clients: &mut [&mut Client]) {
    for client in clients {
        client.expect_caught_up().await;
    }
}

/// Connects to `addr`, sends `login`, then `blank` (a blank line in the protocol's line
/// ending) every 200 ms for ten seconds: whether the server closed the connection within 8 s,
/// and the lines it sent. For the idle watch, which a blank line must not satisfy.
pub async fn blank_lines_until_closed(
    addr: SocketAddr,
    login: &'static [u8],
    blank: &'static [u8],
) -> (bool, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(login).await.unwrap();
    let blanks = tokio::spawn(async move {
        for _ in 0..50 {
            if write.write_all(blank).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
        }
    })
    .await
    .is_ok();
    blanks.abort();
    (closed, seen)
}
