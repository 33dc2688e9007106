//! Per-connection limits: flood control and idle detection.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::settings::Settings;

/// What to do with a line under flood control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Accept,
    /// Over the rate: drop the line and say so.
    Drop,
    /// Over the rate for too long: close the connection.
    Close,
}

/// A token bucket per connection (lines per second, with a burst), and a count of lines
/// dropped in a row to tell a burst from sustained abuse.
pub(super) struct FloodGuard {
    limiter: Option<DefaultDirectRateLimiter>,
    dropped_in_a_row: u32,
    close_after: u32,
}

impl FloodGuard {
    pub(super) fn new(settings: &Settings) -> Self {
        let limiter = NonZeroU32::new(settings.flood_lines_per_sec).map(|rate| {
            let burst = NonZeroU32::new(settings.flood_burst).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            dropped_in_a_row: 0,
            close_after: settings.flood_kick_after.max(1),
        }
    }

    pub(super) fn admit(&mut self) -> Admission {
        let Some(limiter) = &self.limiter else {
            return Admission::Accept;
        };
        if limiter.check().is_ok() {
            self.dropped_in_a_row = 0;
            return Admission::Accept;
        }
        self.dropped_in_a_row += 1;
        if self.dropped_in_a_row >= self.close_after {
            Admission::Close
        } else {
            Admission::Drop
        }
    }
}

/// How many rooms one connection may create: `rooms_created_per_minute`, as a bucket that
/// refills evenly over the minute. Rooms outlive their creator, so without it one client
/// could fill the server's room table in seconds.
pub(super) struct RoomCreations {
    per_minute: Option<NonZeroU32>,
    /// Made at the first `CR`: most connections never create a room, and every connection
    /// would otherwise carry a limiter.
    limiter: Option<Box<DefaultDirectRateLimiter>>,
}

impl RoomCreations {
    pub(super) fn new(settings: &Settings) -> Self {
        Self {
            per_minute: NonZeroU32::new(settings.rooms_created_per_minute),
            limiter: None,
        }
    }

    /// Whether one more room may be created now; counts it if so.
    pub(super) fn allow(&mut self) -> bool {
        let Some(per_minute) = self.per_minute else {
            return true;
        };
        self.limiter
            .get_or_insert_with(|| Box::new(RateLimiter::direct(Quota::per_minute(per_minute))))
            .check()
            .is_ok()
    }
}

/// What the idle timer asks for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdleAction {
    Ping,
    Close,
}

/// Tracks a logged-in client's silence: after `ping_after` the server sends `PING`; if
/// nothing comes back within `timeout`, the client is gone. Its periods are whole seconds, as
/// the settings give them, in 32 bits: every connection's task holds this.
pub(super) struct IdleWatch {
    /// 0 when idle detection is off.
    ping_after_secs: u32,
    timeout_secs: u32,
    last_heard: Instant,
    pinged_at: Option<Instant>,
}

impl IdleWatch {
    pub(super) fn new(settings: &Settings) -> Self {
        let secs = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        Self {
            ping_after_secs: secs(settings.idle_ping_secs),
            timeout_secs: secs(settings.idle_timeout_secs),
            last_heard: Instant::now(),
            pinged_at: None,
        }
    }

    /// A line from the client that is answered counts as an answer; the connection loop does
    /// not call this for a line that gets no answer (a blank one).
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged_at = None;
    }

    /// When the timer should next fire; `None` when idle detection is off.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.ping_after_secs == 0 {
            return None;
        }
        Some(match self.pinged_at {
            Some(pinged) => pinged + Duration::from_secs(self.timeout_secs.into()),
            None => self.last_heard + Duration::from_secs(self.ping_after_secs.into()),
        })
    }

    pub(super) fn fired(&mut self) -> IdleAction {
        if self.pinged_at.is_some() {
            IdleAction::Close
        } else {
            self.pinged_at = Some(Instant::now());
            IdleAction::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u32, burst: u32, close_after: u32) -> Settings {
        Settings {
            flood_lines_per_sec: rate,
            flood_burst: burst,
            flood_kick_after: close_after,
            ..Settings::default()
        }
    }

    #[test]
    fn a_burst_passes_then_lines_are_dropped_then_the_connection_closes() {
        let mut guard = FloodGuard::new(&settings(1, 5, 3));
        for _ in 0..5 {
            assert_eq!(guard.admit(), Admission::Accept);
        }
        assert_eq!(guard.admit(), Admission::Drop);
        assert_eq!(guard.admit(), Admission::Drop);
        assert_eq!(guard.admit(), Admission::Close);
    }

    #[test]
    fn room_creations_are_limited_per_minute_unless_off() {
        let mut limited = RoomCreations::new(&Settings {
            rooms_created_per_minute: 2,
            ..Settings::default()
        });
        assert!(limited.allow() && limited.allow());
        assert!(!limited.allow());
        let mut unlimited = RoomCreations::new(&Settings {
            rooms_created_per_minute: 0,
            ..Settings::default()
        });
        assert!((0..1000).all(|_| unlimited.allow()));
    }

    #[test]
    fn zero_rate_turns_flood_control_off() {
        let mut guard = FloodGuard::new(&settings(0, 0, 1));
        for _ in 0..10_000 {
            assert_eq!(guard.admit(), Admission::Accept);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_brings_a_ping_then_a_close_unless_the_client_answers() {
        let mut idle = IdleWatch::new(&Settings {
            idle_ping_secs: 10,
            idle_timeout_secs: 5,
            ..Settings::default()
        });
        let start = Instant::now();
        assert_eq!(idle.deadline(), Some(start + Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(idle.fired(), IdleAction::Ping);
        assert_eq!(idle.deadline(), Some(start + Duration::from_secs(15)));
        idle.heard();
        assert_eq!(idle.deadline(), Some(start + Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(idle.fired(), IdleAction::Ping);
        assert_eq!(idle.fired(), IdleAction::Close);
    }
}
