//! The request/reply plumbing every actor handle shares: a request carries a oneshot sender,
//! and the handle waits on its receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use linechat_protocol::{ErrorCode, Reply};

/// Sends `request`, built around a fresh reply sender, to the actor behind `tx`; its answer
/// comes on the returned receiver. If the actor is gone the request is dropped with its
/// sender, and the receiver sees the channel closed.
pub(crate) fn submit<R, T>(
    tx: &mpsc::UnboundedSender<R>,
    request: impl FnOnce(oneshot::Sender<T>) -> R,
) -> oneshot::Receiver<T> {
    let (reply, answer) = oneshot::channel();
    let _ = tx.send(request(reply));
    answer
}

/// The same, waiting for the answer: `None` if the actor is gone.
pub(crate) async fn ask<R, T>(
    tx: &mpsc::UnboundedSender<R>,
    request: impl FnOnce(oneshot::Sender<T>) -> R,
) -> Option<T> {
    submit(tx, request).await.ok()
}

/// What a client is told when an actor it needed has gone away.
pub fn unavailable() -> Reply {
    Reply::err(ErrorCode::Internal, "the server is unavailable; try again")
}

/// How many requests wait in an actor's inbox, as the actor last saw it (after taking one):
/// the `stats` log line reports it for each actor, so that one falling behind shows. The
/// inboxes are unbounded, so that no sender ever waits on an actor (the storage's, because
/// chat never waits for the disk); this is how their depth is watched instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Called by the actor with its inbox.
    pub(crate) fn note<R>(&self, inbox: &mpsc::UnboundedReceiver<R>) {
        self.0.store(inbox.len(), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backlog_is_what_waited_when_the_actor_last_looked() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let backlog = Backlog::default();
        for n in 0..3 {
            tx.send(n).unwrap();
        }
        assert_eq!(backlog.get(), 0, "nothing seen yet");
        rx.recv().await.unwrap();
        backlog.note(&rx);
        assert_eq!(backlog.clone().get(), 2);
        rx.recv().await.unwrap();
        rx.recv().await.unwrap();
        backlog.note(&rx);
        assert_eq!(backlog.get(), 0);
    }
}
