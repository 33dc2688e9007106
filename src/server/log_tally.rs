//! Counting events of one kind between log lines, so that a storm of them (refused
//! connections, failed accepts, lost history, connections closed for the output budget)
//! writes one line per interval with its count, not one line per event.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct LogTally {
    every: Duration,
    /// Events counted since the last line.
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl LogTally {
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            unlogged: 0,
            logged_at: None,
        }
    }

    /// Counts `events`; `Some(n)` when a line is due now, for the `n` events since the last.
    pub(crate) fn count(&mut self, events: u64) -> Option<u64> {
        self.unlogged += events;
        let now = Instant::now();
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= self.every);
        if !due || self.unlogged == 0 {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Events counted since the last line.
    #[cfg(test)]
    pub(super) fn unlogged(&self) -> u64 {
        self.unlogged
    }

    /// The events not logged yet, taken now: for a last line when the storm ends.
    pub(crate) fn take(&mut self) -> Option<u64> {
        (self.unlogged > 0).then(|| std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_with_the_count_since_the_last() {
        let mut tally = LogTally::new(Duration::from_secs(5));
        assert_eq!(tally.count(1), Some(1));
        for _ in 0..99 {
            assert_eq!(tally.count(1), None);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(tally.count(2), Some(101));
        assert_eq!(tally.count(3), None);
        assert_eq!(tally.take(), Some(3));
        assert_eq!(tally.take(), None);
    }
}
