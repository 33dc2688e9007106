//! Ports for the servers the tests start themselves (NATS, PostgreSQL).

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;

/// A port of 127.0.0.1 that was free a moment ago, below the kernel's range for outgoing
/// connections. Tests stop these servers and start them again on the same port; a port of
/// that range may be taken meanwhile by any connection another test opens, and the server
/// then cannot start again ("nats-server exited at start", "PostgreSQL did not start", flakes
/// under load).
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let lowest = 10_000.min(ephemeral_from / 2);
    let span = u64::from(ephemeral_from - lowest);
    // Randomly seeded: tests that look for ports at the same moment try different ones.
    let random = RandomState::new();
    for attempt in 0..1000_u32 {
        let offset = random.hash_one(attempt) % span;
        let port = lowest + u16::try_from(offset).expect("below the range's start");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_from}");
}
