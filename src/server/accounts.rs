//! The `AccountStore`: owns the accounts. Password hashing runs off the async workers, a few
//! at a time, so that a storm of logins cannot stall chat.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::storage::{Conversation, Record, Store};
use super::throttle::Throttle;
use crate::common::{ErrorCode, Name, Password, Reply, Verb};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("that name is taken")]
    NameTaken,
    #[error("wrong name or password")]
    BadPassword,
    #[error("too many failed attempts; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("the account store is unavailable")]
    Unavailable,
    #[error("the account could not be stored; try again later")]
    Storage,
}

#[derive(Debug)]
struct Account {
    /// The name as registered; logins in any case get this spelling.
    name: Name,
    /// A PHC string: `$argon2id$v=19$...`.
    hash: String,
}

#[derive(Debug)]
enum AccountRequest {
    Create {
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
    /// Sent by the hashing task of a `Create` when its hash is ready.
    Hashed {
        name: Name,
        hash: Option<String>,
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
    /// Sent by the task that stored a hashed account: it exists only if it was stored.
    Stored {
        name: Name,
        hash: String,
        stored: bool,
        reply: oneshot::Sender<Result<(), AccountError>>,
    },
    Verify {
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<Name, AccountError>>,
    },
    /// Sent by the checking task of a `Verify` when the password was wrong.
    Failed { name: Name, peer: IpAddr },
    Exists {
        name: Name,
        reply: oneshot::Sender<bool>,
    },
    /// A private message for a user who is offline: kept for their next login if they have an
    /// account.
    QueuePrivate {
        from: Name,
        to: Name,
        text: String,
        reply: oneshot::Sender<Reply>,
    },
}

/// A handle to the [`AccountStore`].
#[derive(Debug, Clone)]
pub struct Accounts {
    tx: mpsc::UnboundedSender<AccountRequest>,
}

impl Accounts {
    /// Starts the account store with the accounts loaded from `storage`; at most
    /// `hash_workers` hashes are computed at once.
    pub fn spawn(
        hash_workers: usize,
        limits: LoginLimits,
        storage: Store,
        loaded: Vec<(Name, String)>,
    ) -> Self {
        // Unbounded: a connection waits for each answer, so at most one request per connection.
        let (tx, rx) = mpsc::unbounded_channel();
        let accounts = loaded
            .into_iter()
            .map(|(name, hash)| (name.clone(), Account { name, hash }))
            .collect();
        let actor = AccountStore {
            accounts,
            pending: HashSet::new(),
            hashing: Arc::new(Semaphore::new(hash_workers.max(1))),
            tx: tx.clone(),
            storage,
            per_ip: Throttle::new(limits.per_ip, limits.window),
            per_account: Throttle::new(limits.per_account, limits.window),
        };
        tokio::spawn(actor.run(rx));
        Self { tx }
    }

    /// Queues a private message for an offline user; answers `OK PM` or `NO_SUCH_USER`.
    pub(crate) fn queue_private(
        &self,
        from: Name,
        to: Name,
        text: String,
        reply: oneshot::Sender<Reply>,
    ) {
        let _ = self.tx.send(AccountRequest::QueuePrivate {
            from,
            to,
            text,
            reply,
        });
    }

    /// Creates an account for a client at `peer`; every registration counts against the
    /// address's allowance, as each costs a password hash.
    pub async fn create(
        &self,
        name: Name,
        password: Password,
        peer: IpAddr,
    ) -> Result<(), AccountError> {
        self.ask(|reply| AccountRequest::Create {
            name,
            password,
            peer,
            reply,
        })
        .await?
    }

    /// Checks a password for a client at `peer`; on success, the account's name as
    /// registered. Failures count against the address and the account.
    pub async fn verify(
        &self,
        name: Name,
        password: Password,
        peer: IpAddr,
    ) -> Result<Name, AccountError> {
        self.ask(|reply| AccountRequest::Verify {
            name,
            password,
            peer,
            reply,
        })
        .await?
    }

    pub async fn exists(&self, name: Name) -> Result<bool, AccountError> {
        self.ask(|reply| AccountRequest::Exists { name, reply })
            .await
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> AccountRequest,
    ) -> Result<T, AccountError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(request(reply))
            .map_err(|_| AccountError::Unavailable)?;
        answer.await.map_err(|_| AccountError::Unavailable)
    }
}

struct AccountStore {
    accounts: HashMap<Name, Account>,
    /// Names whose hash is being computed: a second `REGISTER` of one is refused at once.
    pending: HashSet<Name>,
    hashing: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<AccountRequest>,
    storage: Store,
    per_ip: Throttle<IpAddr>,
    per_account: Throttle<Name>,
}

/// How many failed logins are allowed before the server makes a client wait.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_ip: u32,
    pub per_account: u32,
    pub window: Duration,
}

impl AccountStore {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AccountRequest>) {
        while let Some(request) = rx.recv().await {
            self.handle(request);
        }
    }

    fn handle(&mut self, request: AccountRequest) {
        match request {
            AccountRequest::Create {
                name,
                password,
                peer,
                reply,
            } => {
                if let Some(wait) = self.per_ip.retry_after(&peer) {
                    let _ = reply.send(Err(AccountError::Throttled(wait)));
                    return;
                }
                self.per_ip.fail(peer);
                if self.accounts.contains_key(&name) || !self.pending.insert(name.clone()) {
                    let _ = reply.send(Err(AccountError::NameTaken));
                    return;
                }
                let store = self.tx.clone();
                let hashing = self.hashing.clone();
                tokio::spawn(async move {
                    let hash = off_thread(&hashing, move || hash(&password))
                        .await
                        .flatten();
                    let _ = store.send(AccountRequest::Hashed { name, hash, reply });
                });
            }
            AccountRequest::Hashed { name, hash, reply } => {
                let Some(hash) = hash else {
                    self.pending.remove(&name);
                    let _ = reply.send(Err(AccountError::Unavailable));
                    return;
                };
                // The name stays reserved while the account is stored; the account enters
                // memory only once it is on disk, so a failed write leaves none behind.
                let storage = self.storage.clone();
                let store = self.tx.clone();
                tokio::spawn(async move {
                    let stored = storage.create_account(name.clone(), hash.clone()).await;
                    let stored = stored.is_ok();
                    let _ = store.send(AccountRequest::Stored {
                        name,
                        hash,
                        stored,
                        reply,
                    });
                });
            }
            AccountRequest::Stored {
                name,
                hash,
                stored,
                reply,
            } => {
                self.pending.remove(&name);
                if !stored {
                    let _ = reply.send(Err(AccountError::Storage));
                    return;
                }
                let account = Account {
                    name: name.clone(),
                    hash,
                };
                self.accounts.insert(name, account);
                let _ = reply.send(Ok(()));
            }
            AccountRequest::Failed { name, peer } => {
                self.per_ip.fail(peer);
                self.per_account.fail(name);
            }
            AccountRequest::Verify {
                name,
                password,
                peer,
                reply,
            } => {
                let wait = self
                    .per_ip
                    .retry_after(&peer)
                    .or_else(|| self.per_account.retry_after(&name));
                if let Some(wait) = wait {
                    // Refused before any hashing: a guessing storm costs no argon2 work.
                    let _ = reply.send(Err(AccountError::Throttled(wait)));
                    return;
                }
                let store = self.tx.clone();
                let account = self
                    .accounts
                    .get(&name)
                    .map(|account| (account.name.clone(), account.hash.clone()));
                let hashing = self.hashing.clone();
                tokio::spawn(async move {
                    let result = match account {
                        Some((registered, hash)) => {
                            let ok = off_thread(&hashing, move || verify(&password, &hash)).await;
                            if ok == Some(true) {
                                Ok(registered)
                            } else {
                                Err(AccountError::BadPassword)
                            }
                        }
                        None => {
                            // Spend the same time as a real check, so that timing does not
                            // tell which names have accounts.
                            off_thread(&hashing, move || verify(&password, dummy_hash())).await;
                            Err(AccountError::BadPassword)
                        }
                    };
                    if result.is_err() {
                        let _ = store.send(AccountRequest::Failed { name, peer });
                    }
                    let _ = reply.send(result);
                });
            }
            AccountRequest::QueuePrivate {
                from,
                to,
                text,
                reply,
            } => {
                let Some(account) = self.accounts.get(&to) else {
                    let message = format!("{to} is not online");
                    let _ = reply.send(Reply::err(ErrorCode::NoSuchUser, message));
                    return;
                };
                let to = account.name.clone();
                // Stored before `OK PM <user> queued`; sent to the writer now, so that queued
                // messages keep their order, and answered when stored.
                let stored = self.storage.queue_private(Record {
                    conversation: Conversation::Private(from.clone(), to.clone()),
                    from,
                    to: Some(to.clone()),
                    text,
                    at: std::time::SystemTime::now(),
                    pending: true,
                });
                tokio::spawn(async move {
                    let answer = match stored.await {
                        Ok(()) => Reply::ok_with(Verb::Pm, format!("{to} queued")),
                        Err(error) => Reply::err(
                            ErrorCode::Storage,
                            format!(
                                "the message for {to} could not be stored: {}",
                                error.client_message()
                            ),
                        ),
                    };
                    let _ = reply.send(answer);
                });
            }
            AccountRequest::Exists { name, reply } => {
                let _ =
                    reply.send(self.accounts.contains_key(&name) || self.pending.contains(&name));
            }
        }
    }
}

/// Runs CPU-heavy `work` on the blocking pool once a hashing permit is free.
async fn off_thread<T: Send + 'static>(
    permits: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _permit = permits.acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        yield_to_chat();
        work()
    })
    .await
    .ok()
}

/// Lowers the priority of the current (blocking pool) thread, once: when hashing and chat
/// share a core, the scheduler then gives chat the lion's share, so a storm of logins only
/// slows the logins down.
fn yield_to_chat() {
    thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    #[cfg(target_os = "linux")]
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            // SAFETY: gettid and setpriority on the calling thread have no memory effects.
            unsafe {
                let thread = libc::gettid() as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, thread, 10);
            }
        }
    });
}

fn hash(password: &Password) -> Option<String> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .ok()
        .map(|hash| hash.to_string())
}

fn verify(password: &Password, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    })
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&Password::new("not a real password")).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testing::no_login_limits;
    use std::net::Ipv4Addr;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn register_then_verify_in_any_case() {
        let (storage, _dir) = crate::server::testing::store().await;
        let accounts = Accounts::spawn(2, no_login_limits(), storage, Vec::new());
        let secret = Password::new("s3cret words");
        accounts
            .create(name("Alice"), secret.clone(), HOME)
            .await
            .unwrap();
        assert_eq!(
            accounts
                .verify(name("alice"), secret, HOME)
                .await
                .unwrap()
                .as_str(),
            "Alice"
        );
        assert_eq!(
            accounts
                .verify(name("alice"), Password::new("wrong"), HOME)
                .await,
            Err(AccountError::BadPassword)
        );
        assert_eq!(
            accounts
                .verify(name("nobody"), Password::new("x"), HOME)
                .await,
            Err(AccountError::BadPassword)
        );
        assert!(accounts.exists(name("ALICE")).await.unwrap());
    }

    #[tokio::test]
    async fn a_name_is_registered_once_even_when_racing() {
        let (storage, _dir) = crate::server::testing::store().await;
        let accounts = Accounts::spawn(2, no_login_limits(), storage, Vec::new());
        let (first, second) = tokio::join!(
            accounts.create(name("bob"), Password::new("one"), HOME),
            accounts.create(name("BOB"), Password::new("two"), HOME),
        );
        let mut results = [first, second];
        results.sort_by_key(|r| r.is_err());
        assert_eq!(results, [Ok(()), Err(AccountError::NameTaken)]);
    }

    #[test]
    fn hashes_are_argon2id_and_never_the_password() {
        let hashed = hash(&Password::new("hunter2")).unwrap();
        assert!(hashed.starts_with("$argon2id$"), "{hashed}");
        assert!(!hashed.contains("hunter2"));
        assert!(verify(&Password::new("hunter2"), &hashed));
        assert!(!verify(&Password::new("hunter3"), &hashed));
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_per_address_and_per_account() {
        let (storage, _dir) = crate::server::testing::store().await;
        let limits = LoginLimits {
            per_ip: 3,
            per_account: 2,
            window: Duration::from_millis(1500),
        };
        let accounts = Accounts::spawn(2, limits, storage, Vec::new());
        let secret = Password::new("right");
        accounts
            .create(name("carol"), secret.clone(), HOME)
            .await
            .unwrap();
        let away: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..2 {
            let wrong = accounts
                .verify(name("carol"), Password::new("x"), away)
                .await;
            assert_eq!(wrong, Err(AccountError::BadPassword));
        }
        // The account is locked for everyone, even with the right password...
        let locked = accounts.verify(name("carol"), secret.clone(), HOME).await;
        assert!(
            matches!(locked, Err(AccountError::Throttled(_))),
            "{locked:?}"
        );
        // ...and the guessing address is close to its limit too (registration counted once).
        let other = accounts
            .verify(name("nobody"), Password::new("x"), away)
            .await;
        assert_eq!(other, Err(AccountError::BadPassword));
        let blocked = accounts
            .verify(name("nobody"), Password::new("x"), away)
            .await;
        assert!(
            matches!(blocked, Err(AccountError::Throttled(_))),
            "{blocked:?}"
        );
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(
            accounts
                .verify(name("carol"), secret, HOME)
                .await
                .unwrap()
                .as_str(),
            "carol"
        );
    }
}
