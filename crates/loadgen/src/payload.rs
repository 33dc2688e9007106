//! The text of a generated message: who sent it, its sequence number and when, so that a
//! receiver can check order and measure latency. It has no spaces, for Redis inline commands.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem;

use crate::conn::Arrival;

const MARK: &[u8] = b"~lg~";

pub struct Payload {
    pub sender: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Writes a payload padded with `x` to at least `size` bytes.
pub fn encode(sender: u32, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut text = format!("~lg~{sender}:{seq}:{sent_ns}:");
    let pad = size.saturating_sub(text.len());
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// Finds and reads a payload anywhere in `line`.
pub fn decode(line: &[u8]) -> Option<Payload> {
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(MARK));
    let start = FINDER.find(line)? + MARK.len();
    let mut rest = &line[start..];
    let mut number = || -> Option<u64> {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 || rest.get(digits) != Some(&b':') {
            return None;
        }
        let value = rest[..digits]
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
        rest = &rest[digits + 1..];
        Some(value)
    };
    Some(Payload {
        sender: u32::try_from(number()?).ok()?,
        seq: number()?,
        sent_ns: number()?,
    })
}

/// The clock that senders and receivers share: nanoseconds of the real-time clock since the
/// run began. The real-time clock, because it is the one the kernel stamps arrivals with
/// (`conn::Arrival`); nothing steps it on the benchmark machine during a run.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start_unix_ns: u64,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            start_unix_ns: unix_ns(),
        }
    }

    pub fn now_ns(self) -> u64 {
        unix_ns().saturating_sub(self.start_unix_ns)
    }

    /// When `arrival` was, on this clock; `None` if the kernel gave no stamp.
    pub fn arrival_ns(self, arrival: Arrival) -> Option<u64> {
        arrival
            .unix_ns
            .map(|at| at.saturating_sub(self.start_unix_ns))
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_any_protocol_line() {
        let text = encode(3, 42, 123_456, 64);
        assert_eq!(text.len(), 64);
        for line in [
            format!("RM bench m3 {text}"),
            format!(":m3!u@h PRIVMSG #bench :{text}"),
        ] {
            let payload = decode(line.as_bytes()).unwrap();
            assert_eq!(
                (payload.sender, payload.seq, payload.sent_ns),
                (3, 42, 123_456)
            );
        }
        assert!(decode(b"OK RM bench").is_none());
        assert!(decode(b"RM bench m3 ~lg~3:42").is_none());
        assert!(decode(b"RM bench m3 ~lg~3:x:1:").is_none());
    }
}
