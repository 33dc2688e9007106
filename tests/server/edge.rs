//! The server's edges, over real TCP: what an accepted connection costs (TLS handshakes,
//! connection limits, the login deadline, file descriptors) and which text is refused.

use std::time::Duration;

use crate::support::tls::{Tls, TlsServer};
use crate::support::{Client, Server, ServerProcess, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls;

/// Text that would show something else than it says is refused whole, naming the character,
/// and reaches nobody; emoji sequences with joiners and variation selectors still pass.
#[tokio::test]
async fn invisible_and_bidi_characters_are_refused_in_text() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;

    // "Trojan Source": an override that makes "txt.exe" read as "exe.txt".
    let reply = alice.ask("PM bob open \u{202E}txt.exe").await;
    assert_eq!(
        reply,
        "ERR BAD_TEXT invisible or direction-changing character U+202E is not allowed"
    );
    for line in [
        "MSG \u{2067}isolated\u{2069}",
        "MSG zero\u{200B}width",
        "MSG \u{3164}",
        "MSG hidden\u{E0041}\u{E0042}",
        "MSG line\u{2028}break",
    ] {
        let reply = alice.ask(line).await;
        assert!(reply.starts_with("ERR BAD_TEXT "), "{line:?}: {reply}");
        assert!(reply.contains(" U+"), "{line:?}: {reply}");
    }

    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{2764}\u{FE0F}";
    assert_eq!(alice.ask(&format!("PM bob {family}")).await, "OK PM bob");
    // The refused lines never reached bob: the first line he gets is the allowed one.
    assert_eq!(bob.line().await, format!("PM alice {family}"));
}

/// Waits for the server to close a connection on which the client sends nothing, and
/// returns how long that took; `None` if it is still open after `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait.saturating_sub(started.elapsed()), tcp.read(&mut buf)).await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // a goodbye line, or TLS bytes: wait for the close
        }
    }
}

/// Silent TCP connections to the TLS port count against the connection limits from the
/// moment they are accepted, and those over a limit are closed at once: they neither wait
/// for a handshake nor hold a descriptor for its timeout.
#[tokio::test]
async fn tls_connections_over_the_limit_are_closed_at_accept() {
    let tls = TlsServer::start(|settings| {
        settings.max_connections_per_ip = 3;
        // Long, so that only a refusal can explain a prompt close.
        settings.tls_handshake_timeout_secs = 30;
    });
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(tls.tls_addr).await.unwrap());
    }
    for extra in 0..20 {
        let mut tcp = TcpStream::connect(tls.tls_addr).await.unwrap();
        let closed = closed_within(&mut tcp, Duration::from_secs(3)).await;
        assert!(
            closed.is_some(),
            "extra TLS connection {extra} is still open"
        );
    }
    // Nothing but time can show that a connection stays open.
    let still_open = futures::future::join_all(
        held.iter_mut()
            .map(|tcp| closed_within(tcp, Duration::from_millis(200))),
    )
    .await;
    assert_eq!(still_open, [None; 3], "a counted connection was closed");
    // The silent TLS connections count against the same per-address limit as plain ones...
    let mut plain = Client::connect(tls.server.addr).await;
    plain.expect_prefix("ERR TOO_MANY_CONNECTIONS ").await;
    // ...while another address is greeted on the plain port.
    Client::greeted_from("127.0.0.2", tls.server.addr).await;

    // Once the silent ones go, their places are free for a real TLS client.
    drop(held);
    // The server may not have seen the silent ones go yet.
    let hello = crate::support::eventually("a TLS client greeted", async || {
        let tcp = TcpStream::connect(tls.tls_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tls.tls.connector.connect(name, tcp).await.ok()?;
        let mut lines = BufReader::new(stream).lines();
        let hello = tokio::time::timeout(crate::support::PATIENCE, lines.next_line()).await;
        hello.ok()?.ok().flatten()
    })
    .await;
    assert!(hello.starts_with("HELLO "), "{hello}");
}

/// A TLS connection that never starts its handshake is closed after
/// `tls_handshake_timeout_secs`, not after the login timeout (60 s). On the real clock: with
/// the test's paused clock, an idle moment before the server's task had seen the connection
/// let the clock jump to another timer first (a loaded run closed it at 2.001 s).
#[tokio::test]
async fn a_silent_tls_connection_is_closed_after_the_handshake_timeout() {
    let tls = TlsServer::start(|settings| settings.tls_handshake_timeout_secs = 1);
    let mut tcp = TcpStream::connect(tls.tls_addr).await.unwrap();
    let closed = closed_within(&mut tcp, Duration::from_secs(8))
        .await
        .expect("closed after the handshake timeout");
    // The server's clock may start a moment before the client's.
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(8),
        "closed after {closed:?}"
    );
}

/// The login deadline runs from the TCP connect, so time spent in the TLS handshake is
/// part of it.
#[tokio::test]
async fn the_login_deadline_includes_the_tls_handshake() {
    let tls = Tls::new();
    let server = TestServer::paused(|settings| {
        tls.configure(settings);
        settings.login_timeout_secs = 3;
        settings.tls_handshake_timeout_secs = 5;
    })
    .await;
    let connected = Instant::now();
    let tcp = TcpStream::connect(server.tls_addr.unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut lines = tls.handshake(tcp).await;
    let next = async |lines: &mut tokio::io::Lines<_>| {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a line or the close in time")
    };
    let hello = next(&mut lines).await.unwrap().unwrap();
    assert!(hello.starts_with("HELLO "), "{hello}");
    let closing = next(&mut lines).await.unwrap().unwrap();
    assert_eq!(closing, "NOTICE CLOSING LOGIN_TIMEOUT no login in time");
    let since_connect = connected.elapsed();
    // 3 s after the connect, not 3 s after the handshake (5.5 s).
    assert!(
        since_connect >= Duration::from_secs(3) && since_connect < Duration::from_millis(3100),
        "login timeout came {since_connect:?} after the connect"
    );
}

/// Accepted sockets have TCP keepalive on, so that a client that vanished without a word
/// (power cut, NAT dropped) is found out by the kernel. Seen from outside with `ss`, which
/// shows a keepalive timer on the server's side of the connection (when no other timer, such
/// as a retransmission, is running at that moment: hence a few looks).
#[tokio::test]
async fn accepted_connections_have_tcp_keepalive() {
    let server = TestServer::start();
    let _client = server.guest("kept").await;
    let filter = format!("( sport = :{} )", server.addr.port());
    let mut sockets = String::new();
    for _ in 0..20 {
        let output = match std::process::Command::new("ss")
            .args(["-tnoH", "state", "established", &filter])
            .output()
        {
            Ok(output) => output,
            Err(error) => {
                eprintln!("skipped: cannot run ss: {error}");
                return;
            }
        };
        sockets = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(!sockets.trim().is_empty(), "ss shows no server socket");
        if sockets.contains("timer:(keepalive") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no keepalive timer on the server's socket: {sockets}");
}

/// Runs the server under `ulimit <limit>` (e.g. `-Sn 64`), set by a shell around it.
fn start_with_ulimit(limit: &str, envs: &[(&str, &str)]) -> ServerProcess {
    let script = format!("ulimit {limit} && exec \"$0\" \"$@\"");
    ServerProcess::start_wrapped(&["bash", "-c", &script], &[], envs)
}

/// The open-file limit of a running process, soft and hard, from /proc.
fn nofile_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Started with a low soft open-file limit, the server raises it towards the hard limit, says
/// so, and serves more connections than the old soft limit would have allowed.
#[tokio::test]
async fn a_low_soft_descriptor_limit_is_raised_at_start() {
    let (_, hard) = nofile_limit(std::process::id());
    if hard < 1024 {
        eprintln!("skipped: the hard open-file limit here is only {hard}");
        return;
    }
    let server = start_with_ulimit("-Sn 64", &[("LINECHAT_MAX_CONNECTIONS_PER_IP", "1000")]);
    let line = server.wait_for_log("open-file limit");
    assert!(line.contains("raised") && line.contains("64"), "{line}");
    let (soft, _) = nofile_limit(server.pid());
    assert!(soft > 1000, "soft limit still {soft}");
    let mut clients = Vec::new();
    for _ in 0..150 {
        clients.push(server.connect().await);
    }
}

/// With a low hard limit the server cannot raise, it warns with numbers and serves fewer
/// connections than `max_connections`, so that connections past the descriptors are refused
/// with `ERR TOO_MANY_CONNECTIONS` rather than left hanging unaccepted; accept never fails.
#[tokio::test]
async fn a_low_hard_descriptor_limit_lowers_max_connections() {
    let server = start_with_ulimit("-n 128", &[("LINECHAT_MAX_CONNECTIONS_PER_IP", "1000")]);
    let warning = server.wait_for_log("open-file limit");
    assert!(warning.contains("128"), "{warning}");
    let mut greeted = Vec::new();
    let mut refused = 0;
    for _ in 0..160 {
        let mut client = Client::connect(server.addr).await;
        let first = client.line().await;
        if first.starts_with("HELLO ") {
            greeted.push(client);
        } else {
            assert!(first.starts_with("ERR TOO_MANY_CONNECTIONS "), "{first}");
            refused += 1;
        }
    }
    assert!(greeted.len() >= 32, "only {} greeted", greeted.len());
    assert!(refused > 0, "none refused");
    let logs = server.logs_for(Duration::from_millis(200));
    assert!(
        !logs.iter().any(|line| line.contains("accept failed")),
        "{logs:?}"
    );
    // Those who were served can chat, and a place freed is taken again.
    greeted.truncate(10);
    server.connect_once_free().await;
}

/// When `accept` fails for lack of descriptors (here: the soft limit lowered under the running
/// server), the server backs off and logs the failures once in a while with a count instead of
/// once per attempt; once descriptors are back, the waiting clients are greeted.
#[tokio::test]
async fn accept_failures_back_off_and_are_logged_with_a_count() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no prlimit");
        return;
    }
    let server = ServerProcess::start_with(&[], &[("LINECHAT_MAX_CONNECTIONS_PER_IP", "1000")]);
    let pid = server.pid();
    let mut alice = server.guest("alice").await;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let set_soft = |soft: String| {
        let status = std::process::Command::new("prlimit")
            .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
            .status()
            .unwrap();
        assert!(status.success());
    };
    set_soft(open.to_string());
    // These wait in the listen queue: the server cannot accept them.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(Client::connect(server.addr).await);
    }
    // Long enough for five attempts (the pause doubles from 50 ms), each of which would have
    // its own line without the tally.
    let logs = server.logs_for(Duration::from_millis(1500));
    let failures: Vec<_> = logs
        .iter()
        .filter(|line| line.contains("accept failed"))
        .collect();
    assert!(!failures.is_empty(), "no accept failure logged: {logs:?}");
    assert!(
        failures.len() <= 3,
        "accept failures flood the log: {failures:?}"
    );
    // Chat goes on meanwhile.
    assert_eq!(alice.ask("PING still").await, "PONG still");

    set_soft(nofile_limit(pid).1.to_string());
    for client in &mut waiting {
        client.expect_prefix("HELLO ").await;
    }
}
