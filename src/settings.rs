//! Settings, layered: built-in defaults, then `linechat.toml` if present, then `LINECHAT_*`
//! environment variables, then command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

use crate::server::storage::StorageOptions;
use linechat_protocol::name::MAX_NAME_LEN;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Address of the plain-text listener; port 0 picks a free port.
    pub addr: String,
    /// Where the server keeps its files.
    pub data_dir: PathBuf,
    /// Longest accepted line in bytes, line ending excluded.
    pub max_line_length: usize,
    /// Whether `NICK` (login without an account) is allowed.
    pub allow_guests: bool,
    /// `NOTICE ONLINE`/`OFFLINE` go to everyone while at most this many users are online;
    /// on a larger server they go to nobody. 0 turns them off.
    pub presence_max_online: usize,
    /// Seconds a new connection has to log in.
    pub login_timeout_secs: u64,
    /// Bytes that may wait in one client's outbox before it counts as not reading and is
    /// disconnected.
    pub outbox_limit_bytes: usize,
    /// Bytes that may wait in all outboxes together; past it, the connections with the most
    /// queued are disconnected as not reading. 0 picks a quarter of the memory (see
    /// [`Settings::output_budget`]).
    pub output_budget_bytes: usize,
    /// Password hashes computed at once; each takes a core and ~19 MiB for ~15 ms. The
    /// default, half the cores, leaves the rest to chat during a storm of logins.
    pub password_hash_workers: usize,
    /// Seconds given to clients to receive their last lines at shutdown.
    pub shutdown_grace_secs: u64,
    /// Whether chat messages are kept for `HISTORY`.
    pub history: bool,
    /// Milliseconds a message may wait before its batch is committed to the database: the
    /// most a hard kill can lose.
    pub history_batch_ms: u64,
    /// Messages `HISTORY` returns when no count is given.
    pub history_default_count: u32,
    /// The most messages one `HISTORY` returns.
    pub history_max_count: u32,
    /// Messages kept per conversation (global, a room, a pair of users); 0 keeps all.
    pub history_keep_per_conversation: u64,
    /// Days messages are kept; 0 keeps them forever.
    pub history_keep_days: u64,
    /// `HISTORY` reads served at once, each on a read-only database connection; more wait
    /// their turn. Writes have a connection of their own and never wait behind reads.
    pub storage_read_connections: usize,
    /// Lines per second a connection may send, on average; 0 turns flood control off.
    pub flood_lines_per_sec: u32,
    /// Lines a connection may send at once above the average rate.
    pub flood_burst: u32,
    /// Dropped lines in a row after which a flooding connection is closed.
    pub flood_kick_after: u32,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Connections from one IP address at once; more are refused.
    pub max_connections_per_ip: usize,
    /// Seconds of silence from a logged-in client before the server sends it `PING`; 0 never.
    pub idle_ping_secs: u64,
    /// Seconds a client has to send any line after that `PING` before it is disconnected.
    pub idle_timeout_secs: u64,
    /// Password attempts allowed per IP address in a window: `LOGIN`s, counted before they
    /// are checked and given back when right, and every `REGISTER`.
    pub login_failures_per_ip: u32,
    /// The same per account; a locked account still takes attempts from addresses with none
    /// in the window.
    pub login_failures_per_account: u32,
    /// Length of that window, in seconds; after it the counts start again.
    pub login_failure_window_secs: u64,
    /// Most rooms the server holds; `CR` beyond it is refused.
    pub max_rooms: usize,
    /// Seconds a room may stay empty before it is deleted with its history, unless a
    /// registered user remembers it (is in it across logins); 0 keeps every room.
    pub room_expiry_secs: u64,
    /// Rooms one connection may create per minute; 0 does not limit.
    pub rooms_created_per_minute: u32,
    /// Most members one room may have.
    pub max_room_members: usize,
    /// Longest new user or room name, at most 32.
    pub max_name_length: usize,
    /// Address of the TLS listener, if any; needs `tls_cert` and `tls_key`.
    pub tls_addr: Option<String>,
    /// PEM file with the certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Seconds a TLS connection has to finish its handshake before it is closed.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds between log lines with the server's vital signs (connections, tasks,
    /// memory); 0 never.
    pub stats_log_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            data_dir: "linechat-data".into(),
            max_line_length: 4096,
            allow_guests: true,
            presence_max_online: 2_000,
            login_timeout_secs: 60,
            outbox_limit_bytes: 4 * 1024 * 1024,
            output_budget_bytes: 0,
            password_hash_workers: std::thread::available_parallelism()
                .map_or(1, |cores| (cores.get() / 2).max(1)),
            shutdown_grace_secs: 5,
            history: true,
            history_batch_ms: 100,
            history_default_count: 50,
            history_max_count: 1000,
            history_keep_per_conversation: 100_000,
            history_keep_days: 365,
            storage_read_connections: 2,
            flood_lines_per_sec: 20,
            flood_burst: 200,
            flood_kick_after: 100,
            max_connections: 16_384,
            max_connections_per_ip: 64,
            idle_ping_secs: 300,
            idle_timeout_secs: 120,
            login_failures_per_ip: 20,
            login_failures_per_account: 5,
            login_failure_window_secs: 300,
            max_rooms: 10_000,
            room_expiry_secs: 3600,
            rooms_created_per_minute: 5,
            max_room_members: 10_000,
            max_name_length: MAX_NAME_LEN,
            tls_addr: None,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_secs: 5,
            stats_log_secs: 0,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_line_length: Option<usize>,
    pub allow_guests: Option<bool>,
    pub tls_addr: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("bad settings: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

impl Settings {
    /// Loads the layers. `file` is read when it exists; a missing file is not an error.
    pub fn load(file: &Path, overrides: Overrides) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(Config::try_from(&Settings::default())?)
            .add_source(File::from(file).format(FileFormat::Toml).required(false))
            .add_source(
                Environment::with_prefix("LINECHAT")
                    .prefix_separator("_")
                    .try_parsing(true),
            );
        if let Some(addr) = overrides.addr {
            builder = builder.set_override("addr", addr)?;
        }
        if let Some(dir) = overrides.data_dir {
            builder = builder.set_override("data_dir", dir.to_string_lossy().into_owned())?;
        }
        if let Some(max) = overrides.max_line_length {
            builder = builder.set_override("max_line_length", max as u64)?;
        }
        if let Some(allow) = overrides.allow_guests {
            builder = builder.set_override("allow_guests", allow)?;
        }
        if let Some(addr) = overrides.tls_addr {
            builder = builder.set_override("tls_addr", addr)?;
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    pub fn idle_ping(&self) -> Option<Duration> {
        (self.idle_ping_secs > 0).then(|| Duration::from_secs(self.idle_ping_secs))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout_secs)
    }

    pub fn room_expiry(&self) -> Option<Duration> {
        (self.room_expiry_secs > 0).then(|| Duration::from_secs(self.room_expiry_secs))
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The output budget in bytes: `output_budget_bytes`, or when that is 0, a quarter of the
    /// memory the server may use (the machine's, or its control group's limit if lower).
    pub fn output_budget(&self) -> usize {
        if self.output_budget_bytes > 0 {
            return self.output_budget_bytes;
        }
        available_memory().map_or(AUTO_BUDGET_FALLBACK, |bytes| (bytes / 4) as usize)
    }

    pub fn storage(&self) -> StorageOptions {
        StorageOptions {
            data_dir: self.data_dir.clone(),
            history: self.history,
            batch_window: Duration::from_millis(self.history_batch_ms),
            keep_per_conversation: self.history_keep_per_conversation,
            keep_days: self.history_keep_days,
            read_connections: self.storage_read_connections,
        }
    }
}

/// The automatic output budget when the memory size cannot be read.
const AUTO_BUDGET_FALLBACK: usize = 1 << 30;

/// Physical memory, or the cgroup (v2) memory limit when it is lower: in a container the
/// machine's size says little about what the server may take.
fn available_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let physical = u64::try_from(pages)
        .ok()
        .zip(u64::try_from(page_size).ok())
        .map(|(pages, size)| pages.saturating_mul(size))
        .filter(|&bytes| bytes > 0);
    // "max" when there is no limit, and no file outside a cgroup v2 hierarchy.
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<u64>().ok());
    match (physical, limit) {
        (Some(physical), Some(limit)) => Some(physical.min(limit)),
        (physical, limit) => physical.or(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_file_or_flags() {
        let settings = Settings::load(
            Path::new("/nonexistent/linechat.toml"),
            Overrides::default(),
        )
        .unwrap();
        // The environment of the test run may set LINECHAT_*; compare a key nobody sets.
        assert_eq!(
            settings.shutdown_grace_secs,
            Settings::default().shutdown_grace_secs
        );
    }

    #[test]
    fn the_automatic_output_budget_is_a_share_of_memory() {
        let auto = Settings::default().output_budget();
        assert!(auto >= 16 << 20, "{auto}");
        let memory = available_memory().expect("memory size on this system");
        assert_eq!(auto as u64, memory / 4);
        let set = Settings {
            output_budget_bytes: 12345,
            ..Settings::default()
        };
        assert_eq!(set.output_budget(), 12345);
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("linechat.toml");
        std::fs::write(&file, "max_line_length = 100\nshutdown_grace_secs = 9\n").unwrap();
        let settings = Settings::load(
            &file,
            Overrides {
                max_line_length: Some(200),
                allow_guests: Some(false),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(settings.shutdown_grace_secs, 9);
        assert_eq!(settings.max_line_length, 200);
        assert!(!settings.allow_guests);
    }
}
