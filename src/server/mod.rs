//! The server: the accept loop, the sessions, and the actors that own all shared state.

mod accounts;
pub mod cluster;
mod cmd;
mod descriptors;
pub mod event;
mod handle;
mod irc;
mod limits;
pub(crate) mod log_tally;
pub(crate) mod mailbox;
mod member;
mod priority;
mod room;
pub mod session;
pub mod storage;
#[cfg(test)]
mod testing;
mod throttle;
mod tls;
mod user;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use linechat_protocol::{ErrorCode, Reply};

use crate::settings::Settings;
use cluster::{Cluster, ClusterError, ClusterOptions, Inbound};
use handle::ServerHandle;
use log_tally::LogTally;
use session::{FrontEnd, LineFrontEnd, SessionContext};
use storage::{Loaded, StorageError, Store};
use tls::TlsError;

// The typed refusals of what a front-end asks of its session (`session::Session`).
pub use cmd::{CommandError, LoginError};
pub use room::{RoomError, RoomStorageError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// At most one log line per this long about refused connections, with their count.
const REPORT_REFUSALS_EVERY: Duration = Duration::from_secs(5);

/// How often memory freed by finished connections is handed back to the system.
const RELEASE_MEMORY_EVERY: Duration = Duration::from_secs(2);

pub struct Server {
    listener: TcpListener,
    tls: Option<(TcpListener, TlsAcceptor)>,
    /// The IRC listeners, plain and TLS, when they are set.
    irc: Option<TcpListener>,
    irc_tls: Option<(TcpListener, TlsAcceptor)>,
    /// A listener served by a front-end given to [`Server::serve_front_end`], if any.
    custom: Option<(TcpListener, ServeConnection)>,
    settings: Arc<Settings>,
    store: Store,
    loaded: Loaded,
    store_stopped: tokio::sync::oneshot::Receiver<()>,
    /// This node's connection to the cluster, when `nats_url` is set.
    cluster: Option<(Cluster, Inbound)>,
}

impl Server {
    /// Opens the database and binds the listeners; nothing is served until [`Server::run`].
    pub async fn bind(settings: Settings) -> Result<Self, ServerError> {
        // One acceptor for both TLS listeners: the same certificate.
        let acceptor = match (&settings.tls_addr, &settings.irc_tls_addr) {
            (None, None) => None,
            _ => Some(tls::acceptor(
                settings.tls_cert.as_deref(),
                settings.tls_key.as_deref(),
            )?),
        };
        let tls = match (&settings.tls_addr, &acceptor) {
            (Some(addr), Some(acceptor)) => Some((listen(addr).await?, acceptor.clone())),
            _ => None,
        };
        let irc = match &settings.irc_addr {
            Some(addr) => Some(listen(addr).await?),
            None => None,
        };
        let irc_tls = match (&settings.irc_tls_addr, acceptor) {
            (Some(addr), Some(acceptor)) => Some((listen(addr).await?, acceptor)),
            _ => None,
        };
        let listener = listen(&settings.addr).await?;
        let (store, loaded, store_stopped) = Store::open(settings.storage()).await?;
        let cluster = match ClusterOptions::from_settings(&settings) {
            Some(options) => Some(Cluster::connect(options).await?),
            None => None,
        };
        Ok(Self {
            listener,
            tls,
            irc,
            irc_tls,
            custom: None,
            settings: Arc::new(settings),
            store,
            loaded,
            store_stopped,
            cluster,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The TLS listener's address, when there is one.
    pub fn tls_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.tls.as_ref().map(|(listener, _)| listener.local_addr())
    }

    /// The plain IRC listener's address, when there is one.
    pub fn irc_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.irc.as_ref().map(TcpListener::local_addr)
    }

    /// The TLS IRC listener's address, when there is one.
    pub fn irc_tls_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.irc_tls
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
    }

    /// Serves the connections of `listener` with the front-end `F`, on the same terms as the
    /// server's own listeners (connection limits, the connection loop, shutdown), in plain
    /// TCP. One such listener: a second call replaces the first.
    pub fn serve_front_end<F: FrontEnd + 'static>(&mut self, listener: TcpListener) {
        self.custom = Some((listener, serve_boxed::<F>));
    }

    /// Serves clients until `shutdown` resolves, then tells every client, lets their queued
    /// lines go out (for at most the grace period), writes what history is pending, and
    /// returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // Shared, not copied into each session: an idle connection holds one pointer to it.
        let context = Arc::new(SessionContext {
            server: ServerHandle::spawn(
                &self.settings,
                self.store.clone(),
                self.loaded,
                self.cluster,
            ),
            settings: self.settings.clone(),
            shutdown: CancellationToken::new(),
        });
        let sessions = TaskTracker::new();
        let (ended, mut ended_rx) = mpsc::unbounded_channel();
        let max_connections = descriptors::connection_budget(self.settings.max_connections);
        let mut connections =
            ConnectionCount::new(max_connections, self.settings.max_connections_per_ip);
        let mut backoff = descriptors::AcceptBackoff::new();
        // A storm of refused connections writes a line per interval, not one each.
        let mut refusals = LogTally::new(REPORT_REFUSALS_EVERY);
        // While accepts are paused after a failure, until when.
        let mut paused_until: Option<Instant> = None;
        let stats_every = Duration::from_secs(self.settings.stats_log_secs.max(1));
        let mut stats = tokio::time::interval(stats_every);
        let mut trim = tokio::time::interval(RELEASE_MEMORY_EVERY);
        tokio::pin!(shutdown);
        loop {
            let (accepted, acceptor, front) = tokio::select! {
                _ = trim.tick() => {
                    // On the blocking pool: with a large heap the trim can take a while.
                    tokio::task::spawn_blocking(release_memory);
                    continue;
                }
                _ = stats.tick(), if self.settings.stats_log_secs > 0 => {
                    log_stats(&connections, &context.server);
                    continue;
                }
                accepted = self.listener.accept(), if paused_until.is_none() => {
                    (accepted, None, Front::Line)
                }
                (accepted, acceptor) = accept_tls(&self.tls), if self.tls.is_some() && paused_until.is_none() => {
                    (accepted, acceptor, Front::Line)
                }
                accepted = accept_plain(&self.irc), if self.irc.is_some() && paused_until.is_none() => {
                    (accepted, None, Front::Irc)
                }
                (accepted, acceptor) = accept_tls(&self.irc_tls), if self.irc_tls.is_some() && paused_until.is_none() => {
                    (accepted, acceptor, Front::Irc)
                }
                accepted = accept_custom(&self.custom), if self.custom.is_some() && paused_until.is_none() => {
                    (accepted, None, Front::Custom)
                }
                () = sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => {
                    paused_until = None;
                    continue;
                }
                Some(place) = ended_rx.recv() => {
                    connections.release(place);
                    continue;
                }
                () = &mut shutdown => break,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    // Typically out of file descriptors: pause instead of spinning, while
                    // connections that end still give theirs back.
                    if let Some(pause) = backoff.failed(&error) {
                        paused_until = Some(Instant::now() + pause);
                    }
                    continue;
                }
            };
            // The login deadline counts from here, on both listeners, so that a slow TLS
            // handshake is not extra time.
            let connected_at = Instant::now();
            prepare_socket(&socket, self.settings.tcp_user_timeout());
            let refusal = connections.admit(peer.ip());
            let place = match &refusal {
                None => Place::Connection(peer.ip()),
                Some(refusal) => {
                    if let Some(refused) = refusals.count(1) {
                        warn!(%peer, %refusal, refused, "connection refused");
                    }
                    // Telling a TLS client why would take a handshake first: CPU and a
                    // descriptor for as long as the client cares to take. And while many
                    // refused clients are being told, more are not: each holds a descriptor.
                    if acceptor.is_some() || !connections.take_goodbye() {
                        continue;
                    }
                    Place::Goodbye
                }
            };
            let slot = ConnectionSlot {
                place,
                ended: ended.clone(),
            };
            // The TLS handshake and the login happen inside the connection's own task: a
            // silent client never holds up the next accept.
            let context = context.clone();
            // Each kind of connection is a task of its own type, as large as it needs: a
            // plain session does not carry room for a TLS handshake or a goodbye.
            match (acceptor, refusal) {
                (None, None) if front == Front::Custom => {
                    if let Some((_, serve)) = &self.custom {
                        sessions.spawn(serve(socket, peer, context, connected_at, slot));
                    }
                }
                (None, None) if front == Front::Irc => {
                    let (read, write) = socket.into_split();
                    sessions.spawn(session::serve::<irc::Irc, _, _>(
                        read,
                        write,
                        peer,
                        context,
                        connected_at,
                        slot,
                    ));
                }
                (None, None) => {
                    let (read, write) = socket.into_split();
                    sessions.spawn(session::serve::<LineFrontEnd, _, _>(
                        read,
                        write,
                        peer,
                        context,
                        connected_at,
                        slot,
                    ));
                }
                (None, Some(refusal)) => {
                    sessions.spawn(say_goodbye(socket, refusal, front, slot));
                }
                // Refused TLS connections were closed above.
                (Some(acceptor), _) => {
                    let tls = serve_tls(acceptor, socket, peer, context, connected_at, slot, front);
                    sessions.spawn(tls);
                }
            }
        }
        info!(sessions = sessions.len(), "shutting down");
        drop(self.listener);
        drop(self.tls);
        drop(self.irc);
        drop(self.irc_tls);
        drop(self.custom);
        context.shutdown.cancel();
        sessions.close();
        let grace = self.settings.shutdown_grace() + Duration::from_secs(1);
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            warn!("some sessions did not finish in time");
        }
        if let Some(cluster) = &context.server.cluster {
            // The users' departures go first: the rooms and the directory handle what the
            // sessions sent them as they ended, and queue their messages to the other nodes.
            context.server.rooms.settle().await;
            context.server.users.list().await;
            cluster.leave().await;
        }
        self.store.close().await;
        let _ = self.store_stopped.await;
    }
}

/// One line of vital signs, for operators and the soak test.
fn log_stats(connections: &ConnectionCount, server: &ServerHandle) {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let queued_output_bytes = server.output.queued_bytes();
    // What waits in each actor's inbox: one that falls behind shows here first.
    info!(
        connections = connections.total,
        tasks,
        rss_kib,
        queued_output_bytes,
        users_backlog = server.users.backlog(),
        rooms_backlog = server.rooms.backlog(),
        accounts_backlog = server.accounts.backlog(),
        store_backlog = server.store.backlog(),
        "stats"
    );
}

/// Hands memory freed after a load back to the system. The server binary allocates through
/// jemalloc, which returns what it frees by itself after a few seconds; SQLite still
/// allocates through glibc's allocator, which keeps freed pages in its arenas otherwise, so
/// a server that once served a crowd would stay that big.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn listen(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Idle time before the kernel probes a silent connection, the time between probes, and the
/// unanswered probes after which it gives up: a peer that vanished without a word (power cut,
/// a NAT or firewall that forgot the connection) is found out in about 90 s. Fixed values:
/// the idle `PING` (`idle_ping_secs`) is the setting for what the protocol considers idle.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// Sets up an accepted socket, on every listener: lines go out at once (no Nagle delay),
/// TCP keepalive finds dead peers that were sent nothing, and `user_timeout`
/// (`tcp_user_timeout_secs`) those that were: keepalive does not probe a connection with
/// data unacknowledged, which the kernel would otherwise retransmit for some 15 minutes.
/// Failures are only logged: the connection still works.
fn prepare_socket(socket: &TcpStream, user_timeout: Option<Duration>) {
    if let Err(error) = socket.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let socket = socket2::SockRef::from(socket);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        debug!(%error, "cannot set TCP keepalive");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = socket.set_tcp_user_timeout(user_timeout) {
        debug!(%error, "cannot set TCP_USER_TIMEOUT");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = user_timeout;
}

type Accepted = io::Result<(TcpStream, SocketAddr)>;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Line,
    Irc,
    /// The front-end given to [`Server::serve_front_end`].
    Custom,
}

/// Serves one connection of a listener given to [`Server::serve_front_end`]: the connection
/// loop with that front-end, boxed, so that the server holds one function for it whatever
/// the front-end's type.
type ServeConnection = fn(
    TcpStream,
    SocketAddr,
    Arc<SessionContext>,
    Instant,
    ConnectionSlot,
) -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn serve_boxed<F: FrontEnd + 'static>(
    socket: TcpStream,
    peer: SocketAddr,
    context: Arc<SessionContext>,
    connected_at: Instant,
    slot: ConnectionSlot,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let (read, write) = socket.into_split();
    Box::pin(session::serve::<F, _, _>(
        read,
        write,
        peer,
        context,
        connected_at,
        slot,
    ))
}

async fn accept_custom(custom: &Option<(TcpListener, ServeConnection)>) -> Accepted {
    match custom {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_plain(listener: &Option<TcpListener>) -> Accepted {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_tls(tls: &Option<(TcpListener, TlsAcceptor)>) -> (Accepted, Option<TlsAcceptor>) {
    match tls {
        Some((listener, acceptor)) => (listener.accept().await, Some(acceptor.clone())),
        None => std::future::pending().await,
    }
}

/// Serves a TLS connection once its handshake is done, within `tls_handshake_timeout_secs`.
async fn serve_tls(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
    context: Arc<SessionContext>,
    connected_at: Instant,
    slot: ConnectionSlot,
    front: Front,
) {
    let handshake = context.settings.tls_handshake_timeout();
    match tokio::time::timeout(handshake, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => {
            let (read, write) = tokio::io::split(stream);
            match front {
                Front::Line => {
                    session::serve::<LineFrontEnd, _, _>(
                        read,
                        write,
                        peer,
                        context,
                        connected_at,
                        slot,
                    )
                    .await;
                }
                Front::Irc => {
                    session::serve::<irc::Irc, _, _>(
                        read,
                        write,
                        peer,
                        context,
                        connected_at,
                        slot,
                    )
                    .await;
                }
                // Served in plain TCP only.
                Front::Custom => {}
            }
        }
        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// Tells a refused connection why, and closes it.
async fn say_goodbye(mut socket: TcpStream, refusal: Refusal, front: Front, _slot: ConnectionSlot) {
    let line = match front {
        Front::Line => {
            let line = Reply::err(ErrorCode::TooManyConnections, refusal.to_string());
            format!("{line}\n")
        }
        Front::Irc => format!("ERROR :Closing link: {refusal}\r\n"),
        // Its words are its own: closed without one.
        Front::Custom => String::new(),
    };
    let goodbye = async {
        socket.write_all(line.as_bytes()).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum Refusal {
    #[error("the server is full ({0} connections); try again later")]
    Full(usize),
    #[error("too many connections from your address ({0})")]
    PerAddress(usize),
}

/// Connections open now, in all and per address, and refused ones being told why; owned by
/// the accept loop.
struct ConnectionCount {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    max_total: usize,
    max_per_ip: usize,
    goodbyes: usize,
}

impl ConnectionCount {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            total: 0,
            per_ip: HashMap::new(),
            max_total,
            max_per_ip,
            goodbyes: 0,
        }
    }

    /// Takes a place for telling a refused connection why, if one is free.
    fn take_goodbye(&mut self) -> bool {
        let free = self.goodbyes < descriptors::MAX_GOODBYES;
        if free {
            self.goodbyes += 1;
        }
        free
    }

    /// Counts a new connection in, unless that would pass a limit.
    fn admit(&mut self, ip: IpAddr) -> Option<Refusal> {
        if self.total >= self.max_total {
            return Some(Refusal::Full(self.max_total));
        }
        let from_ip = self.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Some(Refusal::PerAddress(self.max_per_ip));
        }
        *from_ip += 1;
        self.total += 1;
        None
    }

    fn release(&mut self, place: Place) {
        let ip = match place {
            Place::Connection(ip) => ip,
            Place::Goodbye => {
                self.goodbyes = self.goodbyes.saturating_sub(1);
                return;
            }
        };
        self.total = self.total.saturating_sub(1);
        if let Some(from_ip) = self.per_ip.get_mut(&ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// What a connection's task holds a place of in [`ConnectionCount`].
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A connection being served, from this address.
    Connection(IpAddr),
    /// A refused connection being told why.
    Goodbye,
}

/// Held by a connection's task; when the task ends (or panics), the accept loop hears of it.
struct ConnectionSlot {
    place: Place,
    ended: mpsc::UnboundedSender<Place>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let _ = self.ended.send(self.place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most a connection's future may take for its task to fit in 1,792 bytes: a task
    /// is tokio's header (32 bytes), scheduler and id (16), the future's slot (8 more for
    /// its state), the task tracker's token (8) and trailer (48), rounded up to 128 bytes.
    /// A byte over, and every connection takes 2,048: 2.5 MB more for 10,000 idle ones.
    const CONNECTION_FUTURE_AT_MOST: usize = 1792 - 32 - 16 - 8 - 8 - 48;

    #[tokio::test]
    async fn a_line_protocol_connection_fits_its_task_in_1792_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            addr: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        let server = Server::bind(settings).await.unwrap();
        let addr = server.local_addr().unwrap();
        let context = Arc::new(SessionContext {
            server: ServerHandle::spawn(
                &server.settings,
                server.store.clone(),
                server.loaded,
                None,
            ),
            settings: server.settings.clone(),
            shutdown: CancellationToken::new(),
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = server.listener.accept().await.unwrap();
        let (read, write) = accepted.into_split();
        let (ended, _) = mpsc::unbounded_channel();
        let slot = ConnectionSlot {
            place: Place::Connection(peer.ip()),
            ended,
        };
        let connection =
            session::serve::<LineFrontEnd, _, _>(read, write, peer, context, Instant::now(), slot);
        let size = size_of_val(&connection);
        assert!(size <= CONNECTION_FUTURE_AT_MOST, "{size} bytes");
        drop(client);
    }

    #[tokio::test]
    async fn accepted_sockets_get_keepalive_nodelay_and_the_user_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let user_timeout = Settings::default().tcp_user_timeout();
        assert_eq!(user_timeout, Some(Duration::from_secs(90)));
        prepare_socket(&accepted, user_timeout);
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
        assert_eq!(socket.tcp_user_timeout().unwrap(), user_timeout);
        assert!(accepted.nodelay().unwrap());
        // 0 leaves the kernel's default, which is none.
        let other_client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        prepare_socket(&accepted, None);
        assert_eq!(
            socket2::SockRef::from(&accepted)
                .tcp_user_timeout()
                .unwrap(),
            None
        );
        drop((client, other_client));
    }
}
