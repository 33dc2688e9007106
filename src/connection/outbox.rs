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
    reply: Reply,
    line: OnceLock<Bytes>,
}

impl Delivery {
    pub fn new(reply: Reply) -> Arc<Self> {
        Arc::new(Self {
            reply,
            line: OnceLock::new(),
        })
    }

    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    fn line(&self) -> &Bytes {
        self.line.get_or_init(|| {
            let mut line = self.reply.to_string();
            line.push('\n');
            Bytes::from(line)
        })
    }
}

enum Outgoing {
    Line(Arc<Delivery>),
    /// Everything before this is written, then the socket is shut down.
    Finish,
}

/// State shared by the outbox handles and the writer: counters and a flag, not data.
#[derive(Debug, Default)]
struct Shared {
    queued_bytes: AtomicUsize,
    overflowed: AtomicBool,
    closed: CancellationToken,
}

/// The recipient cannot take the line: its queue is full or its connection is closed. The
/// connection is being closed; callers drop the recipient from whatever they fan out to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the recipient is gone or not reading")]
pub struct OutboxFull;

/// A handle to push lines to one client. Cheap to clone: the user and room actors each hold one.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<Shared>,
    limit_bytes: usize,
}

impl Outbox {
    /// Queues a line without waiting. A full queue closes the connection rather than slow down
    /// the sender: one client that stops reading must not stall a room.
    pub fn push(&self, delivery: Arc<Delivery>) -> Result<(), OutboxFull> {
        if self.shared.closed.is_cancelled() {
            return Err(OutboxFull);
        }
        let size = delivery.line().len();
        let before = self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > self.limit_bytes {
            self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.shared.overflowed.store(true, Ordering::Relaxed);
            self.shared.closed.cancel();
            return Err(OutboxFull);
        }
        self.tx
            .send(Outgoing::Line(delivery))
            .map_err(|_| OutboxFull)
    }

    pub fn send(&self, reply: Reply) -> Result<(), OutboxFull> {
        self.push(Delivery::new(reply))
    }

    /// Asks the writer to write what is queued and then shut the socket down.
    pub fn finish(&self) {
        let _ = self.tx.send(Outgoing::Finish);
    }

    /// Resolves when the connection is closed: the queue overflowed or the socket failed.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.shared.closed.cancelled()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
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
    rx: mpsc::UnboundedReceiver<Outgoing>,
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

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outgoing::Line(delivery) => f.debug_tuple("Line").field(delivery).finish(),
            Outgoing::Finish => f.write_str("Finish"),
        }
    }
}

impl Writer {
    /// Writes queued lines until the outbox is finished or the connection closed. Whatever has
    /// queued up while a write was in progress goes out together in the next write.
    pub async fn run<W: AsyncWrite + Unpin>(mut self, mut io: W) -> io::Result<()> {
        let result = self.write_until_finished(&mut io).await;
        self.shared.closed.cancel();
        result
    }

    async fn write_until_finished<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> io::Result<()> {
        let closed = self.shared.closed.clone();
        let mut finished = false;
        while !finished {
            let first = tokio::select! {
                item = self.rx.recv() => item,
                () = closed.cancelled() => return Ok(()),
            };
            let Some(Outgoing::Line(first)) = first else {
                break;
            };
            let mut batch = BytesMut::from(&first.line()[..]);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(Outgoing::Line(delivery)) => batch.extend_from_slice(delivery.line()),
                    Ok(Outgoing::Finish) => {
                        finished = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            tokio::select! {
                written = io.write_all(&batch) => written?,
                // A client that never reads would hold this write forever.
                () = closed.cancelled() => return Ok(()),
            }
            self.shared
                .queued_bytes
                .fetch_sub(batch.len(), Ordering::Relaxed);
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
        outbox.finish();
        let (client, server) = tokio::io::duplex(64);
        let writing = tokio::spawn(writer.run(server));
        let mut received = String::new();
        let mut client = client;
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "PONG 1\nOK QUIT\n");
        writing.await.unwrap().unwrap();
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
