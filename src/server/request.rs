//! The request/reply plumbing every actor handle shares: a request carries a oneshot sender,
//! and the handle waits on its receiver.

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
