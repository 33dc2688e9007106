//! Settings, layered: built-in defaults, then `linechat.toml` if present, then `LINECHAT_*`
//! environment variables, then command-line flags.
//!
//! Each setting is declared once, as a field of [`Settings`]: its name is the file's key, its
//! `#[arg]` gives the flag (`--kebab-name`), the variable (`LINECHAT_SNAKE_NAME`) and the
//! default, and its doc comment is the `--help` text. README's settings table is checked
//! against these declarations by a test.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::server::storage::StorageOptions;
use linechat_protocol::name::MAX_NAME_LEN;

/// The server's settings. The server and the tests build it directly
/// (`Settings { addr, ..Settings::default() }`); the binary builds it with [`Settings::load`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(default)]
#[command(next_help_heading = "Settings")]
pub struct Settings {
    /// Address of the plain-text listener; port 0 picks a free port.
    #[arg(long, env = "LINECHAT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where the server keeps its files.
    #[arg(long, env = "LINECHAT_DATA_DIR", default_value = "linechat-data")]
    pub data_dir: PathBuf,
    /// Longest accepted line in bytes, line ending excluded.
    #[arg(long, env = "LINECHAT_MAX_LINE_LENGTH", default_value_t = 4096)]
    pub max_line_length: usize,
    /// Whether `NICK` (login without an account) is allowed.
    #[arg(long, env = "LINECHAT_ALLOW_GUESTS", default_value_t = true, action = ArgAction::Set)]
    pub allow_guests: bool,
    /// `NOTICE ONLINE`/`OFFLINE` go to everyone while at most this many users are online;
    /// on a larger server they go to nobody. 0 turns them off.
    #[arg(long, env = "LINECHAT_PRESENCE_MAX_ONLINE", default_value_t = 2_000)]
    pub presence_max_online: usize,
    /// Seconds a new connection has to log in.
    #[arg(long, env = "LINECHAT_LOGIN_TIMEOUT_SECS", default_value_t = 60)]
    pub login_timeout_secs: u64,
    /// Bytes that may wait in one client's outbox before it counts as not reading and is
    /// disconnected.
    #[arg(long, env = "LINECHAT_OUTBOX_LIMIT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub outbox_limit_bytes: usize,
    /// Bytes that may wait in all outboxes together; past it, the connections with the most
    /// queued are disconnected as not reading. 0 picks a quarter of the memory.
    // See `Settings::output_budget`.
    #[arg(long, env = "LINECHAT_OUTPUT_BUDGET_BYTES", default_value_t = 0)]
    pub output_budget_bytes: usize,
    /// Password hashes computed at once; each takes a core and ~19 MiB for ~15 ms. The
    /// default, half the cores, leaves the rest to chat during a storm of logins.
    #[arg(long, env = "LINECHAT_PASSWORD_HASH_WORKERS", default_value_t = half_the_cores())]
    pub password_hash_workers: usize,
    /// Seconds given to clients to receive their last lines at shutdown.
    #[arg(long, env = "LINECHAT_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
    /// Whether chat messages are kept for `HISTORY`.
    #[arg(long, env = "LINECHAT_HISTORY", default_value_t = true, action = ArgAction::Set)]
    pub history: bool,
    /// Milliseconds a message may wait before its batch is committed to the database: the
    /// most a hard kill can lose.
    #[arg(long, env = "LINECHAT_HISTORY_BATCH_MS", default_value_t = 100)]
    pub history_batch_ms: u64,
    /// Messages `HISTORY` returns when no count is given; capped at `history_max_count`.
    #[arg(long, env = "LINECHAT_HISTORY_DEFAULT_COUNT", default_value_t = 50)]
    pub history_default_count: u32,
    /// The most messages one `HISTORY` returns: a larger count is cut to it for the last
    /// messages, and refused for a page before, after or between bounds.
    #[arg(long, env = "LINECHAT_HISTORY_MAX_COUNT", default_value_t = 1000)]
    pub history_max_count: u32,
    /// The most messages one `SEARCH` returns; a larger count is refused.
    #[arg(long, env = "LINECHAT_SEARCH_MAX_RESULTS", default_value_t = 100)]
    pub search_max_results: u32,
    /// Milliseconds one `SEARCH` may take before it is given up (`ERR INTERNAL`).
    #[arg(long, env = "LINECHAT_SEARCH_TIMEOUT_MS", default_value_t = 2000)]
    pub search_timeout_ms: u64,
    /// Messages kept per conversation (global, a room, a pair of users); 0 keeps all.
    #[arg(
        long,
        env = "LINECHAT_HISTORY_KEEP_PER_CONVERSATION",
        default_value_t = 100_000
    )]
    pub history_keep_per_conversation: u64,
    /// Days messages are kept; 0 keeps them forever.
    #[arg(long, env = "LINECHAT_HISTORY_KEEP_DAYS", default_value_t = 365)]
    pub history_keep_days: u64,
    /// `HISTORY` reads served at once, each on a read-only database connection; more wait
    /// their turn. Writes have a connection of their own and never wait behind reads.
    #[arg(long, env = "LINECHAT_STORAGE_READ_CONNECTIONS", default_value_t = 2)]
    pub storage_read_connections: usize,
    /// Lines per second a connection may send, on average; 0 turns flood control off.
    #[arg(long, env = "LINECHAT_FLOOD_LINES_PER_SEC", default_value_t = 20)]
    pub flood_lines_per_sec: u32,
    /// Lines a connection may send at once above the average rate.
    #[arg(long, env = "LINECHAT_FLOOD_BURST", default_value_t = 200)]
    pub flood_burst: u32,
    /// Dropped lines in a row after which a flooding connection is closed.
    #[arg(long, env = "LINECHAT_FLOOD_KICK_AFTER", default_value_t = 100)]
    pub flood_kick_after: u32,
    /// Connections served at once; more are refused.
    #[arg(long, env = "LINECHAT_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Connections from one IP address at once; more are refused.
    #[arg(long, env = "LINECHAT_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Seconds of silence from a logged-in client before the server sends it `PING`; 0 never.
    #[arg(long, env = "LINECHAT_IDLE_PING_SECS", default_value_t = 300)]
    pub idle_ping_secs: u64,
    /// Seconds a client has to send any line after that `PING` before it is disconnected.
    #[arg(long, env = "LINECHAT_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    pub idle_timeout_secs: u64,
    /// Seconds that data sent to a client may stay unacknowledged before its connection
    /// counts as lost (`TCP_USER_TIMEOUT`; it also ends keepalive's probing of a silent one
    /// no sooner); 0 leaves it to the kernel, which retransmits for about 15 minutes.
    #[arg(long, env = "LINECHAT_TCP_USER_TIMEOUT_SECS", default_value_t = 90)]
    pub tcp_user_timeout_secs: u64,
    /// Password attempts allowed per IP address in a window: `LOGIN`s, counted before they
    /// are checked and given back when right, and every `REGISTER`; 0 does not limit.
    #[arg(long, env = "LINECHAT_LOGIN_FAILURES_PER_IP", default_value_t = 20)]
    pub login_failures_per_ip: u32,
    /// The same per account; a locked account still takes attempts from addresses with none
    /// in the window; 0 does not limit.
    #[arg(long, env = "LINECHAT_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 5)]
    pub login_failures_per_account: u32,
    /// Length of that window, in seconds; after it the counts start again.
    #[arg(
        long,
        env = "LINECHAT_LOGIN_FAILURE_WINDOW_SECS",
        default_value_t = 300
    )]
    pub login_failure_window_secs: u64,
    /// Most rooms the server holds; `CR` beyond it is refused.
    #[arg(long, env = "LINECHAT_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,
    /// Seconds a room may stay empty before it is deleted with its history, unless a
    /// registered user remembers it (is in it across logins); 0 keeps every room.
    #[arg(long, env = "LINECHAT_ROOM_EXPIRY_SECS", default_value_t = 3600)]
    pub room_expiry_secs: u64,
    /// Rooms one connection may create per minute; 0 does not limit.
    #[arg(long, env = "LINECHAT_ROOMS_CREATED_PER_MINUTE", default_value_t = 5)]
    pub rooms_created_per_minute: u32,
    /// Rooms the whole server may create per minute, from every connection together, so that
    /// many connections cannot fill `max_rooms` in moments; 0 does not limit.
    #[arg(
        long,
        env = "LINECHAT_ROOMS_CREATED_PER_MINUTE_TOTAL",
        default_value_t = 60
    )]
    pub rooms_created_per_minute_total: u32,
    /// Most members one room may have.
    #[arg(long, env = "LINECHAT_MAX_ROOM_MEMBERS", default_value_t = 10_000)]
    pub max_room_members: usize,
    /// Longest new user or room name, at most 32.
    #[arg(long, env = "LINECHAT_MAX_NAME_LENGTH", default_value_t = MAX_NAME_LEN)]
    pub max_name_length: usize,
    /// Address of the TLS listener, if any; needs `tls_cert` and `tls_key`.
    #[arg(long, env = "LINECHAT_TLS_ADDR")]
    pub tls_addr: Option<String>,
    /// PEM file with the certificate chain for TLS.
    #[arg(long, env = "LINECHAT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key for TLS.
    #[arg(long, env = "LINECHAT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a TLS connection has to finish its handshake before it is closed.
    #[arg(long, env = "LINECHAT_TLS_HANDSHAKE_TIMEOUT_SECS", default_value_t = 5)]
    pub tls_handshake_timeout_secs: u64,
    /// Seconds between log lines with the server's vital signs (connections, tasks,
    /// memory, queued output, each actor's backlog); 0 never.
    #[arg(long, env = "LINECHAT_STATS_LOG_SECS", default_value_t = 0)]
    pub stats_log_secs: u64,
    /// Address of the IRC listener, if any: IRC clients join the same chat there.
    #[arg(long, env = "LINECHAT_IRC_ADDR")]
    pub irc_addr: Option<String>,
    /// Address of a TLS IRC listener, if any; needs `tls_cert` and `tls_key`.
    #[arg(long, env = "LINECHAT_IRC_TLS_ADDR")]
    pub irc_tls_addr: Option<String>,
    /// The name the IRC listeners give the server; the host name when not set.
    #[arg(long, env = "LINECHAT_IRC_SERVER_NAME")]
    pub irc_server_name: Option<String>,
    /// A PostgreSQL database (`postgres://user:password@host:port/database`) to keep
    /// everything in instead of the SQLite file in `data_dir`, so that several nodes can
    /// share it.
    #[arg(long, env = "LINECHAT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// NATS server(s) to cluster through (`nats://host:4222`, comma-separated); set, this
    /// node joins the cluster of every node on the same NATS, and needs `database_url`, the
    /// store the nodes share. Unset, the server runs alone.
    #[arg(long, visible_alias = "nats", env = "LINECHAT_NATS_URL")]
    pub nats_url: Option<String>,
    /// This node's name in the cluster (letters, digits, `_`, `-`), unique among the nodes;
    /// unset, the host name with a random suffix. A node restarted under the same name frees
    /// the names its users held at once instead of after `node_timeout_secs`.
    #[arg(long, env = "LINECHAT_NODE_NAME")]
    pub node_name: Option<String>,
    /// User name to authenticate to NATS with; needs `nats_password`.
    #[arg(long, env = "LINECHAT_NATS_USER")]
    pub nats_user: Option<String>,
    /// Password to authenticate to NATS with; needs `nats_user`.
    #[arg(long, env = "LINECHAT_NATS_PASSWORD")]
    pub nats_password: Option<String>,
    /// Token to authenticate to NATS with, instead of a user and password.
    #[arg(long, env = "LINECHAT_NATS_TOKEN")]
    pub nats_token: Option<String>,
    /// PEM file of the certificate authority that signed the NATS server's certificate; set,
    /// the connection to NATS requires TLS.
    #[arg(long, env = "LINECHAT_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Seconds a node may stay silent before the others declare its users lost
    /// (`NOTICE OFFLINE <name> LOST`) and free their names; nodes say they live 4 times as
    /// often.
    #[arg(long, env = "LINECHAT_NODE_TIMEOUT_SECS", default_value_t = 10)]
    pub node_timeout_secs: u64,
}

/// This machine's host name, or `linechat` if it has none that IRC could show.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) || name.starts_with(':') {
        "linechat".to_owned()
    } else {
        name.to_owned()
    }
}

/// The default number of password hash workers: half the cores, at least one.
fn half_the_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

impl Default for Settings {
    /// The built-in defaults: those of the flags, read without the `LINECHAT_*` variables.
    fn default() -> Self {
        let command =
            Self::augment_args(clap::Command::new("linechat")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["linechat"])
            .expect("every setting has a default or is optional");
        Self::from_arg_matches(&matches).expect("the defaults have the settings' types")
    }
}

/// Why the settings cannot be used. Each message names its cause itself (and none is also
/// given as `source()`), so that it is printed once whether shown alone or as a chain.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    // toml's message ends with a line break after its excerpt of the file.
    #[error("bad settings file {}: {}", path.display(), error.to_string().trim_end())]
    File {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    /// A value given as a flag or variable that cannot be laid over the file's (a path that
    /// is not UTF-8, a number past the file format's range).
    #[error("cannot combine the flags and LINECHAT_* variables with {}: {error}", path.display())]
    Combine { path: PathBuf, error: String },
    /// A value of the right type that breaks a rule.
    #[error("bad setting {name} = {value}: {rule}")]
    Invalid {
        name: &'static str,
        value: String,
        rule: String,
    },
}

/// What a settings file holds: its settings over the defaults, and its keys that name no
/// setting.
#[derive(Debug)]
struct FileSettings {
    settings: Settings,
    unknown_keys: Vec<String>,
}

impl Settings {
    /// Lays the file `file` (read when it exists; a missing file is not an error) under
    /// `given`, the flags and `LINECHAT_*` variables over the defaults as parsed into
    /// `matches`, and checks the result ([`Settings::validate`]). Logs which file was read, and
    /// warns of keys in it that name no setting and of [`Settings::warnings`].
    pub fn load(given: Self, matches: &ArgMatches, file: &Path) -> Result<Self, SettingsError> {
        let settings = match read_file(file)? {
            None => {
                info!(
                    "no settings file at {}; using the defaults, LINECHAT_* variables and flags",
                    file.display()
                );
                given
            }
            Some(from_file) => {
                info!("read settings from {}", file.display());
                for key in &from_file.unknown_keys {
                    warn!(
                        "unknown setting {key:?} in {}; ignored (`--help` lists the settings)",
                        file.display()
                    );
                }
                // A value is given when it came from a flag or a variable, not from a default.
                let is_given = |name: &str| {
                    matches!(
                        matches.value_source(name),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                };
                given.over(&from_file.settings, is_given).map_err(|error| {
                    SettingsError::Combine {
                        path: file.to_owned(),
                        error,
                    }
                })?
            }
        };
        settings.validate()?;
        for warning in settings.warnings() {
            warn!("{warning}");
        }
        Ok(settings)
    }

    /// The settings `is_given` names taken from `self`, the others from `lower`.
    fn over(&self, lower: &Self, is_given: impl Fn(&str) -> bool) -> Result<Self, String> {
        // Through TOML tables, the file's own form, so that no setting is named here again.
        let mut merged = toml::Table::try_from(lower).map_err(|error| error.to_string())?;
        let given = toml::Table::try_from(self).map_err(|error| error.to_string())?;
        for name in Self::names().filter(|name| is_given(name)) {
            // An optional setting that is not set has no key.
            match given.get(name) {
                Some(value) => merged.insert(name.to_owned(), value.clone()),
                None => merged.remove(name),
            };
        }
        merged.try_into().map_err(|error| error.to_string())
    }

    /// The settings' names, as keys of the file (the flags' ids).
    pub fn names() -> impl Iterator<Item = &'static str> {
        // Built once: `Arg` ids borrow from the command.
        static COMMAND: std::sync::LazyLock<clap::Command> =
            std::sync::LazyLock::new(|| Settings::augment_args(clap::Command::new("linechat")));
        COMMAND.get_arguments().map(|arg| arg.get_id().as_str())
    }

    /// Checks the rules that a setting's type does not say; the first broken one is the
    /// error, naming the setting, its value and the rule.
    pub fn validate(&self) -> Result<(), SettingsError> {
        // Counts and sizes for which 0 would mean nothing (or refuse everything).
        let at_least_one: [(&'static str, u64); 18] = [
            ("max_line_length", self.max_line_length as u64),
            ("login_timeout_secs", self.login_timeout_secs),
            ("outbox_limit_bytes", self.outbox_limit_bytes as u64),
            ("password_hash_workers", self.password_hash_workers as u64),
            ("history_default_count", self.history_default_count.into()),
            ("history_max_count", self.history_max_count.into()),
            ("search_max_results", self.search_max_results.into()),
            ("search_timeout_ms", self.search_timeout_ms),
            (
                "storage_read_connections",
                self.storage_read_connections as u64,
            ),
            ("flood_burst", self.flood_burst.into()),
            ("flood_kick_after", self.flood_kick_after.into()),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("login_failure_window_secs", self.login_failure_window_secs),
            ("max_rooms", self.max_rooms as u64),
            ("max_room_members", self.max_room_members as u64),
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
            ),
        ];
        for (name, value) in at_least_one {
            check(value >= 1, name, value, "must be at least 1")?;
        }
        check(
            self.tcp_user_timeout_secs <= MAX_TCP_USER_TIMEOUT_SECS,
            "tcp_user_timeout_secs",
            self.tcp_user_timeout_secs,
            format!("must be at most {MAX_TCP_USER_TIMEOUT_SECS} (a day)"),
        )?;
        check(
            (1..=MAX_NAME_LEN).contains(&self.max_name_length),
            "max_name_length",
            self.max_name_length,
            format!("must be between 1 and {MAX_NAME_LEN}"),
        )?;
        if let Some(url) = &self.database_url {
            check(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "database_url",
                redacted(url),
                "must be a PostgreSQL URL: postgres://user:password@host:port/database",
            )?;
        }
        for (name, addr) in [
            ("tls_addr", &self.tls_addr),
            ("irc_tls_addr", &self.irc_tls_addr),
        ] {
            let Some(addr) = addr else { continue };
            let missing = match (&self.tls_cert, &self.tls_key) {
                (Some(_), Some(_)) => None,
                (None, Some(_)) => Some("tls_cert is not set"),
                (Some(_), None) => Some("tls_key is not set"),
                (None, None) => Some("tls_cert and tls_key are not set"),
            };
            if let Some(missing) = missing {
                check(
                    false,
                    name,
                    addr,
                    format!("needs tls_cert and tls_key, but {missing}"),
                )?;
            }
        }
        if let Some(name) = &self.irc_server_name {
            // It is the first word of IRC lines: one word of printable ASCII.
            let one_word = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
            let rule = "must be one word of printable ASCII, without ':'";
            check(
                one_word && !name.starts_with(':'),
                "irc_server_name",
                name,
                rule,
            )?;
        }
        self.validate_cluster()
    }

    /// The rules of the cluster settings.
    fn validate_cluster(&self) -> Result<(), SettingsError> {
        // The nodes of a cluster share accounts, rooms, memberships and history: one store
        // for all of them, which only PostgreSQL is.
        if let (Some(url), None) = (&self.nats_url, &self.database_url) {
            check(
                false,
                "nats_url",
                redacted(url),
                "a cluster needs database_url too: its nodes share one PostgreSQL store",
            )?;
        }
        check(
            self.node_timeout_secs >= 2,
            "node_timeout_secs",
            self.node_timeout_secs,
            "must be at least 2",
        )?;
        if let Some(node) = &self.node_name {
            let valid = !node.is_empty()
                && node.len() <= 64
                && node
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            check(
                valid,
                "node_name",
                node,
                "must be 1 to 64 letters, digits, '_' or '-'",
            )?;
        }
        match (&self.nats_user, &self.nats_password) {
            (Some(user), None) => check(false, "nats_user", user, "needs nats_password")?,
            (None, Some(_)) => check(false, "nats_password", "(hidden)", "needs nats_user")?,
            _ => {}
        }
        if self.nats_user.is_some() && self.nats_token.is_some() {
            check(
                false,
                "nats_token",
                "(hidden)",
                "cannot be used with nats_user and nats_password",
            )?;
        }
        Ok(())
    }

    /// This node's name in the cluster: `node_name`, or the host name with a random suffix.
    pub fn node_name(&self) -> String {
        if let Some(node) = &self.node_name {
            return node.clone();
        }
        let host: String = host_name()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(48)
            .collect();
        let suffix = getrandom::u32().unwrap_or(std::process::id());
        let host = if host.is_empty() { "node" } else { &host };
        format!("{host}-{suffix:08x}")
    }

    pub fn node_timeout(&self) -> Duration {
        Duration::from_secs(self.node_timeout_secs)
    }

    /// Settings that keep the rules but are likely not what was meant, each with what the
    /// server does with them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // Not an error: lowering history_max_count alone should not stop the server, and
        // protocol.md documents the cap.
        if self.history_default_count > self.history_max_count {
            warnings.push(format!(
                "history_default_count = {} is above history_max_count = {}; \
                 HISTORY without a count returns {}",
                self.history_default_count, self.history_max_count, self.history_max_count
            ));
        }
        warnings
    }

    pub fn search_timeout(&self) -> Duration {
        Duration::from_millis(self.search_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// `TCP_USER_TIMEOUT` for accepted sockets; `None` leaves the kernel's.
    pub fn tcp_user_timeout(&self) -> Option<Duration> {
        (self.tcp_user_timeout_secs > 0).then(|| Duration::from_secs(self.tcp_user_timeout_secs))
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

    /// The name the IRC listeners give the server: `irc_server_name`, else the host name.
    pub fn irc_server_name(&self) -> String {
        self.irc_server_name.clone().unwrap_or_else(host_name)
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
            database_url: self.database_url.clone(),
            history: self.history,
            batch_window: Duration::from_millis(self.history_batch_ms),
            keep_per_conversation: self.history_keep_per_conversation,
            keep_days: self.history_keep_days,
            read_connections: self.storage_read_connections,
        }
    }
}

/// The longest `tcp_user_timeout_secs`: the kernel takes milliseconds in a C `int`, and a
/// connection whose client takes longer than a day to acknowledge anything is not one to keep.
const MAX_TCP_USER_TIMEOUT_SECS: u64 = 24 * 3600;

/// A database URL as it may be shown: without its password.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `Ok` when `holds`, else the error for setting `name` = `value` breaking `rule`.
fn check(
    holds: bool,
    name: &'static str,
    value: impl Display,
    rule: impl Into<String>,
) -> Result<(), SettingsError> {
    if holds {
        return Ok(());
    }
    Err(SettingsError::Invalid {
        name,
        value: value.to_string(),
        rule: rule.into(),
    })
}

/// Reads the settings file at `path`; `None` when there is none.
fn read_file(path: &Path) -> Result<Option<FileSettings>, SettingsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(SettingsError::Read {
                path: path.to_owned(),
                error,
            });
        }
    };
    let bad_file = |error| SettingsError::File {
        path: path.to_owned(),
        error: Box::new(error),
    };
    let mut unknown_keys = Vec::new();
    let deserializer = toml::Deserializer::parse(&text).map_err(bad_file)?;
    let settings =
        serde_ignored::deserialize(deserializer, |key| unknown_keys.push(key.to_string()))
            .map_err(bad_file)?;
    Ok(Some(FileSettings {
        settings,
        unknown_keys,
    }))
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

    /// `args` parsed as the binary parses them, but without the process's `LINECHAT_*`
    /// variables, which the test run may set.
    fn parse(args: &[&str]) -> (Settings, ArgMatches) {
        let command =
            Settings::augment_args(clap::Command::new("linechat")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("linechat").chain(args.iter().copied()))
            .unwrap();
        (Settings::from_arg_matches(&matches).unwrap(), matches)
    }

    /// A settings file holding `text`, and the directory that holds it.
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linechat.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load(args: &[&str], file: &Path) -> Result<Settings, SettingsError> {
        let (given, matches) = parse(args);
        Settings::load(given, &matches, file)
    }

    /// The defaults with setting `name` set to `value`, as the file would set it.
    fn with(name: &str, value: impl Into<toml::Value>) -> Settings {
        let mut table = toml::Table::try_from(Settings::default()).unwrap();
        table.insert(name.into(), value.into());
        table.try_into().unwrap()
    }

    fn broken_rule(settings: &Settings) -> String {
        settings.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_without_file_or_flags() {
        let settings = load(&[], Path::new("/nonexistent/linechat.toml")).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.addr, "127.0.0.1:8080");
        assert_eq!(settings.max_line_length, 4096);
        assert!(settings.allow_guests && settings.history);
        assert_eq!(settings.max_name_length, MAX_NAME_LEN);
        assert_eq!(settings.password_hash_workers, half_the_cores());
        assert_eq!(settings.tls_addr, None);
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
        let (_dir, path) = file("max_line_length = 100\nshutdown_grace_secs = 9\n");
        let settings = load(
            &["--max-line-length", "200", "--allow-guests", "false"],
            &path,
        )
        .unwrap();
        assert_eq!(settings.shutdown_grace_secs, 9);
        assert_eq!(settings.max_line_length, 200);
        assert!(!settings.allow_guests);
        assert_eq!(settings.flood_burst, Settings::default().flood_burst);
    }

    #[test]
    fn a_flag_beats_the_file_even_when_it_gives_the_default() {
        let (_dir, path) = file("max_line_length = 100\n");
        let settings = load(&["--max-line-length", "4096"], &path).unwrap();
        assert_eq!(settings.max_line_length, 4096);
    }

    #[test]
    fn optional_settings_come_from_the_file_or_a_flag() {
        let (_dir, path) =
            file("tls_addr = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
        let settings = load(&[], &path).unwrap();
        assert_eq!(settings.tls_addr.as_deref(), Some("127.0.0.1:8443"));
        assert_eq!(settings.tls_key, Some(PathBuf::from("k.pem")));
        let settings = load(&["--tls-addr", "127.0.0.1:9443"], &path).unwrap();
        assert_eq!(settings.tls_addr.as_deref(), Some("127.0.0.1:9443"));
        assert_eq!(settings.tls_cert, Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn unknown_keys_are_reported_and_the_rest_is_read() {
        let (_dir, path) = file("max_line_lenght = 100\nflood_burst = 7\n[extra]\nx = 1\n");
        let read = read_file(&path).unwrap().unwrap();
        assert_eq!(read.unknown_keys, ["extra", "max_line_lenght"]);
        assert_eq!(read.settings.flood_burst, 7);
        assert_eq!(read.settings.max_line_length, 4096);
        assert_eq!(load(&[], &path).unwrap().flood_burst, 7);
    }

    #[test]
    fn a_value_of_the_wrong_type_in_the_file_names_the_file_and_the_line() {
        let (_dir, path) = file("allow_guests = false\nmax_line_length = \"abc\"\n");
        let error = load(&[], &path).unwrap_err().to_string();
        assert!(error.starts_with("bad settings file "), "{error}");
        assert!(error.contains("linechat.toml"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("max_line_length = \"abc\""), "{error}");
        assert!(!error.ends_with('\n'), "{error:?}");
    }

    #[test]
    fn a_file_that_is_not_toml_is_an_error() {
        let (_dir, path) = file("max_line_length 100\n");
        let error = load(&[], &path).unwrap_err();
        assert!(matches!(error, SettingsError::File { .. }), "{error}");
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_but_a_missing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(&[], dir.path()).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read the settings file "),
            "{error}"
        );
        assert!(load(&[], &dir.path().join("absent.toml")).is_ok());
    }

    #[test]
    fn the_defaults_keep_the_rules() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn counts_and_sizes_must_be_at_least_one() {
        for name in [
            "max_line_length",
            "login_timeout_secs",
            "outbox_limit_bytes",
            "password_hash_workers",
            "history_default_count",
            "history_max_count",
            "search_max_results",
            "search_timeout_ms",
            "storage_read_connections",
            "flood_burst",
            "flood_kick_after",
            "max_connections",
            "max_connections_per_ip",
            "idle_timeout_secs",
            "login_failure_window_secs",
            "max_rooms",
            "max_room_members",
            "tls_handshake_timeout_secs",
        ] {
            assert_eq!(
                broken_rule(&with(name, 0)),
                format!("bad setting {name} = 0: must be at least 1")
            );
            // 1 keeps this rule (history_max_count = 1 breaks another, about the default count).
            if let Err(error) = with(name, 1).validate() {
                assert!(
                    !error.to_string().contains(&format!(" {name} = ")),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn zero_is_allowed_where_it_means_off_or_unlimited() {
        for name in [
            "presence_max_online",
            "output_budget_bytes",
            "shutdown_grace_secs",
            "history_batch_ms",
            "history_keep_per_conversation",
            "history_keep_days",
            "flood_lines_per_sec",
            "idle_ping_secs",
            "login_failures_per_ip",
            "login_failures_per_account",
            "room_expiry_secs",
            "rooms_created_per_minute",
            "rooms_created_per_minute_total",
            "stats_log_secs",
            "tcp_user_timeout_secs",
        ] {
            with(name, 0).validate().unwrap();
        }
    }

    #[test]
    fn the_tcp_user_timeout_is_at_most_a_day() {
        with("tcp_user_timeout_secs", 86_400).validate().unwrap();
        assert_eq!(
            broken_rule(&with("tcp_user_timeout_secs", 86_401)),
            "bad setting tcp_user_timeout_secs = 86401: must be at most 86400 (a day)"
        );
        assert_eq!(with("tcp_user_timeout_secs", 0).tcp_user_timeout(), None);
    }

    #[test]
    fn max_name_length_is_between_1_and_32() {
        for bad in [0, 33] {
            assert_eq!(
                broken_rule(&with("max_name_length", bad)),
                format!("bad setting max_name_length = {bad}: must be between 1 and 32")
            );
        }
        for good in [1, 32] {
            with("max_name_length", good).validate().unwrap();
        }
    }

    #[test]
    fn a_default_history_count_above_the_maximum_is_a_warning() {
        assert!(Settings::default().warnings().is_empty());
        let settings = Settings {
            history_default_count: 101,
            history_max_count: 100,
            ..Settings::default()
        };
        settings.validate().unwrap();
        assert_eq!(
            settings.warnings(),
            [
                "history_default_count = 101 is above history_max_count = 100; \
              HISTORY without a count returns 100"
            ]
        );
    }

    #[test]
    fn a_tls_address_needs_a_certificate_and_a_key() {
        let tls = |cert: Option<&str>, key: Option<&str>| Settings {
            tls_addr: Some("127.0.0.1:8443".into()),
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
            ..Settings::default()
        };
        assert_eq!(
            broken_rule(&tls(None, None)),
            "bad setting tls_addr = 127.0.0.1:8443: needs tls_cert and tls_key, \
             but tls_cert and tls_key are not set"
        );
        assert!(broken_rule(&tls(Some("c.pem"), None)).ends_with("but tls_key is not set"));
        assert!(broken_rule(&tls(None, Some("k.pem"))).ends_with("but tls_cert is not set"));
        tls(Some("c.pem"), Some("k.pem")).validate().unwrap();
    }

    #[test]
    fn an_irc_tls_address_needs_a_certificate_and_the_server_name_one_word() {
        let irc_tls = Settings {
            irc_tls_addr: Some("127.0.0.1:6697".into()),
            ..Settings::default()
        };
        assert!(broken_rule(&irc_tls).starts_with("bad setting irc_tls_addr = 127.0.0.1:6697"));
        for bad in ["", "two words", ":colon"] {
            let named = Settings {
                irc_server_name: Some(bad.into()),
                ..Settings::default()
            };
            assert!(
                broken_rule(&named).starts_with("bad setting irc_server_name"),
                "{bad:?}"
            );
        }
        let named = Settings {
            irc_server_name: Some("irc.example.org".into()),
            ..Settings::default()
        };
        named.validate().unwrap();
        assert_eq!(named.irc_server_name(), "irc.example.org");
        assert!(!Settings::default().irc_server_name().is_empty());
    }

    #[test]
    fn a_database_url_must_be_postgresql_and_is_shown_without_its_password() {
        let url = |url: &str| Settings {
            database_url: Some(url.into()),
            ..Settings::default()
        };
        assert_eq!(
            broken_rule(&url("mysql://linechat:secret@db/chat")),
            "bad setting database_url = mysql://linechat:***@db/chat: must be a PostgreSQL \
             URL: postgres://user:password@host:port/database"
        );
        assert!(
            broken_rule(&url("linechat.db")).starts_with("bad setting database_url = linechat.db:")
        );
        url("postgres://linechat@127.0.0.1:5432/chat")
            .validate()
            .unwrap();
        url("postgresql://db/chat").validate().unwrap();
    }

    #[test]
    fn load_refuses_settings_that_break_a_rule() {
        let error = load(&["--max-name-length", "40"], Path::new("/nonexistent")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "bad setting max_name_length = 40: must be between 1 and 32"
        );
        let (_dir, path) = file("flood_burst = 0\n");
        assert!(load(&[], &path).is_err());
    }

    #[test]
    fn cluster_settings_are_checked() {
        let invalid = |settings: Settings| settings.validate().unwrap_err().to_string();
        let user_alone = Settings {
            nats_user: Some("linechat".into()),
            ..Settings::default()
        };
        assert_eq!(
            invalid(user_alone),
            "bad setting nats_user = linechat: needs nats_password"
        );
        let both = Settings {
            nats_user: Some("linechat".into()),
            nats_password: Some("pw".into()),
            nats_token: Some("token".into()),
            ..Settings::default()
        };
        assert!(invalid(both).starts_with("bad setting nats_token = (hidden): cannot be used"));
        let spaced = Settings {
            node_name: Some("node one".into()),
            ..Settings::default()
        };
        assert!(invalid(spaced).starts_with("bad setting node_name = node one: must be"));
        let quick = Settings {
            node_timeout_secs: 1,
            ..Settings::default()
        };
        assert!(invalid(quick).contains("must be at least 2"));
        // A cluster needs both NATS and the shared store; the store alone is fine.
        let alone = Settings {
            nats_url: Some("nats://127.0.0.1:4222".into()),
            ..Settings::default()
        };
        assert_eq!(
            invalid(alone),
            "bad setting nats_url = nats://127.0.0.1:4222: a cluster needs database_url too: \
             its nodes share one PostgreSQL store"
        );
        let shared = |nats_url: Option<&str>| Settings {
            nats_url: nats_url.map(Into::into),
            database_url: Some("postgres://linechat@127.0.0.1/chat".into()),
            ..Settings::default()
        };
        shared(Some("nats://127.0.0.1:4222")).validate().unwrap();
        shared(None).validate().unwrap();
        // Unnamed nodes get a name a subject can hold, different at each start.
        let named = Settings::default().node_name();
        assert!(
            named
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(named, Settings::default().node_name());
    }

    #[test]
    fn every_setting_is_a_flag_and_a_variable_named_after_it() {
        let command = Settings::augment_args(clap::Command::new("linechat"));
        let mut count = 0;
        for arg in command.get_arguments() {
            let name = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(name.replace('_', "-").as_str()));
            let env = format!("LINECHAT_{}", name.to_uppercase());
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&env)), "{name}");
            count += 1;
        }
        assert_eq!(count, Settings::names().count());
        // Each name is a key of the file: the serde and clap names agree.
        let table = toml::Table::try_from(Settings {
            tls_addr: Some(String::new()),
            tls_cert: Some(PathBuf::new()),
            tls_key: Some(PathBuf::new()),
            irc_addr: Some(String::new()),
            irc_tls_addr: Some(String::new()),
            irc_server_name: Some(String::new()),
            database_url: Some(String::new()),
            nats_url: Some(String::new()),
            node_name: Some(String::new()),
            nats_user: Some(String::new()),
            nats_password: Some(String::new()),
            nats_token: Some(String::new()),
            nats_tls_ca: Some(PathBuf::new()),
            ..Settings::default()
        })
        .unwrap();
        let keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut names: Vec<&str> = Settings::names().collect();
        names.sort_unstable();
        assert_eq!(keys, names);
    }

    /// README's settings table has a row per setting with its flag, variable and default, and
    /// no row for a setting that does not exist.
    #[test]
    fn the_readme_table_matches_the_declarations() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has a Configuration section");
        let rows: Vec<Vec<&str>> = section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        let command = Settings::augment_args(clap::Command::new("linechat"));
        for arg in command.get_arguments() {
            let name = arg.get_id().as_str();
            let row = rows
                .iter()
                .find(|row| row[0] == format!("`{name}`"))
                .unwrap_or_else(|| panic!("README's settings table has no row for {name}"));
            let flag = format!("`--{}", name.replace('_', "-"));
            assert!(row[1].starts_with(&flag), "{name}: flag {}", row[1]);
            let env = format!("`LINECHAT_{}`", name.to_uppercase());
            assert_eq!(row[2], env, "{name}: variable");
            let default = match arg.get_default_values() {
                [] => "none".to_owned(),
                // Depends on the machine; the README says how.
                _ if name == "password_hash_workers" => "half the CPU cores".to_owned(),
                [value] => format!("`{}`", value.to_string_lossy()),
                values => panic!("{name} has several defaults: {values:?}"),
            };
            assert!(row[3].starts_with(&default), "{name}: default {}", row[3]);
        }
        for row in &rows {
            let name = row[0].trim_matches('`');
            assert!(
                Settings::names().any(|known| known == name),
                "README's settings table lists {name}, which is no setting"
            );
        }
    }
}
