//! The outgoing side of a connection: a queue bounded in bytes, drained by a writer task.
//!
//! Every delivery queued counts against its connection's limit, and against the server's
//! output budget ([`OutputBudget`](super::OutputBudget)) when there is one, for what it holds
//! ([`Delivery::size`]), until the writer has written it (a delivery its wording keeps for
//! later, until that is written too) or the connection is gone.

use std::any::Any;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use once_cell::race::OnceBox;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

use super::budget::Budget;
use crate::server::event::Event;
use linechat_protocol::{CloseReason, Reply};

/// The most bytes the writer gathers into one write.
const MAX_BATCH: usize = 64 * 1024;

/// The most a streamed reply keeps queued (or half the outbox limit, if less): enough to keep
/// the writer busy, and the rest of the outbox stays free for live traffic.
const STREAM_WINDOW: usize = 256 * 1024;

/// What one queued delivery holds beyond what it carries: the shared delivery (its reference
/// counts and its body), its pointer in the queue, and the allocator's header on each of its
/// two allocations.
pub(super) const ENTRY_OVERHEAD: usize =
    size_of::<Delivery>() + 2 * size_of::<usize>() + size_of::<usize>() + 2 * 16;

/// The forms a front-end words an event in at its connections' writers: one slot each in a
/// delivery of an event, filled by the first writer of that form and copied by the others,
/// so that an event fanned out to many connections is worded once per form, not once per
/// connection. Each protocol has two: the line protocol with and without stamps on messages,
/// IRC with and without the `server-time` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The line protocol.
    Line,
    /// The line protocol, message lines stamped with their id and time (`OPTION ids on`).
    LineStamped,
    Irc,
    /// IRC for a client that took `server-time`.
    IrcTimed,
}

impl Form {
    const COUNT: usize = 4;
}

/// Something on its way to one or more clients, shared by all of them: every recipient's
/// writer gets the same delivery.
///
/// What a delivery counts against each outbox it is queued in ([`Delivery::size`]) is fixed
/// when it is made and does not change while it is queued: the writers' accounting releases
/// exactly what the push counted. It is what the delivery holds as made: its lines, or its
/// event with what that holds on the heap. The wordings of an event made by the writers
/// ([`Delivery::worded`]) are not counted: there is at most one per form however many
/// connections hold the event, each about as large as the event's line, and they live no
/// longer than the delivery.
#[derive(Debug)]
pub struct Delivery(Body);

#[derive(Debug)]
enum Body {
    /// Lines a front-end encoded itself (a session's own replies), each ending in `\n`;
    /// written as they are.
    Lines(Bytes),
    /// An event, worded by each front-end at its writers.
    Event(Box<WordedEvent>),
    /// A value of the front-end's own that its wording understands, e.g. a change of the
    /// writer's state that takes effect in order with the lines around it.
    Own(Box<OwnValue>),
    /// The last thing the writer takes: it writes the parting, if any (lines, or an event
    /// worded as any other), then shuts the socket. A variant rather than a flag, so that a
    /// delivery stays as small as its lines.
    End(Option<Arc<Delivery>>),
}

#[derive(Debug)]
struct WordedEvent {
    event: Event,
    /// The event's wording in each [`Form`], once a writer of that form made it.
    forms: [OnceBox<Bytes>; Form::COUNT],
    size: usize,
}

struct OwnValue {
    value: Box<dyn Any + Send + Sync>,
    size: usize,
}

impl std::fmt::Debug for OwnValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnValue")
            .field("size", &self.size)
            .finish()
    }
}

/// What a delivery carries, as a writer's wording reads it.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    Lines(&'a Bytes),
    Event(&'a Event),
    Own(&'a (dyn Any + Send + Sync)),
}

/// The lines of a parting without a line.
static NO_LINES: Bytes = Bytes::new();

impl Delivery {
    /// The line of `reply`, encoded.
    pub fn new(reply: Reply) -> Arc<Self> {
        Self::of(&reply)
    }

    /// The same, leaving the reply to the caller, who may still need its parts.
    pub fn of(reply: &Reply) -> Arc<Self> {
        Self::from_bytes(encode_line(reply))
    }

    /// A delivery of lines encoded already (each ending in `\n`).
    pub fn from_bytes(line: Bytes) -> Arc<Self> {
        Arc::new(Self(Body::Lines(line)))
    }

    /// A delivery of `event`, for every front-end to word its way.
    pub fn event(event: Event) -> Arc<Self> {
        let size = size_of::<WordedEvent>() + 16 + event.heap_bytes() + ENTRY_OVERHEAD;
        Arc::new(Self(Body::Event(Box::new(WordedEvent {
            event,
            forms: Default::default(),
            size,
        }))))
    }

    /// A delivery of a value of the front-end's own, which holds `heap_bytes` beyond its
    /// size.
    pub fn own<T: Any + Send + Sync>(value: T, heap_bytes: usize) -> Arc<Self> {
        let size = size_of::<OwnValue>() + size_of::<T>() + 2 * 16 + heap_bytes + ENTRY_OVERHEAD;
        let value = Box::new(value);
        Arc::new(Self(Body::Own(Box::new(OwnValue { value, size }))))
    }

    fn end(last: Option<Arc<Delivery>>) -> Arc<Self> {
        Arc::new(Self(Body::End(last)))
    }

    /// Whether the writer stops after this: the connection's parting, if any.
    pub fn ends(&self) -> bool {
        matches!(self.0, Body::End(_))
    }

    /// What the delivery carries; for the end, what its parting carries (no lines if none).
    pub fn content(&self) -> Content<'_> {
        match &self.0 {
            Body::Lines(lines) => Content::Lines(lines),
            Body::Event(worded) => Content::Event(&worded.event),
            Body::Own(own) => Content::Own(&*own.value),
            // The parting is never an end itself: only `Outbox::finish` makes ends.
            Body::End(Some(last)) => last.content(),
            Body::End(None) => Content::Lines(&NO_LINES),
        }
    }

    /// The event, if the delivery is one.
    pub fn as_event(&self) -> Option<&Event> {
        match &self.0 {
            Body::Event(worded) => Some(&worded.event),
            _ => None,
        }
    }

    /// The event's wording in `form`, the same for every connection of that form: made by
    /// `word` the first time a writer asks for it, and shared by every writer that asks after
    /// that. `None` for a delivery that is not an event, and when `word` found no wording
    /// shared by all (it may be asked again).
    pub fn worded(&self, form: Form, word: impl FnOnce(&Event) -> Option<Bytes>) -> Option<&Bytes> {
        let Body::Event(worded) = &self.0 else {
            return None;
        };
        let slot = &worded.forms[form as usize];
        if let Some(made) = slot.get() {
            return Some(made);
        }
        let made = word(&worded.event)?;
        #[cfg(test)]
        WORDINGS.with(|made| made[form as usize].set(made[form as usize].get() + 1));
        Some(slot.get_or_init(|| Box::new(made)))
    }

    /// Whether the event's wording in `form` was made already.
    pub fn is_worded(&self, form: Form) -> bool {
        matches!(&self.0, Body::Event(worded) if worded.forms[form as usize].get().is_some())
    }

    /// The lines of a delivery of lines; empty for anything else.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Body::Lines(lines) => lines,
            _ => &[],
        }
    }

    /// What the delivery costs each outbox it is queued in: what it holds and its
    /// bookkeeping. Fixed when it is made.
    pub fn size(&self) -> usize {
        match &self.0 {
            Body::Lines(lines) => lines.len() + ENTRY_OVERHEAD,
            Body::Event(worded) => worded.size,
            Body::Own(own) => own.size,
            // Never pushed, so never counted.
            Body::End(_) => 0,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// How many wordings of events this thread made, per [`Form`]: for tests that check that
    /// an event is worded once per form however many connections write it.
    pub(crate) static WORDINGS: [std::cell::Cell<usize>; Form::COUNT] = Default::default();
}

/// How many wordings of events in `form` this thread made.
#[cfg(test)]
pub(crate) fn wordings(form: Form) -> usize {
    WORDINGS.with(|made| made[form as usize].get())
}

/// The line of `reply`, with its `\n`, in an allocation of its exact length.
pub fn encode_line(reply: &Reply) -> Bytes {
    encode_display(reply)
}

/// What `lines` displays, with a `\n` after it, in an allocation of its exact length.
pub fn encode_display(lines: &impl std::fmt::Display) -> Bytes {
    use std::fmt::Write;
    thread_local! {
        /// Where lines are formatted: reused, so that a line costs one allocation of its
        /// exact length, not the doublings of a growing `String` and a shrink after them.
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with_borrow_mut(|line| {
        line.clear();
        // Writing to a `String` cannot fail.
        let _ = writeln!(line, "{lines}");
        let bytes = Bytes::copy_from_slice(line.as_bytes());
        if line.capacity() > MAX_SCRATCH {
            *line = String::new();
        }
        bytes
    })
}

/// The scratch line is let go of when a very long reply made it larger than this.
const MAX_SCRATCH: usize = 16 * 1024;

/// State shared by the outbox handles, the writer and the output budget: counters and flags,
/// not data.
#[derive(Debug)]
pub(super) struct Shared {
    /// What the queued lines hold, those being written included ([`Delivery::size`]).
    queued_bytes: AtomicUsize,
    overflowed: AtomicBool,
    /// Set when the connection's user logged in on another connection, which took over.
    replaced: AtomicBool,
    /// Set with `closed`: checked on every push, where the token's own check (a lock) costs.
    is_closed: AtomicBool,
    /// Set when the parting line is queued: nothing pushed after it would be written, so a
    /// push fails at once, and a sender holding this handle learns that the session is over.
    finished: AtomicBool,
    /// Set while every private message to the connection's user must pass the directory,
    /// which answers the sender with something only it knows (the user is away, and why):
    /// senders holding this handle then go through the directory rather than push here.
    detoured: AtomicBool,
    closed: CancellationToken,
    /// Notified each time the writer has written a batch, for a streamed reply waiting for
    /// room. A stored permit, not a list of waiters: only the session waits, one at a time.
    drained: Notify,
    /// The server-wide budget this outbox also counts against, if any.
    budget: Option<Arc<Budget>>,
}

impl Shared {
    fn new(budget: Option<Arc<Budget>>) -> Self {
        Self {
            queued_bytes: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            is_closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            detoured: AtomicBool::new(false),
            closed: CancellationToken::new(),
            drained: Notify::new(),
            budget,
        }
    }

    fn close(&self) {
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
    }

    /// Closes the connection as one whose client does not read: nothing more is written.
    pub(super) fn close_not_reading(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
        self.close();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Counts `bytes` more held for the connection: what its writer's wording keeps of lines
    /// it took, to write them later ([`Wording::held`]).
    fn hold(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(budget) = &self.budget {
            budget.add(bytes);
        }
    }

    /// Uncounts `bytes` that are no longer held: written, or dropped with the connection.
    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if let Some(budget) = &self.budget {
            budget.release(bytes);
        }
        self.drained.notify_one();
    }
}

/// The recipient cannot take the line: its queue is full or its connection is closed. The
/// connection is being closed; callers drop the recipient from whatever they fan out to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the recipient is gone or not reading")]
pub struct OutboxFull;

/// A handle to push lines to one client. Cheap to clone: the user and room actors each hold one.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Arc<Delivery>>,
    pub(super) shared: Arc<Shared>,
    limit_bytes: usize,
}

impl Outbox {
    /// Queues a line without waiting. A full queue closes the connection rather than slow down
    /// the sender: one client that stops reading must not stall a room.
    pub fn push(&self, delivery: Arc<Delivery>) -> Result<(), OutboxFull> {
        if self.is_closed() {
            return Err(OutboxFull);
        }
        let size = delivery.size();
        let before = self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > self.limit_bytes {
            self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.shared.close_not_reading();
            return Err(OutboxFull);
        }
        if let Some(budget) = &self.shared.budget {
            budget.add(size);
        }
        if self.tx.send(delivery).is_err() {
            // The writer is gone and has already uncounted what it left behind.
            self.shared.release(size);
            return Err(OutboxFull);
        }
        Ok(())
    }

    /// Queues the line of `reply`.
    pub fn send(&self, reply: Reply) -> Result<(), OutboxFull> {
        self.push(Delivery::new(reply))
    }

    /// Waits until a line of `size` ([`Delivery::size`]) fits in the part of the outbox that
    /// a long reply may fill: its lines go out as the client reads, instead of all being
    /// queued at once. Always lets a line into an empty outbox. Fails once the connection is
    /// closed. Cancel-safe: dropping the future loses nothing.
    pub async fn wait_for_room(&self, size: usize) -> Result<(), OutboxFull> {
        let window = (self.limit_bytes / 2).min(STREAM_WINDOW);
        loop {
            if self.shared.is_closed() {
                return Err(OutboxFull);
            }
            let queued = self.shared.queued_bytes.load(Ordering::Acquire);
            if queued == 0 || queued.saturating_add(size) <= window {
                return Ok(());
            }
            // A write that ends between the check and here leaves a permit: no lost wake-up.
            tokio::select! {
                () = self.shared.drained.notified() => {}
                () = self.shared.closed.cancelled() => return Err(OutboxFull),
            }
        }
    }

    /// Asks the writer to write what is queued, then `last`, the connection's parting (lines,
    /// or an event its wording words), and then shut the socket down. Pushes after this fail.
    pub fn finish(&self, last: Option<Arc<Delivery>>) {
        self.shared.finished.store(true, Ordering::Release);
        let _ = self.tx.send(Delivery::end(last));
    }

    /// Ends the connection because its user is online elsewhere now, as `reason` says
    /// (`Replaced`, `NameLost`): the writer writes what is queued and the closing notice,
    /// worded by the connection's front-end, then shuts the socket; the session learns of it
    /// from [`Outbox::replaced`].
    pub fn replace(&self, reason: CloseReason) {
        self.shared.replaced.store(true, Ordering::Release);
        self.finish(Some(Delivery::event(Event::Closing(reason))));
    }

    /// Whether the connection's user took their session over on another connection.
    pub fn replaced(&self) -> bool {
        self.shared.replaced.load(Ordering::Acquire)
    }

    /// Resolves when the connection is closed: the queue overflowed or the socket failed.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.shared.closed.cancelled()
    }

    /// Whether the connection takes no more lines: it is closed, or its parting line is
    /// queued.
    /// The same, as a future that holds its own handle to the token.
    pub fn closed_owned(&self) -> WaitForCancellationFutureOwned {
        self.shared.closed.clone().cancelled_owned()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed() || self.shared.finished.load(Ordering::Acquire)
    }

    /// Closes the connection as one whose client stopped reading, as an overflow does.
    pub fn close_not_reading(&self) {
        self.shared.close_not_reading();
    }

    /// Whether the connection was closed because the client stopped reading.
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// What the lines queued for this client hold now, in bytes.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes()
    }

    /// Sends private messages to this connection's user through the directory, or lets
    /// senders push them straight here again.
    pub fn set_detoured(&self, detoured: bool) {
        self.shared.detoured.store(detoured, Ordering::Release);
    }

    /// Whether private messages to this connection's user must go through the directory.
    pub fn is_detoured(&self) -> bool {
        self.shared.detoured.load(Ordering::Acquire)
    }

    /// Whether two handles lead to the same connection.
    pub fn same_connection(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Which connection the handle leads to, as a number: equal for two handles exactly when
    /// [`Outbox::same_connection`] is true, for as long as the connection lives. For sets of
    /// connections.
    pub fn connection_key(&self) -> usize {
        Arc::as_ptr(&self.shared).addr()
    }
}

/// How a connection's writer words what it writes: each front-end has its own (the line
/// protocol's, IRC's). Lines a front-end encoded itself ([`Content::Lines`]) are written as
/// they are; events are worded once per [`Form`] for all connections of that form
/// ([`Delivery::worded`]).
pub trait Wording {
    /// Appends what `delivery` is on this connection to `batch`.
    fn put(&mut self, delivery: &Arc<Delivery>, batch: &mut BytesMut);

    /// What the wording keeps, in bytes, of lines it was given but has not written yet (lines
    /// that wait for something it has to see first). They are the connection's queued output
    /// as much as the lines in the outbox: the writer keeps them counted, against the
    /// outbox's limit and the output budget, until they are written.
    fn held(&self) -> usize {
        0
    }
}

/// Drains an [`Outbox`] into a socket.
#[derive(Debug)]
pub struct Writer {
    rx: mpsc::UnboundedReceiver<Arc<Delivery>>,
    shared: Arc<Shared>,
    /// What the lines copied into the batch being written counted: still held (in the batch)
    /// until the write completes.
    in_batch: usize,
    /// What the wording held after the last write ([`Wording::held`]), counted as queued.
    held: usize,
}

/// Creates the two ends of a connection's output: handles to push to, and the writer.
pub fn outbox(limit_bytes: usize) -> (Outbox, Writer) {
    outbox_in(limit_bytes, None)
}

pub(super) fn outbox_in(limit_bytes: usize, budget: Option<Arc<Budget>>) -> (Outbox, Writer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(budget));
    let outbox = Outbox {
        tx,
        shared: shared.clone(),
        limit_bytes,
    };
    let writer = Writer {
        rx,
        shared,
        in_batch: 0,
        held: 0,
    };
    (outbox, writer)
}

impl Writer {
    /// Writes queued deliveries until the outbox is finished or the connection closed.
    /// Whatever has queued up while a write was in progress goes out together in the next
    /// write. It awaits no other `async fn` of the writer: each layer would keep its own copy
    /// of the writer and the socket in the connection's task.
    ///
    /// Each delivery is worded by `wording` on its way. Dropping the writer at the end closes
    /// the connection and uncounts what it leaves unwritten.
    pub async fn run_worded<W: AsyncWrite + Unpin>(
        mut self,
        mut io: W,
        mut wording: impl Wording,
    ) -> io::Result<()> {
        // Registered once: a fresh wait on the token for every write costs a lock each time.
        let closed = self.shared.closed.clone().cancelled_owned();
        tokio::pin!(closed);
        let mut batch = BytesMut::new();
        let mut finished = false;
        // Whether the last write carried more than one line: the lines come faster than
        // they are written.
        let mut under_load = false;
        while !finished {
            // No need to watch `closed` here: the session always sends `Finish` at its end,
            // and the channel closes once every handle is dropped.
            let Some(first) = self.rx.recv().await else {
                break;
            };
            finished = first.ends();
            if under_load && !finished && self.rx.is_empty() {
                // Let whoever woke us queue more first: one write then carries many lines,
                // which is what makes a large room's fan-out cheap. Only under load: at a
                // light pace the wait only delays the line, for every recipient of a room
                // message until all of their writers have been polled once.
                tokio::task::yield_now().await;
            }
            wording.put(&first, &mut batch);
            // Only pushed lines were counted in; the parting line was not.
            if !finished {
                self.in_batch += first.size();
            }
            drop(first);
            let mut lines = 1;
            while !finished && batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(delivery) => {
                        wording.put(&delivery, &mut batch);
                        finished = delivery.ends();
                        if !finished {
                            self.in_batch += delivery.size();
                        }
                        lines += 1;
                    }
                    Err(_) => break,
                }
            }
            under_load = lines > 1;
            // Flushed as well: a writer that buffers (TLS) sends what it took now, not when
            // the next line comes.
            let write = async {
                io.write_all(&batch).await?;
                io.flush().await
            };
            tokio::select! {
                written = write => written?,
                // A client that never reads would hold this write forever.
                () = &mut closed => return Ok(()),
            }
            // Lines the wording took into its keeping stay counted; those it has let go of
            // were in this write.
            let held = wording.held();
            self.shared.hold(held.saturating_sub(self.held));
            self.shared.release(std::mem::take(&mut self.in_batch));
            self.shared.release(self.held.saturating_sub(held));
            self.held = held;
            batch.clear();
            if self.rx.is_empty() {
                // An idle connection holds no write buffer.
                batch = BytesMut::new();
            }
        }
        io.flush().await?;
        io.shutdown().await
    }
}

impl Drop for Writer {
    /// Whether the writer finished, failed or was aborted, nothing more is written: the
    /// connection closes, and what it still held is uncounted as it is freed.
    fn drop(&mut self) {
        self.shared.close();
        // A push after this fails and uncounts its own line.
        self.rx.close();
        let mut held = std::mem::take(&mut self.in_batch) + std::mem::take(&mut self.held);
        loop {
            match self.rx.try_recv() {
                Ok(delivery) if !delivery.ends() => held += delivery.size(),
                Ok(_) => {}
                // A push between its count and its send: it lands in a moment.
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        self.shared.release(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linechat_protocol::{Name, Reply, Verb};
    use tokio::io::{AsyncRead, AsyncReadExt};

    /// Lines as they are; nothing else comes in these tests.
    struct Verbatim;

    impl Wording for Verbatim {
        fn put(&mut self, delivery: &Arc<Delivery>, batch: &mut BytesMut) {
            batch.extend_from_slice(bytes(delivery));
        }
    }

    fn bytes(delivery: &Delivery) -> &[u8] {
        match delivery.content() {
            Content::Lines(lines) => lines,
            content => panic!("not lines: {content:?}"),
        }
    }

    #[tokio::test]
    async fn writes_queued_lines_in_order_then_shuts_down() {
        let (outbox, writer) = outbox(1024);
        outbox.send(Reply::Pong(Some("1".into()))).unwrap();
        outbox.send(Reply::ok(Verb::Quit)).unwrap();
        outbox.finish(None);
        let (client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        let mut received = String::new();
        let mut client = client;
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "PONG 1\nOK QUIT\n");
        writing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_parting_line_is_the_last_even_with_lines_queued_after_it() {
        let (outbox, writer) = outbox(1024);
        outbox.send(Reply::Pong(Some("before".into()))).unwrap();
        outbox.finish(Some(Delivery::new(Reply::ok(Verb::Quit))));
        assert_eq!(
            outbox.send(Reply::Pong(Some("after".into()))),
            Err(OutboxFull)
        );
        let (mut client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        let mut received = String::new();
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "PONG before\nOK QUIT\n");
        writing.await.unwrap().unwrap();

        // Also when the writer picks up the parting line first.
        let (outbox, writer) = outbox_pair_with_finish_first();
        let (mut client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        let mut received = String::new();
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "OK QUIT\n");
        writing.await.unwrap().unwrap();
        drop(outbox);
    }

    /// What the writer has written since the last call, read without waiting: all of it
    /// comes in one read.
    fn written(client: &mut tokio::io::DuplexStream) -> String {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut bytes = [0; 1024];
        let mut buf = tokio::io::ReadBuf::new(&mut bytes);
        let _ = std::pin::Pin::new(client).poll_read(&mut cx, &mut buf);
        String::from_utf8_lossy(buf.filled()).into_owned()
    }

    #[test]
    fn a_lone_line_goes_out_at_once_and_under_load_waits_a_round_for_company() {
        let (outbox, writer) = outbox(1024);
        let (mut client, server) = tokio::io::duplex(1024);
        let writing = writer.run_worded(server, Verbatim);
        tokio::pin!(writing);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut round = |expected: &str, client: &mut tokio::io::DuplexStream| {
            assert!(writing.as_mut().poll(&mut cx).is_pending());
            assert_eq!(written(client), expected);
        };
        let pong = |n: &str| outbox.send(Reply::Pong(Some(n.into()))).unwrap();

        // At a light pace, a line goes out in the writer's first round.
        pong("1");
        round("PONG 1\n", &mut client);
        // Lines that queue up go out together, and tell the writer it is under load...
        pong("2");
        pong("3");
        round("PONG 2\nPONG 3\n", &mut client);
        // ...where a lone line waits a round for the lines queued behind it.
        pong("4");
        round("", &mut client);
        pong("5");
        round("PONG 4\nPONG 5\n", &mut client);
        // A write of one line ends the load.
        pong("6");
        round("", &mut client);
        round("PONG 6\n", &mut client);
        pong("7");
        round("PONG 7\n", &mut client);
    }

    fn outbox_pair_with_finish_first() -> (Outbox, Writer) {
        let (outbox, writer) = outbox(1024);
        outbox.finish(Some(Delivery::new(Reply::ok(Verb::Quit))));
        assert_eq!(
            outbox.send(Reply::Pong(Some("after".into()))),
            Err(OutboxFull)
        );
        (outbox, writer)
    }

    #[test]
    fn an_event_is_worded_once_per_form_and_other_deliveries_have_no_wording() {
        let event = Event::Joined {
            room: Name::parse("lobby").unwrap(),
            user: Name::parse("alice").unwrap(),
        };
        let line = Delivery::event(event);
        assert!(!line.ends());
        assert_eq!(line.worded(Form::Line, |_| None), None);
        let made = line.worded(Form::Line, |_| Some(Bytes::from_static(b"JR")));
        assert_eq!(made.map(|made| &made[..]), Some(&b"JR"[..]));
        let kept = line.worded(Form::Line, |_| panic!("worded a second time"));
        assert_eq!(kept.map(|kept| &kept[..]), Some(&b"JR"[..]));
        // Each form has its own.
        let irc = line.worded(Form::Irc, |_| Some(Bytes::from_static(b"JOIN")));
        assert_eq!(irc.map(|irc| &irc[..]), Some(&b"JOIN"[..]));
        // What it counts was fixed when it was made.
        let size = line.size();
        assert_eq!(size, ENTRY_OVERHEAD + size_of::<WordedEvent>() + 16);
        assert_eq!(line.size(), size);

        let pong = Delivery::new(Reply::Pong(Some("1".into())));
        assert_eq!(pong.worded(Form::Line, |_| panic!("not an event")), None);
        let end = Delivery::end(Some(Delivery::new(Reply::ok(Verb::Quit))));
        assert!(end.ends());
        assert!(matches!(end.content(), Content::Lines(line) if &line[..] == b"OK QUIT\n"));
        assert!(Delivery::end(None).ends());
    }

    #[tokio::test]
    async fn overflow_closes_the_connection_and_refuses_more() {
        let line = Delivery::new(Reply::Pong(Some("0123456789".into())));
        let (outbox, writer) = outbox(line.size() + 16);
        assert_eq!(outbox.push(line.clone()), Ok(()));
        assert_eq!(outbox.push(line.clone()), Err(OutboxFull));
        assert!(outbox.overflowed());
        assert!(outbox.is_closed());
        drop(writer);
        assert_eq!(outbox.push(line), Err(OutboxFull));
    }

    #[tokio::test]
    async fn a_line_counts_its_exact_bytes_and_bookkeeping_until_written() {
        let (outbox, writer) = outbox(1 << 20);
        let reply = Reply::Pong(Some("x".repeat(1000)));
        let line = Delivery::new(reply.clone());
        // Encoded once, to its exact length, and nothing else kept.
        assert_eq!(bytes(&line).len(), format!("{reply}\n").len());
        // A delivery is no larger than its lines' handle and a word.
        assert_eq!(
            size_of::<Delivery>(),
            size_of::<Bytes>() + size_of::<usize>()
        );
        assert_eq!(line.size(), bytes(&line).len() + ENTRY_OVERHEAD);
        outbox.push(line.clone()).unwrap();
        outbox.push(line.clone()).unwrap();
        assert_eq!(outbox.queued_bytes(), 2 * line.size());

        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        let mut received = vec![0; 2 * bytes(&line).len()];
        client.read_exact(&mut received).await.unwrap();
        tokio::task::yield_now().await;
        outbox.wait_for_room(usize::MAX).await.unwrap();
        assert_eq!(outbox.queued_bytes(), 0);
        outbox.finish(None);
        writing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn lines_left_unwritten_are_uncounted_when_the_writer_goes() {
        let (outbox, writer) = outbox(1 << 20);
        outbox.send(Reply::Pong(Some("x".repeat(100)))).unwrap();
        outbox.send(Reply::Pong(Some("y".repeat(100)))).unwrap();
        // A client that never reads, and a writer aborted at shutdown.
        let (_client, server) = tokio::io::duplex(16);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(outbox.queued_bytes() > 0);
        writing.abort();
        let _ = writing.await;
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(outbox.is_closed());
    }

    /// A wording that keeps every line until one says `PONG go`, then writes them all.
    #[derive(Default)]
    struct Holding {
        kept: Vec<u8>,
    }

    impl Wording for Holding {
        fn put(&mut self, delivery: &Arc<Delivery>, batch: &mut BytesMut) {
            self.kept.extend_from_slice(bytes(delivery));
            if bytes(delivery) == b"PONG go\n" {
                batch.extend_from_slice(&self.kept);
                self.kept = Vec::new();
            }
        }

        fn held(&self) -> usize {
            self.kept.len()
        }
    }

    /// Waits until the outbox counts `bytes`, as the writer settles what it took.
    async fn until_queued(outbox: &Outbox, bytes: usize) {
        let settled = async {
            while outbox.queued_bytes() != bytes {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .unwrap_or_else(|_| panic!("{} queued, not {bytes}", outbox.queued_bytes()));
    }

    #[tokio::test]
    async fn lines_the_wording_keeps_count_against_the_limit_and_the_budget() {
        let output = crate::connection::OutputBudget::spawn(1 << 20);
        let line = Delivery::new(Reply::Pong(Some("x".repeat(1000))));
        // Room for three lines kept, but not for a fourth on its way besides.
        let (outbox, writer) = output.outbox(3 * bytes(&line).len() + line.size() - 1);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writing = tokio::spawn(writer.run_worded(server, Holding::default()));
        for kept in 1..=3 {
            outbox.push(line.clone()).unwrap();
            until_queued(&outbox, kept * bytes(&line).len()).await;
            assert_eq!(output.queued_bytes(), outbox.queued_bytes());
        }
        // Three kept, and a fourth would pass the limit: the client is not reading.
        assert_eq!(outbox.push(line.clone()), Err(OutboxFull));
        assert!(outbox.overflowed());
        outbox.finish(None);
        writing.await.unwrap().unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert!(received.is_empty());
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(output.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn lines_the_wording_kept_are_uncounted_once_written() {
        let output = crate::connection::OutputBudget::spawn(1 << 20);
        let (outbox, writer) = output.outbox(1 << 20);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writing = tokio::spawn(writer.run_worded(server, Holding::default()));
        outbox.send(Reply::Pong(Some("1".into()))).unwrap();
        outbox.send(Reply::Pong(Some("2".into()))).unwrap();
        until_queued(&outbox, "PONG 1\nPONG 2\n".len()).await;
        outbox.send(Reply::Pong(Some("go".into()))).unwrap();
        let mut received = vec![0; "PONG 1\nPONG 2\nPONG go\n".len()];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(received, b"PONG 1\nPONG 2\nPONG go\n");
        until_queued(&outbox, 0).await;
        assert_eq!(output.queued_bytes(), 0);
        outbox.finish(None);
        writing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_streamed_reply_waits_for_the_client_to_take_its_lines() {
        let line = Delivery::new(Reply::Pong(Some("z".repeat(1000))));
        // Room for a window of four lines, half the limit.
        let (outbox, writer) = outbox(8 * line.size());
        for _ in 0..4 {
            outbox.wait_for_room(line.size()).await.unwrap();
            outbox.push(line.clone()).unwrap();
        }
        let mut waiting = Box::pin(outbox.wait_for_room(line.size()));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        // The client reads: the writer's progress makes room.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writing = tokio::spawn(writer.run_worded(server, Verbatim));
        let mut buffer = vec![0; bytes(&line).len()];
        client.read_exact(&mut buffer).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("room in time")
            .unwrap();
        // A closed connection ends the wait with an error.
        outbox.close_not_reading();
        assert_eq!(outbox.wait_for_room(1).await, Err(OutboxFull));
        outbox.finish(None);
        let _ = writing.await;
    }
}
