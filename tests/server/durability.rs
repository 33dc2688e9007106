//! What the server's files on disk let others see: the data directory is private to the
//! server's user (0700) and so is the database (0600, with its `-wal` and `-shm` files), as it
//! holds password hashes and every private message. An existing directory that is wider is
//! reported at start, with its path and mode, and left as it is.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Server, ServerProcess};

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
    let server = ServerProcess::start_in(&dir, &[], &[]);
    // Something stored, so that the write-ahead log and its index exist.
    server.register("alice", "secret").await;

    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["linechat.db", "linechat.db-wal", "linechat.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert!(
        !server
            .startup_log
            .iter()
            .any(|line| line.contains("other users")),
        "no warning for private files: {:?}",
        server.startup_log
    );
}

#[tokio::test]
async fn a_data_directory_open_to_others_is_reported_and_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = ServerProcess::start_in(&dir, &[], &[]);

    let warning = server
        .startup_log
        .iter()
        .find(|line| line.contains("WARN") && line.contains("other users"))
        .unwrap_or_else(|| panic!("no warning about the directory in {:?}", server.startup_log));
    assert!(warning.contains(&dir.display().to_string()), "{warning}");
    assert!(warning.contains("0755"), "{warning}");
    // An operator's directory keeps its mode; the database the server creates is private.
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("linechat.db")), 0o600);
}
