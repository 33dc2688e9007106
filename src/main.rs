// jemalloc rather than glibc's allocator: a chat server allocates and frees a line per
// message on one thread and many small objects per connection, where glibc spent about a
// tenth of the CPU of a private-message burst on its free lists (`malloc_consolidate`,
// `unlink_chunk`). Measured with `loadgen pm`: about 10% more messages per second, and the
// same memory per idle connection (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

use linechat::server::Server;
use linechat::settings::{Overrides, Settings};

/// The linechat server. Settings come from built-in defaults, then the config file, then
/// LINECHAT_* environment variables, then these flags.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on (LINECHAT_ADDR); port 0 picks a free one.
    #[arg(long)]
    addr: Option<String>,
    /// Directory for the server's files (LINECHAT_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Longest accepted line in bytes (LINECHAT_MAX_LINE_LENGTH).
    #[arg(long)]
    max_line_length: Option<usize>,
    /// Whether NICK logins without an account are allowed (LINECHAT_ALLOW_GUESTS).
    #[arg(long)]
    allow_guests: Option<bool>,
    /// Address of the TLS listener (LINECHAT_TLS_ADDR); needs tls_cert and tls_key.
    #[arg(long)]
    tls_addr: Option<String>,
    /// Settings file, read when it exists.
    #[arg(long, default_value = "linechat.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let cli = Cli::parse();
    let overrides = Overrides {
        addr: cli.addr,
        data_dir: cli.data_dir,
        max_line_length: cli.max_line_length,
        allow_guests: cli.allow_guests,
        tls_addr: cli.tls_addr,
    };
    let settings = Settings::load(&cli.config, overrides)?;
    let server = Server::bind(settings).await?;
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    info!("listening on {}", server.local_addr()?);
    if let Some(addr) = server.tls_addr() {
        info!("TLS listening on {}", addr?);
    }
    server.run(shutdown).await;
    info!("bye");
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers at once (so that a signal right after start is
/// not fatal) and returns a future that resolves on either.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
