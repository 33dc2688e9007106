//! What waits for an IRC client's welcome: the lines for a user logged in by SASL who has
//! not ended capability negotiation are queued output like any other, within the outbox
//! limit and the server's output budget.

use super::closing::sasl_without_cap_end;
use super::raw::server_with;
use crate::support::Server;

#[tokio::test]
async fn lines_waiting_for_the_welcome_count_against_the_output_budget() {
    // The budget is far below what the talker sends, and the outbox limit far above it.
    let server = server_with(|settings| {
        settings.flood_lines_per_sec = 0;
        settings.outbox_limit_bytes = 16 * 1024 * 1024;
        settings.output_budget_bytes = 256 * 1024;
    });
    server.register("sam", "pw").await.quit().await;
    let mut talker = server.guest("talker").await;
    let mut sam = sasl_without_cap_end(&server, "sam", "pw").await;
    talker.expect("NOTICE ONLINE sam").await;

    // 600 kB of global chat, all of it for sam, who cannot be shown it before the welcome.
    let text = "t".repeat(3000);
    let burst: String = (0..200).map(|i| format!("MSG {i} {text}\n")).collect();
    talker.send_raw(burst.as_bytes()).await;
    let (mut answers, mut closed) = (0, false);
    while answers < 200 || !closed {
        match talker.line().await.as_str() {
            "OK MSG" => answers += 1,
            "NOTICE OFFLINE sam NOT_READING" => closed = true,
            other => panic!("after {answers} OK MSG: {other:?}"),
        }
    }
    // Closed as a client that does not read: without a parting line.
    assert_eq!(sam.until_closed().await, Vec::<String>::new());
    // The talker, who reads, carries on.
    assert_eq!(talker.ask("PING fine").await, "PONG fine");
}
