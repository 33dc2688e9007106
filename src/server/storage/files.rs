//! The data directory and the database files. They hold password hashes and every private
//! message, so they are created for the server's user alone: the directory 0700, the
//! database 0600 (SQLite gives its `-wal` and `-shm` files the database's mode). Existing
//! ones wider than that are reported, never changed: an operator may have reasons.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::StorageError;

const DIRECTORY_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// The bits that let other users in.
const OTHERS: u32 = 0o077;

/// Creates the data directory and the empty database file `database` in it if missing, with
/// private modes; warns about existing ones that others may read. Returns the database's path.
pub(super) fn prepare(dir: &Path, database: &str) -> Result<PathBuf, StorageError> {
    let failed = |source| StorageError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        // Parents as the system makes them; only the directory of our own files is private.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        match DirBuilder::new().mode(DIRECTORY_MODE).create(dir) {
            Err(error) if error.kind() != ErrorKind::AlreadyExists => return Err(failed(error)),
            _ => {}
        }
    }
    warn_if_open(dir, "the data directory", DIRECTORY_MODE);

    let path = dir.join(database);
    // Created before SQLite opens it, so that it never exists with a wider mode.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
    {
        Err(error) if error.kind() != ErrorKind::AlreadyExists => return Err(failed(error)),
        _ => {}
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            warn_if_open(&file, "a database file", FILE_MODE);
        }
    }
    Ok(path)
}

/// Logs a warning when `path` lets other users in.
fn warn_if_open(path: &Path, what: &str, wanted: u32) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & OTHERS != 0 {
        warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            wanted = format!("{wanted:04o}"),
            "{what} can be read by other users; it holds password hashes and private \
             messages: chmod it to the mode wanted"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_and_database_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/data");
        let db = prepare(&dir, "x.db").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn an_existing_directory_keeps_its_mode() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(root.path(), "x.db").unwrap();
        assert_eq!(mode(root.path()), 0o755);
    }
}
