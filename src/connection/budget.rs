//! The output budget: a cap on what the outboxes of all connections hold together. Each
//! outbox has its own limit, but thousands of clients that each stay under theirs could still
//! take the server's memory; past the budget, the connections with the most queued are closed,
//! as clients that do not read, until the total is back under it.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};
use tracing::warn;

use super::outbox::{Outbox, Shared, Writer, outbox_in};
use crate::server::log_tally::LogTally;
use crate::server::mailbox::Mailbox;

/// At most one `output budget exceeded` line per this long: while many clients keep the
/// budget exceeded, the line counts the connections closed since the last one.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The running total, shared by every outbox that counts against the budget. A counter and a
/// signal, so that pushing a line costs one more atomic add and never a lock or a message.
#[derive(Debug)]
pub(super) struct Budget {
    total: AtomicUsize,
    limit: usize,
    /// Wakes the enforcing task when a push takes the total past the limit.
    over: Notify,
}

impl Budget {
    pub(super) fn add(&self, bytes: usize) {
        let before = self.total.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.limit {
            self.over.notify_one();
        }
    }

    pub(super) fn release(&self, bytes: usize) {
        self.total.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Makes outboxes that count against one server-wide budget, and runs the task that enforces
/// it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutputBudget {
    budget: Arc<Budget>,
    /// The enforcing task's mailbox: each new outbox registers there.
    register: Mailbox<Weak<Shared>>,
}

/// Registered outboxes between two sweeps of those that are gone, at least.
const FIRST_SWEEP: usize = 64;

impl OutputBudget {
    /// Starts the task that keeps all outboxes together under `limit_bytes`; it ends when the
    /// last handle is dropped. Needs a Tokio runtime.
    pub fn spawn(limit_bytes: usize) -> Self {
        let budget = Arc::new(Budget {
            total: AtomicUsize::new(0),
            limit: limit_bytes,
            over: Notify::new(),
        });
        let (register, registered) = Mailbox::unbounded();
        tokio::spawn(enforce(budget.clone(), registered));
        Self { budget, register }
    }

    /// A connection's outbox, bounded by `limit_bytes` and counted against the budget.
    pub fn outbox(&self, limit_bytes: usize) -> (Outbox, Writer) {
        let (outbox, writer) = outbox_in(limit_bytes, Some(self.budget.clone()));
        self.register.post(Arc::downgrade(&outbox.shared));
        (outbox, writer)
    }

    /// What all outboxes hold now, in bytes.
    pub fn queued_bytes(&self) -> usize {
        self.budget.total.load(Ordering::Relaxed)
    }

    pub fn limit_bytes(&self) -> usize {
        self.budget.limit
    }
}

/// The enforcing task. It holds the outboxes weakly: a connection that ends is not kept.
async fn enforce(budget: Arc<Budget>, mut registered: mpsc::UnboundedReceiver<Weak<Shared>>) {
    let mut outboxes: Vec<Weak<Shared>> = Vec::new();
    let mut next_sweep = FIRST_SWEEP;
    let mut report = Report::default();
    loop {
        tokio::select! {
            outbox = registered.recv() => {
                let Some(outbox) = outbox else { return };
                outboxes.push(outbox);
                if outboxes.len() >= next_sweep {
                    outboxes.retain(|outbox| outbox.strong_count() > 0);
                    next_sweep = (2 * outboxes.len()).max(FIRST_SWEEP);
                }
            }
            () = budget.over.notified() => {
                // Outboxes that registered meanwhile may be among the largest.
                while let Ok(outbox) = registered.try_recv() {
                    outboxes.push(outbox);
                }
                if let Some(relief) = relieve(&budget, &mut outboxes) {
                    report.closed(relief, &budget);
                }
            }
            () = sleep_until(report.due.unwrap_or_else(Instant::now)), if report.due.is_some() => {
                report.flush(&budget);
            }
        }
    }
}

/// What one round of [`relieve`] did.
struct Relief {
    closed: usize,
    freed: usize,
    /// What all outboxes held when it began.
    queued: usize,
}

/// The `output budget exceeded` lines: the first at once, then at most one per
/// [`REPORT_EVERY`] with what was closed since the last.
struct Report {
    tally: LogTally,
    freed: usize,
    queued: usize,
    /// When the closes not logged yet are to be, if there are any.
    due: Option<Instant>,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            tally: LogTally::new(REPORT_EVERY),
            freed: 0,
            queued: 0,
            due: None,
        }
    }
}

impl Report {
    fn closed(&mut self, relief: Relief, budget: &Budget) {
        self.freed += relief.freed;
        self.queued = relief.queued;
        match self.tally.count(relief.closed as u64) {
            Some(closed) => self.log(closed, budget),
            None => {
                self.due
                    .get_or_insert_with(|| Instant::now() + REPORT_EVERY);
            }
        }
    }

    fn flush(&mut self, budget: &Budget) {
        self.due = None;
        if let Some(closed) = self.tally.take() {
            self.log(closed, budget);
        }
    }

    fn log(&mut self, closed: u64, budget: &Budget) {
        self.due = None;
        warn!(
            closed,
            freed_bytes = std::mem::take(&mut self.freed),
            queued_bytes = self.queued,
            budget_bytes = budget.limit,
            "output budget exceeded: closed the connections with the most queued"
        );
    }
}

/// Closes the connections with the most queued until what the others hold fits the budget.
/// Closed connections free their queues as their writers stop: what they hold is counted as
/// freed already, so that one excess never closes more connections than it takes. Says
/// what it closed, if anything.
fn relieve(budget: &Budget, outboxes: &mut Vec<Weak<Shared>>) -> Option<Relief> {
    let mut open = Vec::new();
    let mut freeing = 0usize;
    outboxes.retain(|outbox| match outbox.upgrade() {
        Some(shared) => {
            if shared.is_closed() {
                freeing += shared.queued_bytes();
            } else {
                open.push(shared);
            }
            true
        }
        None => false,
    });
    let total = budget.total.load(Ordering::Relaxed);
    let mut excess = total.saturating_sub(freeing).saturating_sub(budget.limit);
    if excess == 0 {
        return None;
    }
    open.sort_unstable_by_key(|shared| Reverse(shared.queued_bytes()));
    let mut closed = 0;
    let mut freed = 0;
    for shared in open {
        let queued = shared.queued_bytes();
        if excess == 0 || queued == 0 {
            break;
        }
        shared.close_not_reading();
        closed += 1;
        freed += queued;
        excess = excess.saturating_sub(queued);
    }
    (closed > 0).then_some(Relief {
        closed,
        freed,
        queued: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Delivery, OutboxFull};
    use linechat_protocol::Reply;

    fn line(bytes: usize) -> Arc<Delivery> {
        Delivery::new(Reply::Pong(Some("x".repeat(bytes))))
    }

    #[tokio::test]
    async fn the_total_counts_every_outbox_and_drops_with_what_is_freed() {
        let output = OutputBudget::spawn(1 << 20);
        let (a, writer_a) = output.outbox(1 << 20);
        let (b, writer_b) = output.outbox(1 << 20);
        let one = line(100);
        a.push(one.clone()).unwrap();
        b.push(one.clone()).unwrap();
        b.push(line(200)).unwrap();
        assert_eq!(a.queued_bytes(), one.size());
        assert_eq!(output.queued_bytes(), a.queued_bytes() + b.queued_bytes());
        drop(writer_a);
        assert_eq!(output.queued_bytes(), b.queued_bytes());
        assert_eq!(a.push(one), Err(OutboxFull));
        drop(writer_b);
        assert_eq!(output.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn past_the_budget_the_largest_queues_are_closed_until_it_fits() {
        let output = OutputBudget::spawn(10_000);
        let mut outboxes = Vec::new();
        for _ in 0..4 {
            outboxes.push(output.outbox(1 << 20));
        }
        // Queued 1000, 4000 and 3000 bytes: under the budget.
        for (i, bytes) in [1000, 4000, 3000].into_iter().enumerate() {
            outboxes[i].0.push(line(bytes)).unwrap();
        }
        tokio::task::yield_now().await;
        assert!(outboxes.iter().all(|(outbox, _)| !outbox.is_closed()));
        // 2500 more for the last one: 10,500 in all, so the largest (4000) goes, not it.
        outboxes[3].0.push(line(2500)).unwrap();
        let largest = &outboxes[1].0;
        tokio::time::timeout(std::time::Duration::from_secs(5), largest.closed())
            .await
            .expect("the largest queue is closed");
        assert!(largest.overflowed());
        for i in [0, 2, 3] {
            assert!(!outboxes[i].0.is_closed(), "outbox {i} closed");
        }
        let (_, writer) = outboxes.remove(1);
        drop(writer);
        assert!(output.queued_bytes() <= output.limit_bytes());
    }
}
