//! The guest login storm: guests log in with linechat's `NICK` one after another (each waits
//! for its `OK NICK` before the next connects, or a few at once), and every connection stays
//! and reads what it is sent, above all a `NOTICE ONLINE` for every guest who logs in after
//! it. Measures how long the logins take, the server's CPU per login as the number online
//! grows (per slice of logins), and, once the notices are delivered and the connections are
//! idle, the server memory per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, stream};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::dialect::short_name;
use crate::stats::{GuestsReport, LoginSlice, Percentiles, Report, Trouble};
use crate::{Cli, connect_and_log_in, cpu, run_tag};

pub struct Storm {
    pub guests: usize,
    pub concurrency: usize,
    pub slice: usize,
    /// The server's `presence_max_online`: a login is announced to everyone online while at
    /// most this many are online, counting the newcomer; 0 means never.
    pub presence_max_online: usize,
    pub settle: Duration,
    /// Logins stop once the storm has taken this long, if given: a server with logins that
    /// cost O(online) would otherwise keep a benchmark busy for many minutes.
    pub give_up: Option<Duration>,
}

/// What every guest's reader adds to, while the storm goes on.
#[derive(Default)]
struct Counts {
    /// Per guest: names announced to it in `NOTICE ONLINE` lines.
    notices: Vec<AtomicU64>,
    lines: AtomicU64,
    bytes: AtomicU64,
    /// When the last byte arrived, in nanoseconds after the storm began.
    last_byte_ns: AtomicU64,
}

pub async fn run(cli: &Cli, storm: &Storm) -> anyhow::Result<Report> {
    let n = storm.guests;
    let counts = Arc::new(Counts {
        notices: (0..n).map(|_| AtomicU64::new(0)).collect(),
        ..Counts::default()
    });
    let trouble = Arc::new(Trouble::default());
    let tag = run_tag();
    let rss_before = cpu::server_resident_kib(&cli.server_pid)?;

    let began = Instant::now();
    let first = cpu::snapshot(&cli.server_pid);
    let mut previous = cpu::snapshot(&cli.server_pid);
    let mut previous_at = 0;
    let mut slices = Vec::new();
    let mut latency_ns = crate::stats::histogram();
    let mut readers: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    let mut logins = stream::iter(0..n)
        .map(|i| {
            let name = short_name('g', &tag, i);
            async move {
                let started = Instant::now();
                let conn = connect_and_log_in(cli, i, Some(&name)).await;
                (i, started.elapsed(), conn)
            }
        })
        .buffer_unordered(storm.concurrency);
    let mut done = 0;
    let mut logged_in = vec![false; n];
    let mut gave_up = false;
    loop {
        if storm.give_up.is_some_and(|limit| began.elapsed() > limit) {
            gave_up = true;
            break;
        }
        let Some((i, took, conn)) = logins.next().await else {
            break;
        };
        let conn = conn.with_context(|| format!("guest {} of {n}", i + 1))?;
        logged_in[i] = true;
        latency_ns.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        readers.push(tokio::spawn(read_guest(
            conn,
            i,
            began,
            counts.clone(),
            trouble.clone(),
        )));
        done += 1;
        let about_to_give_up = storm.give_up.is_some_and(|limit| began.elapsed() > limit);
        if done % storm.slice == 0 || done == n || (about_to_give_up && done > previous_at) {
            let now = cpu::snapshot(&cli.server_pid);
            let (server_ms, generator_ms) = cpu::spent_ms(&previous, &now);
            let logins = (done - previous_at) as f64;
            slices.push(LoginSlice {
                online: done as u64,
                seconds: now.seconds_since(&previous),
                server_cpu_ms_per_login: server_ms.map(|ms| ms / logins),
                generator_cpu_ms_per_login: generator_ms / logins,
            });
            previous = now;
            previous_at = done;
        }
    }
    drop(logins);
    let logins_seconds = began.elapsed().as_secs_f64();

    let later = later_logins(&logged_in, storm.presence_max_online);
    // Wait for the notices: all of them, or for quiet if none are due.
    let expected: u64 = (0..n).filter(|&i| logged_in[i]).map(|i| later[i]).sum();
    let expected = (expected > 0).then_some(expected);
    let quiet = match expected {
        Some(_) => Duration::from_secs(cli.idle_timeout_secs),
        None => Duration::from_secs(1),
    };
    let mut timed_out = false;
    loop {
        let received: u64 = counts
            .notices
            .iter()
            .map(|count| count.load(Ordering::Acquire))
            .sum();
        if expected.is_some_and(|expected| received >= expected) {
            break;
        }
        let last = Duration::from_nanos(counts.last_byte_ns.load(Ordering::Acquire));
        if began
            .elapsed()
            .saturating_sub(last.max(Duration::from_secs_f64(logins_seconds)))
            > quiet
        {
            timed_out = expected.is_some();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_seconds = Duration::from_nanos(counts.last_byte_ns.load(Ordering::Acquire))
        .as_secs_f64()
        .max(logins_seconds);
    let cpu_delivered = cpu::snapshot(&cli.server_pid);
    let cpu_use = cpu::usage(&first, &cpu_delivered, &cli.server_pid);
    let (server_ms, generator_ms) = cpu::spent_ms(&first, &cpu_delivered);

    // Let the server settle (idle connections, outboxes drained) before reading its memory.
    tokio::time::sleep(storm.settle).await;
    let rss_after = cpu::server_resident_kib(&cli.server_pid)?;

    let per_guest: Vec<u64> = counts
        .notices
        .iter()
        .map(|count| count.load(Ordering::Acquire))
        .collect();
    let notices_received: u64 = per_guest.iter().sum();
    // Guest i hears of every later guest; with logins overlapping, of at least those that
    // began after its own had finished.
    let guests_short = per_guest
        .iter()
        .enumerate()
        .filter(|&(i, &got)| {
            logged_in[i] && got < later[i].saturating_sub(storm.concurrency as u64 - 1)
        })
        .count() as u64;
    let expected_total = expected.unwrap_or(notices_received);
    let mut report = Report::from_tally(
        "guests",
        expected_total,
        0,
        &crate::stats::Tally::with_window(None),
    );
    let login_latency = Percentiles::of(&latency_ns);
    report.delivered = notices_received;
    report.seconds = delivered_seconds;
    report.deliveries_per_sec = notices_received as f64 / delivered_seconds.max(1e-9);
    report.p50_us = login_latency.p50_us;
    report.p90_us = login_latency.p90_us;
    report.p99_us = login_latency.p99_us;
    report.p999_us = login_latency.p999_us;
    report.max_us = login_latency.max_us;
    report.timed_out = u64::from(timed_out);
    report.note_trouble(&trouble);
    report.connections = Some(done as u64);
    report.connections_per_sec = Some(done as f64 / logins_seconds.max(1e-9));
    report.cpu = Some(cpu_use);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.rss_before_kib = Some(before);
        report.rss_after_kib = Some(after);
        report.rss_per_connection_bytes =
            Some(after.saturating_sub(before) as f64 * 1024.0 / done.max(1) as f64);
    }
    report.guests = Some(GuestsReport {
        guests: n as u64,
        logged_in: done as u64,
        gave_up,
        concurrency: storm.concurrency,
        logins_seconds,
        logins_per_sec: done as f64 / logins_seconds.max(1e-9),
        delivered_seconds,
        login_latency,
        server_cpu_ms_per_login: server_ms.map(|ms| ms / done.max(1) as f64),
        generator_cpu_ms_per_login: generator_ms / done.max(1) as f64,
        slices,
        notices_expected: expected,
        notices_received,
        guests_short,
        lines_received: counts.lines.load(Ordering::Acquire),
        bytes_received: counts.bytes.load(Ordering::Acquire),
    });
    for reader in readers {
        reader.abort();
    }
    Ok(report)
}

/// For each guest, how many guests logged in after it, whose `NOTICE ONLINE` it should get
/// (logins cut short by giving up may add a few).
/// For each guest, how many `NOTICE ONLINE` lines it should get: one for each guest who
/// logged in after it while at most `max_online` were online, counting the newcomer (nobody
/// else is online during the storm).
fn later_logins(logged_in: &[bool], max_online: usize) -> Vec<u64> {
    let mut online_after = Vec::with_capacity(logged_in.len());
    let mut online = 0;
    for &came in logged_in {
        online += usize::from(came);
        online_after.push(online);
    }
    let mut later = vec![0; logged_in.len()];
    let mut after = 0;
    for (i, &came) in logged_in.iter().enumerate().rev() {
        later[i] = after;
        after += u64::from(came && online_after[i] <= max_online);
    }
    later
}

/// Reads one guest's connection until the run ends: counts lines, bytes and the names
/// announced in `NOTICE ONLINE` lines, answers keep-alive probes, notes error lines and
/// early closes.
async fn read_guest(
    mut conn: Conn,
    index: usize,
    began: Instant,
    counts: Arc<Counts>,
    trouble: Arc<Trouble>,
) {
    let dialect = conn.dialect;
    loop {
        let (mut lines, mut bytes, mut notices) = (0u64, 0u64, 0u64);
        let mut pongs = Vec::new();
        let read = conn
            .reader
            .read_lines(|line, _| {
                lines += 1;
                bytes += line.len() as u64 + 1;
                if let Some(names) = line.strip_prefix(b"NOTICE ONLINE ") {
                    notices += names
                        .split(|&b| b == b' ')
                        .filter(|n| !n.is_empty())
                        .count() as u64;
                } else if let Some(pong) = dialect.pong(line) {
                    pongs.push(pong);
                } else if dialect.is_error(line) {
                    trouble.error(line);
                }
            })
            .await;
        if lines > 0 {
            counts.notices[index].fetch_add(notices, Ordering::AcqRel);
            counts.lines.fetch_add(lines, Ordering::Relaxed);
            counts.bytes.fetch_add(bytes, Ordering::Relaxed);
            let now = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counts.last_byte_ns.fetch_max(now, Ordering::AcqRel);
        }
        for pong in pongs {
            if conn.write.write_all(&pong).await.is_err() {
                break;
            }
        }
        match read {
            Ok(true) => {}
            Ok(false) => {
                trouble.closed("the server closed a guest's connection");
                return;
            }
            Err(error) => {
                trouble.closed(&format!("a guest's connection failed: {error}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_guest_hears_of_the_guests_after_it() {
        let everyone = usize::MAX;
        assert_eq!(later_logins(&[true; 4], everyone), vec![3, 2, 1, 0]);
        assert_eq!(
            later_logins(&[true, false, true, false], everyone),
            vec![1, 1, 0, 0]
        );
        let all = later_logins(&[true; 10_000], everyone);
        assert_eq!(all.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    }

    #[test]
    fn logins_past_the_presence_limit_are_not_announced() {
        // The third guest makes three online: announced with a limit of 3, not of 2.
        assert_eq!(later_logins(&[true; 4], 3), vec![2, 1, 0, 0]);
        assert_eq!(later_logins(&[true; 4], 2), vec![1, 0, 0, 0]);
        assert_eq!(later_logins(&[true; 4], 0), vec![0; 4]);
        let all = later_logins(&[true; 10_000], 2_000);
        assert_eq!(all.iter().sum::<u64>(), 2_000 * 1_999 / 2);
    }
}
