//! The real `linechat` binary as a child process, for the tests that need a process: signals,
//! hard kills, flags and environment variables, its log, resource limits set by a wrapper.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::PATIENCE;

/// The server binary; only the server package's tests have it (cargo builds it for them).
fn binary() -> &'static str {
    let Some(path) = option_env!("CARGO_BIN_EXE_linechat") else {
        panic!("only the server package's tests run its binary")
    };
    path
}

/// A running `linechat` process, listening on a free port of 127.0.0.1.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    logs: mpsc::Receiver<String>,
    /// The log lines written before it listened (start-up warnings among them).
    pub startup_log: Vec<String>,
    /// The data directory, when the server owns it (see [`ServerProcess::start_in`]).
    _data_dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// Starts the server with extra flags and environment variables, in a fresh data
    /// directory of its own.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(data_dir.path(), args, envs);
        server._data_dir = Some(data_dir);
        server
    }

    /// Starts the server on the data directory `data_dir`, which outlives it: a later server
    /// started on the same directory finds what this one stored.
    pub fn start_in(data_dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary());
        command
            .args(["--addr", "127.0.0.1:0"])
            .envs(envs.iter().copied());
        Self::launch(command, data_dir, args)
    }

    /// Runs `command` (the binary, or a wrapper that runs it) with a data directory and the
    /// extra `args`, and waits until it listens. The address is the one it logs.
    fn launch(mut command: Command, data_dir: &std::path::Path, args: &[&str]) -> Self {
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(data_dir.join("linechat.toml"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the linechat binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            logs,
            startup_log: Vec::new(),
            _data_dir: None,
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match server.logs.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!("not listening; log: {:?}", server.startup_log),
            };
            if let Some((_, addr)) = line.split_once("listening on ") {
                break addr.trim().parse().expect("address in the log line");
            }
            server.startup_log.push(line);
        };
        server.addr = addr;
        server
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        self.wait()
    }

    /// Kills the process at once (SIGKILL): nothing is flushed.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill");
        self.wait()
    }

    pub fn wait(&mut self) -> ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts the server on `data_dir` listening on `addr` rather than a free port: a test
    /// restarts a server where its clients will look for it.
    pub fn start_at(addr: SocketAddr, data_dir: &std::path::Path) -> Self {
        let mut command = Command::new(binary());
        command.arg("--addr").arg(addr.to_string());
        Self::launch(command, data_dir, &[])
    }
}

impl ServerProcess {
    /// Starts the server, in a fresh data directory, through a wrapper command that ends by
    /// running the binary it is given with its arguments (e.g. `bash -c 'ulimit -Sn 64; exec
    /// "$0" "$@"'`): the server then runs in the process setup the wrapper made.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(binary())
            .args(["--addr", "127.0.0.1:0"])
            .envs(envs.iter().copied());
        let mut server = Self::launch(command, data_dir.path(), args);
        server._data_dir = Some(data_dir);
        server
    }

    /// Starts the server, in a fresh data directory, as the user `uid` (which a firewall rule
    /// can then tell apart from the test's own processes).
    pub fn start_as(uid: u32, args: &[&str]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let data_dir = tempfile::tempdir().expect("temp dir");
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(data_dir.path(), open).expect("open the data directory");
        let id = uid.to_string();
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", &id, "--regid", &id, "--clear-groups", binary()])
            .args(["--addr", "127.0.0.1:0"]);
        let mut server = Self::launch(command, data_dir.path(), args);
        server._data_dir = Some(data_dir);
        server
    }

    /// The log lines written in the next `wait`, and any not yet read before.
    pub fn logs_for(&self, wait: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + wait;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return lines,
            }
        }
    }
}
