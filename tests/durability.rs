//! What the server's files on disk let others see: the data directory is private to the
//! server's user (0700) and so is the database (0600, with its `-wal` and `-shm` files), as it
//! holds password hashes and every private message. An existing directory that is wider is
//! reported at start, with its path and mode, and left as it is.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::Client;

/// The server started on `data_dir`, and its log lines up to `listening on`.
struct Started {
    child: Child,
    addr: std::net::SocketAddr,
    log: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary and keeps every log line before it listens (the shared harness
/// skips them, and the start-up warnings are among them).
fn start(data_dir: &Path) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linechat"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--config",
            "/dev/null",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the linechat binary");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server logs until it listens")
            .expect("read the log");
        if let Some(addr) = line.split("listening on ").nth(1) {
            break addr.trim().parse().expect("an address");
        }
        log.push(line);
    };
    // Keep draining the log so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Started { child, addr, log }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_new_data_directory_and_its_database_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let server = start(&dir);
    // Something stored, so that the write-ahead log and its index exist.
    let mut client = Client::connect(server.addr).await;
    client.expect_prefix("HELLO ").await;
    client.send("REGISTER alice secret").await;
    client.expect("OK REGISTER alice").await;

    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["linechat.db", "linechat.db-wal", "linechat.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert!(
        !server.log.iter().any(|line| line.contains("other users")),
        "no warning for private files: {:?}",
        server.log
    );
}

#[tokio::test]
async fn a_data_directory_open_to_others_is_reported_and_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start(&dir);

    let warning = server
        .log
        .iter()
        .find(|line| line.contains("WARN") && line.contains("other users"))
        .unwrap_or_else(|| panic!("no warning about the directory in {:?}", server.log));
    assert!(warning.contains(&dir.display().to_string()), "{warning}");
    assert!(warning.contains("0755"), "{warning}");
    // An operator's directory keeps its mode; the database the server creates is private.
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("linechat.db")), 0o600);
}
