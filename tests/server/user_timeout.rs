//! A client whose machine vanished while data was on its way to it: TCP keepalive does not
//! probe a connection with unacknowledged data, so every accepted socket carries
//! `TCP_USER_TIMEOUT` (`tcp_user_timeout_secs`), on every listener.
//!
//! The option is checked on each listener's sockets (the server runs in this process, so its
//! sockets are this process's descriptors: found by their two ends), and a vanished peer is
//! made with a firewall rule.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::support::firewall::Dropped;
use crate::support::tls::Tls;
use crate::support::{Client, Server, TestServer, eventually};

/// The `TCP_USER_TIMEOUT` of this process's socket from `local` to `peer`, once there is one.
/// Both ends: a port is unique to one connection only with the other end's (a client of
/// another test may use the same local port to reach another server, and an in-process
/// server may listen on a port that is some client's local port).
fn user_timeout_of_socket(local: SocketAddr, peer: SocketAddr) -> Option<Option<Duration>> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is only asked for its peer and an option. One that is closed
        // meanwhile (another test's) makes those calls fail; the server's socket to `peer`
        // stays open while the test's client is connected.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let Some(its_peer) = socket.peer_addr().ok().and_then(|a| a.as_socket()) else {
            continue;
        };
        let its_local = socket.local_addr().ok().and_then(|a| a.as_socket());
        if its_peer == peer && its_local == Some(local) {
            return socket.tcp_user_timeout().ok();
        }
    }
    None
}

#[tokio::test]
async fn every_listener_sets_the_user_timeout_on_accepted_sockets() {
    let tls = Tls::new();
    let server = TestServer::with(|settings| {
        tls.configure(settings);
        settings.irc_addr = Some("127.0.0.1:0".into());
        settings.irc_tls_addr = Some("127.0.0.1:0".into());
        settings.tcp_user_timeout_secs = 37;
    });
    let listeners = [
        ("line", server.addr),
        ("TLS", server.tls_addr.expect("a TLS listener")),
        ("IRC", server.irc_addr.expect("an IRC listener")),
        ("IRC TLS", server.irc_tls_addr.expect("a TLS IRC listener")),
    ];
    for (listener, addr) in listeners {
        let client = TcpStream::connect(addr).await.unwrap();
        let ours = client.local_addr().unwrap();
        let timeout = eventually(&format!("the {listener} listener's socket"), async || {
            user_timeout_of_socket(addr, ours)
        })
        .await;
        assert_eq!(
            timeout,
            Some(Duration::from_secs(37)),
            "{listener} listener"
        );
    }
}

/// A client whose machine vanishes (every packet to and from it dropped, nothing closed) after
/// it was sent a private message: the unacknowledged message makes the server give up on it
/// within `tcp_user_timeout_secs` and a few retransmissions, and the others see it go. Without
/// the timeout, the kernel would retransmit for some 15 minutes, and keepalive would not probe.
#[tokio::test]
async fn a_vanished_client_that_was_sent_something_is_found_out_in_time() {
    let server = TestServer::with(|settings| {
        settings.tcp_user_timeout_secs = 2;
        settings.idle_ping_secs = 0;
    });
    // An address of its own, which the firewall rules below match alone.
    let ghost_address = "127.0.9.9";
    let mut ghost = Client::greeted_from(ghost_address, server.addr).await;
    ghost.check("NICK ghost", "OK NICK ghost").await;
    let mut watcher = server.guest("watcher").await;
    ghost.expect("NOTICE ONLINE watcher").await;

    let _vanished = Dropped::packets(&[
        &format!("INPUT -i lo -s {ghost_address}"),
        &format!("INPUT -i lo -d {ghost_address}"),
    ]);
    watcher
        .check("PM ghost are you there?", "OK PM ghost")
        .await;
    let gone = Instant::now();
    watcher.expect("NOTICE OFFLINE ghost LOST").await;
    assert!(
        gone.elapsed() < Duration::from_secs(8),
        "{:?}",
        gone.elapsed()
    );
}
