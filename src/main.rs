// jemalloc rather than glibc's allocator: a chat server allocates and frees a line per
// message on one thread and many small objects per connection, where glibc spent about a
// tenth of the CPU of a private-message burst on its free lists (`malloc_consolidate`,
// `unlink_chunk`). Measured with `loadgen pm`: about 10% more messages per second, and the
// same memory per idle connection (BENCHMARKS.md). The `jemalloc` feature, on by default;
// the test suite builds without it (scripts/test.sh), as jemalloc's C build alone took two
// of the suite's minutes on two cores, and which allocator runs changes no behaviour.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use tracing::info;
use tracing_subscriber::EnvFilter;

use linechat::server::Server;
use linechat::settings::Settings;

/// The linechat server. Each setting is a flag, a LINECHAT_* environment variable and a key of
/// the config file; a flag beats the variable, which beats the file, which beats the default.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file (TOML), read when it exists.
    #[arg(long, default_value = "linechat.toml")]
    config: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // The matches, not only the parsed flags, so that the settings can tell a default from a
    // value given as a flag or variable, which beats the file's.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match Settings::load(cli.settings, &matches, &cli.config)
        .map_err(anyhow::Error::from)
        .and_then(serve)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {}", once_each(&error));
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
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

/// The error and its causes on one line, each cause once. The server's errors name their
/// cause in their own message (the log prints them alone), and some also give it as their
/// `source()`: a cause that the text so far already says is not repeated.
fn once_each(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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
