//! The `UserProcessor`: owns who is online and how to reach them.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use std::time::SystemTime;

use super::accounts::Accounts;
use super::member::Member;
use super::storage::{Conversation, Record, Store};
use crate::common::{Departure, ErrorCode, Name, Notice, Reply, Verb};
use crate::connection::{Delivery, Outbox};

/// What the user processor is asked; requests with a `reply` are answered on it.
#[derive(Debug)]
pub(crate) enum UserRequest {
    Login {
        member: Member,
        reply: oneshot::Sender<bool>,
    },
    Logout {
        member: Member,
        how: Departure,
    },
    IsOnline {
        name: Name,
        reply: oneshot::Sender<bool>,
    },
    List {
        reply: oneshot::Sender<Reply>,
    },
    Broadcast {
        from: Member,
        text: String,
        reply: oneshot::Sender<Reply>,
    },
    Private {
        from: Member,
        to: Name,
        text: String,
        reply: oneshot::Sender<Reply>,
    },
    Notify {
        notice: Notice,
        except: Name,
    },
}

/// A handle to the [`UserProcessor`].
#[derive(Debug, Clone)]
pub struct Users {
    tx: mpsc::UnboundedSender<UserRequest>,
}

impl Users {
    /// Starts the processor task. Messages are recorded in `store`; private messages to
    /// users who are offline go to `accounts` to be kept for them.
    pub fn spawn(store: Store, accounts: Accounts) -> Self {
        // Unbounded is safe here: each connection awaits the answer to one request before
        // sending the next, so the queue is bounded by the number of connections.
        let (tx, rx) = mpsc::unbounded_channel();
        let processor = UserProcessor {
            online: HashMap::new(),
            store,
            accounts,
        };
        tokio::spawn(processor.run(rx));
        Self { tx }
    }

    /// Puts `member` online; false when the name is already in use.
    pub async fn login(&self, member: Member) -> bool {
        self.ask(|reply| UserRequest::Login { member, reply })
            .await
            .unwrap_or(false)
    }

    pub fn logout(&self, member: Member, how: Departure) {
        let _ = self.tx.send(UserRequest::Logout { member, how });
    }

    pub async fn is_online(&self, name: Name) -> bool {
        self.ask(|reply| UserRequest::IsOnline { name, reply })
            .await
            .unwrap_or(false)
    }

    pub(crate) fn send(&self, request: UserRequest) {
        // A closed processor drops the request, and with it the reply sender: the asker
        // sees the channel close and answers `ERR INTERNAL`.
        let _ = self.tx.send(request);
    }

    /// Sends a global notice to everyone online but `except`.
    pub fn notify(&self, notice: Notice, except: Name) {
        let _ = self.tx.send(UserRequest::Notify { notice, except });
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> UserRequest) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(request(reply)).ok()?;
        answer.await.ok()
    }
}

/// Owns the table of online users. Delivery never waits: an outbox that cannot take a line is
/// being closed, and its session will log the user out.
struct UserProcessor {
    online: HashMap<Name, Outbox>,
    store: Store,
    accounts: Accounts,
}

impl UserProcessor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<UserRequest>) {
        while let Some(request) = rx.recv().await {
            self.handle(request);
        }
    }

    fn handle(&mut self, request: UserRequest) {
        match request {
            UserRequest::Login { member, reply } => {
                if self.online.contains_key(&member.name) {
                    let _ = reply.send(false);
                    return;
                }
                self.announce(
                    Notice::Online {
                        user: member.name.clone(),
                    },
                    &member.name,
                );
                self.online.insert(member.name, member.outbox);
                let _ = reply.send(true);
            }
            UserRequest::Logout { member, how } => {
                let current = self.online.get(&member.name);
                if current.is_some_and(|outbox| outbox.same_connection(&member.outbox)) {
                    self.online.remove(&member.name);
                    let user = member.name.clone();
                    self.announce(Notice::Offline { user, how }, &member.name);
                }
            }
            UserRequest::IsOnline { name, reply } => {
                let _ = reply.send(self.online.contains_key(&name));
            }
            UserRequest::List { reply } => {
                let mut names: Vec<Name> = self.online.keys().cloned().collect();
                names.sort();
                let _ = reply.send(Reply::Users(names));
            }
            UserRequest::Broadcast { from, text, reply } => {
                // Queued for history first (it never waits), so that a HISTORY sent by anyone
                // who has seen the message finds it.
                self.store.record(Record {
                    conversation: Conversation::Global,
                    from: from.name.clone(),
                    to: None,
                    text: text.clone(),
                    at: SystemTime::now(),
                    pending: false,
                });
                let line = Delivery::new(Reply::Msg {
                    from: from.name.clone(),
                    text,
                });
                self.fan_out(&line, &from.name);
                let _ = reply.send(Reply::ok(Verb::Msg));
            }
            UserRequest::Private {
                from,
                to,
                text,
                reply,
            } => {
                let Some((name, outbox)) = self.online.get_key_value(&to) else {
                    self.accounts.queue_private(from.name, to, text, reply);
                    return;
                };
                let to = name.clone();
                if outbox.is_closed() {
                    let message = format!("{to} is disconnecting");
                    let _ = reply.send(Reply::err(ErrorCode::NoSuchUser, message));
                    return;
                }
                // Recorded before it is delivered, as MSG is.
                self.store.record(Record {
                    conversation: Conversation::Private(from.name.clone(), to.clone()),
                    from: from.name.clone(),
                    to: Some(to.clone()),
                    text: text.clone(),
                    at: SystemTime::now(),
                    pending: false,
                });
                let _ = outbox.send(Reply::Pm {
                    from: from.name,
                    text,
                });
                let _ = reply.send(Reply::ok_with(Verb::Pm, &to));
            }
            UserRequest::Notify { notice, except } => self.announce(notice, &except),
        }
    }

    fn announce(&self, notice: Notice, except: &Name) {
        self.fan_out(&Delivery::new(Reply::Notice(notice)), except);
    }

    fn fan_out(&self, line: &std::sync::Arc<Delivery>, except: &Name) {
        for (name, outbox) in &self.online {
            if name != except {
                let _ = outbox.push(line.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testing::{member, name};

    async fn ask(
        users: &Users,
        request: impl FnOnce(oneshot::Sender<Reply>) -> UserRequest,
    ) -> String {
        let (reply, answer) = oneshot::channel();
        users.send(request(reply));
        answer.await.unwrap().to_string()
    }

    #[tokio::test]
    async fn names_are_unique_regardless_of_case_and_others_are_told() {
        let (users, _dir) = crate::server::testing::users().await;
        let (alice, mut alice_inbox) = member("alice");
        let (shouting, _) = member("ALICE");
        let (bob, _) = member("bob");
        assert!(users.login(alice).await);
        assert!(!users.login(shouting).await);
        assert!(users.login(bob).await);
        assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
        assert!(users.is_online(name("Bob")).await);
        assert_eq!(
            ask(&users, |reply| UserRequest::List { reply }).await,
            "USERS alice bob"
        );
    }

    #[tokio::test]
    async fn a_broadcast_with_nobody_else_online_is_fine() {
        let (users, _dir) = crate::server::testing::users().await;
        let (alone, mut inbox) = member("alone");
        assert!(users.login(alone.clone()).await);
        let text = "anyone?".to_string();
        let reply = ask(&users, |reply| UserRequest::Broadcast {
            from: alone,
            text,
            reply,
        })
        .await;
        assert_eq!(reply, "OK MSG");
        inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn private_messages_reach_only_their_target() {
        let (users, _dir) = crate::server::testing::users().await;
        let (alice, mut alice_inbox) = member("alice");
        let (bob, mut bob_inbox) = member("bob");
        assert!(users.login(alice.clone()).await);
        assert!(users.login(bob).await);
        assert_eq!(alice_inbox.line().await, "NOTICE ONLINE bob");
        let (to, text) = (name("BOB"), "psst".to_string());
        let reply = ask(&users, |reply| UserRequest::Private {
            from: alice.clone(),
            to,
            text,
            reply,
        });
        assert_eq!(reply.await, "OK PM bob");
        assert_eq!(bob_inbox.line().await, "PM alice psst");
        let (to, text) = (name("carol"), "hi".to_string());
        let reply = ask(&users, |reply| UserRequest::Private {
            from: alice,
            to,
            text,
            reply,
        });
        assert_eq!(reply.await, "ERR NO_SUCH_USER carol is not online");
        alice_inbox.expect_nothing().await;
    }

    #[tokio::test]
    async fn a_stale_logout_does_not_remove_the_new_session() {
        let (users, _dir) = crate::server::testing::users().await;
        let (old, _) = member("alice");
        let (new, _) = member("alice");
        let (watcher, mut watcher_inbox) = member("watcher");
        assert!(users.login(watcher).await);
        assert!(users.login(old.clone()).await);
        users.logout(old, Departure::Closed);
        assert!(users.login(new).await);
        users.logout(member("alice").0, Departure::Closed);
        assert!(users.is_online(name("alice")).await);
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
        assert_eq!(watcher_inbox.line().await, "NOTICE OFFLINE alice CLOSED");
        assert_eq!(watcher_inbox.line().await, "NOTICE ONLINE alice");
        watcher_inbox.expect_nothing().await;
    }
}
