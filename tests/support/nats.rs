//! A real `nats-server` with JetStream for the cluster tests, on a free port of 127.0.0.1, its
//! store in a temporary directory. Stopped (killed and reaped) when dropped, also when the test
//! panics; it can be stopped and started again on the same port and store, as a NATS restart.
//!
//! `nats-server` comes from the Debian package (`scripts/cluster-deps.sh` installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;
use super::ports::free_port;

pub struct NatsServer {
    port: u16,
    /// The HTTP monitoring port (`/connz`: who is connected, subscribed to what).
    monitor: u16,
    /// Extra arguments (credentials), kept for restarts.
    args: Vec<String>,
    child: Option<Child>,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// A NATS server with JetStream, accepting anyone.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The same with extra `nats-server` arguments, e.g. `["--user", "u", "--pass", "p"]`.
    ///
    /// A port found free can be taken by another test before the server binds it; the server
    /// then exits, and is started again on other ports.
    pub fn start_with(args: &[&str]) -> Self {
        let mut server = Self {
            port: free_port(),
            monitor: free_port(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            child: None,
            store: tempfile::tempdir().expect("a temporary directory"),
        };
        for _ in 0..4 {
            match server.launch() {
                Ok(()) => return server,
                Err(_) => (server.port, server.monitor) = (free_port(), free_port()),
            }
        }
        server.resume();
        server
    }

    /// The server's name, which it says in its greeting: its store's, unique.
    fn name(&self) -> String {
        let store = self.store.path().file_name().unwrap_or_default();
        format!("linechat-test-{}", store.to_string_lossy())
    }

    /// `nats://127.0.0.1:<port>`, for `nats_url`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash would, and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on its port and store, and waits until it accepts.
    pub fn resume(&mut self) {
        if let Err(status) = self.launch() {
            panic!("nats-server exited at start: {status}");
        }
    }

    /// Starts the server and waits until it greets a client; `Err` with its exit status if
    /// it exits first. The greeting must be this server's (its name, that of its store):
    /// another test's server that took the port first would answer as well.
    fn launch(&mut self) -> Result<(), std::process::ExitStatus> {
        assert!(self.child.is_none(), "the NATS server is running already");
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "--name",
                &self.name(),
                "-m",
                &self.monitor.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/cluster-deps.sh installs it)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + PATIENCE;
        while !greets(addr, &self.name()) {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(status);
            }
            assert!(Instant::now() < deadline, "nats-server does not accept");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Whether the NATS server named `name` answers at `addr`: it greets every client with
/// `INFO` and a JSON object, its name in it. Accepting
/// is not enough: connecting again and again to a port of the ephemeral range while nobody
/// listens there can connect a socket to itself (TCP's simultaneous open), which looked
/// like a server that was not there yet.
fn greets(addr: SocketAddr, name: &str) -> bool {
    use std::io::{BufRead, BufReader};
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut greeting = String::new();
    if BufReader::new(stream).read_line(&mut greeting).is_err() {
        return false;
    }
    greeting.starts_with("INFO ") && greeting.contains(&format!("\"server_name\":\"{name}\""))
}

impl NatsServer {
    /// What the server's monitoring endpoint at `path` (e.g. `/connz?subs=1`) answers: the
    /// HTTP body, JSON.
    pub fn monitor(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut http = TcpStream::connect(("127.0.0.1", self.monitor)).expect("the monitor");
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        http.write_all(request.as_bytes()).expect("a request");
        let mut response = String::new();
        http.read_to_string(&mut response).expect("a response");
        let body = response.split("\r\n\r\n").nth(1).expect("a body");
        body.to_owned()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on now. Another process could take it before the server does;
/// on a test machine that is rare enough.
#[test]
fn only_a_server_that_greets_counts_as_started() {
    // Accepting connections, as anything listening on the port would, is not enough.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener");
    assert!(!greets(silent.local_addr().expect("an address"), "any"));
    let nats = NatsServer::start();
    let addr = SocketAddr::from(([127, 0, 0, 1], nats.port));
    assert!(greets(addr, &nats.name()));
    // Another server on the port, as when two tests picked the same one, is not this one.
    assert!(!greets(addr, "another"));
}
