//! File descriptors, the resource every connection holds one of: the open-file limit
//! (`RLIMIT_NOFILE`) checked and raised at start, and the accept loop's back-off when
//! `accept` fails for lack of them.
//!
//! Without these, a soft limit of 1024 (a common default) let about 1,010 silent connections
//! lock everyone out: `accept` failed, the connections waited unaccepted in the listen queue,
//! and every failure was logged.

use std::io;
use std::time::Duration;

use tracing::{info, warn};

use super::log_tally::LogTally;

/// Descriptors kept free for what is not a connection, beyond those open at start (standard
/// streams, the runtime, the listeners, the database): the database opening more files
/// (read connections, a write-ahead log, temporary files) and connections being told
/// `ERR TOO_MANY_CONNECTIONS` (at most [`MAX_GOODBYES`] at once).
const HEADROOM: u64 = 32 + MAX_GOODBYES as u64;

/// Refused connections told why at once; more are closed without a word, so that a flood of
/// refused connections cannot use up descriptors either.
pub(super) const MAX_GOODBYES: usize = 16;

/// Assumed descriptors open at start where they cannot be counted.
const OPEN_AT_START_UNKNOWN: u64 = 32;

/// The open-file limit, soft and hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    soft: u64,
    hard: u64,
}

/// Raises the soft open-file limit to what `max_connections` needs (at most the hard limit)
/// and returns how many connections the descriptors then allow: `max_connections`, or fewer
/// when the limit is too low, so that connections past it are refused with
/// `ERR TOO_MANY_CONNECTIONS` instead of failing `accept`. Logs what it did and, when
/// connections are fewer, a warning with the numbers.
pub(super) fn connection_budget(max_connections: usize) -> usize {
    let reserve = open_now().unwrap_or(OPEN_AT_START_UNKNOWN) + HEADROOM;
    let wanted = (max_connections as u64).saturating_add(reserve);
    let before = match get_limit() {
        Ok(limit) => limit,
        Err(error) => {
            warn!(%error, "cannot read the open-file limit; not checked");
            return max_connections;
        }
    };
    let mut limit = before;
    if limit.soft < wanted && limit.soft < limit.hard {
        // Raise only as far as needed: a huge soft limit costs nothing here, but processes
        // that close every descriptor up to it (some libraries do) would pay for it.
        let target = Limit {
            soft: wanted.min(limit.hard),
            hard: limit.hard,
        };
        match set_limit(target) {
            Ok(()) => {
                info!(
                    "raised the open-file limit from {} to {} (hard limit {})",
                    before.soft, target.soft, limit.hard
                );
                limit = target;
            }
            Err(error) => warn!(%error, soft = limit.soft, "cannot raise the open-file limit"),
        }
    }
    if limit.soft >= wanted {
        return max_connections;
    }
    // What is left after the reserve; at least a few, so that the server is still of use
    // (the reserve is generous).
    let budget = limit
        .soft
        .saturating_sub(reserve)
        .max(limit.soft / 4)
        .max(1) as usize;
    let budget = budget.min(max_connections);
    warn!(
        "the open-file limit {} is below the {} that max_connections = {} needs ({} kept for \
         the server itself); serving at most {} connections. Raise the hard limit \
         (ulimit -Hn, or LimitNOFILE= in a systemd unit) to serve more",
        limit.soft, wanted, max_connections, reserve, budget
    );
    budget
}

// `rlim_t` is not u64 everywhere.
#[allow(clippy::unnecessary_cast)]
fn get_limit() -> io::Result<Limit> {
    let mut raw = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // An infinite limit reads as u64::MAX, larger than anything compared with it.
    Ok(Limit {
        soft: raw.rlim_cur as u64,
        hard: raw.rlim_max as u64,
    })
}

#[allow(clippy::unnecessary_cast)]
fn set_limit(limit: Limit) -> io::Result<()> {
    let raw = libc::rlimit {
        rlim_cur: limit.soft as libc::rlim_t,
        rlim_max: limit.hard as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Descriptors open in this process now, where the system shows them.
fn open_now() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd")
        .or_else(|_| std::fs::read_dir("/dev/fd"))
        .ok()?;
    // Minus the one reading the directory.
    Some((entries.count() as u64).saturating_sub(1))
}

/// First pause after `accept` failed for lack of resources; it doubles with each failure in
/// a row, up to [`MOST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MOST_PAUSE: Duration = Duration::from_secs(1);
/// Failures are logged at most this often, with how many there were.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What the accept loop does when `accept` fails. Out of descriptors (or memory), the
/// pending connection stays in the listen queue and the listener stays ready, so retrying at
/// once would spin and, with a log line per failure, flood the log.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    pause: Duration,
    failures: LogTally,
}

impl AcceptBackoff {
    pub(super) fn new() -> Self {
        Self {
            pause: FIRST_PAUSE,
            failures: LogTally::new(LOG_EVERY),
        }
    }

    /// Called when `accept` failed: how long to stop accepting, on every listener, or `None`
    /// to go on at once when the failure concerned only that one connection (it was reset
    /// before it could be accepted).
    pub(super) fn failed(&mut self, error: &io::Error) -> Option<Duration> {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) {
            return None;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MOST_PAUSE);
        if let Some(failures) = self.failures.count(1) {
            warn!(
                %error,
                "accept failed {failures} times since the last report; pausing accepts for {} ms",
                pause.as_millis()
            );
        }
        Some(pause)
    }

    /// Called when `accept` succeeded: the next failure starts with a short pause again, and
    /// failures not yet reported are.
    pub(super) fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
        if let Some(failures) = self.failures.take() {
            info!("accepting again after {failures} more failed accepts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_of_descriptors() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_a_second_and_start_again_after_a_success() {
        let mut backoff = AcceptBackoff::new();
        let pauses: Vec<_> = (0..8)
            .map(|_| backoff.failed(&out_of_descriptors()).unwrap())
            .collect();
        let ms: Vec<_> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&out_of_descriptors()), Some(FIRST_PAUSE));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_between_log_lines() {
        let mut backoff = AcceptBackoff::new();
        backoff.failed(&out_of_descriptors());
        assert_eq!(
            backoff.failures.unlogged(),
            0,
            "the first failure is logged at once"
        );
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(1)).await;
            backoff.failed(&out_of_descriptors());
        }
        assert_eq!(
            backoff.failures.unlogged(),
            4,
            "not logged again within {LOG_EVERY:?}"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        backoff.failed(&out_of_descriptors());
        assert_eq!(backoff.failures.unlogged(), 0, "logged with the count");
    }

    #[test]
    fn a_connection_reset_before_accept_does_not_pause() {
        let mut backoff = AcceptBackoff::new();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&reset), None);
    }

    #[test]
    fn the_limit_can_be_read_and_set_to_itself() {
        let limit = get_limit().unwrap();
        assert!(limit.soft <= limit.hard);
        set_limit(limit).unwrap();
        assert!(open_now().unwrap() >= 3);
    }
}
