//! The outgoing side of a connection: a queue bounded in bytes, drained by a writer task.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::common::Reply;

/// The most bytes the writer gathers into one write.
const MAX_BATCH: usize = 64 * 1024;

/// A reply on its way to one or more clients. It is encoded at most once, however many outboxes
/// it is pushed to: every recipient's writer shares the same bytes.
#[derive(Debug)]
pub struct Delivery {
    reply: Option<Reply>,
    /// The last thing the writer takes: it writes this line, if any, then shuts the socket.
    /// A flag here rather than a variant of an enum keeps the queue's slots one pointer wide,
    /// which every connection's queue pays for.
    ends: bool,
    line: OnceLock<Bytes>,
}

impl Delivery {
    pub fn new(reply: Reply) -> Arc<Self> {
        Arc::new(Self {
            reply: Some(reply),
            ends: false,
            line: OnceLock::new(),
        })
    }

    fn end(last: Option<Reply>) -> Arc<Self> {
        Arc::new(Self {
            reply: last,
            ends: true,
            line: OnceLock::new(),
        })
    }

    fn line(&self) -> &Bytes {
        self.line.get_or_init(|| match &self.reply {
            Some(reply) => {
                let mut line = reply.to_string();
                line.push('\n');
                Bytes::from(line)
            }
            None => Bytes::new(),
        })
    }
}

/// State shared by the outbox handles and the writer: counters and a flag, not data.
#[derive(Debug, Default)]
struct Shared {
    queued_bytes: AtomicUsize,
    overflowed: AtomicBool,
    /// Set when the connection's user logged in on another connection, which took over.
    replaced: AtomicBool,
    /// Set with `closed`: checked on every push, where the token's own check (a lock) costs.
    is_closed: AtomicBool,
    closed: CancellationToken,
}

impl Shared {
    fn close(&self) {
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
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
    shared: Arc<Shared>,
    limit_bytes: usize,
}

impl Outbox {
    /// Queues a line without waiting. A full queue closes the connection rather than slow down
    /// the sender: one client that stops reading must not stall a room.
    pub fn push(&self, delivery: Arc<Delivery>) -> Result<(), OutboxFull> {
        if self.shared.is_closed.load(Ordering::Acquire) {
            return Err(OutboxFull);
        }
        let size = delivery.line().len();
        let before = self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > self.limit_bytes {
            self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.shared.overflowed.store(true, Ordering::Relaxed);
            self.shared.close();
            return Err(OutboxFull);
        }
        self.tx.send(delivery).map_err(|_| OutboxFull)
    }

    pub fn send(&self, reply: Reply) -> Result<(), OutboxFull> {
        self.push(Delivery::new(reply))
    }

    /// Asks the writer to write what is queued, then `last`, and then shut the socket down.
    /// Lines pushed after this are never written.
    pub fn finish(&self, last: Option<Reply>) {
        let _ = self.tx.send(Delivery::end(last));
    }

    /// Ends the connection because its user logged in on another one: the writer writes what
    /// is queued and `last`, then shuts the socket; the session learns of it from
    /// [`Outbox::replaced`].
    pub fn replace(&self, last: Reply) {
        self.shared.replaced.store(true, Ordering::Release);
        self.finish(Some(last));
    }

    /// Whether the connection's user took their session over on another connection.
    pub fn replaced(&self) -> bool {
        self.shared.replaced.load(Ordering::Acquire)
    }

    /// Resolves when the connection is closed: the queue overflowed or the socket failed.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.shared.closed.cancelled()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed.load(Ordering::Acquire)
    }

    /// Whether the connection was closed because the client stopped reading.
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Whether two handles lead to the same connection.
    pub fn same_connection(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// Drains an [`Outbox`] into a socket.
#[derive(Debug)]
pub struct Writer {
    rx: mpsc::UnboundedReceiver<Arc<Delivery>>,
    shared: Arc<Shared>,
}

/// Creates the two ends of a connection's output: handles to push to, and the writer.
pub fn outbox(limit_bytes: usize) -> (Outbox, Writer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let outbox = Outbox {
        tx,
        shared: shared.clone(),
        limit_bytes,
    };
    (outbox, Writer { rx, shared })
}

impl Writer {
    /// Writes queued lines until the outbox is finished or the connection closed. Whatever has
    /// queued up while a write was in progress goes out together in the next write.
    pub async fn run<W: AsyncWrite + Unpin>(mut self, mut io: W) -> io::Result<()> {
        let result = self.write_until_finished(&mut io).await;
        self.shared.close();
        result
    }

    async fn write_until_finished<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> io::Result<()> {
        // Registered once: a fresh wait on the token for every write costs a lock each time.
        let closed = self.shared.closed.clone().cancelled_owned();
        tokio::pin!(closed);
        let mut batch = BytesMut::new();
        let mut finished = false;
        while !finished {
            // No need to watch `closed` here: the session always sends `Finish` at its end,
            // and the channel closes once every handle is dropped.
            let Some(first) = self.rx.recv().await else {
                break;
            };
            finished = first.ends;
            if !finished && self.rx.is_empty() {
                // Let whoever woke us queue more first: under load one write then carries many
                // lines, which is what makes a large room's fan-out cheap.
                tokio::task::yield_now().await;
            }
            batch.extend_from_slice(first.line());
            // Only pushed lines were counted in; the parting line was not.
            let mut counted = if finished { 0 } else { first.line().len() };
            while !finished && batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(delivery) => {
                        batch.extend_from_slice(delivery.line());
                        finished = delivery.ends;
                        if !finished {
                            counted += delivery.line().len();
                        }
                    }
                    Err(_) => break,
                }
            }
            tokio::select! {
                written = io.write_all(&batch) => written?,
                // A client that never reads would hold this write forever.
                () = &mut closed => return Ok(()),
            }
            self.shared
                .queued_bytes
                .fetch_sub(counted, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{Reply, Verb};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn writes_queued_lines_in_order_then_shuts_down() {
        let (outbox, writer) = outbox(1024);
        outbox.send(Reply::Pong(Some("1".into()))).unwrap();
        outbox.send(Reply::ok(Verb::Quit)).unwrap();
        outbox.finish(None);
        let (client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run(server));
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
        outbox.finish(Some(Reply::ok(Verb::Quit)));
        outbox.send(Reply::Pong(Some("after".into()))).unwrap();
        let (mut client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run(server));
        let mut received = String::new();
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "PONG before\nOK QUIT\n");
        writing.await.unwrap().unwrap();

        // Also when the writer picks up the parting line first.
        let (outbox, writer) = outbox_pair_with_finish_first();
        let (mut client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run(server));
        let mut received = String::new();
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "OK QUIT\n");
        writing.await.unwrap().unwrap();
        drop(outbox);
    }

    fn outbox_pair_with_finish_first() -> (Outbox, Writer) {
        let (outbox, writer) = outbox(1024);
        outbox.finish(Some(Reply::ok(Verb::Quit)));
        outbox.send(Reply::Pong(Some("after".into()))).unwrap();
        (outbox, writer)
    }

    #[tokio::test]
    async fn overflow_closes_the_connection_and_refuses_more() {
        let (outbox, writer) = outbox(16);
        let line = Delivery::new(Reply::Pong(Some("0123456789".into())));
        assert_eq!(outbox.push(line.clone()), Ok(()));
        assert_eq!(outbox.push(line.clone()), Err(OutboxFull));
        assert!(outbox.overflowed());
        assert!(outbox.is_closed());
        drop(writer);
        assert_eq!(outbox.push(line), Err(OutboxFull));
    }
}
