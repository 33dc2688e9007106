//! What a receiver measures, and the report of a run.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::payload::Payload;

/// One receiver's tally.
pub struct Tally {
    pub latency_ns: Histogram<u64>,
    pub received: u64,
    pub out_of_order: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    last_seq: HashMap<u32, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            latency_ns: Histogram::new(3).expect("histogram"),
            received: 0,
            out_of_order: 0,
            first_ns: u64::MAX,
            last_ns: 0,
            last_seq: HashMap::new(),
        }
    }
}

impl Tally {
    pub fn record(&mut self, payload: &Payload, now_ns: u64) {
        self.received += 1;
        self.first_ns = self.first_ns.min(now_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let _ = self
            .latency_ns
            .record(now_ns.saturating_sub(payload.sent_ns).max(1));
        let last = self.last_seq.insert(payload.sender, payload.seq);
        if last.is_some_and(|last| payload.seq <= last) {
            self.out_of_order += 1;
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.received += other.received;
        self.out_of_order += other.out_of_order;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        let _ = self.latency_ns.add(&other.latency_ns);
    }
}

/// One line of results.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub scenario: String,
    pub parameters: String,
    pub expected: u64,
    pub delivered: u64,
    pub out_of_order: u64,
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

impl Report {
    pub fn from_tally(
        target: &str,
        scenario: &str,
        parameters: String,
        expected: u64,
        start_ns: u64,
        tally: &Tally,
    ) -> Self {
        let seconds = tally.last_ns.saturating_sub(start_ns) as f64 / 1e9;
        let quantile = |q: f64| tally.latency_ns.value_at_quantile(q) as f64 / 1e3;
        Self {
            target: target.into(),
            scenario: scenario.into(),
            parameters,
            expected,
            delivered: tally.received,
            out_of_order: tally.out_of_order,
            seconds,
            deliveries_per_sec: if seconds > 0.0 {
                tally.received as f64 / seconds
            } else {
                0.0
            },
            p50_us: quantile(0.5),
            p90_us: quantile(0.9),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: tally.latency_ns.max() as f64 / 1e3,
            extra: None,
        }
    }

    pub fn print(&self) {
        println!(
            "{} {} [{}]: {}/{} delivered, {} out of order, {:.2}s, {:.0} deliveries/s, \
             latency us p50 {:.0} p90 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}{}",
            self.target,
            self.scenario,
            self.parameters,
            self.delivered,
            self.expected,
            self.out_of_order,
            self.seconds,
            self.deliveries_per_sec,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.extra
                .as_deref()
                .map(|extra| format!(", {extra}"))
                .unwrap_or_default(),
        );
    }
}
