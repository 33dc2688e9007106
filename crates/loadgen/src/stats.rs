//! What a receiver measures, and the report of a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuUse;
use crate::payload::Payload;

/// A span of send times, set while the run goes on (the login storm): messages sent inside
/// it are measured apart from those sent before it.
pub struct Window {
    start_ns: AtomicU64,
    end_ns: AtomicU64,
}

impl Window {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
        })
    }

    pub fn open(&self, now_ns: u64) {
        self.start_ns.store(now_ns, Ordering::Release);
    }

    pub fn close(&self, now_ns: u64) {
        self.end_ns.store(now_ns, Ordering::Release);
    }

    pub fn bounds(&self) -> (u64, u64) {
        (
            self.start_ns.load(Ordering::Acquire),
            self.end_ns.load(Ordering::Acquire),
        )
    }
}

pub fn histogram() -> Histogram<u64> {
    // Three significant digits, from 1 ns up to about an hour.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("histogram bounds")
}

/// One receiver's tally. Latencies are kept as plain samples and put in an HDR histogram
/// only for the report: a histogram of this range and precision takes about 300 KiB, too
/// much to give each of thousands of receivers.
#[derive(Default)]
pub struct Tally {
    /// Latency of every message, or, with a window, of the messages sent inside it.
    pub latency_ns: Vec<u64>,
    /// With a window: latency of the messages sent before it opened.
    pub before_ns: Vec<u64>,
    /// Without a window: latency to when this generator read each message, which adds its
    /// own time to get to the socket (what runs before 2026-11-28 measured as latency).
    pub read_latency_ns: Vec<u64>,
    pub received: u64,
    /// Reads that brought at least one message: received / reads is how many messages the
    /// server packs into a write, roughly.
    pub reads: u64,
    pub out_of_order: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Last sequence number seen from each sender, `u64::MAX` before the first.
    last_seq: Vec<u64>,
    window: Option<Arc<Window>>,
}

impl Tally {
    pub fn with_window(window: Option<Arc<Window>>) -> Self {
        Self {
            window,
            first_ns: u64::MAX,
            ..Self::default()
        }
    }

    /// A message that arrived at `arrived_ns` and was read at `read_ns`.
    pub fn record(&mut self, payload: &Payload, arrived_ns: u64, read_ns: u64) {
        self.received += 1;
        self.first_ns = self.first_ns.min(arrived_ns);
        self.last_ns = self.last_ns.max(arrived_ns);
        let latency = arrived_ns.saturating_sub(payload.sent_ns).max(1);
        let samples = match &self.window {
            None => {
                let read_latency = read_ns.saturating_sub(payload.sent_ns).max(1);
                self.read_latency_ns.push(read_latency);
                Some(&mut self.latency_ns)
            }
            Some(window) => {
                let (start, end) = window.bounds();
                if payload.sent_ns < start {
                    Some(&mut self.before_ns)
                } else if payload.sent_ns <= end {
                    Some(&mut self.latency_ns)
                } else {
                    None
                }
            }
        };
        if let Some(samples) = samples {
            samples.push(latency);
        }
        let sender = payload.sender as usize;
        if sender < 1 << 20 {
            if self.last_seq.len() <= sender {
                self.last_seq.resize(sender + 1, u64::MAX);
            }
            let last = std::mem::replace(&mut self.last_seq[sender], payload.seq);
            if last != u64::MAX && payload.seq <= last {
                self.out_of_order += 1;
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.received += other.received;
        self.reads += other.reads;
        self.out_of_order += other.out_of_order;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.latency_ns.extend_from_slice(&other.latency_ns);
        self.before_ns.extend_from_slice(&other.before_ns);
        self.read_latency_ns
            .extend_from_slice(&other.read_latency_ns);
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of_samples(samples: &[u64]) -> Self {
        let mut histogram = histogram();
        for &sample in samples {
            histogram.saturating_record(sample);
        }
        Self::of(&histogram)
    }

    pub fn of(histogram: &Histogram<u64>) -> Self {
        let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1e3;
        Self {
            count: histogram.len(),
            p50_us: quantile(0.5),
            p90_us: quantile(0.9),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: histogram.max() as f64 / 1e3,
        }
    }
}

/// What went wrong on the connections of a run, shared by all of its readers.
#[derive(Default)]
pub struct Trouble {
    errors: AtomicU64,
    closed: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Trouble {
    /// An error line from the server.
    pub fn error(&self, line: &[u8]) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.note(line);
    }

    /// A connection that the server closed, or that failed, before the run ended.
    pub fn closed(&self, why: &str) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.note(why.as_bytes());
    }

    fn note(&self, what: &[u8]) {
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if first.is_none() {
            let text = String::from_utf8_lossy(&what[..what.len().min(200)]);
            *first = Some(text.into_owned());
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn closed_count(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> Option<String> {
        self.first
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

/// The login storm's own results.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub accounts: u64,
    pub concurrency: usize,
    pub registered: u64,
    pub registers_per_sec: f64,
    pub register_latency: Percentiles,
    pub logged_in: u64,
    pub logins_per_sec: f64,
    pub login_latency: Percentiles,
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    pub storm_seconds: f64,
    /// Chat latency of the messages sent before the storm began.
    pub chat_before_storm: Percentiles,
}

/// The server's and the generator's CPU time per login over one slice of the guest storm.
#[derive(Debug, Clone, Serialize)]
pub struct LoginSlice {
    /// Guests online (logged in) at the end of the slice.
    pub online: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms_per_login: Option<f64>,
    pub generator_cpu_ms_per_login: f64,
}

/// The guest login storm's own results.
#[derive(Debug, Clone, Serialize)]
pub struct GuestsReport {
    /// Guests meant to log in, and those that did before the run gave up (if it did).
    pub guests: u64,
    pub logged_in: u64,
    pub gave_up: bool,
    /// Logins in flight at once (1: one after another).
    pub concurrency: usize,
    /// From the first connect to the last `OK NICK`.
    pub logins_seconds: f64,
    pub logins_per_sec: f64,
    /// From the first connect to the last byte any guest received (every notice delivered).
    pub delivered_seconds: f64,
    /// Connect to `OK NICK`, per guest.
    pub login_latency: Percentiles,
    /// Over the whole storm, until every notice was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms_per_login: Option<f64>,
    pub generator_cpu_ms_per_login: f64,
    pub slices: Vec<LoginSlice>,
    /// `NOTICE ONLINE` names the guests should get (when everyone hears of every login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices_expected: Option<u64>,
    pub notices_received: u64,
    /// Guests that got fewer notices than the logins after theirs.
    pub guests_short: u64,
    /// Everything the guests received after their `OK NICK`.
    pub lines_received: u64,
    pub bytes_received: u64,
}

/// One line of results.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub scenario: String,
    pub parameters: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub expected: u64,
    pub delivered: u64,
    /// Expected but never delivered: every run checks that every receiver got every message.
    pub lost: u64,
    pub out_of_order: u64,
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    /// Messages per read that brought any (how many the server packed into its writes).
    pub messages_per_read: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// The latency percentiles above are to each message's arrival at the receiving socket
    /// (the kernel's stamp); these are to when the generator read it.
    pub read_latency: Percentiles,
    /// Error lines the server sent during the run (set-up errors stop the run instead).
    pub errors: u64,
    /// Connections the server closed, or that failed, during the run.
    pub closed_early: u64,
    /// Receivers that stopped waiting (idle timeout) before all their messages came.
    pub timed_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_problem: Option<String>,
    /// Seconds spent connecting, logging in and joining before the measured part.
    pub setup_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_connection_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests: Option<GuestsReport>,
}

impl Report {
    /// A report of the messages in `tally`, measured from `start_ns`.
    pub fn from_tally(scenario: &str, expected: u64, start_ns: u64, tally: &Tally) -> Self {
        let seconds = tally.last_ns.saturating_sub(start_ns) as f64 / 1e9;
        let latency = Percentiles::of_samples(&tally.latency_ns);
        Self {
            target: String::new(),
            scenario: scenario.into(),
            parameters: String::new(),
            label: None,
            expected,
            delivered: tally.received,
            // Set by `check_losses` once the scenario has filled in what was delivered.
            lost: 0,
            out_of_order: tally.out_of_order,
            seconds,
            deliveries_per_sec: if seconds > 0.0 {
                tally.received as f64 / seconds
            } else {
                0.0
            },
            messages_per_read: tally.received as f64 / tally.reads.max(1) as f64,
            p50_us: latency.p50_us,
            p90_us: latency.p90_us,
            p99_us: latency.p99_us,
            p999_us: latency.p999_us,
            max_us: latency.max_us,
            read_latency: Percentiles::of_samples(&tally.read_latency_ns),
            errors: 0,
            closed_early: 0,
            timed_out: 0,
            first_problem: None,
            setup_seconds: 0.0,
            cpu: None,
            connections: None,
            connections_per_sec: None,
            rss_before_kib: None,
            rss_after_kib: None,
            rss_per_connection_bytes: None,
            storm: None,
            guests: None,
        }
    }

    /// Counts what was expected but not delivered.
    pub fn check_losses(&mut self) {
        self.lost = self.expected.saturating_sub(self.delivered);
    }

    pub fn note_trouble(&mut self, trouble: &Trouble) {
        self.errors = trouble.errors();
        self.closed_early = trouble.closed_count();
        self.first_problem = trouble.first();
    }

    pub fn print(&self) {
        let mut line = format!(
            "{} {} [{}]: {}/{} delivered, {} out of order, {:.2}s, {:.0} deliveries/s \
             ({:.1} per read), latency us p50 {:.0} p90 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} \
             (to the generator's read: p50 {:.0} p99 {:.0})",
            self.target,
            self.scenario,
            self.parameters,
            self.delivered,
            self.expected,
            self.out_of_order,
            self.seconds,
            self.deliveries_per_sec,
            self.messages_per_read,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.read_latency.p50_us,
            self.read_latency.p99_us,
        );
        if self.lost > 0 {
            line += &format!("; LOST {} of {}", self.lost, self.expected);
        } else {
            line += "; nothing lost";
        }
        if self.errors + self.closed_early + self.timed_out > 0 {
            line += &format!(
                "; PROBLEMS: {} error lines, {} connections closed, {} receivers timed out, \
                 first: {}",
                self.errors,
                self.closed_early,
                self.timed_out,
                self.first_problem.as_deref().unwrap_or("-")
            );
        }
        if let (Some(count), Some(rate)) = (self.connections, self.connections_per_sec) {
            line += &format!("; {count} connections logged in at {rate:.0}/s");
        }
        if let (Some(before), Some(after), Some(per)) = (
            self.rss_before_kib,
            self.rss_after_kib,
            self.rss_per_connection_bytes,
        ) {
            line +=
                &format!("; server RSS {before} KiB -> {after} KiB, {per:.0} bytes per connection");
        }
        if let Some(storm) = &self.storm {
            line += &format!(
                "; storm {:.2}s: {} registered at {:.1}/s (p50 {:.0} ms, p99 {:.0} ms), \
                 {} logged in at {:.1}/s (p50 {:.0} ms, p99 {:.0} ms), {} failures; \
                 chat before the storm: p50 {:.0} p99 {:.0} max {:.0} us; the latency \
                 above is the chat's during the storm",
                storm.storm_seconds,
                storm.registered,
                storm.registers_per_sec,
                storm.register_latency.p50_us / 1e3,
                storm.register_latency.p99_us / 1e3,
                storm.logged_in,
                storm.logins_per_sec,
                storm.login_latency.p50_us / 1e3,
                storm.login_latency.p99_us / 1e3,
                storm.failures,
                storm.chat_before_storm.p50_us,
                storm.chat_before_storm.p99_us,
                storm.chat_before_storm.max_us,
            );
        }
        if let Some(guests) = &self.guests {
            line += &format!(
                "; {}{} guests logged in in {:.2}s ({:.0}/s, concurrency {}, login p50 {:.2} ms \
                 p99 {:.2} ms), every notice delivered after {:.2}s: {}/{} NOTICE ONLINE \
                 names, {} guests short, {} lines, {} bytes received",
                if guests.gave_up { "GAVE UP: only " } else { "" },
                guests.logged_in,
                guests.logins_seconds,
                guests.logins_per_sec,
                guests.concurrency,
                guests.login_latency.p50_us / 1e3,
                guests.login_latency.p99_us / 1e3,
                guests.delivered_seconds,
                guests.notices_received,
                guests
                    .notices_expected
                    .map_or_else(|| "?".into(), |n| n.to_string()),
                guests.guests_short,
                guests.lines_received,
                guests.bytes_received,
            );
            if let Some(ms) = guests.server_cpu_ms_per_login {
                line += &format!(
                    "; CPU per login overall: server {ms:.3} ms, generator {:.3} ms",
                    guests.generator_cpu_ms_per_login
                );
            }
            let slices: Vec<String> = guests
                .slices
                .iter()
                .map(|slice| {
                    format!(
                        "{}: {} ms",
                        slice.online,
                        slice
                            .server_cpu_ms_per_login
                            .map_or_else(|| "?".into(), |ms| format!("{ms:.3}"))
                    )
                })
                .collect();
            line += &format!(
                "; server CPU per login by guests online: {}",
                slices.join(", ")
            );
        }
        if let Some(cpu) = &self.cpu {
            line += &format!(
                "; cpu: generator {:.0}% of cores {:?} (busy {:.0}%)",
                cpu.generator_pct, cpu.generator_cores, cpu.generator_cores_busy_pct
            );
            if let (Some(server), Some(busy)) = (cpu.server_pct, cpu.server_cores_busy_pct) {
                line += &format!(
                    ", server {server:.0}% of cores {:?} (busy {busy:.0}%)",
                    cpu.server_cores
                );
            }
            line += &format!(", saturated: {}", cpu.saturated);
        }
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(sender: u32, seq: u64, sent_ns: u64) -> Payload {
        Payload {
            sender,
            seq,
            sent_ns,
        }
    }

    #[test]
    fn a_window_splits_messages_by_send_time() {
        let window = Window::new();
        let mut tally = Tally::with_window(Some(window.clone()));
        tally.record(&payload(0, 0, 100), 150, 150);
        window.open(200);
        tally.record(&payload(0, 1, 250), 300, 300);
        window.close(400);
        tally.record(&payload(0, 2, 390), 500, 500);
        tally.record(&payload(0, 3, 450), 460, 460);
        assert_eq!(tally.before_ns, vec![50]);
        assert_eq!(tally.latency_ns, vec![50, 110]);
        assert_eq!(tally.received, 4);
    }

    #[test]
    fn order_is_checked_per_sender() {
        let mut tally = Tally::with_window(None);
        tally.record(&payload(0, 0, 1), 2, 2);
        tally.record(&payload(1, 0, 1), 2, 2);
        tally.record(&payload(0, 1, 1), 2, 2);
        tally.record(&payload(1, 0, 1), 2, 2);
        assert_eq!(tally.out_of_order, 1);
        let percentiles = Percentiles::of_samples(&[1_000, 2_000, 3_000]);
        assert_eq!(percentiles.count, 3);
        assert!((percentiles.max_us - 3.0).abs() < 0.01);
    }

    #[test]
    fn latency_is_to_arrival_and_read_latency_to_the_read() {
        let mut tally = Tally::with_window(None);
        tally.record(&payload(0, 0, 100), 130, 400);
        tally.record(&payload(0, 1, 200), 210, 400);
        assert_eq!(tally.latency_ns, vec![30, 10]);
        assert_eq!(tally.read_latency_ns, vec![300, 200]);
        assert_eq!((tally.first_ns, tally.last_ns), (130, 210));
    }
}
