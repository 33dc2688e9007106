//! The binary starts, listens where it says in its log, and serves: the wiring of `main.rs`,
//! which the in-process tests skip.

use crate::support::{Server, ServerProcess};

#[tokio::test]
async fn greets_and_answers_ping() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    assert_eq!(client.ask("PING 1").await, "PONG 1");
}
