//! Counting password attempts per key (an IP address, an account) in fixed windows, to slow
//! down password guessing.
//!
//! An attempt is counted when it is let through, before its password is checked, and given
//! back only if it succeeds: attempts that arrive together cannot all slip past the limit
//! while their checks are still running.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Above this many keys, expired ones are swept out, so that a scan over many addresses
/// cannot grow the table without bound.
const SWEEP_ABOVE: usize = 4096;

pub(super) struct Throttle<K> {
    limit: u32,
    window: Duration,
    /// Attempts counted so far (failed or still being checked), and when their window started.
    counts: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq> Throttle<K> {
    /// Allows `limit` attempts per key in each `window`; a limit of 0 allows any number.
    pub(super) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: HashMap::new(),
        }
    }

    /// How long `key` must wait, if it has used up its attempts.
    pub(super) fn retry_after(&self, key: &K) -> Option<Duration> {
        let (count, started) = self.counts.get(key)?;
        let ends = *started + self.window;
        let now = Instant::now();
        (self.limit > 0 && *count >= self.limit && ends > now).then(|| ends - now)
    }

    /// Attempts counted for `key` in its current window.
    pub(super) fn attempts(&self, key: &K) -> u32 {
        match self.counts.get(key) {
            Some((count, started)) if *started + self.window > Instant::now() => *count,
            _ => 0,
        }
    }

    /// Gives back an attempt that succeeded, if its window is still the current one.
    pub(super) fn give_back(&mut self, key: &K) {
        if let Some((count, started)) = self.counts.get_mut(key)
            && *started + self.window > Instant::now()
        {
            *count = count.saturating_sub(1);
        }
    }

    /// Counts one attempt for `key`.
    pub(super) fn take(&mut self, key: K) {
        let now = Instant::now();
        if self.counts.len() > SWEEP_ABOVE {
            let window = self.window;
            self.counts
                .retain(|_, (_, started)| *started + window > now);
        }
        let entry = self.counts.entry(key).or_insert((0, now));
        if entry.1 + self.window <= now {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_waits_after_its_failures_until_the_window_ends() {
        let mut throttle = Throttle::new(2, Duration::from_secs(60));
        throttle.take("a");
        assert_eq!(throttle.retry_after(&"a"), None);
        throttle.take("a");
        assert_eq!(throttle.retry_after(&"a"), Some(Duration::from_secs(60)));
        assert_eq!(throttle.retry_after(&"b"), None);
        assert_eq!(throttle.attempts(&"a"), 2);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(throttle.retry_after(&"a"), None);
        assert_eq!(throttle.attempts(&"a"), 0);
        throttle.take("a");
        assert_eq!(throttle.retry_after(&"a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_succeeds_is_given_back() {
        let mut throttle = Throttle::new(2, Duration::from_secs(60));
        throttle.take("a");
        throttle.take("a");
        assert!(throttle.retry_after(&"a").is_some());
        throttle.give_back(&"a");
        assert_eq!(throttle.retry_after(&"a"), None);
        assert_eq!(throttle.attempts(&"a"), 1);
        // Giving back after the window ended does not eat into the next one.
        tokio::time::advance(Duration::from_secs(61)).await;
        throttle.give_back(&"a");
        throttle.take("a");
        assert_eq!(throttle.attempts(&"a"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn many_keys_do_not_pile_up() {
        let mut throttle = Throttle::new(1, Duration::from_secs(1));
        for key in 0..10_000 {
            throttle.take(key);
            if key % 1000 == 0 {
                tokio::time::advance(Duration::from_secs(2)).await;
            }
        }
        assert!(throttle.counts.len() <= SWEEP_ABOVE + 1000);
    }
}
