//! The `AccountsActor`: owns the accounts. Password hashing runs off the async workers, a few
//! at a time, so that a storm of logins cannot stall chat.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::mailbox::{Backlog, Mailbox};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::priority::{self, Below};
use super::storage::Store;
use super::throttle::Throttle;
use linechat_protocol::{Name, Password};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("wrong name or password")]
    BadPassword,
    #[error("too many failed attempts; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("the account store is unavailable")]
    Unavailable,
    #[error("the account could not be stored; try again later")]
    Storage,
    /// Registered meanwhile on another node sharing the store: its unique key refused it.
    #[error("the name is already registered")]
    NameTaken,
}

#[derive(Debug)]
struct Account {
    id: i64,
    /// The name as registered; logins in any case get this spelling.
    name: Name,
    /// A PHC string: `$argon2id$v=19$...`.
    hash: String,
}

/// A registered account as a login sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub id: i64,
    /// The name as registered.
    pub name: Name,
}

#[derive(Debug)]
enum AccountsRequest {
    Create {
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<i64, AccountError>>,
    },
    Verify {
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<Registered, AccountError>>,
    },
    /// What the actor's own tasks send back to it.
    Continue(Continuation),
}

/// What the actor's tasks send back to it when the work it handed off (hashing, storing) is
/// done. It comes on the one inbox, in the order it came among the requests; the session
/// that asked waits for the answer it gives before it asks again.
#[derive(Debug)]
enum Continuation {
    /// By the task of a `Create` once the account is on disk: only then is it usable.
    Stored {
        account: Account,
        reply: oneshot::Sender<Result<i64, AccountError>>,
    },
    /// By the checking task of a `Verify` when the password was right: the attempt is
    /// given back.
    Verified { name: Name, peer: IpAddr },
}

/// A handle to the [`AccountsActor`].
#[derive(Debug, Clone)]
pub struct Accounts {
    mailbox: Mailbox<AccountsRequest>,
    backlog: Backlog,
}

impl Accounts {
    /// Starts the account store with the accounts loaded from `storage` (id, name, hash); at
    /// most `hash_workers` hashes are computed at once.
    pub fn spawn(
        hash_workers: usize,
        limits: LoginLimits,
        storage: Store,
        loaded: Vec<(i64, Name, String)>,
    ) -> Self {
        // Unbounded: a connection waits for each answer, so at most one request per connection.
        let (mailbox, rx) = Mailbox::unbounded();
        let accounts = loaded
            .into_iter()
            .map(|(id, name, hash)| (name.clone(), Account { id, name, hash }))
            .collect();
        let actor = AccountsActor {
            accounts,
            hashing: Arc::new(Semaphore::new(hash_workers.max(1))),
            mailbox: mailbox.clone(),
            storage,
            per_ip: Throttle::new(limits.per_ip, limits.window),
            per_account: Throttle::new(limits.per_account, limits.window),
            backlog: Backlog::default(),
        };
        let backlog = actor.backlog.clone();
        tokio::spawn(actor.run(rx));
        Self { mailbox, backlog }
    }

    /// Requests waiting in the actor's inbox, as it last saw it.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// Creates an account for a client at `peer` and returns its id once it is stored. Every
    /// registration counts against the address's allowance, as each costs a password hash.
    /// Whether the name is free for a new account is the user directory's decision alone,
    /// made before it asks (and the database's unique key would refuse a second one).
    pub async fn create(
        &self,
        name: Name,
        password: Password,
        peer: IpAddr,
    ) -> Result<i64, AccountError> {
        self.mailbox
            .ask(|reply| AccountsRequest::Create {
                name,
                password,
                peer,
                reply,
            })
            .await
            .unwrap_or(Err(AccountError::Unavailable))
    }

    /// Checks a password for a client at `peer`; on success, the account. Each attempt counts
    /// against the address and the account before its password is checked (§4 of
    /// protocol.md), and is given back if the password was right.
    pub async fn verify(
        &self,
        name: Name,
        password: Password,
        peer: IpAddr,
    ) -> Result<Registered, AccountError> {
        self.mailbox
            .ask(|reply| AccountsRequest::Verify {
                name,
                password,
                peer,
                reply,
            })
            .await
            .unwrap_or(Err(AccountError::Unavailable))
    }
}

struct AccountsActor {
    accounts: HashMap<Name, Account>,
    hashing: Arc<Semaphore>,
    /// The actor's own inbox, for the answers of the tasks it hands hashing and storing to.
    mailbox: Mailbox<AccountsRequest>,
    storage: Store,
    per_ip: Throttle<IpAddr>,
    per_account: Throttle<Name>,
    backlog: Backlog,
}

/// How many password attempts are allowed before the server makes a client wait.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_ip: u32,
    pub per_account: u32,
    pub window: Duration,
}

impl AccountsActor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AccountsRequest>) {
        while let Some(request) = rx.recv().await {
            self.backlog.note(&rx);
            self.handle(request);
        }
    }

    fn handle(&mut self, request: AccountsRequest) {
        match request {
            AccountsRequest::Create {
                name,
                password,
                peer,
                reply,
            } => self.create(name, password, peer, reply),
            AccountsRequest::Continue(Continuation::Stored { account, reply }) => {
                self.stored(account, reply)
            }
            AccountsRequest::Verify {
                name,
                password,
                peer,
                reply,
            } => self.verify(name, password, peer, reply),
            AccountsRequest::Continue(Continuation::Verified { name, peer }) => {
                self.verified(name, peer)
            }
        }
    }

    /// Counts a registration against `peer`'s allowance (refused once it is used up), then
    /// hashes the password and stores the account in a task of its own, which answers with
    /// [`Continuation::Stored`]: the actor waits for neither.
    fn create(
        &mut self,
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<i64, AccountError>>,
    ) {
        if let Some(wait) = self.per_ip.retry_after(&peer) {
            let _ = reply.send(Err(AccountError::Throttled(wait)));
            return;
        }
        self.per_ip.take(peer);
        let actor = self.mailbox.clone();
        let hashing = self.hashing.clone();
        let storage = self.storage.clone();
        tokio::spawn(async move {
            let hash = off_thread(&hashing, move || hash(&password))
                .await
                .flatten();
            let Some(hash) = hash else {
                let _ = reply.send(Err(AccountError::Unavailable));
                return;
            };
            match storage.create_account(name.clone(), hash.clone()).await {
                Ok(id) => {
                    let account = Account { id, name, hash };
                    actor.post(AccountsRequest::Continue(Continuation::Stored {
                        account,
                        reply,
                    }));
                }
                Err(error) if error.is_name_taken() => {
                    let _ = reply.send(Err(AccountError::NameTaken));
                }
                Err(error) => {
                    tracing::error!(%error, "could not save an account");
                    let _ = reply.send(Err(AccountError::Storage));
                }
            }
        });
    }

    /// Takes in an account that is on disk, so that it can log in, and answers with its id.
    fn stored(&mut self, account: Account, reply: oneshot::Sender<Result<i64, AccountError>>) {
        let id = account.id;
        self.accounts.insert(account.name.clone(), account);
        let _ = reply.send(Ok(id));
    }

    /// Counts a password attempt against `peer` and `name`, unless it is refused unchecked
    /// (see [`Self::refusal`]), then checks it in a task of its own, which sends
    /// [`Continuation::Verified`] if it was right.
    fn verify(
        &mut self,
        name: Name,
        password: Password,
        peer: IpAddr,
        reply: oneshot::Sender<Result<Registered, AccountError>>,
    ) {
        if let Some(wait) = self.refusal(&name, peer) {
            // Refused before any hashing: a guessing storm costs no argon2 work.
            let _ = reply.send(Err(AccountError::Throttled(wait)));
            return;
        }
        // Counted now, before the check: attempts that arrive together are all
        // counted, however long their checks take.
        self.per_ip.take(peer);
        self.per_account.take(name.clone());
        let actor = self.mailbox.clone();
        let account = self.accounts.get(&name).map(|account| {
            let registered = Registered {
                id: account.id,
                name: account.name.clone(),
            };
            (registered, account.hash.clone())
        });
        let hashing = self.hashing.clone();
        let storage = self.storage.clone();
        tokio::spawn(async move {
            // On a store other nodes share, an account unknown here may have been registered
            // on another node since this one started.
            let account = match account {
                None if storage.is_shared() => registered_elsewhere(&storage, &name).await,
                account => account,
            };
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
            if result.is_ok() {
                actor.post(AccountsRequest::Continue(Continuation::Verified {
                    name,
                    peer,
                }));
            }
            let _ = reply.send(result);
        });
    }

    /// Gives back the attempt of a password that was right, to the address and the account:
    /// an owner who logs in is not held back by it.
    fn verified(&mut self, name: Name, peer: IpAddr) {
        self.per_ip.give_back(&peer);
        self.per_account.give_back(&name);
    }

    /// Why a password attempt for `name` from `peer` is refused unchecked, if it is: the
    /// address has used up its attempts, or the account has and this address has tried
    /// before in the window. An address with no attempts on record may still try a locked
    /// account, so that guessers cannot lock its owner out; each such address gets one try.
    fn refusal(&self, name: &Name, peer: IpAddr) -> Option<Duration> {
        if let Some(wait) = self.per_ip.retry_after(&peer) {
            return Some(wait);
        }
        let wait = self.per_account.retry_after(name)?;
        (self.per_ip.attempts(&peer) > 0).then_some(wait)
    }
}

/// The account `name` as the shared store has it, with its hash; `None` if there is none
/// or it cannot be read (the login is refused as with a wrong password, and logged).
async fn registered_elsewhere(storage: &Store, name: &Name) -> Option<(Registered, String)> {
    let account = storage
        .account(name)
        .await
        .inspect_err(|error| tracing::error!(%error, "looking an account up failed"))
        .ok()??;
    let (id, name, hash) = account;
    Some((Registered { id, name }, hash))
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

/// Lowers the priority of the current (blocking pool) thread, once.
fn yield_to_chat() {
    thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            priority::lower_this_thread(Below::Hashing);
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
        let id = accounts
            .create(name("Alice"), secret.clone(), HOME)
            .await
            .unwrap();
        let registered = accounts.verify(name("alice"), secret, HOME).await.unwrap();
        assert_eq!((registered.id, registered.name.as_str()), (id, "Alice"));
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
    async fn attempts_are_throttled_per_address_and_per_account() {
        let (storage, _dir) = crate::server::testing::store().await;
        // The window must outlast the checks below, eight password hashes, however loaded
        // the machine (1.5 s did not, with many tests at once on two cores).
        let limits = LoginLimits {
            per_ip: 3,
            per_account: 2,
            window: Duration::from_secs(5),
        };
        let accounts = Accounts::spawn(2, limits, storage, Vec::new());
        let secret = Password::new("right");
        accounts
            .create(name("carol"), secret.clone(), HOME)
            .await
            .unwrap();
        let away: IpAddr = "10.0.0.9".parse().unwrap();
        // Two guesses, sent together, are both counted before either is checked.
        let (first, second) = tokio::join!(
            accounts.verify(name("carol"), Password::new("x"), away),
            accounts.verify(name("carol"), Password::new("y"), away),
        );
        assert_eq!(first, Err(AccountError::BadPassword));
        assert_eq!(second, Err(AccountError::BadPassword));
        // The account is now locked for the guessing address, even with the right password,
        // and for the home address, which registered it (that counted as an attempt)...
        for peer in [away, HOME] {
            let locked = accounts.verify(name("carol"), secret.clone(), peer).await;
            assert!(
                matches!(locked, Err(AccountError::Throttled(_))),
                "{locked:?}"
            );
        }
        // ...but not for an address with no attempts on record.
        let fresh: IpAddr = "10.0.0.10".parse().unwrap();
        let owner = accounts.verify(name("carol"), secret.clone(), fresh).await;
        assert_eq!(owner.map(|r| r.name.to_string()), Ok("carol".to_string()));
        // The guessing address has one attempt left in all, then it is refused for any name.
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
        // The window ends: on the runtime's clock, moved on rather than waited for.
        tokio::time::pause();
        tokio::time::advance(Duration::from_millis(5100)).await;
        tokio::time::resume();
        let later = accounts.verify(name("carol"), secret, away).await;
        assert_eq!(later.map(|r| r.name.to_string()), Ok("carol".to_string()));
    }
}
