//! What a client can make the server hold: output for clients that do not read (the outbox
//! limit, streamed `HISTORY`, the server-wide output budget), idle clients that only send
//! blank lines, and the end of input after a burst.

use std::time::{Duration, Instant};

use crate::support::{Server, ServerProcess, TestServer, blank_lines_until_closed};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// History lines of about 8 kB: 1000 of them are more than the kernel's socket buffers take
/// (some 4 MB per connection on loopback), so the rest waits in the server.
const LINE_TEXT: usize = 8000;
const MESSAGES: usize = 1000;

/// The real binary, for the tests that measure its memory or read its log, set up for long
/// history lines.
fn history_process(envs: &[(&str, &str)]) -> ServerProcess {
    let mut all = vec![
        ("LINECHAT_FLOOD_LINES_PER_SEC", "0"),
        ("LINECHAT_MAX_CONNECTIONS_PER_IP", "1000"),
    ];
    all.extend_from_slice(envs);
    ServerProcess::start_with(&["--max-line-length", "16384"], &all)
}

/// Fills the global history with [`MESSAGES`] messages of [`LINE_TEXT`] bytes.
async fn fill_history(server: &impl Server) {
    let mut filler = server.guest("filler").await;
    let text = "h".repeat(LINE_TEXT);
    for start in (0..MESSAGES).step_by(100) {
        let burst: String = (start..start + 100)
            .map(|i| format!("MSG {i} {text}\n"))
            .collect();
        filler.send_raw(burst.as_bytes()).await;
        for _ in 0..100 {
            filler.expect("OK MSG").await;
        }
    }
    // Once the history answers, every message is written (and indexed for search): what the
    // server grows by after this is the readers', not the writer's catching up.
    filler.send("HISTORY * 1").await;
    filler.skip_until("OK HISTORY").await;
    assert_eq!(filler.ask("QUIT").await, "OK QUIT");
}

/// A connection with a receive buffer of a few kB, set before connecting so that the window
/// it advertises stays small: the server cannot push much into it.
async fn small_window(server: &ServerProcess) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(server.addr()).await.unwrap()
}

/// A client that logs in as `name`, asks for the whole history, and never reads a byte.
async fn non_reader(server: &ServerProcess, name: &str) -> TcpStream {
    let mut stream = small_window(server).await;
    let request = format!("NICK {name}\nHISTORY * {MESSAGES}\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn clients_that_never_read_a_long_history_hold_little_memory() {
    let outbox_limit: u64 = 16 * 1024 * 1024;
    let server = history_process(&[("LINECHAT_OUTBOX_LIMIT_BYTES", "16777216")]);
    fill_history(&server).await;
    let before = rss_kib(server.pid());

    // Each history is 8 MB, within the outbox limit: before streaming, each of these clients
    // had the server hold all of it, twice (the reply and its encoded line) less what the
    // kernel took.
    let clients = 10u64;
    let mut held = Vec::new();
    for i in 0..clients {
        held.push(non_reader(&server, &format!("r{i}")).await);
    }
    // Streaming keeps at most a small window (256 kB) and one page of history per client.
    let bound_kib = 16 * 1024 + clients * (outbox_limit / 8) / 1024;
    let mut peak = 0;
    let watch_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < watch_until {
        peak = peak.max(rss_kib(server.pid()).saturating_sub(before));
        assert!(
            peak <= bound_kib,
            "the server grew by {peak} KiB for {clients} clients that do not read \
             (bound {bound_kib} KiB)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("grew by {peak} KiB for {clients} clients, bound {bound_kib} KiB");

    // The server is still fine for a client that reads.
    let mut reader = server.guest("reader").await;
    assert_eq!(reader.ask("PING alive").await, "PONG alive");
    drop(held);
}

#[tokio::test]
async fn a_reading_client_gets_a_history_far_larger_than_its_outbox() {
    let server = TestServer::with(|settings| {
        settings.flood_lines_per_sec = 0;
        settings.max_line_length = 16384;
        settings.outbox_limit_bytes = 65536;
    });
    fill_history(&server).await;
    let mut reader = server.guest("reader").await;
    reader.send(&format!("HISTORY * {MESSAGES}")).await;
    let text = "h".repeat(LINE_TEXT);
    for i in 0..MESSAGES {
        let line = reader.line().await;
        let tail = format!(" filler {i} {text}");
        assert!(
            line.starts_with("HIST * ") && line.ends_with(&tail),
            "line {i}: {:?}",
            &line[..line.len().min(60)]
        );
    }
    reader.expect(&format!("OK HISTORY {MESSAGES}")).await;
    // Final lines keep their order with the commands around them.
    assert_eq!(reader.ask("PING after").await, "PONG after");
    reader.send("HISTORY * 2").await;
    reader.expect_prefix("HIST * ").await;
    reader.expect_prefix("HIST * ").await;
    reader.expect("OK HISTORY 2").await;
}

#[tokio::test]
async fn over_the_output_budget_the_largest_queues_are_closed_first() {
    // Each non-reader's streamed history stops at its window (256 kB) once the kernel's
    // buffers are full: two fit in the budget of 400 kB, a third does not.
    let server = history_process(&[
        ("LINECHAT_OUTBOX_LIMIT_BYTES", "16777216"),
        ("LINECHAT_OUTPUT_BUDGET_BYTES", "409600"),
    ]);
    fill_history(&server).await;
    let mut watcher = server.guest("watcher").await;

    let _first = non_reader(&server, "first").await;
    watcher.expect("NOTICE ONLINE first").await;
    // Let its queue reach the window.
    watcher.expect_silence(Duration::from_millis(1500)).await;
    let _second = non_reader(&server, "second").await;
    watcher.expect("NOTICE ONLINE second").await;
    // `second` pushes the total over the budget while its own queue is still the smaller.
    watcher.expect("NOTICE OFFLINE first NOT_READING").await;
    server.wait_for_log("output budget");
    watcher.expect_silence(Duration::from_millis(1500)).await;
    let _third = non_reader(&server, "third").await;
    watcher.expect("NOTICE ONLINE third").await;
    watcher.expect("NOTICE OFFLINE second NOT_READING").await;

    // A client that reads carries on throughout.
    assert_eq!(watcher.ask("PING fine").await, "PONG fine");
    let mut talker = server.guest("talker").await;
    watcher.expect("NOTICE ONLINE talker").await;
    assert_eq!(talker.ask("PM watcher hello").await, "OK PM watcher");
    watcher.expect("PM talker hello").await;
}

#[tokio::test]
async fn blank_lines_do_not_keep_an_idle_client_connected() {
    let server = TestServer::paused(|settings| {
        settings.idle_ping_secs = 1;
        settings.idle_timeout_secs = 1;
    })
    .await;
    let mut watcher = server.guest("watcher").await;
    // The watcher answers its PINGs, and reports how `blank` left.
    let watching = tokio::spawn(async move {
        loop {
            match watcher.line().await.as_str() {
                "PING idle" => watcher.send("PONG idle").await,
                "NOTICE ONLINE blank" => {}
                other => return other.to_string(),
            }
        }
    });
    // A blank line every 200 ms, for longer than the PING and its timeout take.
    let (closed, seen) = blank_lines_until_closed(server.addr, b"NICK blank\n", b"\n").await;
    assert!(closed, "still connected after 8 s; saw {seen:?}");
    assert_eq!(
        seen[seen.len() - 2..],
        [
            "PING idle",
            "NOTICE CLOSING IDLE_TIMEOUT no answer to PING in time"
        ],
        "saw {seen:?}"
    );
    assert_eq!(watching.await.unwrap(), "NOTICE OFFLINE blank TIMED_OUT");
}

#[tokio::test]
async fn the_end_of_input_after_a_burst_is_not_a_flood() {
    // One line per second on average, so the burst is all that counts.
    let server = TestServer::with(|settings| {
        settings.flood_lines_per_sec = 1;
        settings.flood_burst = 200;
    });
    let [mut watcher, mut sender] = server.guests(["watcher", "sender"]).await;
    // The login used one line of the burst: give it back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let burst: String = (0..206).map(|i| format!("PING {i}\n")).collect();
    sender.send_raw(burst.as_bytes()).await;
    sender.shutdown_write().await;
    let lines = sender.expect_closed().await;
    let floods = lines.iter().filter(|l| l.starts_with("ERR FLOOD")).count();
    assert_eq!(
        lines.len(),
        206,
        "{floods} ERR FLOOD; last: {:?}",
        lines.last()
    );
    let pongs: Vec<String> = (0..200).map(|i| format!("PONG {i}")).collect();
    assert_eq!(lines[..200], pongs[..]);
    let flood = "ERR FLOOD over 1 lines per second; the line was dropped";
    assert_eq!(lines[200..], [flood; 6], "after the PONGs");
    watcher.expect("NOTICE OFFLINE sender CLOSED").await;
}
