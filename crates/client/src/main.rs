//! linechat's terminal client.
//!
//! `client` connects to a linechat server, logs in (asking for a name and a password when
//! they are not given), then runs either the full-screen TUI (when standard input and output
//! are a terminal, or with `--tui`) or line mode (otherwise, or with `--plain`), which suits
//! pipes and scripts. See the README's "Client" section.

mod connection;
mod format;
mod input;
mod login;
mod plain;
mod session;
mod tui;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use connection::Backoff;
use session::Session;

#[derive(Debug, Parser)]
#[command(
    name = "client",
    version,
    about = "linechat's terminal client: a full-screen UI in a terminal, line mode in pipes",
    after_help = "In a terminal the client shows the full-screen UI, where a line goes to the \
                  selected conversation. When standard input or output is not a terminal \
                  (or with --plain) it reads lines from standard input, each a :command or \
                  a message for the room joined last (else everyone), and prints what \
                  arrives, one line each. Type :help once connected for the commands."
)]
struct Cli {
    /// Server address.
    #[arg(long, env = "LINECHAT_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Name to log in with (asked for on the terminal when missing).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// File whose first line is the password (asked for on the terminal, not echoed, when
    /// missing).
    #[arg(long, value_name = "PATH", conflicts_with = "guest")]
    password_file: Option<PathBuf>,
    /// Create the account, without asking, when there is none with this name and password.
    #[arg(long, conflicts_with = "guest")]
    register: bool,
    /// Log in as a guest (NICK): no password and no account.
    #[arg(long)]
    guest: bool,
    /// Use the full-screen UI even when standard input or output is not a terminal.
    #[arg(long, conflicts_with = "plain")]
    tui: bool,
    /// Use line mode even in a terminal.
    #[arg(long)]
    plain: bool,
}

fn main() {
    let cli = Cli::parse();
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let tui = cli.tui || (terminal && !cli.plain);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let code = runtime.block_on(run(cli, tui));
    let _ = std::io::stdout().flush();
    // Not waiting for the threads that read standard input or the terminal.
    std::process::exit(code);
}

async fn run(cli: Cli, tui: bool) -> i32 {
    let credentials =
        match login::credentials(cli.user.as_deref(), cli.password_file.as_deref(), cli.guest) {
            Ok(credentials) => credentials,
            Err(error) => {
                eprintln!("client: {error}");
                return 2;
            }
        };
    let policy = if cli.register {
        login::Register::Yes
    } else if std::io::stdin().is_terminal() {
        login::Register::Ask {
            confirm: cli.password_file.is_none(),
        }
    } else {
        login::Register::No
    };
    let (connection, name, before) = match login::first(&cli.addr, &credentials, policy).await {
        Ok(done) => done,
        Err(error) => {
            eprintln!("client: {error}");
            return 1;
        }
    };
    let backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(10),
        // A script should not hang for ever on a server that is gone; a person can quit.
        attempts: if tui { None } else { Some(10) },
    };
    let has_account = credentials.password.is_some();
    let link = connection::spawn_link(
        cli.addr.clone(),
        credentials,
        connection,
        name.clone(),
        before,
        backoff,
    );
    let mut session = Session::new(name);
    session.has_account = has_account;
    if tui {
        match tui::run(tui::App::new(session, cli.addr), link).await {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("client: {error}");
                1
            }
        }
    } else {
        plain::run(session, &cli.addr, link, plain::read_stdin()).await
    }
}
