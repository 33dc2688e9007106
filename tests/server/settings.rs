//! The settings as the binary reads them: the layers (file, `LINECHAT_*` variables, flags),
//! what it logs about its settings file, and how it refuses settings it cannot use.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::support::{PATIENCE, Server, ServerProcess};

/// Starts the binary with `args` on a fresh data directory and the settings file `config`,
/// and returns its exit status and its log when it stops by itself.
fn run_until_it_stops(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = binary(data_dir.path(), config, args, envs)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the linechat binary");
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server did not stop; log: {}", log.join().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (status, log.join().unwrap())
}

/// The binary with `args`, listening on a free port of 127.0.0.1 unless `args` say where,
/// with its log at info level.
fn binary(data_dir: &Path, config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_linechat"));
    if !args.contains(&"--addr") {
        command.args(["--addr", "127.0.0.1:0"]);
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// The one line a server that refused to start printed last.
fn error_line(status: ExitStatus, log: &str) -> &str {
    assert_eq!(status.code(), Some(1), "log: {log}");
    let last = log.lines().last().expect("an error line");
    assert!(last.starts_with("Error: "), "log: {log}");
    last
}

#[tokio::test]
async fn a_flag_beats_a_variable_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("linechat.toml"),
        "allow_guests = false\nmax_name_length = 5\n",
    )
    .unwrap();

    let server = ServerProcess::start_in(dir.path(), &[], &[]);
    expect_guests_disabled(&server).await;
    drop(server);

    let variable = [("LINECHAT_ALLOW_GUESTS", "true")];
    let server = ServerProcess::start_in(dir.path(), &[], &variable);
    server.guest("ann").await;
    let mut client = server.connect().await;
    let reply = client.ask("NICK annabel").await;
    assert!(reply.starts_with("ERR ") && reply.contains('5'), "{reply}");
    drop(server);

    let server = ServerProcess::start_in(dir.path(), &["--allow-guests", "false"], &variable);
    expect_guests_disabled(&server).await;
}

/// Checks that `server` refuses a guest login with `GUESTS_DISABLED`.
async fn expect_guests_disabled(server: &ServerProcess) {
    let mut client = server.connect().await;
    let reply = client.ask("NICK ann").await;
    assert!(reply.starts_with("ERR GUESTS_DISABLED"), "{reply}");
}

#[test]
fn the_log_names_the_settings_file_and_its_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("linechat.toml");
    std::fs::write(&config, "max_line_lenght = 100\nflood_burst = 7\n").unwrap();
    let mut child = binary(dir.path(), &config, &[], &[])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the linechat binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before_listening = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("listening on ") {
            break;
        }
        before_listening.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = before_listening.join("\n");
    assert!(
        log.contains(&format!(
            "INFO linechat::settings: read settings from {}",
            config.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "WARN linechat::settings: unknown setting \"max_line_lenght\" in {}; ignored",
            config.display()
        )),
        "{log}"
    );
}

#[test]
fn a_missing_settings_file_is_logged_and_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    // A rule broken on purpose, to stop the server once it has read its settings.
    let (status, log) = run_until_it_stops(&config, &["--max-rooms", "0"], &[]);
    assert!(
        log.contains(&format!("no settings file at {}", config.display())),
        "{log}"
    );
    assert_eq!(
        error_line(status, &log),
        "Error: bad setting max_rooms = 0: must be at least 1"
    );
}

#[test]
fn a_setting_that_breaks_a_rule_stops_the_server_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("linechat.toml");
    let expected = "Error: bad setting max_name_length = 40: must be between 1 and 32";

    let (status, log) = run_until_it_stops(&config, &["--max-name-length", "40"], &[]);
    assert_eq!(error_line(status, &log), expected);
    let (status, log) = run_until_it_stops(&config, &[], &[("LINECHAT_MAX_NAME_LENGTH", "40")]);
    assert_eq!(error_line(status, &log), expected);
    std::fs::write(&config, "max_name_length = 40\n").unwrap();
    let (status, log) = run_until_it_stops(&config, &[], &[]);
    assert_eq!(error_line(status, &log), expected);
    assert!(!log.contains("listening on"), "{log}");
}

#[test]
fn a_value_of_the_wrong_type_in_the_file_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("linechat.toml");
    std::fs::write(&config, "max_line_length = \"abc\"\n").unwrap();
    let (status, log) = run_until_it_stops(&config, &[], &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    let error = format!(
        "Error: bad settings file {}: TOML parse error at line 1, column 19",
        config.display()
    );
    assert!(log.contains(&error), "{log}");
    assert!(
        log.trim_end()
            .ends_with("invalid type: string \"abc\", expected usize"),
        "{log}"
    );
}

#[test]
fn an_address_in_use_is_said_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (status, log) =
        run_until_it_stops(&dir.path().join("linechat.toml"), &["--addr", &addr], &[]);
    let line = error_line(status, &log);
    assert!(
        line.starts_with(&format!("Error: cannot listen on {addr}: ")),
        "{log}"
    );
    assert_eq!(log.matches("Address already in use").count(), 1, "{log}");
}

#[test]
fn an_unreadable_tls_key_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let key = dir.path().join("absent-key.pem");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (status, log) = run_until_it_stops(
        &dir.path().join("linechat.toml"),
        &[
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        &[],
    );
    let line = error_line(status, &log);
    assert!(
        line.starts_with(&format!("Error: cannot read {key}: ")),
        "{log}"
    );
    assert_eq!(log.matches("No such file or directory").count(), 1, "{log}");
}
