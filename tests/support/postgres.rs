//! A throwaway PostgreSQL server for tests: its own cluster (`initdb`) in a temporary
//! directory, on a free port of 127.0.0.1, with trust authentication for the `postgres` user.
//! `scripts/cluster-deps.sh` installs the binaries.
//!
//! Starting one takes a second or two (`initdb`), so a test binary shares one
//! ([`Postgres::shared`]) and each test takes a fresh database of it ([`Postgres::database`]).
//! A test that stops the server under a running linechat starts one of its own
//! ([`Postgres::start`]), which it may stop and start again.
//!
//! Cleaning up: an instance of its own is stopped when it is dropped (also when its test
//! panics). The shared one lives in a static, which is never dropped: it is stopped by an
//! `atexit` handler when the test process exits, and if the process is killed instead, the
//! postmaster gets `SIGQUIT` from the kernel (`PR_SET_PDEATHSIG`), since it is started as a
//! child of a thread that lives as long as the process. It is not started through `pg_ctl`,
//! which would detach it.
//!
//! PostgreSQL refuses to run as root: as root, the directory is given to the `postgres` user
//! and every PostgreSQL program runs as it.

// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// The storage unit tests include this file but not `support`, so it takes the port helper
// in itself; in the integration tests the helper is then compiled twice, as intended.
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;

/// How long the server may take to accept connections.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A PostgreSQL server of a test's own, or the shared one.
pub struct Postgres {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The `postgres` user's uid and gid when running as root.
    owner: Option<(u32, u32)>,
    /// The postmaster while it runs.
    server: Mutex<Option<Child>>,
}

impl Postgres {
    /// A server of the caller's own, stopped when dropped.
    pub fn start() -> Self {
        let postgres = Self::init();
        postgres.start_again();
        postgres
    }

    /// The server this test process shares, started at the first call; it stops when the
    /// process exits (see the module's comment).
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let postgres = Self::init();
            // Started from a thread that never ends, so that the kernel's parent-death signal
            // (sent when the thread that forked the child ends) comes only with the process.
            let (started, child) = std::sync::mpsc::channel();
            let (command, log) = (postgres.server_command(), postgres.log_file());
            std::thread::Builder::new()
                .name("postgres-parent".into())
                .spawn(move || {
                    started.send(spawn_server(command, log)).unwrap();
                    loop {
                        std::thread::park();
                    }
                })
                .expect("a thread");
            let child = child.recv().expect("the postmaster is spawned");
            let pid = child.id();
            *postgres.server.lock().unwrap() = Some(child);
            postgres.wait_until_ready();
            AT_EXIT
                .set((pid, postgres.dir.path().to_path_buf()))
                .expect("one shared server");
            // SAFETY: registers a function with no captured state; it runs once, at exit.
            unsafe { libc::atexit(stop_shared_at_exit) };
            postgres
        })
    }

    /// The URL of a new, empty database of this server.
    pub fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        );
        self.url(&name)
    }

    /// The URL of database `name` of this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (a fast shutdown: clients are disconnected, everything committed is
    /// kept) and waits until it has.
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            // SAFETY: signals a child of ours, which has not been waited for yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data, and waits until it accepts
    /// connections. Not for the shared server.
    pub fn start_again(&self) {
        let child = spawn_server(self.server_command(), self.log_file());
        *self.server.lock().unwrap() = Some(child);
        self.wait_until_ready();
    }

    /// A new cluster in a temporary directory, not started yet.
    fn init() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("linechat-pg-")
            .tempdir()
            .expect("a temporary directory");
        let owner = postgres_user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let postgres = Self {
            port: ports::free_port(),
            dir,
            bin,
            owner,
            server: Mutex::new(None),
        };
        let data = postgres.data_dir();
        postgres.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        postgres
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The postmaster's command line: TCP on 127.0.0.1 only, its socket in its own directory,
    /// and no waiting for the disk (a test database need not survive a crash of the machine).
    fn server_command(&self) -> Command {
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path());
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ] {
            command.arg("-c").arg(setting);
        }
        command
    }

    /// Waits until the server accepts connections, or fails with its log.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            let exited = self
                .server
                .lock()
                .unwrap()
                .as_mut()
                .is_none_or(|child| child.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                panic!("PostgreSQL did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one of PostgreSQL's programs to the end; fails the test with its output if it
    /// fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A PostgreSQL program, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shared server's postmaster and directory, for the handler below.
static AT_EXIT: OnceLock<(u32, PathBuf)> = OnceLock::new();

/// Stops the shared server at once (`SIGQUIT`: no need to save anything) and removes its
/// directory.
extern "C" fn stop_shared_at_exit() {
    if let Some((pid, dir)) = AT_EXIT.get() {
        // SAFETY: the postmaster is a child of this process, not waited for yet.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGQUIT);
            libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Spawns the postmaster; it gets `SIGQUIT` when the thread that spawned it ends.
fn spawn_server(mut command: Command, log: PathBuf) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the server's log file");
    let log_too = log.try_clone().expect("the server's log file");
    command.stdin(Stdio::null()).stdout(log).stderr(log_too);
    // SAFETY: `prctl` is async-signal-safe; this runs in the child after the uid change, so
    // the setting survives it (a change of credentials clears it).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("postgres starts")
}

/// The directory of PostgreSQL's programs: the newest version installed from Debian's
/// packages, or where `initdb` is on the `PATH`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL is not installed: run scripts/cluster-deps.sh")
}

/// The `postgres` user's uid and gid when this process is root (which PostgreSQL refuses to
/// run as); `None` otherwise.
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; the passwd entry is read at once, before any other call.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let user = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !user.is_null(),
            "running as root, but there is no postgres user: run scripts/cluster-deps.sh"
        );
        Some(((*user).pw_uid, (*user).pw_gid))
    }
}
