//! The text of a generated message: who sent it, its sequence number and when, so that a
//! receiver can check order and measure latency. It has no spaces, for Redis inline commands.

use std::time::Instant;

use memchr::memmem;

const MARK: &[u8] = b"~lg~";

pub struct Payload {
    pub sender: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Writes a payload padded with `x` to at least `size` bytes.
pub fn encode(sender: u32, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut text = format!("~lg~{sender}:{seq}:{sent_ns}:");
    while text.len() < size {
        text.push('x');
    }
    text
}

/// Finds and reads a payload anywhere in `line`.
pub fn decode(line: &[u8]) -> Option<Payload> {
    let start = memmem::find(line, MARK)? + MARK.len();
    let mut fields = line[start..].split(|&b| b == b':');
    let mut number = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    Some(Payload {
        sender: u32::try_from(number()?).ok()?,
        seq: number()?,
        sent_ns: number()?,
    })
}

/// Nanoseconds since the generator started: senders and receivers share one clock.
pub fn now_ns(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
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
    }
}
