//! A real `nats-server` with JetStream for the cluster tests, on a free port of 127.0.0.1, its
//! store in a temporary directory. Stopped (killed and reaped) when dropped, also when the test
//! panics; it can be stopped and started again on the same port and store, as a NATS restart.
//!
//! `nats-server` comes from the Debian package (`scripts/cluster-deps.sh` installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

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
    pub fn start_with(args: &[&str]) -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            monitor: free_port(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            child: None,
            store: tempfile::tempdir().expect("a temporary directory"),
        };
        server.resume();
        server
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
        assert!(self.child.is_none(), "the NATS server is running already");
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
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
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("nats-server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "nats-server does not accept");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
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
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}
