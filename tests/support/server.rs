//! The server in the test's own process, on 127.0.0.1 port 0, reached over real sockets.
//!
//! Each server runs on a runtime of its own, on a thread of its own, as the binary's would:
//! stopping it ends that runtime, which drops every task and closes every socket at once, the
//! way a killed process does. Tests about timeouts run the server on their own runtime instead
//! ([`TestServer::paused`]), so that a paused clock (`tokio::time::pause`) drives both.

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;

use linechat::server::Server;
use linechat::server::session::FrontEnd;
use linechat::settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Gives a bound server a listener to serve with a front-end of the test's
/// ([`Server::serve_front_end`]).
type AddFrontEnd = fn(&mut Server, TcpListener);

fn serve_front_end<F: FrontEnd + 'static>(server: &mut Server, listener: TcpListener) {
    server.serve_front_end::<F>(listener);
}

/// How a server on its own thread is told to stop.
enum Stop {
    /// As on SIGTERM: clients are told, queued lines and history are written.
    Gracefully,
    /// As on SIGKILL: the runtime is dropped with everything on it.
    Now,
}

/// A server running in this process, on a runtime and a thread of its own.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The TLS listener's address, when the settings ask for one.
    pub tls_addr: Option<SocketAddr>,
    /// The IRC listener's address, when the settings ask for one.
    pub irc_addr: Option<SocketAddr>,
    /// The TLS IRC listener's address, when the settings ask for one.
    pub irc_tls_addr: Option<SocketAddr>,
    /// The address of the listener of a front-end of the test's, when it has one
    /// ([`TestServer::with_front_end`]).
    pub front_end_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<Stop>>,
    thread: Option<JoinHandle<()>>,
    /// The data directory, when the server owns it (see [`TestServer::start_in`]).
    _data_dir: Option<tempfile::TempDir>,
}

/// The settings tests start from: the defaults, on a free port of 127.0.0.1 and the data
/// directory `data_dir`.
pub fn settings(data_dir: &Path) -> Settings {
    Settings {
        addr: "127.0.0.1:0".into(),
        data_dir: data_dir.to_path_buf(),
        ..Settings::default()
    }
}

impl TestServer {
    /// A server with the default settings, in a fresh data directory of its own.
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// A server whose settings `configure` changes, in a fresh data directory of its own.
    pub fn with(configure: impl FnOnce(&mut Settings)) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = Self::start_in(data_dir.path(), configure);
        server._data_dir = Some(data_dir);
        server
    }

    /// A server on `data_dir`, which outlives it: a later server started on the same
    /// directory finds what this one stored.
    pub fn start_in(data_dir: &Path, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = settings(data_dir);
        configure(&mut settings);
        Self::start_on_thread(settings, None)
    }

    /// A server on `data_dir` (as [`TestServer::start_in`]) that also serves the front-end
    /// `F` on a listener of its own, on a free port of 127.0.0.1: `front_end_addr`.
    pub fn start_in_with_front_end<F: FrontEnd + 'static>(
        data_dir: &Path,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = settings(data_dir);
        configure(&mut settings);
        Self::start_on_thread(settings, Some(serve_front_end::<F>))
    }

    /// The same in a fresh data directory of its own.
    pub fn with_front_end<F: FrontEnd + 'static>(configure: impl FnOnce(&mut Settings)) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = Self::start_in_with_front_end::<F>(data_dir.path(), configure);
        server._data_dir = Some(data_dir);
        server
    }

    /// A server on `data_dir` listening on `addr` rather than a free port: a test restarts a
    /// server where its clients will look for it.
    pub fn start_at(addr: SocketAddr, data_dir: &Path) -> Self {
        Self::start_in(data_dir, |settings| settings.addr = addr.to_string())
    }

    fn start_on_thread(settings: Settings, front_end: Option<AddFrontEnd>) -> Self {
        let (started, listening) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut server = Server::bind(settings).await.expect("the server starts");
                let mut front_end_addr = None;
                if let Some(add) = front_end {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
                    front_end_addr = Some(listener.local_addr().expect("an address"));
                    add(&mut server, listener);
                }
                started.send((addresses(&server), front_end_addr)).unwrap();
                let (graceful, now) = oneshot::channel::<()>();
                let serving = tokio::spawn(server.run(async {
                    // Only a word shuts down gracefully: when the sender is dropped, the
                    // runtime is about to be, and the server must not say goodbye first.
                    if now.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }));
                match stopped.await {
                    Ok(Stop::Gracefully) => {
                        let _ = graceful.send(());
                        let _ = serving.await;
                    }
                    // A dropped handle stops the server as abruptly as a kill.
                    Ok(Stop::Now) | Err(_) => {}
                }
            });
            runtime.shutdown_background();
        });
        let ((addr, tls_addr, irc_addr, irc_tls_addr), front_end_addr) =
            listening.recv().expect("the server starts");
        Self {
            addr,
            tls_addr,
            irc_addr,
            irc_tls_addr,
            front_end_addr,
            stop: Some(stop),
            thread: Some(thread),
            _data_dir: None,
        }
    }

    /// Starts the server on the test's own runtime, in a fresh data directory, so that the
    /// test's clock is the server's; it stops when the runtime does.
    pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> SpawnedServer {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = settings(data_dir.path());
        configure(&mut settings);
        let server = Server::bind(settings).await.expect("the server starts");
        let (addr, tls_addr, irc_addr, irc_tls_addr) = addresses(&server);
        tokio::spawn(server.run(std::future::pending()));
        SpawnedServer {
            addr,
            tls_addr,
            irc_addr,
            irc_tls_addr,
            _data_dir: data_dir,
        }
    }

    /// [`TestServer::spawn`], then pauses the clock (`tokio::time::pause`), for a test about
    /// time on a current-thread runtime (a plain `#[tokio::test]`).
    ///
    /// The clock is paused only once the server is bound: binding opens the database, which
    /// runs on threads of its own, and a paused clock jumps to the next timer whenever the
    /// runtime has nothing to do but wait (sqlx's pool timeout, here). For the same reason a
    /// paused test uses guests, with `history = false`, and no rooms, since accounts and rooms
    /// are written to the database at once: while the runtime waits for it, time would leap
    /// to the next deadline. Password hashing runs on tokio's blocking pool, which holds the
    /// clock still.
    pub async fn paused(configure: impl FnOnce(&mut Settings)) -> SpawnedServer {
        let server = Self::spawn(|settings| {
            settings.history = false;
            configure(settings);
        })
        .await;
        tokio::time::pause();
        server
    }
    /// Shuts the server down as SIGTERM does, and waits until it has.
    pub fn terminate(&mut self) {
        self.stop_with(Stop::Gracefully);
    }

    /// Stops the server at once, as SIGKILL does: connections drop without a word.
    pub fn kill(&mut self) {
        self.stop_with(Stop::Now);
    }

    fn stop_with(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server's thread ends cleanly");
        }
    }
}

/// A server on the test's own runtime (see [`TestServer::spawn`] and [`TestServer::paused`]).
pub struct SpawnedServer {
    pub addr: SocketAddr,
    /// The TLS listener's address, when the settings ask for one.
    pub tls_addr: Option<SocketAddr>,
    /// The IRC listener's address, when the settings ask for one.
    pub irc_addr: Option<SocketAddr>,
    /// The TLS IRC listener's address, when the settings ask for one.
    pub irc_tls_addr: Option<SocketAddr>,
    _data_dir: tempfile::TempDir,
}

/// The plain, the TLS, the IRC and the TLS IRC listeners' addresses of a bound server.
type Addresses = (
    SocketAddr,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
);

fn addresses(server: &Server) -> Addresses {
    let addr = server.local_addr().expect("an address");
    let tls_addr = server.tls_addr().map(|addr| addr.expect("a TLS address"));
    let irc_addr = server.irc_addr().map(|addr| addr.expect("an IRC address"));
    let irc_tls_addr = server
        .irc_tls_addr()
        .map(|addr| addr.expect("a TLS IRC address"));
    (addr, tls_addr, irc_addr, irc_tls_addr)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_with(Stop::Now);
    }
}
