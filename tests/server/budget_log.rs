//! The log of the server-wide output budget: while many clients that do not read keep it
//! exceeded, the server writes one `output budget exceeded` line per interval with how many
//! connections it closed, not one per round of closing.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Server, ServerProcess};

/// A guest `name` in the room `hall`, whose receive window stays small and who never reads.
async fn non_reader(server: &ServerProcess, name: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr()).await.unwrap();
    stream
        .write_all(format!("NICK {name}\nJR hall\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// The number after `closed=` in a log line.
fn closed_in(line: &str) -> u64 {
    let value = line.split("closed=").nth(1).expect("closed=");
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn closes_for_the_output_budget_are_logged_as_counts() {
    let server = ServerProcess::start_with(
        &["--max-line-length", "16384"],
        &[
            ("LINECHAT_FLOOD_LINES_PER_SEC", "0"),
            ("LINECHAT_MAX_CONNECTIONS_PER_IP", "1000"),
            ("LINECHAT_OUTPUT_BUDGET_BYTES", "262144"),
        ],
    );
    let mut watcher = server.guest("watcher").await;
    let mut talker = server.guest("talker").await;
    watcher.expect("NOTICE ONLINE talker").await;
    talker.create_room("hall", &mut [&mut watcher]).await;
    let mut held = Vec::new();
    for i in 0..10 {
        held.push(non_reader(&server, &format!("nr{i}")).await);
        watcher.expect(&format!("NOTICE ONLINE nr{i}")).await;
        let (online, joined) = (format!("NOTICE ONLINE nr{i}"), format!("JR hall nr{i}"));
        talker.expect_unordered(&[&online, &joined]).await;
    }
    // 6.4 MB for each of them: far more than the budget, and more than the server's side of
    // their sockets takes (on loopback the kernel sizes it from the 64 KiB segments: it took
    // 2.8 MB here although the peer's receive buffer is 4 KiB). With 1.6 MB, a writer that
    // kept up with the burst put all of it there and was never over the budget: a flake.
    let text = "m".repeat(8000);
    let burst: String = (0..800).map(|i| format!("RM hall {i} {text}\n")).collect();
    talker.send_raw(burst.as_bytes()).await;
    for _ in 0..10 {
        let offline = watcher.expect_prefix("NOTICE OFFLINE nr").await;
        assert!(offline.ends_with(" NOT_READING"), "{offline}");
    }
    // Ten closes, in several rounds: the first is logged at once, the rest together.
    let logs = server.logs_for(Duration::from_millis(500));
    let first: Vec<_> = logs
        .iter()
        .filter(|line| line.contains("output budget exceeded"))
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    let logs = server.logs_for(Duration::from_secs(6));
    let rest: Vec<_> = logs
        .iter()
        .filter(|line| line.contains("output budget exceeded"))
        .collect();
    assert!(rest.len() <= 1, "{rest:?}");
    let closed: u64 = first.iter().chain(&rest).map(|line| closed_in(line)).sum();
    assert_eq!(closed, 10, "{first:?} {rest:?}");
    drop(held);
}
