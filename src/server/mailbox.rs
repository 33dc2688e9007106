//! `Mailbox`, the one way to reach an actor: every actor's handle holds one. A request that
//! wants an answer carries a oneshot sender, which the mailbox makes; the actor answers on it.
//!
//! A mailbox is unbounded (a sender never waits on the actor; the depth of the inbox is
//! watched through its [`Backlog`] instead) or bounded (a room's: a sender faster than the
//! room's fan-out waits for it). Each method has one behaviour on either kind, said where it
//! is defined.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

/// The actor behind a mailbox has ended: its inbox is closed, or it dropped a request
/// without answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the actor is gone")]
pub(crate) struct Gone;

/// Why [`Mailbox::try_tell`] did not deliver a request; the request comes back.
#[derive(Debug)]
pub(crate) enum Refused<R> {
    /// A bounded inbox has no room now.
    Full(R),
    Gone(R),
}

/// The sending side of an actor's inbox: an unbounded one by default (`Mailbox<R>`), or a
/// bounded one ([`BoundedMailbox`]). One channel sender wide, so that a handle costs what the
/// sender costs wherever it is held (a session holds the directory's, and one per room).
pub(crate) struct Mailbox<R, S: Sender<R> = mpsc::UnboundedSender<R>> {
    tx: S,
    request: PhantomData<fn(R)>,
}

/// A mailbox whose `tell` and `ask` wait while the inbox is full.
pub(crate) type BoundedMailbox<R> = Mailbox<R, mpsc::Sender<R>>;

/// The two kinds of inbox a [`Mailbox`] sends to: what each does for the mailbox's methods.
pub(crate) trait Sender<R>: Clone + sealed::Sealed {
    type Weak: Clone;

    fn is_closed(&self) -> bool;

    /// Sends if there is room now.
    fn try_send(&self, request: R) -> Result<(), Refused<R>>;

    /// Sends, waiting for room in a bounded inbox.
    fn send(&self, request: R) -> impl Future<Output = Result<(), Gone>> + Send + '_
    where
        R: Send;

    fn downgrade(&self) -> Self::Weak;

    fn upgrade(weak: &Self::Weak) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl<R> Sealed for tokio::sync::mpsc::UnboundedSender<R> {}
    impl<R> Sealed for tokio::sync::mpsc::Sender<R> {}
}

impl<R> Sender<R> for mpsc::UnboundedSender<R> {
    type Weak = mpsc::WeakUnboundedSender<R>;

    fn is_closed(&self) -> bool {
        mpsc::UnboundedSender::is_closed(self)
    }

    fn try_send(&self, request: R) -> Result<(), Refused<R>> {
        mpsc::UnboundedSender::send(self, request).map_err(|error| Refused::Gone(error.0))
    }

    fn send(&self, request: R) -> impl Future<Output = Result<(), Gone>> + Send + '_
    where
        R: Send,
    {
        std::future::ready(mpsc::UnboundedSender::send(self, request).map_err(|_| Gone))
    }

    fn downgrade(&self) -> Self::Weak {
        mpsc::UnboundedSender::downgrade(self)
    }

    fn upgrade(weak: &Self::Weak) -> Option<Self> {
        weak.upgrade()
    }
}

impl<R> Sender<R> for mpsc::Sender<R> {
    type Weak = mpsc::WeakSender<R>;

    fn is_closed(&self) -> bool {
        mpsc::Sender::is_closed(self)
    }

    fn try_send(&self, request: R) -> Result<(), Refused<R>> {
        mpsc::Sender::try_send(self, request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(request) => Refused::Full(request),
            mpsc::error::TrySendError::Closed(request) => Refused::Gone(request),
        })
    }

    async fn send(&self, request: R) -> Result<(), Gone>
    where
        R: Send,
    {
        mpsc::Sender::send(self, request).await.map_err(|_| Gone)
    }

    fn downgrade(&self) -> Self::Weak {
        mpsc::Sender::downgrade(self)
    }

    fn upgrade(weak: &Self::Weak) -> Option<Self> {
        weak.upgrade()
    }
}

impl<R, S: Sender<R>> Clone for Mailbox<R, S> {
    fn clone(&self) -> Self {
        Self::of(self.tx.clone())
    }
}

impl<R, S: Sender<R>> fmt::Debug for Mailbox<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<R> Mailbox<R> {
    /// A mailbox whose sender never waits, and the actor's end of it.
    pub(crate) fn unbounded() -> (Self, mpsc::UnboundedReceiver<R>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::of(tx), rx)
    }
}

impl<R> BoundedMailbox<R> {
    /// A mailbox that holds `capacity` requests before [`Mailbox::tell`] and
    /// [`Mailbox::ask`] wait, and the actor's end of it.
    pub(crate) fn bounded(capacity: usize) -> (Self, mpsc::Receiver<R>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self::of(tx), rx)
    }
}

impl<R, S: Sender<R>> Mailbox<R, S> {
    fn of(tx: S) -> Self {
        Self {
            tx,
            request: PhantomData,
        }
    }

    /// A mailbox that does not keep the actor alive: for an actor's own tasks, which send it
    /// their results, so that it still ends once every other handle is gone.
    pub(crate) fn downgrade(&self) -> WeakMailbox<R, S> {
        WeakMailbox {
            tx: self.tx.downgrade(),
            request: PhantomData,
        }
    }

    /// Whether the actor has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Delivers `request` if the inbox has room now; never waits.
    pub(crate) fn try_tell(&self, request: R) -> Result<(), Refused<R>> {
        self.tx.try_send(request)
    }
}

impl<R: Send, S: Sender<R>> Mailbox<R, S> {
    /// Delivers `request`, waiting while a bounded inbox is full.
    pub(crate) async fn tell(&self, request: R) -> Result<(), Gone> {
        self.tx.send(request).await
    }

    /// Sends `request` with a fresh reply sender, waiting while a bounded inbox is full, and
    /// waits for the answer.
    pub(crate) async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> R,
    ) -> Result<T, Gone> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(request(reply)).await?;
        answer.await.map_err(|_| Gone)
    }
}

impl<R: Send + 'static, S: Sender<R> + Send + 'static> Mailbox<R, S> {
    /// Delivers `request` without waiting: at once if the inbox has room, otherwise (a full
    /// bounded inbox) from a task of its own, which may then come after requests sent later.
    /// For those that must not wait for one busy actor: a session that is unwinding, the
    /// rooms actor handing a room its work. An unbounded inbox always takes it at once.
    pub(crate) fn post(&self, request: R) {
        if let Err(Refused::Full(request)) = self.tx.try_send(request) {
            let tx = self.tx.clone();
            tokio::spawn(async move { tx.send(request).await });
        }
    }

    /// Sends `request` with a fresh reply sender now, as [`Mailbox::post`] does, and returns
    /// its answer to come: a caller can send more meanwhile, and the requests keep their
    /// order in an unbounded inbox.
    pub(crate) fn ask_later<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> R) -> Answer<T> {
        let (reply, answer) = oneshot::channel();
        self.post(request(reply));
        Answer(answer)
    }
}

/// A [`Mailbox`] that does not keep its actor alive ([`Mailbox::downgrade`]).
pub(crate) struct WeakMailbox<R, S: Sender<R> = mpsc::UnboundedSender<R>> {
    tx: S::Weak,
    request: PhantomData<fn(R)>,
}

impl<R, S: Sender<R>> Clone for WeakMailbox<R, S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            request: PhantomData,
        }
    }
}

impl<R, S: Sender<R>> WeakMailbox<R, S> {
    /// The mailbox, while the actor lives.
    pub(crate) fn upgrade(&self) -> Option<Mailbox<R, S>> {
        S::upgrade(&self.tx).map(Mailbox::of)
    }
}

/// The answer to a request sent by [`Mailbox::ask_later`]: `Gone` if the actor dropped the
/// request unanswered.
#[derive(Debug)]
pub(crate) struct Answer<T>(oneshot::Receiver<T>);

impl<T> Answer<T> {
    /// An answer known already, for a request refused before it was sent.
    pub(crate) fn ready(value: T) -> Self {
        let (reply, answer) = oneshot::channel();
        let _ = reply.send(value);
        Self(answer)
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, Gone>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.map_err(|_| Gone))
    }
}

/// How many requests wait in an actor's inbox, as the actor last saw it (after taking one):
/// the `stats` log line reports it for each actor, so that one falling behind shows. The
/// actors' inboxes are unbounded but a room's, so that no sender ever waits on them (the
/// storage's, because chat never waits for the disk); this is how their depth is watched
/// instead.
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

    #[test]
    fn a_mailbox_is_as_wide_as_its_channel_sender() {
        assert_eq!(
            size_of::<Mailbox<u32>>(),
            size_of::<mpsc::UnboundedSender<u32>>()
        );
        assert_eq!(
            size_of::<BoundedMailbox<u32>>(),
            size_of::<mpsc::Sender<u32>>()
        );
    }

    /// An actor that answers each request with its number doubled.
    fn doubler(mut rx: mpsc::UnboundedReceiver<(u32, oneshot::Sender<u32>)>) {
        tokio::spawn(async move {
            while let Some((n, reply)) = rx.recv().await {
                let _ = reply.send(n * 2);
            }
        });
    }

    #[tokio::test]
    async fn ask_waits_for_the_typed_answer_and_ask_later_sends_at_once() {
        let (mailbox, rx) = Mailbox::unbounded();
        let later = mailbox.ask_later(|reply| (1, reply));
        doubler(rx);
        assert_eq!(mailbox.ask(|reply| (21, reply)).await, Ok(42));
        assert_eq!(later.await, Ok(2));
    }

    #[tokio::test]
    async fn a_gone_actor_is_gone_to_every_method() {
        let (mailbox, rx) = Mailbox::<(u32, oneshot::Sender<u32>)>::unbounded();
        let unanswered = mailbox.ask_later(|reply| (1, reply));
        drop(rx);
        assert_eq!(unanswered.await, Err(Gone));
        assert!(mailbox.is_closed());
        assert_eq!(mailbox.ask(|reply| (2, reply)).await, Err(Gone));
        let (reply, _) = oneshot::channel();
        assert_eq!(mailbox.tell((3, reply)).await, Err(Gone));
        let (reply, _) = oneshot::channel();
        assert!(matches!(
            mailbox.try_tell((4, reply)),
            Err(Refused::Gone(_))
        ));
    }

    #[tokio::test]
    async fn a_full_bounded_inbox_refuses_try_tell_and_takes_post_later() {
        let (mailbox, mut rx) = Mailbox::bounded(1);
        mailbox.try_tell(1).unwrap();
        assert!(matches!(mailbox.try_tell(2), Err(Refused::Full(2))));
        mailbox.post(3);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(3), "delivered once there was room");
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move {
                mailbox.tell(4).await.unwrap();
                mailbox.tell(5).await.unwrap();
            }
        });
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(
            rx.recv().await,
            Some(5),
            "tell waited for room, then delivered"
        );
        waiting.await.unwrap();
    }
}
