//! `Creations`: the server-wide limit of room creations per minute.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::RoomError;

/// The server-wide bucket of room creations, and the clock that says when it refills.
pub(super) struct Creations {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    per_minute: NonZeroU32,
}

impl Creations {
    pub(super) fn new(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let clock = DefaultClock::default();
        let limiter = RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone());
        Some(Self {
            limiter,
            clock,
            per_minute,
        })
    }

    /// Counts one more creation, or says why not and for how long.
    pub(super) fn take(&self) -> Result<(), RoomError> {
        let Err(not_until) = self.limiter.check() else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let wait_secs = u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
        Err(RoomError::TooManyCreated {
            per_minute: self.per_minute.get(),
            wait_secs: wait_secs.max(1),
        })
    }
}
